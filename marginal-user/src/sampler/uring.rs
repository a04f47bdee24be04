//! The sampler's io_uring itself: queueing requests, waiting, and taking completions. What the
//! requests mean (which run, which slot) is the ring thread's business (`ring.rs`); here each
//! request is only a tag and an id in its user_data.
use std::{io, os::fd::RawFd, time::Duration};

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
}

impl Uring {
    pub(crate) fn new() -> io::Result<Self> {
        Ok(Self {
            ring: IoUring::builder()
                .setup_cqsize(CQ_ENTRIES)
                .build(SQ_ENTRIES)?,
            backlog: Vec::new(),
        })
    }

    /// Queue a read of `len` bytes at `offset` of `fd` into `buf`.
    ///
    /// # Safety
    /// `buf` must stay allocated (and `fd` open) until this read's answer has been taken.
    pub(crate) unsafe fn push_read(
        &mut self,
        fd: RawFd,
        buf: *mut u8,
        len: u32,
        offset: u64,
        read_id: u64,
    ) -> io::Result<()> {
        let sqe = opcode::Read::new(types::Fd(fd), buf, len)
            .offset(offset)
            .build()
            .user_data(read_user_data(read_id));
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
    use super::*;

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
