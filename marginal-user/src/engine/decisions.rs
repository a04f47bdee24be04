//! What the engine tells the daemon to do, and why.
use std::{fmt, time::Duration};

use super::{
    clock::Timestamp,
    ids::{MapName, PathKey},
    verdict::Measurement,
};

/// Why the engine decided something. `Display` gives the sentence logs and status show.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    /// Two failures within the map's `double_failed_time`.
    DoubleFailure {
        first_at: Timestamp,
        second_at: Timestamp,
        window: Duration,
    },
    /// The path's mean latency over a window was above `factor` times its active siblings'.
    Slow {
        mean_ns: u64,
        siblings_ns: u64,
        factor: u32,
    },
    /// The path is the only active path of its map, so it is never failed.
    LastActivePath,
    /// A sampling run's rate was at or below the threshold.
    Passed(Measurement),
    /// A sampling run's rate was above the threshold and the map has another active path.
    Marginal(Measurement),
    /// A sampling run's rate was above the threshold, but no other path of the map is active.
    MarginalButLastPath(Measurement),
    /// The map has no active path left: a path held out by the engine goes back at once.
    MapWithoutActivePath,
    /// A marginal path's `recheck_gap_time` has elapsed.
    RecheckDue,
    /// The sampler could not finish the run (device vanished, I/O setup failed, ...).
    SamplingFailed(String),
    /// The sampler did not report within `sample_time` + [`super::SAMPLING_GRACE`].
    SamplingOverdue { started_at: Timestamp },
    /// Something other than the engine reinstated a path the engine holds out.
    ReinstatedWhileHeldOut,
    /// A path the daemon had failed before it restarted (see `Engine::adopt_failed_path`).
    Adopted,
    /// Checking was turned off for the map (its parameters became unset).
    CheckingDisabled,
    /// The path left the map, or vanished.
    PathRemoved,
    /// The map is gone.
    MapRemoved,
    /// The daemon is stopping.
    Shutdown,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::DoubleFailure {
                first_at,
                second_at,
                window,
            } => write!(
                f,
                "failed twice within {:.1}s (at {first_at} and {second_at}; window {}s)",
                second_at.saturating_since(*first_at).as_secs_f64(),
                window.as_secs()
            ),
            Reason::Slow {
                mean_ns,
                siblings_ns,
                factor,
            } => write!(
                f,
                "slow: mean latency {} against its siblings' {} (factor {factor})",
                millis(*mean_ns),
                millis(*siblings_ns)
            ),
            Reason::LastActivePath => write!(f, "last active path of its map: never failed"),
            Reason::Passed(m) => write!(f, "passed: {}", rate_text(m)),
            Reason::Marginal(m) => write!(
                f,
                "{}: {}",
                if m.slow_only() { "slow" } else { "marginal" },
                rate_text(m)
            ),
            Reason::MarginalButLastPath(m) => write!(
                f,
                "marginal but the map has no other active path: {}",
                rate_text(m)
            ),
            Reason::MapWithoutActivePath => write!(f, "map has no other active path"),
            Reason::RecheckDue => write!(f, "recheck gap elapsed"),
            Reason::SamplingFailed(why) => write!(f, "sampling failed: {why}"),
            Reason::SamplingOverdue { started_at } => {
                write!(f, "sampler started at {started_at} never reported")
            }
            Reason::ReinstatedWhileHeldOut => {
                write!(f, "reinstated by someone else while held out")
            }
            Reason::Adopted => write!(f, "failed by a previous run of the daemon"),
            Reason::CheckingDisabled => write!(f, "marginal path checking turned off for the map"),
            Reason::PathRemoved => write!(f, "path removed"),
            Reason::MapRemoved => write!(f, "map removed"),
            Reason::Shutdown => write!(f, "daemon shutting down"),
        }
    }
}

fn rate_text(m: &Measurement) -> String {
    let rate = format!(
        "{} errors in {} reads = {}‰ (threshold {}‰)",
        m.errors, m.reads, m.rate_permille, m.threshold_permille
    );
    match m.latency {
        None => rate,
        Some(l) => format!(
            "{rate}; mean latency {} against its siblings' {}{}",
            millis(l.mean_ns),
            millis(l.siblings_ns),
            if l.slow { ", still slow" } else { "" }
        ),
    }
}

fn millis(ns: u64) -> String {
    format!("{:.1} ms", ns as f64 / 1e6)
}

/// A path's state, as named in status output and metrics labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StateName {
    /// No failure pending.
    Healthy,
    /// One failure seen; a second within the window starts a check.
    Suspect,
    /// Being sampled, taken out of service by the engine.
    Sampling,
    /// Being sampled while left in service (it was its map's last active path).
    SamplingInService,
    /// Measured marginal: out of service until a recheck passes.
    Marginal,
    /// Measured slow (its latency, not its errors): out of service until a recheck passes.
    Slow,
}

impl StateName {
    pub const ALL: [StateName; 6] = [
        StateName::Healthy,
        StateName::Suspect,
        StateName::Sampling,
        StateName::SamplingInService,
        StateName::Marginal,
        StateName::Slow,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StateName::Healthy => "healthy",
            StateName::Suspect => "suspect",
            StateName::Sampling => "sampling",
            StateName::SamplingInService => "sampling_in_service",
            StateName::Marginal => "marginal",
            StateName::Slow => "slow",
        }
    }
}

impl fmt::Display for StateName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One thing for the daemon to do or record, in the order the engine decided them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Take the path out of service (multipathd `fail path`, or dm `fail_path`).
    FailPath {
        path: PathKey,
        map: MapName,
        reason: Reason,
    },
    /// Start one sampling run of `duration` on the path; report with `SamplingFinished`.
    StartSampling {
        path: PathKey,
        duration: Duration,
        reason: Reason,
    },
    /// Abandon the path's sampling run; its result, if any arrives, is ignored.
    StopSampling { path: PathKey, reason: Reason },
    /// Return a path the engine failed: it has proven healthy, or can no longer be judged.
    ReinstatePath {
        path: PathKey,
        map: MapName,
        reason: Reason,
    },
    /// Return a path the engine failed because its map would otherwise have no active path.
    RecoverPath {
        path: PathKey,
        map: MapName,
        reason: Reason,
    },
    /// Nothing to do, but worth recording: a path that would have been failed stays in service.
    KeepInService {
        path: PathKey,
        map: MapName,
        reason: Reason,
    },
    /// The engine no longer tracks a path it had failed and can act on no more (its map or the
    /// path is gone). Recorded so that no failed path is silently forgotten.
    Released { path: PathKey, reason: Reason },
    /// A sampling run finished; the rate and verdict, for logs and metrics.
    Measured {
        path: PathKey,
        measurement: Measurement,
    },
    /// The path moved between states, for logs and metrics.
    StateChanged {
        path: PathKey,
        from: StateName,
        to: StateName,
    },
}

impl Decision {
    /// The path the decision is about.
    pub fn path(&self) -> &PathKey {
        match self {
            Decision::FailPath { path, .. }
            | Decision::StartSampling { path, .. }
            | Decision::StopSampling { path, .. }
            | Decision::ReinstatePath { path, .. }
            | Decision::RecoverPath { path, .. }
            | Decision::KeepInService { path, .. }
            | Decision::Released { path, .. }
            | Decision::Measured { path, .. }
            | Decision::StateChanged { path, .. } => path,
        }
    }

    /// True for decisions that change a path's dm state (fail, reinstate, recover).
    pub fn acts_on_path(&self) -> bool {
        matches!(
            self,
            Decision::FailPath { .. }
                | Decision::ReinstatePath { .. }
                | Decision::RecoverPath { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::verdict::Verdict;

    fn measurement() -> Measurement {
        Measurement {
            at: Timestamp::from_secs(1),
            reads: 200,
            errors: 3,
            rate_permille: 15,
            threshold_permille: 10,
            verdict: Verdict::Marginal,
            latency: None,
        }
    }

    #[test]
    fn reasons_read_as_sentences() {
        let double = Reason::DoubleFailure {
            first_at: Timestamp::from_secs(10),
            second_at: Timestamp::from_secs(25),
            window: Duration::from_secs(60),
        };
        assert_eq!(
            double.to_string(),
            "failed twice within 15.0s (at 10.000s and 25.000s; window 60s)"
        );
        assert_eq!(
            Reason::Marginal(measurement()).to_string(),
            "marginal: 3 errors in 200 reads = 15‰ (threshold 10‰)"
        );
        assert_eq!(
            Reason::SamplingFailed("ENODEV".into()).to_string(),
            "sampling failed: ENODEV"
        );
    }

    #[test]
    fn state_names_are_metric_labels() {
        let names: Vec<_> = StateName::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(
            names,
            [
                "healthy",
                "suspect",
                "sampling",
                "sampling_in_service",
                "marginal",
                "slow"
            ]
        );
    }

    #[test]
    fn only_fail_reinstate_recover_act_on_paths() {
        let path = PathKey::from("sdb");
        let map = MapName::from("mpatha");
        let acting = Decision::RecoverPath {
            path: path.clone(),
            map: map.clone(),
            reason: Reason::MapWithoutActivePath,
        };
        let noting = Decision::KeepInService {
            path: path.clone(),
            map,
            reason: Reason::LastActivePath,
        };
        assert!(acting.acts_on_path());
        assert!(!noting.acts_on_path());
        assert_eq!(noting.path(), &path);
    }
}
