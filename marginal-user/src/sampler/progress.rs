//! A run's reads and errors so far, shared between the ring thread and the handles (for
//! "sampling progress" in /status and the metrics).
//!
//! The ring used to copy every run's counts into the handles' map, under its lock, on every
//! wake-up: a walk over all runs each time. Now each run has its own pair of atomics, which
//! the ring updates when the counts change (two stores, no lock), and a handle reads when asked.
use std::sync::atomic::{AtomicU64, Ordering};

use super::tally::Tally;

/// The counts a handle may read while the run lasts.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    reads: AtomicU64,
    errors: AtomicU64,
}

impl Progress {
    /// Publish `tally` (ring thread only).
    pub(crate) fn publish(&self, tally: &Tally) {
        // Reads first, then errors with Release: a reader that sees these errors (Acquire)
        // also sees reads at least this high, so it never reads more errors than reads.
        self.reads.store(tally.reads, Ordering::Relaxed);
        self.errors.store(tally.errors, Ordering::Release);
    }

    /// (reads, errors) as last published; errors <= reads.
    pub(crate) fn get(&self) -> (u64, u64) {
        let errors = self.errors.load(Ordering::Acquire);
        let reads = self.reads.load(Ordering::Relaxed);
        (reads, errors)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn reads_back_what_was_published() {
        let progress = Progress::default();
        assert_eq!(progress.get(), (0, 0));
        let mut tally = Tally::default();
        tally.ok();
        tally.error();
        tally.timeout();
        progress.publish(&tally);
        assert_eq!(progress.get(), (3, 2));
    }

    #[test]
    fn a_concurrent_reader_never_sees_more_errors_than_reads() {
        let progress = Arc::new(Progress::default());
        let writer = {
            let progress = Arc::clone(&progress);
            std::thread::spawn(move || {
                // Every read an error: the tightest case for errors <= reads.
                let mut tally = Tally::default();
                for _ in 0..200_000 {
                    tally.error();
                    progress.publish(&tally);
                }
            })
        };
        while !writer.is_finished() {
            let (reads, errors) = progress.get();
            assert!(errors <= reads, "{errors} errors, {reads} reads");
        }
        writer.join().unwrap();
        assert_eq!(progress.get(), (200_000, 200_000));
    }
}
