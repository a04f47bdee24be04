//! The sampler's io_uring itself: queueing requests, waiting, taking completions, and the
//! table of registered read buffers. What the requests mean (which run, which slot) is the
//! ring thread's business (`ring.rs`); here each request is only a tag and an id in its
//! user_data.
//!
//! Registered buffers: an O_DIRECT read into ordinary memory makes the kernel look up and pin
//! the buffer's page, and unpin and dirty it on completion, for every read: 12-14% of the
//! sampler's CPU per read at 1,024 paths (perf: `bio_iov_iter_get_pages`, `gup_fast_fallback`,
//! `bio_set_pages_dirty`). A registered buffer is pinned once; reads into it (`READ_FIXED`)
//! skip all that. Each run registers its read area at one index of a sparse table for as long
//! as it lasts. Where that is not possible (kernel before 5.19, table full, locked-memory
//! limit of a user without CAP_IPC_LOCK) the run simply uses plain reads.
use std::{io, os::fd::RawFd, ptr, time::Duration};

use io_uring::{IoUring, opcode, squeue, types};

/// Submission queue size; more in-flight reads than this are fine (the queue is submitted
/// whenever it fills; a wake-up that refills many runs at 1,000+ paths fills 256 several times).
const SQ_ENTRIES: u32 = 1024;
/// Completion queue size. Completions that find it full still arrive, but the kernel then
/// allocates each one and lists it aside ("overflow") until there is room again: with
/// the default size (twice the submission queue: 512) 70% of the completions overflowed at
/// 1,024 paths, 1.4% with this. It holds what 2,048 paths at the full rate complete in 25 ms,
/// for 256 KiB of ring memory.
const CQ_ENTRIES: u32 = 16_384;

/// Indexes in the registered buffer table: this many runs at once read into registered
/// memory (the daemon's scale target is 4,096 paths); any more use plain reads.
const BUFFER_TABLE: u16 = 4_096;

/// user_data tags (top two bits); the rest is a read id.
const TAG_SHIFT: u32 = 62;
const TAG_READ: u64 = 0;
const TAG_CANCEL: u64 = 1;
const TAG_WAKE: u64 = 2;
/// Read ids wrap within this mask (62 bits: they never do in practice).
pub(crate) const READ_ID_MASK: u64 = (1 << TAG_SHIFT) - 1;

/// What a completion answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Answer {
    /// Read `read_id` ended with this result (bytes read, or -errno).
    Read { read_id: u64, res: i32 },
    /// The kernel's answer to our request to cancel read `read_id`.
    Cancel { read_id: u64, res: i32 },
    /// The waker's eventfd became readable: commands are waiting.
    Wake,
}

impl Answer {
    fn from_cqe(user_data: u64, res: i32) -> Self {
        let read_id = user_data & READ_ID_MASK;
        match user_data >> TAG_SHIFT {
            TAG_WAKE => Self::Wake,
            TAG_CANCEL => Self::Cancel { read_id, res },
            _ => Self::Read { read_id, res },
        }
    }
}

pub(crate) struct Uring {
    ring: IoUring,
    /// Answers taken off the completion queue but not handed out yet: `push` moves them aside
    /// when the queue backs up, to make room.
    backlog: Vec<Answer>,
    /// Unused indexes of the registered buffer table (none if the kernel has no such table).
    free_buffer_indexes: Vec<u16>,
}

impl Uring {
    pub(crate) fn new() -> io::Result<Self> {
        let ring: IoUring = IoUring::builder()
            .setup_cqsize(CQ_ENTRIES)
            .build(SQ_ENTRIES)?;
        // An empty table whose entries are set and cleared one run at a time (Linux 5.19).
        let free_buffer_indexes = match ring
            .submitter()
            .register_buffers_sparse(BUFFER_TABLE.into())
        {
            Ok(()) => (0..BUFFER_TABLE).rev().collect(),
            Err(err) => {
                log::debug!("sampler: no registered buffers ({err}): plain reads");
                Vec::new()
            }
        };
        Ok(Self {
            ring,
            backlog: Vec::new(),
            free_buffer_indexes,
        })
    }

    /// Register `len` bytes at `area` (pinning its pages once) and return the index reads into
    /// it name, or `None` if it cannot be registered: those reads are then plain ones.
    ///
    /// # Safety
    /// The area must stay allocated until [`Uring::unregister`] of the index, and until every
    /// read into it has completed.
    pub(crate) unsafe fn register(&mut self, area: *mut u8, len: usize) -> Option<u16> {
        let index = self.free_buffer_indexes.pop()?;
        let iov = libc::iovec {
            iov_base: area.cast(),
            iov_len: len,
        };
        // SAFETY: the caller keeps the area alive as long as it is registered and read into.
        let registered = unsafe {
            self.ring
                .submitter()
                .register_buffers_update(index.into(), &[iov], None)
        };
        match registered {
            Ok(()) => Some(index),
            Err(err) => {
                log::debug!("sampler: cannot register a read area ({err}): plain reads");
                self.free_buffer_indexes.push(index);
                None
            }
        }
    }

    /// Clear `index` for another run. Never waits: reads still in flight keep the pages
    /// pinned until they complete (the kernel holds the registration for them).
    pub(crate) fn unregister(&mut self, index: u16) {
        let empty = libc::iovec {
            iov_base: ptr::null_mut(),
            iov_len: 0,
        };
        // SAFETY: an empty entry points at nothing.
        let cleared = unsafe {
            self.ring
                .submitter()
                .register_buffers_update(index.into(), &[empty], None)
        };
        match cleared {
            Ok(()) => self.free_buffer_indexes.push(index),
            // The index stays out of use (and its pages pinned) until the ring closes.
            Err(err) => log::warn!("sampler: cannot clear registered buffer {index}: {err}"),
        }
    }

    /// Queue a read of `len` bytes at `offset` of `fd` into `buf`, which lies in the area
    /// registered at `registered` if that is `Some`.
    ///
    /// # Safety
    /// `buf` must stay allocated (and `fd` open) until this read's answer has been taken.
    pub(crate) unsafe fn push_read(
        &mut self,
        fd: RawFd,
        registered: Option<u16>,
        buf: *mut u8,
        len: u32,
        offset: u64,
        read_id: u64,
    ) -> io::Result<()> {
        let fd = types::Fd(fd);
        let sqe = match registered {
            Some(index) => opcode::ReadFixed::new(fd, buf, len, index)
                .offset(offset)
                .build(),
            None => opcode::Read::new(fd, buf, len).offset(offset).build(),
        };
        let sqe = sqe.user_data(read_user_data(read_id));
        // SAFETY: the caller keeps the buffer and the file alive until the answer.
        unsafe { self.push(&sqe) }
    }

    /// Queue a request to cancel read `read_id`.
    pub(crate) fn push_cancel(&mut self, read_id: u64) -> io::Result<()> {
        let sqe = opcode::AsyncCancel::new(read_user_data(read_id))
            .build()
            .user_data((TAG_CANCEL << TAG_SHIFT) | read_id);
        // SAFETY: a cancel request references no memory of ours.
        unsafe { self.push(&sqe) }
    }

    /// Ask for one [`Answer::Wake`] when `eventfd` becomes readable (once: re-arm after it).
    pub(crate) fn arm_wake(&mut self, eventfd: RawFd) -> io::Result<()> {
        let sqe = opcode::PollAdd::new(types::Fd(eventfd), libc::POLLIN as u32)
            .build()
            .user_data(TAG_WAKE << TAG_SHIFT);
        // SAFETY: a poll references only the descriptor, no memory of ours.
        unsafe { self.push(&sqe) }
    }

    /// Submit what is queued and sleep until a completion arrives or `wait` has passed.
    pub(crate) fn submit_and_wait(&mut self, wait: Duration) -> io::Result<()> {
        let ts = types::Timespec::from(wait);
        let args = types::SubmitArgs::new().timespec(&ts);
        match self.ring.submitter().submit_with_args(1, &args) {
            Ok(_) => Ok(()),
            Err(err)
                if matches!(
                    err.raw_os_error(),
                    Some(libc::ETIME | libc::EINTR | libc::EBUSY | libc::EAGAIN)
                ) =>
            {
                Ok(())
            }
            Err(err) => Err(err),
        }
    }

    /// Append the answers waiting on the completion queue (and any moved aside) to `answers`.
    pub(crate) fn take_answers(&mut self, answers: &mut Vec<Answer>) {
        answers.append(&mut self.backlog);
        answers.extend(
            self.ring
                .completion()
                .map(|cqe| Answer::from_cqe(cqe.user_data(), cqe.result())),
        );
    }

    /// Append only the answers `push` moved aside since the last call (the completion queue
    /// itself is left for the next wake-up, so one wake-up's work stays bounded).
    pub(crate) fn take_backlog(&mut self, answers: &mut Vec<Answer>) {
        answers.append(&mut self.backlog);
    }

    /// Queue one SQE, submitting first if the queue is full.
    ///
    /// # Safety
    /// Whatever the entry points at must outlive the operation.
    unsafe fn push(&mut self, sqe: &squeue::Entry) -> io::Result<()> {
        loop {
            // SAFETY: forwarded to our caller.
            if unsafe { self.ring.submission().push(sqe) }.is_ok() {
                return Ok(());
            }
            match self.ring.submit() {
                Ok(_) => {}
                Err(err)
                    if matches!(
                        err.raw_os_error(),
                        Some(libc::EBUSY | libc::EAGAIN | libc::EINTR)
                    ) =>
                {
                    // Completion queue backed up (only with hundreds of paths): make room by
                    // moving completions aside; the ring thread handles them as usual.
                    let answers = self
                        .ring
                        .completion()
                        .map(|cqe| Answer::from_cqe(cqe.user_data(), cqe.result()));
                    self.backlog.extend(answers);
                }
                Err(err) => return Err(err),
            }
        }
    }
}

fn read_user_data(read_id: u64) -> u64 {
    (TAG_READ << TAG_SHIFT) | read_id
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsRawFd;

    use super::*;
    use crate::sampler::buffer::{AlignedBuf, page_size};

    /// Wait for the answers to reads `ids` (other answers are not expected here).
    fn read_answers(uring: &mut Uring, ids: &[u64]) -> Vec<Answer> {
        let mut answers = Vec::new();
        for _ in 0..100 {
            uring.submit_and_wait(Duration::from_millis(100)).unwrap();
            uring.take_answers(&mut answers);
            if answers.len() == ids.len() {
                break;
            }
        }
        answers.sort_by_key(|answer| match answer {
            Answer::Read { read_id, .. } => *read_id,
            _ => u64::MAX,
        });
        answers
    }

    #[test]
    fn registered_and_plain_reads_land_in_the_buffer_and_a_full_table_means_plain_reads() {
        let Ok(mut uring) = Uring::new() else {
            eprintln!("no io_uring here (disabled?): skipped");
            return;
        };
        let page = page_size();
        let file = tempfile_with((0..2 * page).map(|i| (i / page) as u8 + 1).collect());
        let area = AlignedBuf::new(2 * page);
        // SAFETY: `area` outlives the registration (unregistered below) and both reads.
        let index = unsafe { uring.register(area.as_mut_ptr(), area.len()) };
        if index.is_none() {
            eprintln!("no registered buffers on this kernel: only plain reads tested");
        }
        let len = u32::try_from(page).unwrap();
        // SAFETY: as above; the file stays open until the answers are in.
        unsafe {
            // The file's second page into the area's first page, registered; its first page
            // into the area's second page, plain.
            let fd = file.as_raw_fd();
            uring
                .push_read(fd, index, area.as_mut_ptr(), len, page as u64, 1)
                .unwrap();
            let second = area.as_mut_ptr().add(page);
            uring.push_read(fd, None, second, len, 0, 2).unwrap();
        }
        let answers = read_answers(&mut uring, &[1, 2]);
        let res = len as i32;
        assert_eq!(
            answers,
            vec![
                Answer::Read { read_id: 1, res },
                Answer::Read { read_id: 2, res }
            ]
        );
        // SAFETY: both reads have completed; the area is ours again.
        let bytes = unsafe { std::slice::from_raw_parts(area.as_mut_ptr(), 2 * page) };
        assert!(bytes[..page].iter().all(|&b| b == 2), "registered read");
        assert!(bytes[page..].iter().all(|&b| b == 1), "plain read");

        let Some(index) = index else { return };
        uring.unregister(index);
        // Every index taken: the next run gets None (plain reads), not an error.
        let mut taken = Vec::new();
        // SAFETY: `area` outlives these registrations (all cleared below).
        while let Some(index) = unsafe { uring.register(area.as_mut_ptr(), page) } {
            taken.push(index);
        }
        assert_eq!(taken.len(), usize::from(BUFFER_TABLE));
        for index in taken {
            uring.unregister(index);
        }
        // SAFETY: as above.
        let again = unsafe { uring.register(area.as_mut_ptr(), page) };
        assert!(again.is_some(), "cleared indexes are reused");
        uring.unregister(again.unwrap());
    }

    fn tempfile_with(contents: Vec<u8>) -> std::fs::File {
        let path = std::env::temp_dir().join(format!(
            "marginal-uring-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::write(&path, contents).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        file
    }

    #[test]
    fn user_data_tells_answers_apart() {
        let id = READ_ID_MASK - 5;
        assert_eq!(
            Answer::from_cqe(read_user_data(id), 512),
            Answer::Read {
                read_id: id,
                res: 512
            }
        );
        assert_eq!(
            Answer::from_cqe((TAG_CANCEL << TAG_SHIFT) | id, -libc::ENOENT),
            Answer::Cancel {
                read_id: id,
                res: -libc::ENOENT
            }
        );
        assert_eq!(Answer::from_cqe(TAG_WAKE << TAG_SHIFT, 1), Answer::Wake);
    }
}
