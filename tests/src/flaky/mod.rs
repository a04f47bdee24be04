//! The flaky block device fixture; see the crate documentation.

pub mod device;
pub mod fs;
pub mod io;
mod loopdev;
pub mod schedule;
