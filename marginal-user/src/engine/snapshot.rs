//! Read-only views of the engine's state, for status output, metrics and persistence.
use super::{
    Params,
    clock::Timestamp,
    decisions::{Reason, StateName},
    ids::{MapName, PathKey},
    path::PathState,
    registry::{MapEntry, PathEntry},
    verdict::Measurement,
};

/// One path as the engine sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathSnapshot {
    pub path: PathKey,
    pub map: MapName,
    pub state: StateName,
    /// When the path entered `state`.
    pub state_since: Timestamp,
    /// Checking is on for the path's map.
    pub checking: bool,
    /// dm reports the path active.
    pub dm_active: bool,
    /// The engine has failed the path and keeps it out of service. Persist these: they are the
    /// paths to hand to `Engine::adopt_failed_path` after a restart.
    pub held_out: bool,
    /// How it is held out (meaningful while `held_out`): failed, or set marginal in multipathd.
    pub held_as: super::PathAction,
    /// Failure transitions seen.
    pub failures: u64,
    /// Of those, failures seen while the path was already being checked or marginal.
    pub failures_while_checked: u64,
    pub last_failure_at: Option<Timestamp>,
    /// The pending first failure of a double-failure window (state suspect).
    pub first_failure_at: Option<Timestamp>,
    pub checks_started: u64,
    pub sampling_runs: u64,
    pub marginal_verdicts: u64,
    /// Times the engine returned the path because its map needed it.
    pub recoveries: u64,
    /// The current run's start (states sampling and sampling_in_service).
    pub sampling_started_at: Option<Timestamp>,
    /// When a marginal path is sampled again.
    pub next_recheck_at: Option<Timestamp>,
    /// The latest finished run: counts, rate and verdict.
    pub last_measurement: Option<Measurement>,
    /// Why the path is where it is.
    pub last_reason: Option<Reason>,
    /// The path is checked for its latency (a slow path): its runs read one block at a time,
    /// so that their latency compares with what its siblings gave.
    pub slow_check: bool,
}

impl PathSnapshot {
    pub(crate) fn of(path: &PathKey, entry: &PathEntry, params: Option<Params>) -> Self {
        let record = &entry.record;
        let stats = &record.stats;
        let (first_failure_at, sampling_started_at, next_recheck_at) = match record.state {
            PathState::Suspect { first_failure_at } => (Some(first_failure_at), None, None),
            PathState::Sampling { started_at, .. } => (None, Some(started_at), None),
            PathState::Marginal { recheck_at, .. } => (None, None, Some(recheck_at)),
            PathState::Healthy => (None, None, None),
        };
        Self {
            path: path.clone(),
            map: entry.map.clone(),
            state: record.state.name(),
            state_since: stats.state_since,
            checking: params.is_some(),
            dm_active: record.dm_active,
            held_out: record.state.held_out(),
            held_as: record.held_as,
            failures: stats.failures,
            failures_while_checked: stats.failures_while_checked,
            last_failure_at: stats.last_failure_at,
            first_failure_at,
            checks_started: stats.checks_started,
            sampling_runs: stats.sampling_runs,
            marginal_verdicts: stats.marginal_verdicts,
            recoveries: stats.recoveries,
            sampling_started_at,
            next_recheck_at,
            last_measurement: stats.last_measurement,
            last_reason: stats.last_reason.clone(),
            slow_check: record.slow_yardstick_ns.is_some(),
        }
    }
}

/// One map as the engine sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapSnapshot {
    pub map: MapName,
    /// None: checking is off.
    pub params: Option<Params>,
    pub paths: Vec<PathKey>,
    /// Paths carrying I/O in the engine's view (dm-active and not held out).
    pub active_paths: usize,
    /// Paths the engine keeps out of service.
    pub held_out_paths: usize,
}

impl MapSnapshot {
    pub(crate) fn of(
        map: &MapName,
        entry: &MapEntry,
        active_paths: usize,
        held_out_paths: usize,
    ) -> Self {
        Self {
            map: map.clone(),
            params: entry.params,
            paths: entry.paths.iter().cloned().collect(),
            active_paths,
            held_out_paths,
        }
    }
}
