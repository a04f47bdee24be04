//! O_DIRECT reads of a device, the way the tests (and marginal's sampler) reach it.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

use super::device::FlakyDevice;

/// Size of each sample read, and the alignment O_DIRECT needs for offsets and buffers.
pub const READ_SIZE: usize = 4096;

/// Offset of the `i`-th sample read: every other 4 KiB block, so consecutive samples are
/// never adjacent and cannot be merged into one request even where merging is allowed.
pub fn sample_offset(i: usize, size_bytes: u64) -> u64 {
    let blocks = (size_bytes / READ_SIZE as u64).max(1);
    let block = (2 * i as u64 + 1) % blocks;
    block * READ_SIZE as u64
}

/// A READ_SIZE buffer aligned for O_DIRECT, carved out of a larger Vec.
struct AlignedBuf {
    raw: Vec<u8>,
    start: usize,
}

impl AlignedBuf {
    fn new() -> Self {
        let raw = vec![0u8; 2 * READ_SIZE];
        let start = raw.as_ptr().align_offset(READ_SIZE);
        AlignedBuf { raw, start }
    }

    fn as_mut(&mut self) -> &mut [u8] {
        &mut self.raw[self.start..self.start + READ_SIZE]
    }
}

fn open_direct(path: &Path) -> io::Result<File> {
    // Read-only: closing a device opened for writing makes udev (where it runs) re-probe it,
    // and the probe's reads would be counted by the schedule.
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
}

/// One O_DIRECT read of READ_SIZE bytes at `offset`; returns the data.
pub fn read_direct_at(path: &Path, offset: u64) -> io::Result<Vec<u8>> {
    let file = open_direct(path)?;
    let mut buf = AlignedBuf::new();
    let n = file.read_at(buf.as_mut(), offset)?;
    Ok(buf.as_mut()[..n].to_vec())
}

/// `count` O_DIRECT reads, one after the other, at [`sample_offset`]s of the device at
/// `path` (of `size_bytes`); element i says whether read i succeeded.
///
/// Only EIO counts as a failed read; any other error (a bad path, EINVAL from misalignment)
/// is returned, so a broken test is not mistaken for a flaky device.
pub fn read_direct_outcomes(path: &Path, size_bytes: u64, count: usize) -> io::Result<Vec<bool>> {
    let file = open_direct(path)?;
    let mut buf = AlignedBuf::new();
    let mut outcomes = Vec::with_capacity(count);
    for i in 0..count {
        match file.read_at(buf.as_mut(), sample_offset(i, size_bytes)) {
            Ok(n) if n == READ_SIZE => outcomes.push(true),
            Ok(n) => {
                return Err(io::Error::other(format!(
                    "short O_DIRECT read of {n} bytes from {}",
                    path.display()
                )));
            }
            Err(e) if e.raw_os_error() == Some(libc::EIO) => outcomes.push(false),
            Err(e) => return Err(e),
        }
    }
    Ok(outcomes)
}

/// `count` O_DIRECT sample reads of `dev`: returns (succeeded, failed with EIO).
///
/// # Panics
/// On any error other than EIO (see [`read_direct_outcomes`]).
pub fn read_direct(dev: &FlakyDevice, count: usize) -> (usize, usize) {
    let outcomes = read_direct_outcomes(dev.loop_path(), dev.size_bytes(), count)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dev.loop_path().display()));
    let ok = outcomes.iter().filter(|&&ok| ok).count();
    (ok, count - ok)
}
