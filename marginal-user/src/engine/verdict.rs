//! The arithmetic of a sampling run: error rate and verdict, as pure functions.
use super::clock::Timestamp;

/// Highest possible error rate: every read failed.
pub const MAX_RATE_PERMILLE: u32 = 1000;

/// Error rate of a run in permille: `errors * 1000 / reads`, 0 if nothing was read.
///
/// Never above 1000, whatever the sampler reports: upstream multipathd once counted a hung read
/// as an error on every poll and reported rates far above 1000. Here an error is always also a
/// read (the denominator is `max(reads, errors)`), so a sampler that over-counts errors yields
/// at worst 1000, never an absurd rate, and never a *lower* rate than its errors justify.
pub fn error_rate_permille(reads: u64, errors: u64) -> u32 {
    let attempts = reads.max(errors);
    if attempts == 0 {
        return 0;
    }
    // u128: errors * 1000 cannot overflow even for absurd counts.
    let rate = u128::from(errors) * u128::from(MAX_RATE_PERMILLE) / u128::from(attempts);
    // rate <= 1000 because errors <= attempts.
    rate as u32
}

/// What one finished sampling run says about a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Rate at or below the threshold: the path may return to service.
    Passed,
    /// Rate above the threshold and the map has another active path: keep (or take) it out.
    Marginal,
    /// Rate above the threshold but the path is its map's only hope: it must be in service.
    MarginalButLastPath,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Passed => "passed",
            Verdict::Marginal => "marginal",
            Verdict::MarginalButLastPath => "marginal_but_last_path",
        }
    }
}

/// The spec's verdict rule: `rate <= threshold` passes; above it the path is marginal, unless
/// no other path of the map is active, in which case it must be recovered instead.
pub fn judge(rate_permille: u32, threshold_permille: u32, other_active_paths: usize) -> Verdict {
    if rate_permille <= threshold_permille {
        Verdict::Passed
    } else if other_active_paths > 0 {
        Verdict::Marginal
    } else {
        Verdict::MarginalButLastPath
    }
}

/// The record of one finished run, kept for status and metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Measurement {
    pub at: Timestamp,
    pub reads: u64,
    pub errors: u64,
    pub rate_permille: u32,
    pub threshold_permille: u32,
    pub verdict: Verdict,
    /// For the check of a slow path: the run's latency against the siblings'.
    pub latency: Option<RunLatency>,
}

/// A slow path's run latency, judged against the yardstick its siblings gave when it was
/// found slow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunLatency {
    pub mean_ns: u64,
    pub siblings_ns: u64,
    /// Still slow ([`super::slow::is_slow`]).
    pub slow: bool,
}

impl Measurement {
    /// Judge the run's latency too: a run that passed on errors but is still slow is not
    /// passed.
    pub fn with_latency(mut self, latency: RunLatency, other_active_paths: usize) -> Self {
        self.latency = Some(latency);
        if latency.slow && self.verdict == Verdict::Passed {
            self.verdict = if other_active_paths > 0 {
                Verdict::Marginal
            } else {
                Verdict::MarginalButLastPath
            };
        }
        self
    }

    /// Not passed for its latency alone (its error rate was within the threshold).
    pub fn slow_only(&self) -> bool {
        self.verdict != Verdict::Passed
            && self.rate_permille <= self.threshold_permille
            && self.latency.is_some_and(|l| l.slow)
    }

    /// Rate and verdict of a run that read `reads` blocks with `errors` failures.
    pub fn evaluate(
        at: Timestamp,
        reads: u64,
        errors: u64,
        threshold_permille: u32,
        other_active_paths: usize,
    ) -> Self {
        let rate_permille = error_rate_permille(reads, errors);
        Self {
            at,
            reads,
            errors,
            rate_permille,
            threshold_permille,
            verdict: judge(rate_permille, threshold_permille, other_active_paths),
            latency: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_is_errors_per_thousand_reads() {
        assert_eq!(error_rate_permille(1000, 5), 5);
        assert_eq!(error_rate_permille(200, 1), 5);
        assert_eq!(error_rate_permille(3, 1), 333);
        assert_eq!(error_rate_permille(10, 10), 1000);
    }

    #[test]
    fn rate_is_zero_without_reads() {
        assert_eq!(error_rate_permille(0, 0), 0);
        assert_eq!(error_rate_permille(500, 0), 0);
    }

    #[test]
    fn rate_never_exceeds_1000_even_if_errors_outnumber_reads() {
        assert_eq!(error_rate_permille(10, 25), 1000);
        assert_eq!(error_rate_permille(0, 3), 1000);
        assert_eq!(error_rate_permille(u64::MAX, u64::MAX), 1000);
        assert_eq!(error_rate_permille(1, u64::MAX), 1000);
    }

    #[test]
    fn rate_at_threshold_passes() {
        assert_eq!(judge(10, 10, 1), Verdict::Passed);
        assert_eq!(judge(0, 0, 0), Verdict::Passed);
    }

    #[test]
    fn rate_above_threshold_is_marginal_with_another_active_path() {
        assert_eq!(judge(11, 10, 1), Verdict::Marginal);
        assert_eq!(judge(1000, 999, 3), Verdict::Marginal);
    }

    #[test]
    fn rate_above_threshold_without_another_active_path_must_be_recovered() {
        assert_eq!(judge(11, 10, 0), Verdict::MarginalButLastPath);
    }

    #[test]
    fn passing_does_not_depend_on_other_paths() {
        assert_eq!(judge(5, 10, 0), Verdict::Passed);
    }

    #[test]
    fn threshold_1000_can_never_be_exceeded() {
        assert_eq!(judge(error_rate_permille(5, 500), 1000, 1), Verdict::Passed);
    }

    #[test]
    fn measurement_keeps_counts_rate_and_verdict() {
        let m = Measurement::evaluate(Timestamp::from_secs(9), 400, 40, 50, 2);
        assert_eq!(m.rate_permille, 100);
        assert_eq!(m.verdict, Verdict::Marginal);
        assert_eq!((m.reads, m.errors, m.threshold_permille), (400, 40, 50));
        assert_eq!(m.at, Timestamp::from_secs(9));
    }
}
