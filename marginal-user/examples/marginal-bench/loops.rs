//! Many loop devices over sparse files in /dev/shm, for the sampler and scale benchmarks.
//!
//! Attached with ioctls (LOOP_CTL_GET_FREE + LOOP_CONFIGURE with direct I/O) rather than one
//! `losetup` process each: thousands of devices in seconds. Every backing file is named
//! `/dev/shm/marginal-bench-*`, so [`cleanup`] finds what this or an earlier, crashed run left
//! behind by the backing file alone and never touches anyone else's loop devices.
use std::{
    fs::{self, File, OpenOptions},
    os::fd::AsRawFd,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

/// Prefix of every backing file (and hence how leftovers are recognised).
pub const BACKING_PREFIX: &str = "/dev/shm/marginal-bench-";

const LOOP_CTL_GET_FREE: libc::c_ulong = 0x4C82;
const LOOP_CTL_REMOVE: libc::c_ulong = 0x4C81;
const LOOP_CONFIGURE: libc::c_ulong = 0x4C0A;
const LOOP_CLR_FD: libc::c_ulong = 0x4C01;
const LO_FLAGS_DIRECT_IO: u32 = 16;

/// `struct loop_info64` (linux/loop.h).
#[repr(C)]
struct LoopInfo64 {
    lo_device: u64,
    lo_inode: u64,
    lo_rdevice: u64,
    lo_offset: u64,
    lo_sizelimit: u64,
    lo_number: u32,
    lo_encrypt_type: u32,
    lo_encrypt_key_size: u32,
    lo_flags: u32,
    lo_file_name: [u8; 64],
    lo_crypt_name: [u8; 64],
    lo_encrypt_key: [u8; 32],
    lo_init: [u64; 2],
}

/// `struct loop_config` (linux/loop.h, kernel >= 5.8).
#[repr(C)]
struct LoopConfig {
    fd: u32,
    block_size: u32,
    info: LoopInfo64,
    reserved: [u64; 8],
}

/// Attach `count` loop devices, each over a sparse file of `size_bytes` in /dev/shm, with
/// direct I/O on (tmpfs accepts O_DIRECT since Linux 6.6). Returns their nodes.
pub fn create(count: usize, size_bytes: u64) -> Result<Vec<PathBuf>> {
    let control = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/loop-control")
        .context("opening /dev/loop-control (root, loop driver)")?;
    let mut nodes = Vec::with_capacity(count);
    for i in 0..count {
        let backing = format!("{BACKING_PREFIX}{}-{i}", std::process::id());
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&backing)
            .with_context(|| format!("creating {backing}"))?;
        file.set_len(size_bytes)?;
        nodes.push(attach(&control, &file, &backing)?);
    }
    Ok(nodes)
}

/// One attach; another process can take the free device between GET_FREE and CONFIGURE
/// (EBUSY), so that is retried with the next free one.
fn attach(control: &File, backing: &File, name: &str) -> Result<PathBuf> {
    for _ in 0..100 {
        // SAFETY: plain ioctl on an open fd, no argument.
        let index = unsafe { libc::ioctl(control.as_raw_fd(), LOOP_CTL_GET_FREE) };
        if index < 0 {
            return Err(std::io::Error::last_os_error()).context("LOOP_CTL_GET_FREE");
        }
        let node = PathBuf::from(format!("/dev/loop{index}"));
        let device = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&node)
            .with_context(|| format!("opening {}", node.display()))?;
        // SAFETY: all-zero is a valid loop_config.
        let mut config: LoopConfig = unsafe { std::mem::zeroed() };
        config.fd = backing.as_raw_fd() as u32;
        config.info.lo_flags = LO_FLAGS_DIRECT_IO;
        let bytes = name.as_bytes();
        let n = bytes.len().min(63);
        config.info.lo_file_name[..n].copy_from_slice(&bytes[..n]);
        // SAFETY: the kernel reads a loop_config from the pointer.
        let rc = unsafe { libc::ioctl(device.as_raw_fd(), LOOP_CONFIGURE, &config) };
        if rc == 0 {
            return Ok(node);
        }
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EBUSY) {
            return Err(err).with_context(|| format!("LOOP_CONFIGURE {}", node.display()));
        }
    }
    bail!("no free loop device after 100 attempts (others are attaching too fast?)")
}

/// Detach every loop device whose backing file is one of ours, remove the devices the loop
/// driver created on demand (index >= max_loop; the pre-made ones stay), and delete the
/// backing files. Returns how many devices were detached.
pub fn cleanup() -> Result<usize> {
    let mut ours = Vec::new();
    for entry in fs::read_dir("/sys/block")?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(index) = name
            .strip_prefix("loop")
            .and_then(|n| n.parse::<i64>().ok())
        else {
            continue;
        };
        let backing = fs::read_to_string(entry.path().join("loop/backing_file"))
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        if backing.starts_with(BACKING_PREFIX) {
            ours.push((index, backing));
        }
    }
    let premade: i64 = fs::read_to_string("/sys/module/loop/parameters/max_loop")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(8);
    let control = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/loop-control")
        .ok();
    // Each detach and removal waits for the block layer (queue freeze, RCU grace periods:
    // tens of milliseconds here), so thousands in a row would take minutes; in parallel the
    // waits overlap.
    let chunk = ours.len().div_ceil(64).max(1);
    std::thread::scope(|scope| {
        for part in ours.chunks(chunk) {
            let control = control.as_ref();
            scope.spawn(move || {
                for (index, _) in part {
                    detach_and_remove(*index, premade, control);
                }
            });
        }
    });
    for entry in fs::read_dir("/dev/shm")?.flatten() {
        let path = entry.path();
        if path.to_string_lossy().starts_with(BACKING_PREFIX) {
            let _ = fs::remove_file(&path);
        }
    }
    Ok(ours.len())
}

/// Detach `/dev/loop<index>` and, if the driver made it on demand, remove it.
fn detach_and_remove(index: i64, premade: i64, control: Option<&File>) {
    let node = format!("/dev/loop{index}");
    if let Ok(device) = OpenOptions::new().read(true).open(&node) {
        // SAFETY: plain ioctl; the detach completes when this, the last opener, closes.
        unsafe { libc::ioctl(device.as_raw_fd(), LOOP_CLR_FD) };
    }
    if let Some(control) = control
        && index >= premade
    {
        wait_detached(index);
        // Fails harmlessly (EBUSY) if someone else took the device in between.
        // SAFETY: plain ioctl with an integer argument.
        unsafe { libc::ioctl(control.as_raw_fd(), LOOP_CTL_REMOVE, index) };
    }
}

fn wait_detached(index: i64) {
    let attr = format!("/sys/block/loop{index}/loop/backing_file");
    let deadline = Instant::now() + Duration::from_secs(2);
    while Path::new(&attr).exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
}
