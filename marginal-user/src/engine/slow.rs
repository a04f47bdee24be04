//! Slow paths: a path whose latency over a window exceeds its active siblings' by a factor.
//!
//! Pure: the daemon hands [`LatencyWindows`] each path's cumulative kernel counts (completed
//! requests and the sum of their latencies) with the current time; at the end of each window
//! it compares every active path of the map with its active siblings and names the slow ones,
//! which the engine then checks like a double failure ([`super::Event::Slow`]).
//!
//! The rule ([`compare`]): a path is slow when
//! * it completed at least `min_ios` requests in the window (an idle path judges nothing),
//! * at least one other active path did too (the siblings' latency is the yardstick: alone,
//!   or beside idle paths, a path is compared with nothing),
//! * its mean latency is above the absolute `floor` (microseconds against microseconds is
//!   noise, however large the ratio), and
//! * its mean latency is above `factor` times the siblings' (the median of their means, so
//!   one slow sibling among several does not raise the yardstick).
//!
//! A uniformly slow array is none of these: every path is near the median of the others.
use std::{collections::BTreeMap, time::Duration};

use super::{clock::Timestamp, ids::PathKey};

/// The latency settings of one map (`marginal_path_slow_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlowParams {
    /// `marginal_path_slow_factor`: slow above this many times the siblings' latency.
    pub factor: u32,
    /// `marginal_path_slow_min_ios`: fewest requests in a window, of the path and of a sibling,
    /// for either to be judged or compared with.
    pub min_ios: u64,
    /// `marginal_path_slow_floor`: never slow at or below this mean latency.
    pub floor: Duration,
    /// `marginal_path_slow_window`: how long each comparison's window is.
    pub window: Duration,
}

/// Requests completed and their summed latency, cumulative or over a window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LatencyCounts {
    pub ios: u64,
    pub sum_ns: u64,
}

impl LatencyCounts {
    /// Mean latency in nanoseconds; None without requests.
    pub fn mean_ns(self) -> Option<u64> {
        (self.ios > 0).then(|| self.sum_ns / self.ios)
    }

    /// What happened between `earlier` and `self` (cumulative counts); a counter that went
    /// back (the path was re-added) counts from zero.
    pub fn since(self, earlier: Self) -> Self {
        if self.ios < earlier.ios || self.sum_ns < earlier.sum_ns {
            return self;
        }
        Self {
            ios: self.ios - earlier.ios,
            sum_ns: self.sum_ns - earlier.sum_ns,
        }
    }
}

/// What one window's comparison says about one path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Comparison {
    /// Fewer than `min_ios` requests on the path.
    TooFewIos { ios: u64 },
    /// No other active path had `min_ios` requests.
    NoSibling,
    /// Compared, and not slow (at or below the floor, or within the factor).
    NotSlow { mean_ns: u64, siblings_ns: u64 },
    /// Slow: above the floor and above `factor` times the siblings' latency.
    Slow { mean_ns: u64, siblings_ns: u64 },
}

impl Comparison {
    /// Path latency over the siblings', when compared.
    pub fn ratio(self) -> Option<f64> {
        match self {
            Comparison::NotSlow {
                mean_ns,
                siblings_ns,
            }
            | Comparison::Slow {
                mean_ns,
                siblings_ns,
            } => Some(mean_ns as f64 / siblings_ns.max(1) as f64),
            _ => None,
        }
    }
}

/// The median of the siblings' means (the lower middle one of an even count).
fn median(mut means: Vec<u64>) -> Option<u64> {
    means.sort_unstable();
    let n = means.len();
    (n > 0).then(|| means[(n - 1) / 2])
}

/// Whether `mean_ns` is slow against a sibling yardstick of `siblings_ns`.
pub fn is_slow(mean_ns: u64, siblings_ns: u64, params: SlowParams) -> bool {
    let floor = params.floor.as_nanos() as u64;
    mean_ns > floor && u128::from(mean_ns) > u128::from(siblings_ns) * u128::from(params.factor)
}

/// The rule of the module docs for `path`'s window against its active siblings' windows.
pub fn compare(path: LatencyCounts, siblings: &[LatencyCounts], params: SlowParams) -> Comparison {
    if path.ios < params.min_ios || path.ios == 0 {
        return Comparison::TooFewIos { ios: path.ios };
    }
    let means = siblings
        .iter()
        .filter(|s| s.ios >= params.min_ios)
        .filter_map(|s| s.mean_ns())
        .collect();
    let Some(siblings_ns) = median(means) else {
        return Comparison::NoSibling;
    };
    let mean_ns = path.sum_ns / path.ios;
    if is_slow(mean_ns, siblings_ns, params) {
        Comparison::Slow {
            mean_ns,
            siblings_ns,
        }
    } else {
        Comparison::NotSlow {
            mean_ns,
            siblings_ns,
        }
    }
}

/// One map's comparison windows: the counts at the window's start, per path.
#[derive(Clone, Debug, Default)]
pub struct LatencyWindows {
    started_at: Option<Timestamp>,
    at_start: BTreeMap<PathKey, LatencyCounts>,
    /// The last finished window's comparison of each path, for status and metrics.
    last: BTreeMap<PathKey, Comparison>,
}

impl LatencyWindows {
    /// Feed the cumulative counts of the map's paths at `now`, with whether each is active
    /// (held-out and failed paths are neither judged nor a yardstick). Returns the slow paths
    /// once a window of `params.window` has passed, and starts the next window; nothing before.
    pub fn observe(
        &mut self,
        now: Timestamp,
        paths: &[(PathKey, bool, LatencyCounts)],
        params: SlowParams,
    ) -> Vec<(PathKey, Comparison)> {
        let Some(started_at) = self.started_at else {
            self.restart(now, paths);
            return Vec::new();
        };
        if now.saturating_since(started_at) < params.window {
            return Vec::new();
        }
        let windows: Vec<(&PathKey, bool, LatencyCounts)> = paths
            .iter()
            .map(|(key, active, counts)| {
                let start = self.at_start.get(key).copied().unwrap_or(*counts);
                (key, *active, counts.since(start))
            })
            .collect();
        self.last.clear();
        let mut slow = Vec::new();
        for (i, (key, active, window)) in windows.iter().enumerate() {
            if !active {
                continue;
            }
            let siblings: Vec<LatencyCounts> = windows
                .iter()
                .enumerate()
                .filter(|(j, (_, sibling_active, _))| *j != i && *sibling_active)
                .map(|(_, (_, _, counts))| *counts)
                .collect();
            let comparison = compare(*window, &siblings, params);
            self.last.insert((*key).clone(), comparison);
            if matches!(comparison, Comparison::Slow { .. }) {
                slow.push(((*key).clone(), comparison));
            }
        }
        self.restart(now, paths);
        slow
    }

    fn restart(&mut self, now: Timestamp, paths: &[(PathKey, bool, LatencyCounts)]) {
        self.started_at = Some(now);
        self.at_start = paths.iter().map(|(k, _, c)| (k.clone(), *c)).collect();
    }

    /// The last finished window's comparison of `path`.
    pub fn last(&self, path: &PathKey) -> Option<Comparison> {
        self.last.get(path).copied()
    }

    /// The siblings' yardstick of the last window in which `path` was compared, if any.
    pub fn siblings_ns(&self, path: &PathKey) -> Option<u64> {
        match self.last(path)? {
            Comparison::Slow { siblings_ns, .. } | Comparison::NotSlow { siblings_ns, .. } => {
                Some(siblings_ns)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn params() -> SlowParams {
        SlowParams {
            factor: 3,
            min_ios: 100,
            floor: Duration::from_millis(20),
            window: Duration::from_secs(10),
        }
    }

    fn counts(ios: u64, mean_ms: u64) -> LatencyCounts {
        LatencyCounts {
            ios,
            sum_ns: ios * mean_ms * MS,
        }
    }

    #[test]
    fn above_the_factor_and_the_floor_is_slow() {
        let c = compare(counts(200, 100), &[counts(300, 10)], params());
        assert_eq!(
            c,
            Comparison::Slow {
                mean_ns: 100 * MS,
                siblings_ns: 10 * MS
            }
        );
        assert_eq!(c.ratio(), Some(10.0));
    }

    #[test]
    fn at_the_factor_is_not_slow() {
        let c = compare(counts(200, 30), &[counts(300, 10)], params());
        assert!(matches!(c, Comparison::NotSlow { .. }), "{c:?}");
        let c = compare(counts(200, 31), &[counts(300, 10)], params());
        assert!(matches!(c, Comparison::Slow { .. }), "{c:?}");
    }

    #[test]
    fn below_the_floor_is_never_slow() {
        // 100 times the siblings, but 10 ms is below the 20 ms floor.
        let fast = LatencyCounts {
            ios: 300,
            sum_ns: 300 * 100_000,
        };
        let c = compare(counts(200, 10), &[fast], params());
        assert!(matches!(c, Comparison::NotSlow { .. }), "{c:?}");
    }

    #[test]
    fn too_few_ios_on_the_path_judges_nothing() {
        let c = compare(counts(99, 1000), &[counts(300, 1)], params());
        assert_eq!(c, Comparison::TooFewIos { ios: 99 });
        let c = compare(counts(0, 0), &[counts(300, 1)], params());
        assert_eq!(c, Comparison::TooFewIos { ios: 0 });
    }

    #[test]
    fn siblings_with_too_few_ios_are_no_yardstick() {
        let c = compare(counts(200, 1000), &[counts(99, 1)], params());
        assert_eq!(c, Comparison::NoSibling);
    }

    #[test]
    fn one_active_path_left_judges_nothing() {
        assert_eq!(
            compare(counts(500, 1000), &[], params()),
            Comparison::NoSibling
        );
    }

    #[test]
    fn a_uniformly_slow_array_judges_nothing() {
        let all = [counts(200, 500), counts(220, 520), counts(180, 480)];
        for i in 0..all.len() {
            let siblings: Vec<_> = (0..all.len()).filter(|&j| j != i).map(|j| all[j]).collect();
            let c = compare(all[i], &siblings, params());
            assert!(matches!(c, Comparison::NotSlow { .. }), "path {i}: {c:?}");
        }
    }

    #[test]
    fn one_slow_sibling_does_not_raise_the_yardstick() {
        // Four paths: one slow; the median of the other three is 10 ms.
        let c = compare(
            counts(200, 100),
            &[counts(200, 10), counts(200, 11), counts(200, 90)],
            params(),
        );
        assert_eq!(
            c,
            Comparison::Slow {
                mean_ns: 100 * MS,
                siblings_ns: 11 * MS
            }
        );
    }

    fn key(name: &str) -> PathKey {
        PathKey::from(name)
    }

    #[test]
    fn windows_judge_deltas_once_per_window() {
        let mut windows = LatencyWindows::default();
        let t0 = Timestamp::from_secs(100);
        let p = params();
        let at = |fast: LatencyCounts, slow: LatencyCounts| {
            vec![(key("sda"), true, fast), (key("sdb"), true, slow)]
        };
        // Old history (before the first window) does not count: 1000 ios of 1 s on sdb.
        assert!(
            windows
                .observe(t0, &at(counts(1000, 1), counts(1000, 1000)), p)
                .is_empty()
        );
        // Mid-window: nothing yet.
        let mid = at(counts(1100, 1), counts(1100, 1000));
        assert!(
            windows
                .observe(t0 + Duration::from_secs(5), &mid, p)
                .is_empty()
        );
        // The window ends: sdb did 200 ios of 100 ms, sda 300 of 1 ms.
        let end = at(
            LatencyCounts {
                ios: 1300,
                sum_ns: 1300 * MS,
            },
            LatencyCounts {
                ios: 1200,
                sum_ns: 1000 * 1000 * MS + 200 * 100 * MS,
            },
        );
        let slow = windows.observe(t0 + Duration::from_secs(10), &end, p);
        assert_eq!(slow.len(), 1);
        assert_eq!(slow[0].0, key("sdb"));
        assert_eq!(windows.siblings_ns(&key("sdb")), Some(MS));
        assert!(matches!(
            windows.last(&key("sda")),
            Some(Comparison::NotSlow { .. })
        ));
        // The next window starts at the end of this one: no new I/O, nothing judged.
        let slow = windows.observe(t0 + Duration::from_secs(20), &end, p);
        assert!(slow.is_empty());
        assert!(matches!(
            windows.last(&key("sdb")),
            Some(Comparison::TooFewIos { ios: 0 })
        ));
    }

    #[test]
    fn inactive_paths_are_neither_judged_nor_a_yardstick() {
        let mut windows = LatencyWindows::default();
        let t0 = Timestamp::from_secs(1);
        let p = params();
        let zero = LatencyCounts::default();
        windows.observe(
            t0,
            &[(key("sda"), true, zero), (key("sdb"), false, zero)],
            p,
        );
        let slow = windows.observe(
            t0 + p.window,
            &[
                (key("sda"), true, counts(200, 100)),
                (key("sdb"), false, counts(200, 1)),
            ],
            p,
        );
        assert!(slow.is_empty());
        assert_eq!(windows.last(&key("sda")), Some(Comparison::NoSibling));
        assert_eq!(windows.last(&key("sdb")), None);
    }
}
