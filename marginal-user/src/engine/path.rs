//! One path's state machine. It knows the rules but not the map: the engine hands it the map's
//! parameters and how many *other* paths of the map are active, and collects its decisions.
use std::time::Duration;

use super::{
    Params,
    clock::Timestamp,
    decisions::{Decision, Reason, StateName},
    ids::{MapName, PathKey},
    params::PathAction,
    verdict::{Measurement, RunLatency, Verdict},
    window::{self, WindowStep},
};

/// How long past `sample_time` the engine waits for a sampler's report before it gives up on
/// the run (and returns the path, see [`Reason::SamplingOverdue`]). The sampler's last read
/// starts before `sample_time - 60 s` and times out after 60 s, so a live sampler always reports
/// by `sample_time`; the grace only catches a lost report, so no failed path is stranded.
pub const SAMPLING_GRACE: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PathState {
    Healthy,
    Suspect {
        first_failure_at: Timestamp,
    },
    Sampling {
        started_at: Timestamp,
        duration: Duration,
        /// The engine failed the path for this run (false: left in service as the last path).
        held_out: bool,
        /// This run rechecks a path already judged marginal (or adopted after a restart): if
        /// it yields no verdict, the earlier verdict stands.
        recheck: bool,
    },
    Marginal {
        recheck_at: Timestamp,
        /// Held out for its latency, not its errors (status and metrics say "slow").
        slow: bool,
    },
}

impl PathState {
    pub fn name(&self) -> StateName {
        match self {
            PathState::Healthy => StateName::Healthy,
            PathState::Suspect { .. } => StateName::Suspect,
            PathState::Sampling { held_out: true, .. } => StateName::Sampling,
            PathState::Sampling {
                held_out: false, ..
            } => StateName::SamplingInService,
            PathState::Marginal { slow: false, .. } => StateName::Marginal,
            PathState::Marginal { slow: true, .. } => StateName::Slow,
        }
    }

    /// The engine has taken (and keeps) this path out of service.
    pub fn held_out(&self) -> bool {
        matches!(
            self,
            PathState::Sampling { held_out: true, .. } | PathState::Marginal { .. }
        )
    }

    /// When [`PathRecord::poll`] has something to do for this path.
    pub fn deadline(&self) -> Option<Timestamp> {
        match *self {
            PathState::Marginal { recheck_at, .. } => Some(recheck_at),
            PathState::Sampling {
                started_at,
                duration,
                ..
            } => Some(started_at + duration + SAMPLING_GRACE),
            PathState::Healthy | PathState::Suspect { .. } => None,
        }
    }
}

/// Counters and memories kept for status and metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct PathStats {
    pub failures: u64,
    pub failures_while_checked: u64,
    pub last_failure_at: Option<Timestamp>,
    pub checks_started: u64,
    pub sampling_runs: u64,
    pub marginal_verdicts: u64,
    pub recoveries: u64,
    pub last_measurement: Option<Measurement>,
    pub last_reason: Option<Reason>,
    pub state_since: Timestamp,
    /// The end of the path's last check (passed, recovered, returned): a failure from before it
    /// never pairs with a later one.
    pub returned_at: Option<Timestamp>,
}

/// What a rule needs to know about the path's map.
#[derive(Clone, Copy, Debug)]
pub(crate) struct MapView {
    pub params: Params,
    /// Active paths of the map other than this one.
    pub other_active: usize,
}

impl MapView {
    /// Whether the map can spare this path. Always with `setmarginal`: the path stays active
    /// in dm (in multipathd's lowest-priority group), a last resort when every other path has
    /// failed, so the rule that never fails a map's last active path does not apply.
    pub fn can_spare(&self) -> bool {
        self.other_active > 0 || self.params.action == PathAction::SetMarginal
    }

    /// Other active paths as the verdict weighs them (a `setmarginal` path is never the one
    /// that must carry the map).
    fn others_for_verdict(&self) -> usize {
        if self.params.action == PathAction::SetMarginal {
            self.other_active.max(1)
        } else {
            self.other_active
        }
    }
}

/// Where a transition happens and where its decisions go.
pub(crate) struct Ctx<'a> {
    pub path: &'a PathKey,
    pub map: &'a MapName,
    pub now: Timestamp,
    pub out: &'a mut Vec<Decision>,
}

impl Ctx<'_> {
    fn fail(&mut self, reason: Reason) {
        self.out.push(Decision::FailPath {
            path: self.path.clone(),
            map: self.map.clone(),
            reason,
        });
    }

    fn reinstate(&mut self, reason: Reason) {
        self.out.push(Decision::ReinstatePath {
            path: self.path.clone(),
            map: self.map.clone(),
            reason,
        });
    }

    fn recover(&mut self, reason: Reason) {
        self.out.push(Decision::RecoverPath {
            path: self.path.clone(),
            map: self.map.clone(),
            reason,
        });
    }

    fn keep_in_service(&mut self, reason: Reason) {
        self.out.push(Decision::KeepInService {
            path: self.path.clone(),
            map: self.map.clone(),
            reason,
        });
    }

    fn stop_sampling(&mut self, reason: Reason) {
        self.out.push(Decision::StopSampling {
            path: self.path.clone(),
            reason,
        });
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PathRecord {
    pub state: PathState,
    /// dm reports the path active. The engine's own view of "active" also needs the path not
    /// held out, so observe mode (where nothing is really failed) reasons the same way.
    pub dm_active: bool,
    pub stats: PathStats,
    /// While a slow path is checked: the siblings' mean latency (ns) when it was found slow,
    /// the yardstick its runs are judged against.
    pub slow_yardstick_ns: Option<u64>,
    /// How the engine holds the path out, fixed when the hold begins (a configuration change
    /// applies to the next hold): a `setmarginal` path still carries I/O as a last resort, so
    /// a map left without other active paths needs no recovery of it.
    pub held_as: PathAction,
}

impl PathRecord {
    pub fn new(dm_active: bool, now: Timestamp) -> Self {
        Self {
            state: PathState::Healthy,
            dm_active,
            stats: PathStats {
                state_since: now,
                ..PathStats::default()
            },
            slow_yardstick_ns: None,
            held_as: PathAction::Fail,
        }
    }

    /// Carries I/O for the map, as far as the engine's rules are concerned.
    pub fn is_active(&self) -> bool {
        self.dm_active && !self.state.held_out()
    }

    fn set_state(&mut self, ctx: &mut Ctx, next: PathState) {
        if next == PathState::Healthy && self.is_being_checked() {
            self.stats.returned_at = Some(ctx.now);
        }
        if next == PathState::Healthy {
            self.slow_yardstick_ns = None;
        }
        let from = self.state.name();
        self.state = next;
        let to = next.name();
        if from != to {
            self.stats.state_since = ctx.now;
            ctx.out.push(Decision::StateChanged {
                path: ctx.path.clone(),
                from,
                to,
            });
        }
    }

    fn remember(&mut self, reason: &Reason) {
        self.stats.last_reason = Some(reason.clone());
    }

    fn count_failures(&mut self, failures: u64, last_at: Timestamp) {
        self.dm_active = false;
        self.stats.failures += failures;
        if self.is_being_checked() {
            self.stats.failures_while_checked += failures;
        }
        self.stats.last_failure_at = Some(last_at);
    }

    fn pending_first_failure(&self) -> Option<Timestamp> {
        match self.state {
            PathState::Suspect { first_failure_at } => self.since_last_return(first_failure_at),
            _ => None,
        }
    }

    /// `first_at`, unless it is from before the path's last return to service (then it is
    /// history, and pairs with nothing).
    fn since_last_return(&self, first_at: Timestamp) -> Option<Timestamp> {
        match self.stats.returned_at {
            Some(returned) if first_at <= returned => None,
            _ => Some(first_at),
        }
    }

    fn is_being_checked(&self) -> bool {
        matches!(
            self.state,
            PathState::Sampling { .. } | PathState::Marginal { .. }
        )
    }

    /// One failure transition at `at`. `map` is None when checking is off for the map.
    pub fn failed(&mut self, ctx: &mut Ctx, map: Option<MapView>, at: Timestamp) {
        self.count_failures(1, at);
        let Some(map) = map else { return };
        if self.is_being_checked() {
            // Our own fail_path also shows up here; nothing restarts while checked.
            return;
        }
        let first = self.pending_first_failure();
        self.apply_window(ctx, map, first, at);
    }

    /// A kernel-confirmed pair of failures. Counts the second failure, and the first too unless
    /// it was reported on its own already.
    pub fn failed_twice(
        &mut self,
        ctx: &mut Ctx,
        map: Option<MapView>,
        first_at: Timestamp,
        second_at: Timestamp,
    ) {
        let first_already_seen = self.stats.last_failure_at == Some(first_at);
        self.count_failures(if first_already_seen { 1 } else { 2 }, second_at);
        let Some(map) = map else { return };
        if self.is_being_checked() {
            return;
        }
        // A first failure from before the last return is history: then this one pairs only
        // with a failure seen since (or opens the window).
        let first = self
            .since_last_return(first_at)
            .or_else(|| self.pending_first_failure());
        self.apply_window(ctx, map, first, second_at);
    }

    /// The latency comparison found the path slow: check it like a double failure (unless
    /// slow-path checking is off for the map, or the path is already being checked).
    pub fn slow(&mut self, ctx: &mut Ctx, map: MapView, mean_ns: u64, siblings_ns: u64) {
        let Some(slow) = map.params.slow else { return };
        if self.is_being_checked() || !self.is_active() {
            return;
        }
        self.slow_yardstick_ns = Some(siblings_ns);
        let reason = Reason::Slow {
            mean_ns,
            siblings_ns,
            factor: slow.factor,
        };
        self.start_check(ctx, map, reason);
    }

    fn apply_window(
        &mut self,
        ctx: &mut Ctx,
        map: MapView,
        first: Option<Timestamp>,
        at: Timestamp,
    ) {
        match window::step(first, at, map.params.double_failed_time) {
            WindowStep::Opened | WindowStep::Restarted { .. } => {
                self.set_state(
                    ctx,
                    PathState::Suspect {
                        first_failure_at: at,
                    },
                );
            }
            WindowStep::Double { first_at } => {
                let reason = Reason::DoubleFailure {
                    first_at,
                    second_at: at,
                    window: map.params.double_failed_time,
                };
                self.start_check(ctx, map, reason);
            }
        }
    }

    /// Start of checking: fail and sample, or, for the map's last active path, sample in service.
    fn start_check(&mut self, ctx: &mut Ctx, map: MapView, reason: Reason) {
        self.stats.checks_started += 1;
        let held_out = map.can_spare();
        if held_out {
            ctx.fail(reason.clone());
            self.remember(&reason);
        } else {
            ctx.keep_in_service(Reason::LastActivePath);
            self.remember(&Reason::LastActivePath);
        }
        self.begin_sampling(ctx, map.params, held_out, false, reason);
    }

    fn begin_sampling(
        &mut self,
        ctx: &mut Ctx,
        params: Params,
        held_out: bool,
        recheck: bool,
        reason: Reason,
    ) {
        self.stats.sampling_runs += 1;
        ctx.out.push(Decision::StartSampling {
            path: ctx.path.clone(),
            duration: params.sample_time,
            reason,
        });
        if held_out && !self.state.held_out() {
            self.held_as = params.action;
        }
        let next = PathState::Sampling {
            started_at: ctx.now,
            duration: params.sample_time,
            held_out,
            recheck,
        };
        self.set_state(ctx, next);
    }

    /// dm reinstated the path. If the engine holds it out and the map can spare it, fail it
    /// again: with multipathd the engine's `fail path` disables its checker, so this is an
    /// admin's action or a race with the checker, and "keep it out until it proves healthy"
    /// wins. (To return a path by hand, turn checking off for its map.) If the map has no
    /// other active path, the reinstatement is welcome: recover.
    pub fn reinstated(&mut self, ctx: &mut Ctx, map: Option<MapView>) {
        self.dm_active = true;
        if !self.state.held_out() {
            return;
        }
        if self.held_as == PathAction::SetMarginal {
            // multipathd's checker reinstated it after dm failed it under I/O as a last
            // resort; it is still marginal in multipathd: nothing to undo.
            return;
        }
        match map {
            Some(map) if map.other_active > 0 => ctx.fail(Reason::ReinstatedWhileHeldOut),
            _ => self.recover(ctx, Reason::MapWithoutActivePath),
        }
    }

    /// The end of a run: rate, verdict, and what it means for the path.
    pub fn sampling_finished(
        &mut self,
        ctx: &mut Ctx,
        map: MapView,
        reads: u64,
        errors: u64,
        latency_ns: Option<u64>,
    ) {
        let PathState::Sampling { held_out, .. } = self.state else {
            return; // a late report of a run the engine already stopped
        };
        let threshold = map.params.err_rate_threshold;
        let mut m =
            Measurement::evaluate(ctx.now, reads, errors, threshold, map.others_for_verdict());
        if let (Some(siblings_ns), Some(slow), Some(mean_ns)) =
            (self.slow_yardstick_ns, map.params.slow, latency_ns)
        {
            let latency = RunLatency {
                mean_ns,
                siblings_ns,
                slow: super::slow::is_slow(mean_ns, siblings_ns, slow),
            };
            m = m.with_latency(latency, map.others_for_verdict());
        }
        self.stats.last_measurement = Some(m);
        ctx.out.push(Decision::Measured {
            path: ctx.path.clone(),
            measurement: m,
        });
        match m.verdict {
            Verdict::Passed => {
                let reason = Reason::Passed(m);
                if held_out {
                    ctx.reinstate(reason.clone());
                }
                self.remember(&reason);
                self.set_state(ctx, PathState::Healthy);
            }
            Verdict::Marginal => {
                let reason = Reason::Marginal(m);
                if !held_out {
                    // Sampled in service as the last path; now the map can spare it.
                    self.held_as = map.params.action;
                    ctx.fail(reason.clone());
                }
                self.stats.marginal_verdicts += 1;
                self.remember(&reason);
                let recheck_at = ctx.now + map.params.recheck_gap_time;
                let slow = m.slow_only();
                self.set_state(ctx, PathState::Marginal { recheck_at, slow });
            }
            Verdict::MarginalButLastPath => {
                let reason = Reason::MarginalButLastPath(m);
                self.stats.marginal_verdicts += 1;
                if held_out {
                    self.stats.recoveries += 1;
                    ctx.recover(reason.clone());
                } else {
                    ctx.keep_in_service(reason.clone());
                }
                self.remember(&reason);
                self.set_state(ctx, PathState::Healthy);
            }
        }
    }

    /// A run without a verdict (the device could not be opened or read, the sampler never
    /// reported). A path the engine holds out stays out and is sampled again after the
    /// recheck gap: it failed twice, nothing proved it healthy, and returning it would put a
    /// path dm itself had failed (an offline device) back in front of I/O. A path sampled in
    /// service just ends its check.
    pub fn sampling_failed(&mut self, ctx: &mut Ctx, map: MapView, reason: Reason) {
        let PathState::Sampling { held_out, .. } = self.state else {
            return;
        };
        self.remember(&reason);
        if held_out {
            let recheck_at = ctx.now + map.params.recheck_gap_time;
            let slow = self.slow_yardstick_ns.is_some();
            self.set_state(ctx, PathState::Marginal { recheck_at, slow });
        } else {
            self.set_state(ctx, PathState::Healthy);
        }
    }

    /// Time-driven transitions: a marginal path's recheck, or a sampler that never reported.
    pub fn poll(&mut self, ctx: &mut Ctx, map: MapView) {
        if self.state.deadline().is_none_or(|due| ctx.now < due) {
            return;
        }
        match self.state {
            PathState::Marginal { .. }
                if map.other_active > 0 || self.held_as == PathAction::SetMarginal =>
            {
                self.begin_sampling(ctx, map.params, true, true, Reason::RecheckDue);
            }
            PathState::Marginal { .. } => self.recover(ctx, Reason::MapWithoutActivePath),
            PathState::Sampling { started_at, .. } => {
                let reason = Reason::SamplingOverdue { started_at };
                ctx.stop_sampling(reason.clone());
                self.sampling_failed(ctx, map, reason);
            }
            PathState::Healthy | PathState::Suspect { .. } => {}
        }
    }

    /// Return a held-out path because its map needs it, whatever its measurements say.
    pub fn recover(&mut self, ctx: &mut Ctx, reason: Reason) {
        if !self.state.held_out() {
            return;
        }
        if self.held_as == PathAction::SetMarginal && reason == Reason::MapWithoutActivePath {
            // Still active in dm, in multipathd's lowest-priority group: it carries the map's
            // I/O as it is. It stays marginal (and rechecked) until a run passes.
            return;
        }
        if matches!(self.state, PathState::Sampling { .. }) {
            ctx.stop_sampling(reason.clone());
        }
        self.stats.recoveries += 1;
        ctx.recover(reason.clone());
        self.remember(&reason);
        self.set_state(ctx, PathState::Healthy);
    }

    /// Checking was turned off for the map: undo everything the engine did to the path.
    pub fn checking_disabled(&mut self, ctx: &mut Ctx) {
        let reason = Reason::CheckingDisabled;
        if matches!(self.state, PathState::Sampling { .. }) {
            ctx.stop_sampling(reason.clone());
        }
        if self.state.held_out() {
            ctx.reinstate(reason.clone());
        }
        if self.state != PathState::Healthy {
            self.remember(&reason);
            self.set_state(ctx, PathState::Healthy);
        }
    }

    /// The engine stops tracking the path (it or its map is gone): stop its run, and record
    /// that a path the engine failed is let go rather than silently dropped.
    pub fn forget(&self, ctx: &mut Ctx, reason: Reason) {
        if matches!(self.state, PathState::Sampling { .. }) {
            ctx.stop_sampling(reason.clone());
        }
        if self.state.held_out() {
            ctx.out.push(Decision::Released {
                path: ctx.path.clone(),
                reason,
            });
        }
    }

    /// A path a previous run of the daemon failed: hold it out and recheck it at once, as if it
    /// were marginal with its recheck due now (upstream once checked such paths late). If the
    /// map cannot spare it, bring it back instead.
    pub fn adopt(&mut self, ctx: &mut Ctx, map: MapView) {
        if self.state.held_out() {
            return;
        }
        self.remember(&Reason::Adopted);
        if !map.can_spare() {
            if self.dm_active {
                ctx.keep_in_service(Reason::LastActivePath);
            } else {
                self.stats.recoveries += 1;
                ctx.recover(Reason::MapWithoutActivePath);
            }
            self.set_state(ctx, PathState::Healthy);
            return;
        }
        if self.dm_active || map.params.action == PathAction::SetMarginal {
            // Failed again, or set marginal again (a restarted multipathd forgot the flag).
            ctx.fail(Reason::Adopted);
        }
        self.begin_sampling(ctx, map.params, true, true, Reason::Adopted);
    }
}
