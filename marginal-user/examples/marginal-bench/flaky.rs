//! A flaky loop device served by the `flaky-device` binary (tests/src/bin), and O_DIRECT
//! reads of it.
//!
//! The FUSE server runs in its own process, so its CPU time is not charged to the harness,
//! and the schedule is switched over its stdin (`fail-all`, `healthy`).
use std::{
    fs::{File, OpenOptions},
    io::{BufRead, BufReader, Write},
    os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt},
    path::{Path, PathBuf},
    process::{Child, ChildStdin, ChildStdout, Command, Stdio},
};

use anyhow::{Context, Result, bail};

pub struct FlakyDevice {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    pub node: PathBuf,
    /// Kernel-internal dev_t, as the block tracepoints report it.
    pub kernel_dev: u32,
}

impl FlakyDevice {
    pub fn start(binary: &Path, schedule_flag: &str) -> Result<Self> {
        let mut child = Command::new(binary)
            .arg(schedule_flag)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let stdin = child.stdin.take();
        let mut stdout = BufReader::new(child.stdout.take().context("flaky-device stdout")?);
        let mut line = String::new();
        stdout.read_line(&mut line)?;
        let node = PathBuf::from(line.trim());
        if !line.starts_with("/dev/loop") {
            bail!("flaky-device did not give a loop device (got {line:?})");
        }
        let rdev = std::fs::metadata(&node)?.rdev();
        let kernel_dev = marginal_common::kernel_dev(libc::major(rdev), libc::minor(rdev));
        Ok(Self {
            child,
            stdin,
            stdout,
            node,
            kernel_dev,
        })
    }

    /// Switch the schedule (`fail-all`, `healthy`, ...) and wait for the acknowledgement.
    pub fn set(&mut self, schedule: &str) -> Result<()> {
        let stdin = self.stdin.as_mut().context("flaky-device stdin closed")?;
        writeln!(stdin, "{schedule}")?;
        stdin.flush()?;
        let mut line = String::new();
        self.stdout.read_line(&mut line)?;
        if line.trim() != "ok" {
            bail!("flaky-device answered {line:?} to {schedule:?}");
        }
        Ok(())
    }

    pub fn open_direct(&self) -> Result<DirectReader> {
        DirectReader::open(&self.node)
    }
}

impl Drop for FlakyDevice {
    fn drop(&mut self) {
        // End of file on stdin tears the device down.
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

/// O_DIRECT 4 KiB reads of a block device, at every other block so that no two reads are
/// adjacent (the fixture also sets nomerges = 2).
pub struct DirectReader {
    file: File,
    buf: Vec<u8>,
    start: usize,
    blocks: u64,
    next: u64,
}

const BLOCK: usize = 4096;

impl DirectReader {
    pub fn open(node: &Path) -> Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECT)
            .open(node)
            .with_context(|| format!("opening {} O_DIRECT", node.display()))?;
        let size = block_device_size(&file)?;
        let buf = vec![0u8; 2 * BLOCK];
        let start = buf.as_ptr().align_offset(BLOCK);
        Ok(Self {
            file,
            buf,
            start,
            blocks: (size / BLOCK as u64).max(2),
            next: 0,
        })
    }

    /// One read; Ok(true) if it succeeded, Ok(false) on EIO, Err on anything else.
    pub fn read(&mut self) -> Result<bool> {
        let block = (2 * self.next + 1) % self.blocks;
        self.next += 1;
        let buf = &mut self.buf[self.start..self.start + BLOCK];
        match self.file.read_at(buf, block * BLOCK as u64) {
            Ok(_) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::EIO) => Ok(false),
            Err(e) => Err(e).context("O_DIRECT read"),
        }
    }

    /// `n` reads that must all end as `expect_ok` says; returns how many did.
    pub fn read_n(&mut self, n: usize, expect_ok: bool) -> Result<usize> {
        let mut matching = 0;
        for _ in 0..n {
            if self.read()? == expect_ok {
                matching += 1;
            }
        }
        Ok(matching)
    }
}

fn block_device_size(file: &File) -> Result<u64> {
    const BLKGETSIZE64: libc::c_ulong = 0x80081272;
    let mut size: u64 = 0;
    // SAFETY: BLKGETSIZE64 writes a u64 through the pointer.
    let rc = unsafe {
        libc::ioctl(
            std::os::fd::AsRawFd::as_raw_fd(file),
            BLKGETSIZE64,
            &mut size,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).context("BLKGETSIZE64");
    }
    Ok(size)
}
