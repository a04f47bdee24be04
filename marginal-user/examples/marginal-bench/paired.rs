//! Paired comparisons of short alternating rounds: on a shared machine the speed drifts by
//! far more than the difference asked about, but two rounds taken back to back see nearly the
//! same machine, so the ratio within each pair is what is compared.
use serde_json::{Value, json};

/// The median of per-pair ratios as a percent change, with its spread.
#[derive(Clone, Debug, PartialEq)]
pub struct PairedChange {
    pub pairs: usize,
    /// Median of (on / off - 1) x 100 over the pairs.
    pub median_percent: f64,
    /// Quartiles of the same.
    pub p25_percent: f64,
    pub p75_percent: f64,
    /// A 95% confidence interval of the median, from order statistics (distribution-free:
    /// the ranks n/2 -+ 0.98 sqrt(n)).
    pub ci95_percent: (f64, f64),
}

impl PairedChange {
    /// From the (on, off) figures of each pair; `None` without pairs.
    pub fn of(pairs: &[(f64, f64)]) -> Option<Self> {
        let mut changes: Vec<f64> = pairs
            .iter()
            .filter(|(_, off)| *off > 0.0)
            .map(|(on, off)| (on / off - 1.0) * 100.0)
            .collect();
        if changes.is_empty() {
            return None;
        }
        changes.sort_by(f64::total_cmp);
        let n = changes.len();
        let at = |rank: f64| changes[(rank.round().max(0.0) as usize).min(n - 1)];
        let half = 0.98 * (n as f64).sqrt();
        let middle = (n as f64 - 1.0) / 2.0;
        Some(Self {
            pairs: n,
            median_percent: if n % 2 == 1 {
                changes[n / 2]
            } else {
                (changes[n / 2 - 1] + changes[n / 2]) / 2.0
            },
            p25_percent: at((n as f64 - 1.0) * 0.25),
            p75_percent: at((n as f64 - 1.0) * 0.75),
            ci95_percent: (at((middle - half).floor()), at((middle + half).ceil())),
        })
    }

    /// Whether the interval is narrow enough to tell a change of `percent` from none.
    pub fn resolves(&self, percent: f64) -> bool {
        self.ci95_percent.1 - self.ci95_percent.0 < percent
    }

    pub fn json(&self) -> Value {
        json!({
            "pairs": self.pairs,
            "median_change_percent": self.median_percent,
            "p25_change_percent": self.p25_percent,
            "p75_change_percent": self.p75_percent,
            "ci95_change_percent": [self.ci95_percent.0, self.ci95_percent.1],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_of_ratios_ignores_drift_between_pairs() {
        // The machine's speed halves and doubles between pairs; within each pair `on` is
        // 2% slower.
        let pairs: Vec<(f64, f64)> = [100.0, 50.0, 200.0, 80.0, 120.0]
            .iter()
            .map(|&off| (off * 0.98, off))
            .collect();
        let change = PairedChange::of(&pairs).unwrap();
        assert!((change.median_percent + 2.0).abs() < 1e-9, "{change:?}");
        assert!((change.ci95_percent.0 + 2.0).abs() < 1e-9);
        assert!(change.resolves(1.0));
    }

    #[test]
    fn spread_widens_the_interval() {
        let pairs: Vec<(f64, f64)> = (0..100)
            .map(|i| (100.0 + (i % 10) as f64 - 4.5, 100.0))
            .collect();
        let change = PairedChange::of(&pairs).unwrap();
        assert_eq!(change.pairs, 100);
        assert!(change.median_percent.abs() <= 0.5, "{change:?}");
        assert!(change.p25_percent < change.median_percent);
        assert!(change.p75_percent > change.median_percent);
        let (low, high) = change.ci95_percent;
        assert!(low <= change.median_percent && change.median_percent <= high);
        assert!(!change.resolves(0.5), "{change:?}");
    }

    #[test]
    fn no_pairs_no_figure() {
        assert_eq!(PairedChange::of(&[]), None);
        assert_eq!(PairedChange::of(&[(1.0, 0.0)]), None);
    }
}
