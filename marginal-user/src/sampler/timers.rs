//! When each run next needs the ring thread: one instant per run, in time order.
//!
//! The ring used to walk every run on every wake-up (to refill, expire, check presence and
//! find the next deadline), so the cost of each read grew with the number of paths sampled
//! at once. With this queue a wake-up takes only the runs whose instant has come (a refill
//! tick, a read deadline, a presence check, the cutoff, the end) or that a completion, a
//! cancel answer or a command made due at once: work in proportion to what happened, not to
//! how many runs exist. No I/O and no clock here: callers pass the instants, so the ordering
//! is unit-tested with made-up ones.
use std::{collections::BTreeSet, time::Instant};

use super::id_map::IdMap;

/// At most one pending instant per run id.
#[derive(Debug, Default)]
pub(crate) struct TimerQueue {
    /// (instant, run id), earliest first; the id breaks ties and makes entries unique.
    order: BTreeSet<(Instant, u64)>,
    /// run id -> its entry in `order`, to move or drop it without a search.
    by_run: IdMap<Instant>,
}

impl TimerQueue {
    /// Set run `id`'s instant to `at`, replacing any earlier or later one; `None` clears it
    /// (the run then waits for a completion or a command).
    pub(crate) fn schedule(&mut self, id: u64, at: Option<Instant>) {
        match at {
            Some(at) => {
                if let Some(old) = self.by_run.insert(id, at) {
                    if old == at {
                        return;
                    }
                    self.order.remove(&(old, id));
                }
                self.order.insert((at, id));
            }
            None => self.remove(id),
        }
    }

    /// Make run `id` due at `at` unless it is due earlier already (a completion made it due
    /// now; an earlier timer of its own still stands).
    pub(crate) fn due_by(&mut self, id: u64, at: Instant) {
        match self.by_run.get(&id) {
            Some(&current) if current <= at => {}
            _ => self.schedule(id, Some(at)),
        }
    }

    /// Forget run `id` (it ended).
    pub(crate) fn remove(&mut self, id: u64) {
        if let Some(at) = self.by_run.remove(&id) {
            self.order.remove(&(at, id));
        }
    }

    /// The earliest pending instant.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.order.first().map(|&(at, _)| at)
    }

    /// Move the runs due at or before `now` to `due`, earliest first, and clear their
    /// instants (servicing a run schedules its next one). `due` is the caller's, reused from
    /// wake-up to wake-up.
    pub(crate) fn take_due(&mut self, now: Instant, due: &mut Vec<u64>) {
        while let Some(&(at, id)) = self.order.first()
            && at <= now
        {
            self.order.pop_first();
            self.by_run.remove(&id);
            due.push(id);
        }
    }

    /// How many runs have an instant.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        debug_assert_eq!(self.order.len(), self.by_run.len());
        self.by_run.len()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn due(queue: &mut TimerQueue, now: Instant) -> Vec<u64> {
        let mut due = Vec::new();
        queue.take_due(now, &mut due);
        due
    }

    #[test]
    fn only_due_runs_are_taken_earliest_first() {
        let t0 = Instant::now();
        let mut queue = TimerQueue::default();
        queue.schedule(1, Some(t0 + 30 * MS));
        queue.schedule(2, Some(t0 + 10 * MS));
        queue.schedule(3, Some(t0 + 20 * MS));
        queue.schedule(4, Some(t0 + 100 * MS));
        assert_eq!(queue.next(), Some(t0 + 10 * MS));
        assert!(due(&mut queue, t0 + 9 * MS).is_empty(), "nothing due yet");
        assert_eq!(
            due(&mut queue, t0 + 30 * MS),
            vec![2, 3, 1],
            "due instant counts"
        );
        assert_eq!(queue.len(), 1);
        assert_eq!(queue.next(), Some(t0 + 100 * MS));
        assert!(
            due(&mut queue, t0 + 30 * MS).is_empty(),
            "taken runs are cleared"
        );
    }

    #[test]
    fn runs_due_at_the_same_instant_are_all_taken() {
        let t0 = Instant::now();
        let mut queue = TimerQueue::default();
        for id in [5, 3, 9] {
            queue.schedule(id, Some(t0));
        }
        assert_eq!(due(&mut queue, t0), vec![3, 5, 9]);
        assert_eq!(queue.len(), 0);
        assert_eq!(queue.next(), None);
    }

    #[test]
    fn rescheduling_moves_the_one_instant_of_a_run() {
        let t0 = Instant::now();
        let mut queue = TimerQueue::default();
        queue.schedule(1, Some(t0 + 10 * MS));
        queue.schedule(1, Some(t0 + 50 * MS));
        assert_eq!(queue.len(), 1);
        assert!(due(&mut queue, t0 + 20 * MS).is_empty(), "moved later");
        queue.schedule(1, Some(t0 + 5 * MS));
        assert_eq!(queue.next(), Some(t0 + 5 * MS), "moved earlier");
        queue.schedule(1, Some(t0 + 5 * MS));
        assert_eq!(queue.len(), 1, "same instant twice is one entry");
        assert_eq!(due(&mut queue, t0 + 60 * MS), vec![1], "taken once");
    }

    #[test]
    fn due_by_only_ever_brings_a_run_forward() {
        let t0 = Instant::now();
        let mut queue = TimerQueue::default();
        queue.schedule(1, Some(t0 + 100 * MS));
        queue.due_by(1, t0 + 10 * MS);
        assert_eq!(queue.next(), Some(t0 + 10 * MS));
        queue.due_by(1, t0 + 50 * MS);
        assert_eq!(
            queue.next(),
            Some(t0 + 10 * MS),
            "an earlier instant stands"
        );
        queue.due_by(2, t0 + 20 * MS);
        assert_eq!(queue.len(), 2, "a run without an instant gets one");
        assert_eq!(due(&mut queue, t0 + 20 * MS), vec![1, 2]);
    }

    #[test]
    fn removed_or_cleared_runs_never_come_due() {
        let t0 = Instant::now();
        let mut queue = TimerQueue::default();
        queue.schedule(1, Some(t0));
        queue.schedule(2, Some(t0));
        queue.remove(1);
        queue.schedule(2, None);
        queue.remove(3);
        assert_eq!(queue.len(), 0);
        assert!(due(&mut queue, t0 + 1_000 * MS).is_empty());
    }

    #[test]
    fn a_thousand_runs_on_their_own_rhythm() {
        // Each run due every 100 ms from its own start: every run comes due exactly once per
        // 100 ms, however the wake-ups fall.
        let t0 = Instant::now();
        let mut queue = TimerQueue::default();
        for id in 0..1_000u64 {
            queue.schedule(id, Some(t0 + Duration::from_micros(id * 97)));
        }
        let mut serviced = vec![0u32; 1_000];
        let mut now = t0;
        let mut batch = Vec::new();
        while now < t0 + 1_000 * MS {
            batch.clear();
            queue.take_due(now, &mut batch);
            for &id in &batch {
                serviced[id as usize] += 1;
                queue.schedule(id, Some(now + 100 * MS));
            }
            now += 3 * MS;
        }
        assert!(
            serviced.iter().all(|&n| (9..=11).contains(&n)),
            "{serviced:?}"
        );
    }
}
