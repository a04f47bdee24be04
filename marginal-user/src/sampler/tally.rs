//! The counts of one sampling run and the error rate they give.
//!
//! Upstream counted a hung read as an error on every poll, so rates went above 1000 permille.
//! Here a read can be counted at most once, by whichever of its ends comes first: its
//! completion, or its timeout. The run's bookkeeping (`run.rs`) makes sure the other end is
//! ignored; this type only sees each read once, so `errors <= reads` always holds.

/// Counts of one run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Reads that completed or timed out.
    pub reads: u64,
    /// Failed reads, timed-out ones included.
    pub errors: u64,
    /// Reads that did not complete within the read timeout (also in `errors`).
    pub timeouts: u64,
}

impl Tally {
    /// A read returned all its bytes.
    pub fn ok(&mut self) {
        self.reads += 1;
    }

    /// A read failed (error or short read).
    pub fn error(&mut self) {
        self.reads += 1;
        self.errors += 1;
    }

    /// A read reached its timeout: one read, one error, once.
    pub fn timeout(&mut self) {
        self.reads += 1;
        self.errors += 1;
        self.timeouts += 1;
    }

    /// `errors * 1000 / reads`, rounded down, 0 without reads; never above 1000.
    pub fn rate_permille(&self) -> u32 {
        debug_assert!(
            self.errors <= self.reads,
            "more errors than reads: {self:?}"
        );
        debug_assert!(
            self.timeouts <= self.errors,
            "timeouts not counted as errors: {self:?}"
        );
        rate_permille(self.errors, self.reads)
    }
}

/// `errors * 1000 / reads` in permille, rounded down, 0 without reads, at most 1000 even if the
/// counts were inconsistent (so a bug elsewhere cannot report an impossible rate).
pub fn rate_permille(errors: u64, reads: u64) -> u32 {
    if reads == 0 {
        return 0;
    }
    let rate = u128::from(errors.min(reads)) * 1000 / u128::from(reads);
    u32::try_from(rate).expect("rate is at most 1000")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_math() {
        assert_eq!(rate_permille(0, 0), 0);
        assert_eq!(rate_permille(0, 500), 0);
        assert_eq!(rate_permille(1, 10), 100);
        assert_eq!(rate_permille(64, 640), 100);
        assert_eq!(rate_permille(1, 3), 333);
        assert_eq!(rate_permille(2, 3), 666);
        assert_eq!(rate_permille(7, 7), 1000);
        assert_eq!(rate_permille(u64::MAX, u64::MAX), 1000);
        assert_eq!(rate_permille(1, u64::MAX), 0);
    }

    #[test]
    fn rate_never_exceeds_1000() {
        // Even inconsistent counts (the upstream bug) cannot give more than 1000.
        assert_eq!(rate_permille(50, 10), 1000);
        let mut tally = Tally::default();
        for _ in 0..32 {
            tally.timeout();
        }
        assert_eq!(tally.rate_permille(), 1000);
        assert_eq!(
            tally,
            Tally {
                reads: 32,
                errors: 32,
                timeouts: 32
            }
        );
    }

    #[test]
    fn timeouts_are_reads_and_errors() {
        let mut tally = Tally::default();
        for i in 0..100 {
            match i % 10 {
                0 => tally.error(),
                5 => tally.timeout(),
                _ => tally.ok(),
            }
        }
        assert_eq!(
            tally,
            Tally {
                reads: 100,
                errors: 20,
                timeouts: 10
            }
        );
        assert_eq!(tally.rate_permille(), 200);
    }
}
