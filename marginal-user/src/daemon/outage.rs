//! One outage or two failures: did the path work in between?
//!
//! dm-mpath fails a path again only after it was put back. multipathd puts a path back when
//! its checker passes, and that check is a command that succeeded on the path, proof that it
//! worked. But during an outage multipathd can also put a path back on a checker result taken
//! before the outage began (the new check still pending): the next I/O fails it again, and a
//! second failure is counted for what was one outage, on a path that never worked meanwhile.
//! The episode gap (the kernel's, and the uevent signal's) catches the quick re-fail; this
//! catches the slow one on a quiet map.
//!
//! So each failure records how many commands the path had completed without error (SCSI
//! counts them: `iodone_cnt` less `ioerr_cnt`), and a failure with none succeeding since the
//! path's previous one is the same outage: neither a failure for the engine nor, with the
//! kernel's, a double failure. A path whose device does not count (NVMe, loop, dm) is judged
//! as before, by the timing rules alone.
use super::core::Daemon;
use crate::{dm::DevNum, engine::PathKey};

/// Failures remembered per path: the kernel pairs a failure with its predecessor, so two
/// would do; a few more cover batches read out of order.
const MARKS_KEPT: usize = 4;

/// What a path had done when it failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FailureMark {
    /// The failure's time (kernel clock, ns).
    pub at_ns: u64,
    /// Commands the path had completed without error by then (read when the event came).
    pub succeeded: u64,
}

impl Daemon {
    /// `key` (device `dev`) failed at `at_ns`: returns whether that is a new failure rather
    /// than the same outage (no command succeeded since its previous failure), and remembers
    /// it either way.
    pub(crate) fn failure_is_new(&mut self, key: &PathKey, dev: DevNum, at_ns: u64) -> bool {
        let Some(succeeded) = self.commands_succeeded(dev) else {
            return true;
        };
        let marks = self.failure_marks.entry(key.clone()).or_default();
        let previous = marks.iter().rev().find(|m| m.at_ns < at_ns).copied();
        if !marks.iter().any(|m| m.at_ns == at_ns) {
            marks.push_back(FailureMark { at_ns, succeeded });
            if marks.len() > MARKS_KEPT {
                marks.pop_front();
            }
        }
        previous.is_none_or(|p| succeeded > p.succeeded)
    }

    /// The kernel paired failures of `key` at `first_ns` and `second_ns`: whether the path
    /// completed a command between them (true when that cannot be known).
    pub(crate) fn worked_between(
        &self,
        key: &PathKey,
        dev: DevNum,
        first_ns: u64,
        second_ns: u64,
    ) -> bool {
        let Some(now) = self.commands_succeeded(dev) else {
            return true;
        };
        let Some(marks) = self.failure_marks.get(key) else {
            return true; // its first failure came before marginal watched it
        };
        let Some(first) = marks.iter().rev().find(|m| m.at_ns <= first_ns) else {
            return true; // its first failure came before marginal watched it
        };
        let second = marks
            .iter()
            .find(|m| m.at_ns >= second_ns)
            .map_or(now, |m| m.succeeded);
        second > first.succeeded
    }

    fn commands_succeeded(&self, dev: DevNum) -> Option<u64> {
        self.dm.as_ref()?.commands_succeeded(dev)
    }
}
