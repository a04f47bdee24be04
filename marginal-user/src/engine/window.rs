//! The double-failure window: two failures within `double_failed_time` start a check.
use std::time::Duration;

use super::clock::Timestamp;

/// What one more failure does to a path's window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WindowStep {
    /// No failure was pending: this one opens the window (t0 = its time).
    Opened,
    /// The pending failure is too old: this one restarts the window (t0 = its time).
    Restarted { stale_first_at: Timestamp },
    /// Second failure within the window: start checking.
    Double { first_at: Timestamp },
}

/// Applies the spec's rule to a failure at `at`, given the pending first failure, if any.
///
/// `at - first <= window` is a double failure (the bound is inclusive). A failure reported
/// with a time before `first` (events can race) counts as inside the window.
pub fn step(first_failure: Option<Timestamp>, at: Timestamp, window: Duration) -> WindowStep {
    match first_failure {
        None => WindowStep::Opened,
        Some(first_at) if at.saturating_since(first_at) <= window => {
            WindowStep::Double { first_at }
        }
        Some(stale_first_at) => WindowStep::Restarted { stale_first_at },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_secs(60);

    fn t(secs: u64) -> Timestamp {
        Timestamp::from_secs(secs)
    }

    #[test]
    fn first_failure_opens_the_window() {
        assert_eq!(step(None, t(10), WINDOW), WindowStep::Opened);
    }

    #[test]
    fn second_failure_inside_the_window_is_double() {
        assert_eq!(
            step(Some(t(10)), t(30), WINDOW),
            WindowStep::Double { first_at: t(10) }
        );
    }

    #[test]
    fn window_bound_is_inclusive() {
        assert_eq!(
            step(Some(t(10)), t(70), WINDOW),
            WindowStep::Double { first_at: t(10) }
        );
        let just_after = Timestamp::from_nanos(t(70).as_nanos() + 1);
        assert_eq!(
            step(Some(t(10)), just_after, WINDOW),
            WindowStep::Restarted {
                stale_first_at: t(10)
            }
        );
    }

    #[test]
    fn failure_after_the_window_restarts_it() {
        assert_eq!(
            step(Some(t(10)), t(200), WINDOW),
            WindowStep::Restarted {
                stale_first_at: t(10)
            }
        );
    }

    #[test]
    fn out_of_order_failure_counts_as_inside() {
        assert_eq!(
            step(Some(t(50)), t(40), WINDOW),
            WindowStep::Double { first_at: t(50) }
        );
    }
}
