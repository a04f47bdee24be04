//! multipath.conf compatibility (being written).
pub mod cli;
