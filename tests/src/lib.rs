//! Test fixtures for marginal: a real block device whose reads fail on demand.
//!
//! marginal watches block-layer read failures, so its tests need a device that fails reads
//! exactly when a test wants it to, on a kernel without device-mapper, scsi_debug or fault
//! injection. [`FlakyDevice`] builds one from two stock kernel features:
//!
//! * a FUSE filesystem (served by a thread of the test process, via the `fuser` crate) with a
//!   single fixed-size file whose `read()` answers data, EIO, or nothing at all according to
//!   a [`Schedule`] the test can change at any time;
//! * a loop device over that file with direct I/O on (`losetup --direct-io=on`) and
//!   `queue/nomerges` = 2, so that every O_DIRECT read of `/dev/loopN` becomes exactly one
//!   FUSE read and fails or succeeds on its own. A failed read is a real block-layer I/O
//!   error: `block:block_rq_error` and `block:block_rq_complete` report it with the loop
//!   device's dev_t.
//!
//! ```no_run
//! use marginal_tests::{FlakyDevice, FlakyOptions, Schedule, read_direct};
//! let dev = FlakyDevice::create(FlakyOptions::default())?;
//! dev.set_schedule(Schedule::EveryNth(10));
//! assert_eq!(read_direct(&dev, 100), (90, 10));
//! # anyhow::Ok(())
//! ```
//!
//! Needs root (loop devices and mount(2)), `/dev/fuse`, `/dev/loop-control` and `losetup`
//! from util-linux; no libfuse. The `flaky-device` binary offers the same from a shell.

pub mod binary;
pub mod flaky;

pub use binary::{
    RunningDaemon, free_local_addr, marginal_binary, observe_args, run_marginal, stderr_text,
    stdout_text,
};

pub use flaky::device::{FlakyDevice, FlakyOptions, NAME_PREFIX, cleanup_stale, require_root};
pub use flaky::fs::{IMAGE_NAME, fill_pattern};
pub use flaky::io::{READ_SIZE, read_direct, read_direct_at, read_direct_outcomes, sample_offset};
pub use flaky::schedule::{Outcome, Schedule, Stats};
