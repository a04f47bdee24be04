//! The device under test: opened O_RDONLY|O_DIRECT, its block size and size, and whether it is
//! still there.
use std::{
    fs::File,
    os::{
        fd::AsRawFd,
        unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt},
    },
    path::{Path, PathBuf},
};

use anyhow::{Context, Result, bail};

/// Block size used when BLKBSZGET fails (the spec's fallback).
pub(crate) const FALLBACK_BLOCK_SIZE: u32 = 512;

/// An open block device. Its file is closed on the closer thread when the last reference
/// goes (a close can block behind a hung open of the same disk: see `workers.rs`).
#[derive(Debug)]
pub(crate) struct Target {
    pub(crate) file: std::mem::ManuallyDrop<File>,
    /// The node the caller named (kept for messages and the presence check).
    pub(crate) node: PathBuf,
    pub(crate) major: u32,
    pub(crate) minor: u32,
    /// Bytes per read: BLKBSZGET, or 512.
    pub(crate) block_size: u32,
    /// Whole blocks on the device: reads never reach past its end.
    pub(crate) blocks: u64,
}

impl Target {
    /// Open `node` for sampling. This can block on a sick device, so the sampler calls it on a
    /// helper thread, never on the ring thread.
    pub(crate) fn open(node: &Path) -> Result<Self> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECT | libc::O_CLOEXEC)
            .open(node)
            .with_context(|| format!("device {}: cannot open O_RDONLY|O_DIRECT", node.display()))?;
        let metadata = file
            .metadata()
            .with_context(|| format!("device {}: fstat", node.display()))?;
        if !metadata.file_type().is_block_device() {
            bail!("{} is not a block device", node.display());
        }
        let rdev = metadata.rdev();
        let block_size = match block_size(&file) {
            Ok(size) if size > 0 => size,
            Ok(_) | Err(_) => {
                log::debug!(
                    "{}: BLKBSZGET failed, reading {FALLBACK_BLOCK_SIZE}-byte blocks",
                    node.display()
                );
                FALLBACK_BLOCK_SIZE
            }
        };
        let bytes = device_bytes(&file).with_context(|| {
            format!(
                "device {}: cannot get its size (BLKGETSIZE64)",
                node.display()
            )
        })?;
        let blocks = bytes / u64::from(block_size);
        if blocks == 0 {
            bail!(
                "device {}: {bytes} bytes, less than one {block_size}-byte block",
                node.display()
            );
        }
        Ok(Self {
            file: std::mem::ManuallyDrop::new(file),
            node: node.to_path_buf(),
            major: libc::major(rdev),
            minor: libc::minor(rdev),
            block_size,
            blocks,
        })
    }

    /// `/dev/sdb (8:16)`, how messages name the device.
    pub(crate) fn describe(&self) -> String {
        format!("{} ({}:{})", self.node.display(), self.major, self.minor)
    }

    /// `Err(why)` once the device is gone: its sysfs entry vanished, or its node no longer
    /// names it (devtmpfs removes both when a disk is deleted). Only metadata lookups, no
    /// device I/O, so it cannot hang on a sick device.
    pub(crate) fn check_present(&self) -> Result<(), String> {
        let sysfs = format!("/sys/dev/block/{}:{}", self.major, self.minor);
        if std::fs::symlink_metadata(&sysfs).is_err() {
            return Err(format!(
                "device {} vanished: {sysfs} is gone",
                self.describe()
            ));
        }
        match std::fs::metadata(&self.node) {
            Ok(m)
                if m.file_type().is_block_device()
                    && libc::major(m.rdev()) == self.major
                    && libc::minor(m.rdev()) == self.minor =>
            {
                Ok(())
            }
            Ok(_) => Err(format!(
                "device {} vanished: {} now names another file",
                self.describe(),
                self.node.display()
            )),
            Err(err) => Err(format!(
                "device {} vanished: {}: {err}",
                self.describe(),
                self.node.display()
            )),
        }
    }
}

// BLKBSZGET is declared `_IOR(0x12, 112, size_t)` but the kernel stores an int; passing an int
// with the size_t request number is what C callers do.
const BLKBSZGET: libc::c_ulong =
    nix::request_code_read!(0x12, 112, std::mem::size_of::<usize>()) as libc::c_ulong;
nix::ioctl_read!(blkgetsize64, 0x12, 114, u64);

fn block_size(file: &File) -> std::io::Result<u32> {
    let mut size: libc::c_int = 0;
    // SAFETY: BLKBSZGET writes one int through the pointer, which points at `size`.
    let rc = unsafe {
        libc::ioctl(
            file.as_raw_fd(),
            BLKBSZGET as _,
            &mut size as *mut libc::c_int,
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(u32::try_from(size).unwrap_or(0))
}

fn device_bytes(file: &File) -> nix::Result<u64> {
    let mut bytes = 0u64;
    // SAFETY: BLKGETSIZE64 writes one u64 through the pointer, which points at `bytes`.
    unsafe { blkgetsize64(file.as_raw_fd(), &mut bytes) }?;
    Ok(bytes)
}

impl Drop for Target {
    fn drop(&mut self) {
        // SAFETY: `file` is taken exactly once, here, and never used after.
        let file = unsafe { std::mem::ManuallyDrop::take(&mut self.file) };
        super::workers::close_elsewhere(file);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_numbers_match_linux_fs_h() {
        // From <linux/fs.h> on x86_64: BLKBSZGET 0x80081270, BLKGETSIZE64 0x80081272.
        #[cfg(target_pointer_width = "64")]
        assert_eq!(BLKBSZGET, 0x8008_1270);
    }

    #[test]
    fn opening_a_missing_device_names_it() {
        let err = Target::open(Path::new("/dev/no-such-marginal-disk")).unwrap_err();
        assert!(
            format!("{err:#}").contains("/dev/no-such-marginal-disk"),
            "{err:#}"
        );
    }

    #[test]
    fn a_regular_file_is_refused() {
        let dir = std::env::temp_dir().join(format!("marginal-target-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("plain");
        std::fs::write(&path, vec![0u8; 8192]).unwrap();
        // Some filesystems refuse O_DIRECT itself; either way the error names the file.
        let err = Target::open(&path).unwrap_err();
        assert!(format!("{err:#}").contains("plain"), "{err:#}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
