//! [`FlakyDevice`]: the FUSE mount, the loop device over it, and their teardown.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use nix::mount::{MntFlags, MsFlags};

use super::fs::{Control, FlakyFs, IMAGE_NAME};
use super::loopdev::{self, LoopDevice};
use super::schedule::{Schedule, Stats};

/// Prefix of every mount directory, FUSE source name and hence backing-file path the fixture
/// creates; [`cleanup_stale`] recognises leftovers by it.
pub const NAME_PREFIX: &str = "marginal-flaky-";

/// How to build a [`FlakyDevice`].
#[derive(Debug, Clone)]
pub struct FlakyOptions {
    /// Size of the image and hence of the loop device; a multiple of 4096.
    pub size_bytes: u64,
    /// Schedule in force once `create` returns (reads made while setting up do not count).
    pub schedule: Schedule,
    /// Value for `/sys/block/loopN/queue/nomerges`: 2 (the default) stops the block layer
    /// from merging adjacent reads into one request, which would fail or succeed together.
    pub nomerges: u8,
}

impl Default for FlakyOptions {
    fn default() -> Self {
        FlakyOptions {
            size_bytes: 64 << 20,
            schedule: Schedule::Healthy,
            nomerges: 2,
        }
    }
}

/// The FUSE daemon thread and what is needed to stop it.
struct Daemon {
    // In a Mutex only so that FlakyDevice is Sync and tests can share it between threads.
    done: Mutex<mpsc::Receiver<io::Result<()>>>,
    handle: JoinHandle<()>,
    /// The mount's kernel device number, which names its directory under
    /// /sys/fs/fuse/connections (needed to abort a connection that will not go away).
    conn: u64,
}

/// A real block device (`/dev/loopN`) whose reads fail on a schedule the test controls.
///
/// Dropping it detaches the loop device, unmounts the FUSE filesystem and removes its
/// directory, also while a test panics. Each instance is independent, so tests running in
/// parallel threads can each have their own.
pub struct FlakyDevice {
    control: Arc<Control>,
    mount_dir: PathBuf,
    backing: PathBuf,
    size: u64,
    loop_dev: Option<LoopDevice>,
    daemon: Option<Daemon>,
    dir_created: bool,
}

/// Fails with a clear message unless running as root.
pub fn require_root() -> Result<()> {
    if nix::unistd::geteuid().is_root() {
        Ok(())
    } else {
        bail!("this test needs root: loop devices and FUSE (run it with sudo, or as root in CI)")
    }
}

impl FlakyDevice {
    /// Mounts the flaky file, attaches a loop device to it in direct-I/O mode and applies
    /// `options.nomerges`; whatever was set up is torn down again if a later step fails.
    pub fn create(options: FlakyOptions) -> Result<FlakyDevice> {
        require_root()?;
        if options.size_bytes == 0 || !options.size_bytes.is_multiple_of(4096) {
            bail!(
                "size_bytes must be a non-zero multiple of 4096, got {}",
                options.size_bytes
            );
        }
        static SEQ: AtomicU64 = AtomicU64::new(0);
        // The pid in the name lets cleanup_stale tell leftovers of dead processes; a reused
        // pid can meet such a leftover, so a taken name is skipped rather than an error.
        let (id, mount_dir) = loop {
            let id = format!(
                "{NAME_PREFIX}{}-{}",
                std::process::id(),
                SEQ.fetch_add(1, Ordering::Relaxed)
            );
            let dir = std::env::temp_dir().join(&id);
            match fs::DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => break (id, dir),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(anyhow!("creating {}: {e}", dir.display())),
            }
        };
        let mut dev = FlakyDevice {
            control: Arc::new(Control::new(Schedule::Healthy, options.size_bytes)),
            backing: mount_dir.join(IMAGE_NAME),
            mount_dir,
            size: options.size_bytes,
            loop_dev: None,
            daemon: None,
            dir_created: true,
        };
        dev.daemon = Some(mount(&dev.mount_dir, &id, dev.control.clone())?);
        let loop_dev = loopdev::attach_direct(&dev.backing)?;
        let nomerges = options.nomerges.to_string();
        dev.loop_dev = Some(loop_dev.clone());
        loopdev::set_queue_attr(&loop_dev, "nomerges", &nomerges)?;
        dev.control.set_schedule(options.schedule);
        dev.control.reset_stats();
        Ok(dev)
    }

    /// `/dev/loopN`.
    pub fn loop_path(&self) -> &Path {
        &self.loop_dev().path
    }

    /// `loopN`, the device's name under /sys/block.
    pub fn loop_name(&self) -> &str {
        &self.loop_dev().name
    }

    /// The loop device's major and minor numbers.
    pub fn major_minor(&self) -> (u32, u32) {
        let d = self.loop_dev();
        (d.major, d.minor)
    }

    /// The device number as the kernel encodes it internally (`major << 20 | minor`), which
    /// is what block tracepoints such as `block:block_rq_error` report in their `dev` field.
    pub fn kernel_dev(&self) -> u32 {
        let (major, minor) = self.major_minor();
        (major << 20) | minor
    }

    /// The FUSE file the loop device reads from.
    pub fn backing_file(&self) -> &Path {
        &self.backing
    }

    /// Where the FUSE filesystem is mounted.
    pub fn mount_dir(&self) -> &Path {
        &self.mount_dir
    }

    /// Size of the device in bytes.
    pub fn size_bytes(&self) -> u64 {
        self.size
    }

    /// Changes the schedule; its read count starts again from zero.
    pub fn set_schedule(&self, schedule: Schedule) {
        self.control.set_schedule(schedule);
    }

    /// The error failing reads get from now on: EIO by default; the loop device turns it into
    /// the block status the kernel's `errno_to_blk_status()` gives it (ENODATA: a medium
    /// error, ENOSPC: no space, ...).
    pub fn set_error(&self, errno: i32) {
        self.control.set_error(fuser::Errno::from_i32(errno));
    }

    /// The schedule in force.
    pub fn schedule(&self) -> Schedule {
        self.control.schedule()
    }

    /// Counters of reads and writes so far.
    pub fn stats(&self) -> Stats {
        self.control.stats()
    }

    /// Zeroes the counters (reads still hung stay counted in `reads` and `hung_now`).
    pub fn reset_stats(&self) {
        self.control.reset_stats();
    }

    /// Completes every hung read successfully; returns how many there were.
    ///
    /// The schedule stays as it is: with [`Schedule::Hang`] later reads hang again.
    pub fn release_hung(&self) -> usize {
        self.control.answer_hung(true)
    }

    /// Completes every hung read with EIO; returns how many there were.
    pub fn fail_hung(&self) -> usize {
        self.control.answer_hung(false)
    }

    /// Waits until at least `n` reads are hung; false if that did not happen in `timeout`.
    pub fn wait_for_hung(&self, n: u64, timeout: Duration) -> bool {
        self.control.wait_until(timeout, |s| s.hung_now >= n)
    }

    /// Waits until the stats satisfy `pred`; false if they did not within `timeout`.
    pub fn wait_for_stats(&self, timeout: Duration, pred: impl Fn(&Stats) -> bool) -> bool {
        self.control.wait_until(timeout, pred)
    }

    /// Tears down like `drop`, but reports what went wrong.
    pub fn close(mut self) -> Result<()> {
        self.teardown()
    }

    fn loop_dev(&self) -> &LoopDevice {
        self.loop_dev
            .as_ref()
            .expect("a FlakyDevice has its loop device until it is dropped")
    }

    fn teardown(&mut self) -> Result<()> {
        let mut errors = Vec::new();
        // Hung reads keep the loop device busy, and its detach and our unmount would wait
        // for them forever; stop new ones first, then answer the old ones.
        self.control.set_schedule(Schedule::Healthy);
        self.control.answer_hung(false);
        if let Some(dev) = self.loop_dev.take()
            && let Err(e) = loopdev::detach(&dev, &self.backing)
        {
            errors.push(e);
        }
        if let Some(daemon) = self.daemon.take()
            && let Err(e) = unmount(&self.mount_dir, daemon)
        {
            errors.push(e);
        }
        if self.dir_created {
            self.dir_created = false;
            if let Err(e) = fs::remove_dir(&self.mount_dir) {
                errors.push(anyhow!("removing {}: {e}", self.mount_dir.display()));
            }
        }
        match errors.len() {
            0 => Ok(()),
            _ => Err(anyhow!(
                "tearing down flaky device at {}: {}",
                self.mount_dir.display(),
                errors
                    .iter()
                    .map(|e| format!("{e:#}"))
                    .collect::<Vec<_>>()
                    .join("; ")
            )),
        }
    }
}

// Tests share one device between reader threads and the thread that steers it.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<FlakyDevice>();
};

impl Drop for FlakyDevice {
    fn drop(&mut self) {
        if let Err(e) = self.teardown() {
            eprintln!("warning: {e:#}");
        }
    }
}

fn mount(dir: &Path, fsname: &str, control: Arc<Control>) -> Result<Daemon> {
    use fuser::{Config, MountOption, SessionACL};
    let mut config = Config::default();
    config.mount_options = vec![
        MountOption::FSName(fsname.to_string()),
        MountOption::RW,
        MountOption::NoAtime,
    ];
    // allow_other: the loop driver's I/O and other root processes must reach the file
    // whatever credentials they run with.
    config.acl = SessionACL::All;
    let session = fuser::Session::new(FlakyFs::new(control), dir, &config)
        .with_context(|| format!("mounting FUSE at {} (is /dev/fuse there?)", dir.display()))?;
    let (tx, done) = mpsc::channel();
    let handle = std::thread::Builder::new()
        .name("flaky-fuse".to_string())
        .spawn(move || {
            let _ = tx.send(session.run());
        })
        .context("spawning the FUSE daemon thread")?;
    // Only now: stat of the mount point is a FUSE request, which needs the daemon running.
    let conn = match fs::metadata(dir) {
        Ok(m) => {
            let dev = m.dev();
            (u64::from(libc::major(dev)) << 20) | u64::from(libc::minor(dev))
        }
        Err(e) => {
            let _ = nix::mount::umount2(dir, MntFlags::MNT_DETACH);
            return Err(anyhow!("stat {} after mounting: {e}", dir.display()));
        }
    };
    Ok(Daemon {
        done: Mutex::new(done),
        handle,
        conn,
    })
}

/// Unmounts and stops the daemon; lazily, and by aborting the connection, if anything still
/// holds the file open, so that nothing stays behind.
fn unmount(dir: &Path, daemon: Daemon) -> Result<()> {
    let mut result = Ok(());
    match nix::mount::umount2(dir, MntFlags::empty()) {
        Ok(()) => {}
        Err(nix::errno::Errno::EBUSY) => {
            result = Err(anyhow!("{} was busy; unmounted lazily", dir.display()));
            nix::mount::umount2(dir, MntFlags::MNT_DETACH)
                .with_context(|| format!("lazy unmount of {}", dir.display()))?;
        }
        Err(e) => return Err(anyhow!("unmounting {}: {e}", dir.display())),
    }
    let done = daemon.done.into_inner().unwrap_or_else(|e| e.into_inner());
    let stopped = done.recv_timeout(Duration::from_secs(5)).is_ok() || {
        abort_connection(daemon.conn)?;
        done.recv_timeout(Duration::from_secs(5)).is_ok()
    };
    if !stopped {
        // Joining would block forever; the thread is left to the process's exit.
        bail!("FUSE daemon for {} did not stop", dir.display());
    }
    let _ = daemon.handle.join();
    result
}

fn abort_connection(conn: u64) -> Result<()> {
    let ctl = Path::new("/sys/fs/fuse/connections");
    if !ctl.join(conn.to_string()).exists() {
        // fusectl is often not mounted; mounting it is harmless and idempotent enough.
        let _ = nix::mount::mount(
            Some("fusectl"),
            ctl,
            Some("fusectl"),
            MsFlags::empty(),
            None::<&str>,
        );
    }
    let abort = ctl.join(conn.to_string()).join("abort");
    fs::write(&abort, "1").with_context(|| format!("writing {}", abort.display()))
}

/// Removes what crashed processes left behind: loop devices over, and FUSE mounts of,
/// fixture files whose process is gone. Returns a line per thing removed.
pub fn cleanup_stale() -> Result<Vec<String>> {
    require_root()?;
    let mut done = Vec::new();
    let dead =
        |s: &str| owner_pid(s).is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists());
    for (dev, backing) in loopdev::attached_where(|b| dead(b)) {
        loopdev::detach(&dev, &backing)?;
        done.push(format!(
            "detached {} ({})",
            dev.path.display(),
            backing.display()
        ));
    }
    let mounts = fs::read_to_string("/proc/self/mounts").context("reading /proc/self/mounts")?;
    for line in mounts.lines() {
        let mut fields = line.split(' ');
        let (Some(source), Some(target)) = (fields.next(), fields.next()) else {
            continue;
        };
        if source.starts_with(NAME_PREFIX) && dead(source) {
            // The daemon is gone, so the mount can only be dropped lazily.
            let target = unescape_mount_path(target);
            nix::mount::umount2(target.as_str(), MntFlags::MNT_DETACH)
                .with_context(|| format!("unmounting {target}"))?;
            let _ = fs::remove_dir(&target);
            done.push(format!("unmounted {target}"));
        }
    }
    Ok(done)
}

/// The pid in a name made by [`FlakyDevice::create`] (`...marginal-flaky-<pid>-<seq>...`).
fn owner_pid(s: &str) -> Option<u32> {
    let rest = &s[s.find(NAME_PREFIX)? + NAME_PREFIX.len()..];
    rest.split('-').next()?.parse().ok()
}

/// /proc/mounts escapes space, tab, newline and backslash as octal.
fn unescape_mount_path(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match octal {
            Some(d) if b[i] == b'\\' => {
                out.push(d.iter().fold(0u8, |v, c| (v << 3) | (c - b'0')));
                i += 4;
            }
            _ => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_pid_parses_names() {
        assert_eq!(owner_pid("marginal-flaky-123-4"), Some(123));
        assert_eq!(owner_pid("/tmp/marginal-flaky-77-0/disk.img"), Some(77));
        assert_eq!(owner_pid("/tmp/other/disk.img"), None);
    }

    #[test]
    fn unescapes_mount_paths() {
        assert_eq!(unescape_mount_path("/tmp/a\\040b"), "/tmp/a b");
        assert_eq!(unescape_mount_path("/tmp/plain"), "/tmp/plain");
    }
}
