//! The engine's notion of time: an injected monotonic timestamp, never read from a clock here.
use std::{fmt, ops::Add, time::Duration};

/// A point on a monotonic clock, in nanoseconds since an arbitrary epoch.
///
/// The daemon passes `CLOCK_MONOTONIC` readings (the clock the kernel stamps its events with), so
/// kernel timestamps and userspace "now" compare directly. Tests pass any value they like: the
/// engine never looks at a real clock.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(u64);

impl Timestamp {
    pub const fn from_nanos(nanos: u64) -> Self {
        Self(nanos)
    }

    pub const fn from_secs(secs: u64) -> Self {
        Self(secs.saturating_mul(1_000_000_000))
    }

    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// Time elapsed from `earlier` to `self`; zero if `earlier` is in fact later (events can
    /// arrive slightly out of order, and "negative" gaps must not wrap around).
    pub fn saturating_since(self, earlier: Timestamp) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Timestamp {
    type Output = Timestamp;

    /// Saturates instead of overflowing: a deadline too far away is simply "never".
    fn add(self, rhs: Duration) -> Timestamp {
        let nanos = u64::try_from(rhs.as_nanos()).unwrap_or(u64::MAX);
        Timestamp(self.0.saturating_add(nanos))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{:03}s",
            self.0 / 1_000_000_000,
            (self.0 / 1_000_000) % 1000
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_is_zero_when_out_of_order() {
        let early = Timestamp::from_secs(5);
        let late = Timestamp::from_secs(7);
        assert_eq!(late.saturating_since(early), Duration::from_secs(2));
        assert_eq!(early.saturating_since(late), Duration::ZERO);
    }

    #[test]
    fn adding_saturates() {
        let t = Timestamp::from_nanos(u64::MAX - 1) + Duration::from_secs(10);
        assert_eq!(t.as_nanos(), u64::MAX);
        assert_eq!(
            Timestamp::from_secs(1) + Duration::from_millis(500),
            Timestamp::from_nanos(1_500_000_000)
        );
    }

    #[test]
    fn displays_seconds_and_millis() {
        assert_eq!(Timestamp::from_nanos(12_345_000_000).to_string(), "12.345s");
    }
}
