//! The calls that can block on a sick device, kept off the ring thread and bounded.
//!
//! An `open()` of a path in SCSI error handling can hang for minutes, and the last `close()`
//! of a block device waits for the disk's open mutex, i.e. behind such an open. The ring thread
//! serves every path's reads, so it does neither: opens run on a fixed pool of [`Openers`]
//! (a storm that starts hundreds of runs queues behind [`OPENER_THREADS`] threads instead of
//! starting hundreds), and the last reference to a device file is dropped on one closer thread
//! ([`close_elsewhere`]).
use std::{
    fs::File,
    sync::{Arc, Mutex, OnceLock, mpsc},
};

/// Threads that open devices; more opens than this wait their turn.
pub(crate) const OPENER_THREADS: usize = 4;

type Job = Box<dyn FnOnce() + Send>;

/// A fixed pool of threads running open jobs in submission order.
pub(crate) struct Openers {
    jobs: mpsc::Sender<Job>,
}

impl Openers {
    pub(crate) fn start(threads: usize) -> std::io::Result<Self> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..threads {
            let queue = Arc::clone(&queue);
            std::thread::Builder::new()
                .name(format!("marginal-open-{n}"))
                .spawn(move || {
                    loop {
                        // Held only to take a job, never while it runs.
                        let job = queue.lock().unwrap_or_else(|e| e.into_inner()).recv();
                        match job {
                            Ok(job) => job(),
                            Err(_) => return, // the sampler is gone
                        }
                    }
                })?;
        }
        Ok(Self { jobs })
    }

    /// Runs `job` on the pool; false if the pool is gone.
    pub(crate) fn submit(&self, job: impl FnOnce() + Send + 'static) -> bool {
        self.jobs.send(Box::new(job)).is_ok()
    }
}

/// Closes `file` on the closer thread (started on first use).
pub(crate) fn close_elsewhere(file: File) {
    static CLOSER: OnceLock<Mutex<mpsc::Sender<File>>> = OnceLock::new();
    let sender = CLOSER.get_or_init(|| {
        let (sender, files) = mpsc::channel::<File>();
        let started = std::thread::Builder::new()
            .name("marginal-close".into())
            .spawn(move || files.into_iter().for_each(drop));
        if let Err(e) = started {
            log::error!("sampler: no closer thread ({e}); devices are closed where released");
        }
        Mutex::new(sender)
    });
    let sent = sender.lock().unwrap_or_else(|e| e.into_inner()).send(file);
    if let Err(mpsc::SendError(file)) = sent {
        drop(file); // no closer thread: close here rather than leak
    }
}

#[cfg(test)]
mod tests {
    use std::{
        os::fd::AsRawFd,
        sync::{
            Barrier,
            atomic::{AtomicUsize, Ordering},
        },
        time::{Duration, Instant},
    };

    use super::*;

    #[test]
    fn never_more_opens_at_once_than_threads() {
        let pool = Openers::start(OPENER_THREADS).unwrap();
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let done = Arc::new(AtomicUsize::new(0));
        // Every job blocks (a hung open) until the first OPENER_THREADS are all in.
        let hung = Arc::new(Barrier::new(OPENER_THREADS));
        let jobs = 3 * OPENER_THREADS;
        for _ in 0..jobs {
            let (running, most, done, hung) = (
                Arc::clone(&running),
                Arc::clone(&most),
                Arc::clone(&done),
                Arc::clone(&hung),
            );
            assert!(pool.submit(move || {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                hung.wait();
                running.fetch_sub(1, Ordering::SeqCst);
                done.fetch_add(1, Ordering::SeqCst);
            }));
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while done.load(Ordering::SeqCst) < jobs {
            assert!(Instant::now() < deadline, "jobs stuck");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(most.load(Ordering::SeqCst), OPENER_THREADS);
    }

    #[test]
    fn a_file_closed_elsewhere_is_closed_on_the_closer_thread() {
        let file = File::open("/proc/self/stat").unwrap();
        let fd = file.as_raw_fd();
        let link = format!("/proc/self/fd/{fd}");
        close_elsewhere(file);
        let deadline = Instant::now() + Duration::from_secs(10);
        // Closed once its link is gone, or reused for another file opened meanwhile.
        while std::fs::read_link(&link).is_ok_and(|t| t.ends_with("stat")) {
            assert!(Instant::now() < deadline, "never closed");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}
