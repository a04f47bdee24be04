//! The kernel's own accounting of BPF program cost (`BPF_ENABLE_STATS`).
use std::os::fd::OwnedFd;

use anyhow::{Context, Result};

/// While this lives, the kernel counts run time and run count of every BPF program.
pub struct RunStatsGuard {
    _fd: OwnedFd,
}

impl RunStatsGuard {
    pub fn enable() -> Result<Self> {
        let fd = aya::sys::enable_stats(aya::sys::Stats::RunTime)
            .context("enabling BPF run-time statistics (BPF_ENABLE_STATS, kernel >= 5.8)")?;
        Ok(Self { _fd: fd })
    }
}
