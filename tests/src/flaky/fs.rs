//! The FUSE filesystem: one fixed-size file whose reads follow a [`Schedule`].
//!
//! Built on `fuser` without its `libfuse` feature: fuser then mounts with mount(2) itself
//! (we are root), so neither libfuse nor its headers are needed at build or run time.

use std::ffi::OsStr;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, UNIX_EPOCH};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner,
    OpenFlags, ReplyAttr, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyWrite,
    Request, WriteFlags,
};

use super::schedule::{Outcome, Schedule, Stats};

/// Name of the single file in the flaky filesystem.
pub const IMAGE_NAME: &str = "disk.img";

const IMAGE_INO: INodeNo = INodeNo(2);
// The file never changes size, so the kernel may cache attributes for as long as it likes.
const ATTR_TTL: Duration = Duration::from_secs(3600);
const SECTOR: u64 = 512;

/// A read held back by [`Schedule::Hang`]; answering `reply` completes it.
struct HungRead {
    reply: ReplyData,
    offset: u64,
    size: u32,
}

struct Inner {
    schedule: Schedule,
    /// What a failing read is answered with (EIO unless a test asks for another error).
    error: Errno,
    /// Reads seen since `schedule` was set: the schedule's clock.
    index: u64,
    stats: Stats,
    hung: Vec<HungRead>,
}

/// State shared between the FUSE daemon thread and the test: the schedule can change while
/// reads are being served.
pub(crate) struct Control {
    inner: Mutex<Inner>,
    /// Signalled whenever the stats change, for [`Control::wait_until`].
    changed: Condvar,
    size: u64,
}

impl Control {
    pub(crate) fn new(schedule: Schedule, size: u64) -> Self {
        Control {
            inner: Mutex::new(Inner {
                schedule,
                error: Errno::EIO,
                index: 0,
                stats: Stats::default(),
                hung: Vec::new(),
            }),
            changed: Condvar::new(),
            size,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the counters inconsistent enough to
        // matter, and refusing to serve reads afterwards would hang the loop device.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn set_schedule(&self, schedule: Schedule) {
        let mut inner = self.lock();
        inner.schedule = schedule;
        inner.index = 0;
    }

    pub(crate) fn set_error(&self, error: Errno) {
        self.lock().error = error;
    }

    pub(crate) fn schedule(&self) -> Schedule {
        self.lock().schedule
    }

    pub(crate) fn stats(&self) -> Stats {
        self.lock().stats
    }

    pub(crate) fn reset_stats(&self) {
        let mut inner = self.lock();
        let hung_now = inner.hung.len() as u64;
        inner.stats = Stats {
            reads: hung_now,
            hung_now,
            ..Stats::default()
        };
    }

    /// Answers every hung read, with data if `serve`, else with EIO; returns how many.
    pub(crate) fn answer_hung(&self, serve: bool) -> usize {
        let hung = {
            let mut inner = self.lock();
            let hung = std::mem::take(&mut inner.hung);
            let n = hung.len() as u64;
            inner.stats.hung_now -= n;
            if serve {
                inner.stats.reads_ok += n;
            } else {
                inner.stats.reads_failed += n;
            }
            hung
        };
        self.changed.notify_all();
        let count = hung.len();
        // Replies write to /dev/fuse; doing it outside the lock keeps reads flowing.
        for h in hung {
            if serve {
                h.reply.data(&self.image_bytes(h.offset, h.size));
            } else {
                h.reply.error(Errno::EIO);
            }
        }
        count
    }

    /// Waits until `pred` holds for the stats or `timeout` passes; returns whether it held.
    pub(crate) fn wait_until(&self, timeout: Duration, pred: impl Fn(&Stats) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut inner = self.lock();
        loop {
            if pred(&inner.stats) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            inner = self
                .changed
                .wait_timeout(inner, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    fn image_bytes(&self, offset: u64, size: u32) -> Vec<u8> {
        let end = offset.saturating_add(u64::from(size)).min(self.size);
        let len = end.saturating_sub(offset) as usize;
        let mut buf = vec![0u8; len];
        fill_pattern(&mut buf, offset);
        buf
    }

    fn read(&self, offset: u64, size: u32, reply: ReplyData) {
        let (outcome, error) = {
            let mut inner = self.lock();
            inner.index += 1;
            inner.stats.reads += 1;
            let outcome = inner.schedule.outcome(inner.index);
            match outcome {
                Outcome::Serve => inner.stats.reads_ok += 1,
                Outcome::Fail => inner.stats.reads_failed += 1,
                Outcome::Hang => {
                    inner.stats.reads_hung += 1;
                    inner.stats.hung_now += 1;
                    // Parked under the same lock that counted it, so that answer_hung never
                    // misses a read it has counted. Parking instead of blocking keeps the
                    // daemon serving other requests, the release of hung reads among them.
                    inner.hung.push(HungRead {
                        reply,
                        offset,
                        size,
                    });
                    drop(inner);
                    self.changed.notify_all();
                    return;
                }
            }
            (outcome, inner.error)
        };
        match outcome {
            Outcome::Fail => reply.error(error),
            _ => reply.data(&self.image_bytes(offset, size)),
        }
        self.changed.notify_all();
    }

    fn write(&self) {
        self.lock().stats.writes += 1;
        self.changed.notify_all();
    }
}

/// Content of the image: each 512-byte sector starts with its sector number (u64, little
/// endian) and is zero after that, so a test can tell which sector a read returned.
pub fn fill_pattern(buf: &mut [u8], offset: u64) {
    buf.fill(0);
    let end = offset + buf.len() as u64;
    let mut sector = offset / SECTOR;
    while sector * SECTOR < end {
        let tag = sector.to_le_bytes();
        for (i, byte) in tag.iter().enumerate() {
            let pos = sector * SECTOR + i as u64;
            if pos >= offset && pos < end {
                buf[(pos - offset) as usize] = *byte;
            }
        }
        sector += 1;
    }
}

pub(crate) struct FlakyFs {
    control: std::sync::Arc<Control>,
    uid: u32,
    gid: u32,
}

impl FlakyFs {
    pub(crate) fn new(control: std::sync::Arc<Control>) -> Self {
        FlakyFs {
            control,
            uid: nix::unistd::geteuid().as_raw(),
            gid: nix::unistd::getegid().as_raw(),
        }
    }

    fn attr(&self, ino: INodeNo) -> Option<FileAttr> {
        let (kind, perm, size, nlink) = match ino {
            INodeNo::ROOT => (FileType::Directory, 0o700, 0, 2),
            IMAGE_INO => (FileType::RegularFile, 0o600, self.control.size, 1),
            _ => return None,
        };
        Some(FileAttr {
            ino,
            size,
            blocks: size.div_ceil(SECTOR),
            atime: UNIX_EPOCH,
            mtime: UNIX_EPOCH,
            ctime: UNIX_EPOCH,
            crtime: UNIX_EPOCH,
            kind,
            perm,
            nlink,
            uid: self.uid,
            gid: self.gid,
            rdev: 0,
            flags: 0,
            blksize: 4096,
        })
    }
}

impl Filesystem for FlakyFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match self.attr(IMAGE_INO) {
            Some(attr) if parent == INodeNo::ROOT && name == IMAGE_NAME => {
                reply.entry(&ATTR_TTL, &attr, Generation(0))
            }
            _ => reply.error(Errno::ENOENT),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.attr(ino) {
            Some(attr) => reply.attr(&ATTR_TTL, &attr),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn setattr(
        &self,
        req: &Request,
        ino: INodeNo,
        _mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        _size: Option<u64>,
        _atime: Option<fuser::TimeOrNow>,
        _mtime: Option<fuser::TimeOrNow>,
        _ctime: Option<std::time::SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<std::time::SystemTime>,
        _chgtime: Option<std::time::SystemTime>,
        _bkuptime: Option<std::time::SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        // The image is fixed: accept and ignore changes so tools that touch it do not fail.
        self.getattr(req, ino, None, reply);
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        if ino != IMAGE_INO {
            reply.error(Errno::EISDIR);
            return;
        }
        // FOPEN_DIRECT_IO bypasses the page cache, so every read of the loop device
        // (itself in direct-I/O mode) reaches read() below instead of being served from cache.
        reply.opened(FileHandle(0), FopenFlags::FOPEN_DIRECT_IO);
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        self.control.read(offset, size, reply);
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        self.control.write();
        reply.written(data.len() as u32);
    }

    fn flush(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _lo: LockOwner, r: ReplyEmpty) {
        r.ok();
    }

    fn fsync(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _ds: bool, r: ReplyEmpty) {
        r.ok();
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        if ino != INodeNo::ROOT {
            reply.error(Errno::ENOTDIR);
            return;
        }
        let entries = [
            (INodeNo::ROOT, FileType::Directory, "."),
            (INodeNo::ROOT, FileType::Directory, ".."),
            (IMAGE_INO, FileType::RegularFile, IMAGE_NAME),
        ];
        for (i, (ino, kind, name)) in entries.iter().enumerate().skip(offset as usize) {
            if reply.add(*ino, i as u64 + 1, *kind, name) {
                break;
            }
        }
        reply.ok();
    }
}

#[cfg(test)]
mod tests {
    use super::fill_pattern;

    #[test]
    fn pattern_tags_sectors() {
        let mut buf = vec![0xffu8; 1024];
        fill_pattern(&mut buf, 512 * 7);
        assert_eq!(&buf[..8], &7u64.to_le_bytes());
        assert!(buf[8..512].iter().all(|&b| b == 0));
        assert_eq!(&buf[512..520], &8u64.to_le_bytes());
        // A read starting inside a tag gets the tag's tail.
        let mut part = vec![0u8; 4];
        fill_pattern(&mut part, 512 * 258 + 1);
        assert_eq!(part, [1, 0, 0, 0]);
    }
}
