//! How handles and opener threads talk to the sampler thread: commands on a channel, and an
//! eventfd that wakes the thread out of `io_uring_enter` (it polls the eventfd on its ring).
use std::{
    io,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    path::PathBuf,
    sync::Arc,
    time::Duration,
};

use super::{progress::Progress, target::Target};

/// Messages from handles and opener threads.
pub(crate) enum Command {
    /// A run was asked for; its device is being opened.
    Begin {
        id: u64,
        key: String,
        node: PathBuf,
        sample_time: Duration,
        /// Reads in flight, if not the sampler's default.
        slots: Option<usize>,
        /// Where the ring publishes the run's counts for the handles.
        progress: Arc<Progress>,
    },
    /// The opener thread is done.
    Opened {
        id: u64,
        result: Result<Target, String>,
    },
    Stop {
        id: u64,
    },
    Shutdown,
}

/// Wakes the ring thread out of `io_uring_enter` (an eventfd it polls).
#[derive(Clone)]
pub(crate) struct Waker(Arc<OwnedFd>);

impl AsRawFd for Waker {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.0.as_raw_fd()
    }
}

impl Waker {
    pub(crate) fn new() -> io::Result<Self> {
        // SAFETY: plain syscall; the result is checked before use.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor nobody else owns.
        Ok(Self(Arc::new(unsafe { OwnedFd::from_raw_fd(fd) })))
    }

    pub(crate) fn wake(&self) {
        // SAFETY: writes 8 bytes to our eventfd. Failure (counter full) still leaves it readable.
        unsafe { libc::eventfd_write(self.0.as_raw_fd(), 1) };
    }

    /// Reset the eventfd after it woke the ring.
    pub(crate) fn drain(&self) {
        let mut value: libc::eventfd_t = 0;
        // SAFETY: reads 8 bytes into `value`; EAGAIN when already drained is fine.
        unsafe { libc::eventfd_read(self.0.as_raw_fd(), &mut value) };
    }
}
