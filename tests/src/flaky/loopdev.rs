//! Loop devices in direct-I/O mode, driven through `losetup` from util-linux.
//!
//! Why `losetup` rather than a crate: the maintained crate (`loopdev-3`) generates its ioctl
//! bindings with bindgen at build time, which would make libclang a build dependency of the
//! whole workspace; `losetup` is in util-linux on every Debian machine, attaches with
//! LOOP_CONFIGURE (direct I/O set atomically at attach), and retries on its own when a
//! parallel attach takes the free device it found.

use std::fs;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// An attached loop device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LoopDevice {
    pub(crate) path: PathBuf,
    /// `loopN`, the name under /sys/block.
    pub(crate) name: String,
    pub(crate) major: u32,
    pub(crate) minor: u32,
}

// losetup copes with other processes racing for the same free device, but serialising our
// own threads keeps a test binary from making it retry needlessly.
static LOSETUP: Mutex<()> = Mutex::new(());

fn losetup(args: &[&std::ffi::OsStr]) -> Result<String> {
    let _guard = LOSETUP.lock().unwrap_or_else(|e| e.into_inner());
    let out = Command::new("losetup")
        .args(args)
        .output()
        .context("running losetup (util-linux)")?;
    if !out.status.success() {
        bail!(
            "losetup {:?} failed ({}): {}",
            args,
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Attaches `backing` to a free loop device with direct I/O on.
pub(crate) fn attach_direct(backing: &Path) -> Result<LoopDevice> {
    let path = losetup(&[
        "--find".as_ref(),
        "--show".as_ref(),
        "--direct-io=on".as_ref(),
        backing.as_os_str(),
    ])?;
    let path = PathBuf::from(path);
    let meta = fs::metadata(&path).with_context(|| format!("stat {}", path.display()))?;
    if !meta.file_type().is_block_device() {
        bail!(
            "losetup printed {}, which is not a block device",
            path.display()
        );
    }
    let rdev = meta.rdev();
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .context("loop device path has no name")?
        .to_string();
    let dev = LoopDevice {
        major: libc::major(rdev),
        minor: libc::minor(rdev),
        path,
        name,
    };
    // Without working direct I/O the loop driver reads through the page cache, which would
    // merge, prefetch and cache reads and break the one-read-one-FUSE-read guarantee.
    let dio = read_sys(&dev.name, "loop/dio").unwrap_or_default();
    if dio != "1" {
        let _ = detach(&dev, backing);
        bail!(
            "{} was attached without direct I/O (loop/dio = {dio:?})",
            dev.path.display()
        );
    }
    settle_udev();
    Ok(dev)
}

/// Where udevd runs, a new loop device makes it probe the device with blkid, whose reads
/// would count against the schedule; wait for that to be over before the test starts.
fn settle_udev() {
    if Path::new("/run/udev/control").exists() {
        let _ = Command::new("udevadm")
            .args(["settle", "--timeout=10"])
            .status();
    }
}

fn read_sys(name: &str, attr: &str) -> Option<String> {
    fs::read_to_string(format!("/sys/block/{name}/{attr}"))
        .ok()
        .map(|s| s.trim().to_string())
}

/// Writes a queue attribute such as `nomerges`.
pub(crate) fn set_queue_attr(dev: &LoopDevice, attr: &str, value: &str) -> Result<()> {
    let path = format!("/sys/block/{}/queue/{attr}", dev.name);
    fs::write(&path, value).with_context(|| format!("writing {value} to {path}"))
}

/// Whether `dev` is still attached to `backing` (another test may already reuse the number).
pub(crate) fn is_attached_to(dev: &LoopDevice, backing: &Path) -> bool {
    read_sys(&dev.name, "loop/backing_file").is_some_and(|f| Path::new(&f) == backing)
}

/// Detaches `dev` and waits until the kernel has let go of `backing`.
///
/// The kernel defers the detach while anyone holds the device open (autoclear), so this
/// waits a while for such holders before giving up.
pub(crate) fn detach(dev: &LoopDevice, backing: &Path) -> Result<()> {
    if !is_attached_to(dev, backing) {
        return Ok(());
    }
    losetup(&["--detach".as_ref(), dev.path.as_os_str()])?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while is_attached_to(dev, backing) {
        if Instant::now() >= deadline {
            bail!(
                "{} still holds {} 10 s after detach (is it open somewhere?)",
                dev.path.display(),
                backing.display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// Loop devices whose backing file path satisfies `pred`, with that path.
pub(crate) fn attached_where(pred: impl Fn(&str) -> bool) -> Vec<(LoopDevice, PathBuf)> {
    let Ok(entries) = fs::read_dir("/sys/block") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with("loop") {
            continue;
        }
        let Some(backing) = read_sys(&name, "loop/backing_file") else {
            continue;
        };
        if !pred(&backing) {
            continue;
        }
        let Some((major, minor)) = read_sys(&name, "dev").and_then(|d| {
            let (a, b) = d.split_once(':')?;
            Some((a.parse().ok()?, b.parse().ok()?))
        }) else {
            continue;
        };
        let dev = LoopDevice {
            path: PathBuf::from(format!("/dev/{name}")),
            name,
            major,
            minor,
        };
        found.push((dev, PathBuf::from(backing)));
    }
    found
}
