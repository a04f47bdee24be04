//! Carrying out the engine's decisions, against dm's truth read fresh.
//!
//! * **Fail** ([`Daemon::take_out`]): only if the engine still holds the path out once its
//!   whole batch of events is in; the map's active paths are read right before (whatever the
//!   actuator), and a path that is the map's last active one is never failed. The state file
//!   gets the path first (so a crash between the two re-checks it rather than forgetting it),
//!   and the kernel is told the PATH_FAILED that follows is marginal's own.
//! * **Return** ([`Daemon::give_back`]): only a path marginal failed (the state file has it);
//!   a path dm shows active again is simply off the books. A path dm had failed before
//!   marginal took it is not reinstated with a dm message unless marginal's reads proved it
//!   healthy or its map needs it; through multipathd it is, because `reinstate path` is the
//!   only way to give multipathd's checker the path back.
//! * **setmarginal** (`marginal_path_action setmarginal`, `Daemon::held_as`): the path is
//!   set marginal through multipathd instead of failed and stays active in dm, a last resort
//!   in its own lowest-priority group; the last-active-path rule does not apply to it, and it
//!   returns by `unsetmarginal`. The state file records which action holds each path.
//! * **Retry**: an action that fails is counted and tried again with backoff (1 s doubling to
//!   30 s), never forgotten; [`super::reconcile`] also re-fails held paths dm shows active.
//!
//! The checks and the state file are done here, on the event loop; the actuator's calls
//! themselves are made off it ([`super::actuation`]) and finished when their outcome comes back
//! ([`super::in_flight`]). Observe mode's actuator changes nothing and is called in place.
use std::time::Duration;

use super::{
    actuation::{Call, Job, Purpose, Step},
    core::{Daemon, monotonic_now},
    held_out::HeldOutPath,
};
use crate::{
    actuator::PathRef,
    engine::{Decision, Event, MapName, PathAction, PathKey, Reason, StateName, Timestamp},
};

/// How long after marginal sends `fail path` a PATH_FAILED of the path is taken as its own.
const OWN_FAIL_WINDOW: Duration = Duration::from_secs(10);
const FIRST_RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(30);

/// Why a path goes back, which decides how far marginal goes to put it back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReturnKind {
    /// marginal's own reads found it healthy.
    Proven,
    /// Its map has no other active path.
    Recovery,
    /// Anything else (no verdict, checking turned off, shutdown).
    Unproven,
}

impl ReturnKind {
    fn of(decision: &Decision) -> Self {
        match decision {
            Decision::RecoverPath { .. } => Self::Recovery,
            Decision::ReinstatePath {
                reason: Reason::Passed(_),
                ..
            } => Self::Proven,
            _ => Self::Unproven,
        }
    }
}

/// What a retry will do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PendingAction {
    Fail,
    Return(ReturnKind),
}

/// An action that failed, and when it is tried again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Retry {
    pub action: PendingAction,
    pub map: MapName,
    pub attempts: u32,
    pub next_at: Timestamp,
    pub last_error: String,
}

impl Daemon {
    /// Carry out the engine's decisions, in order, except that a path's sampling starts
    /// before its fail: a path judged suspect is read at once, while dm's view is read and
    /// multipathd asked to fail it (a round trip that takes longer than the first reads).
    pub fn apply(&mut self, decisions: Vec<Decision>, now: Timestamp) {
        let mut decisions: Vec<Option<Decision>> = decisions.into_iter().map(Some).collect();
        for i in 0..decisions.len() {
            if let Some(Decision::FailPath { path, .. }) = &decisions[i] {
                let sampling = decisions[i + 1..].iter().position(
                    |d| matches!(d, Some(Decision::StartSampling { path: p, .. }) if p == path),
                );
                if let Some(at) = sampling
                    && let Some(start) = decisions[i + 1 + at].take()
                {
                    self.apply_one(start, now);
                }
            }
            if let Some(decision) = decisions[i].take() {
                self.apply_one(decision, now);
            }
        }
    }

    fn apply_one(&mut self, decision: Decision, now: Timestamp) {
        let kind = ReturnKind::of(&decision);
        match decision {
            Decision::FailPath { path, map, reason } => {
                log::warn!("failing {path} of {map}: {reason}");
                self.take_out(&path, &map, now, false);
            }
            Decision::ReinstatePath { path, map, reason }
            | Decision::RecoverPath { path, map, reason } => {
                log::warn!("returning {path} to {map}: {reason}");
                self.give_back(&path, &map, kind, now, true);
            }
            Decision::StartSampling {
                path,
                duration,
                reason,
            } => {
                log::info!("sampling {path} for {duration:?}: {reason}");
                let Some((_, watched)) = self.topology.path(&path) else {
                    return;
                };
                let node = watched.device.node();
                self.set_sampling(&path, true);
                self.latency_run_started(&path);
                let one_at_a_time = self.engine.path(&path).is_some_and(|p| p.slow_check);
                if let Err(e) = self
                    .sampler
                    .start(path.as_str(), &node, duration, one_at_a_time)
                {
                    log::error!("{path}: cannot start sampling: {e:#}");
                    self.set_sampling(&path, false);
                    let more = self.engine.handle(
                        now,
                        Event::SamplingFailed {
                            path,
                            error: format!("{e:#}"),
                        },
                    );
                    self.apply(more, now);
                }
            }
            Decision::StopSampling { path, reason } => {
                log::info!("stopping the sampling of {path}: {reason}");
                if let Err(e) = self.sampler.stop(path.as_str()) {
                    log::error!("{path}: stopping its run: {e:#}");
                }
            }
            Decision::KeepInService { path, map, reason } => {
                log::warn!("keeping {path} of {map} in service: {reason}");
            }
            Decision::Released { path, reason } => {
                log::warn!(
                    "{path} is no longer tracked ({reason}); the state file keeps it until \
                     the device is gone or it shows up again"
                );
                self.retries.remove(&path);
            }
            Decision::Measured { path, measurement } => log::debug!("{path}: {measurement:?}"),
            Decision::StateChanged { path, from, to } => {
                log::info!("{path}: {} -> {}", from.as_str(), to.as_str());
                let checked = matches!(
                    from,
                    StateName::Sampling | StateName::SamplingInService | StateName::Marginal
                );
                if checked && to == StateName::Healthy {
                    self.fence(&path, now);
                }
            }
        }
    }

    /// The path returned to service: the kernel pairs no failure from before now with a
    /// later one.
    fn fence(&mut self, key: &PathKey, now: Timestamp) {
        let Some((_, path)) = self.topology.path(key) else {
            return;
        };
        let dev = path.device.kernel_dev();
        if let Err(e) = self
            .kernel
            .control(dev, &mut |c| c.fence_ns = now.as_nanos())
        {
            log::warn!("{e:#}");
        }
    }

    fn path_ref(&self, key: &PathKey) -> Option<PathRef> {
        if let Some((_, path)) = self.topology.path(key) {
            return Some(PathRef::new(
                path.device.name.clone(),
                (path.device.major, path.device.minor),
            ));
        }
        let entry = self.held_out.get(key.as_str())?;
        let (major, minor) = entry.device.split_once(':')?;
        Some(PathRef::new(
            key.as_str(),
            (major.parse().ok()?, minor.parse().ok()?),
        ))
    }

    /// Take `key` out of service, if the engine still holds it out and the map can spare it
    /// by a fresh read. `force`: send the fail even if dm shows the path failed already
    /// (multipathd restarted and must be told again).
    pub(crate) fn take_out(&mut self, key: &PathKey, map: &MapName, now: Timestamp, force: bool) {
        let actuator = self.actuators.current();
        if self.observe {
            let Some(path_ref) = self.path_ref(key) else {
                return;
            };
            let _ = match self.held_as(key) {
                PathAction::Fail => actuator.fail_path(map.as_str(), &path_ref),
                PathAction::SetMarginal => actuator.set_marginal(map.as_str(), &path_ref),
            };
            let reacting_to = self.reacting_to.remove(key);
            self.count_fail(key, reacting_to);
            return;
        }
        if self.wait_behind(key, PendingAction::Fail, map, force) {
            return;
        }
        if !self.engine.path(key).is_some_and(|p| p.held_out) {
            self.retries.remove(key);
            return; // a later event of the same batch gave it back
        }
        if self.held_as(key) == PathAction::SetMarginal {
            self.set_marginal(key, map, now, force);
            return;
        }
        let Some((watched_map, watched)) = self.topology.path(key) else {
            return;
        };
        let dev = watched.device.kernel_dev();
        let path_ref = PathRef::new(
            watched.device.name.clone(),
            (watched.device.major, watched.device.minor),
        );
        let wwid = Some(watched_map.identity.wwid.clone()).filter(|w| !w.is_empty());
        let mut dm_failed_first = false;
        if let Some(dm) = &self.dm {
            let fresh = match dm.read_map(map.as_str()) {
                Ok(fresh) => fresh,
                Err(e) => {
                    self.schedule_retry(key, map, PendingAction::Fail, &e, now);
                    return;
                }
            };
            let Some(me) = fresh.path_by_dev(path_ref.dev) else {
                log::warn!("not failing {key}: no longer a path of {map}");
                return;
            };
            // A path whose fail is under way is out already, whatever dm shows yet.
            let others = fresh
                .active_paths()
                .filter(|p| p.dev != me.dev && !self.failing_in_flight(p.dev))
                .count();
            if me.active && others == 0 {
                log::warn!("not failing {key}: read just now, it is the last active path of {map}");
                self.retries.remove(key);
                let active = fresh
                    .active_paths()
                    .filter_map(|p| {
                        let dev = marginal_common::kernel_dev(p.dev.0, p.dev.1);
                        self.topology
                            .path_by_kernel_dev(dev)
                            .map(|(_, w)| w.key.clone())
                    })
                    .collect();
                let decisions = self.engine.handle(
                    now,
                    Event::MapActivePaths {
                        map: map.clone(),
                        active,
                    },
                );
                self.apply(decisions, now);
                return;
            }
            let confirmed =
                !self.retries.contains_key(key) && self.held_out.get(key.as_str()).is_some();
            if !me.active && confirmed && !force {
                return; // out already, as marginal left it
            }
            dm_failed_first = !me.active;
        }
        let was_set_marginal = self
            .held_out
            .get(key.as_str())
            .is_some_and(|e| e.action == PathAction::SetMarginal);
        let entry = HeldOutPath {
            map: map.to_string(),
            device: path_ref.numbers(),
            wwid,
            dm_failed_first: self
                .held_out
                .get(key.as_str())
                .map_or(dm_failed_first, |e| e.dm_failed_first),
            action: PathAction::Fail,
        };
        if let Err(e) = self.held_out.insert(key.as_str(), entry) {
            log::error!("{key}: recording it in the state file: {e:#}");
        }
        let mut steps = Vec::new();
        // Held by setmarginal before (the map's action changed): multipathd's flag would
        // outlive the fail's return. Best effort: a restarted multipathd has no flag to clear.
        if was_set_marginal {
            steps.push(Step::best_effort(Call::UnsetMarginal));
        }
        steps.push(Step::required(Call::Fail));
        let until = (now + OWN_FAIL_WINDOW).as_nanos();
        self.announce_own_fail(dev, until);
        let reacting_to = self.reacting_to.remove(key);
        let job = Job {
            key: key.clone(),
            map: map.clone(),
            path: path_ref,
            actuator,
            steps,
            purpose: Purpose::Fail { dev },
        };
        self.submit(job, reacting_to, now); // finished in Daemon::on_action_done
    }

    /// How the engine holds `key` out (`fail` for a path it does not know).
    pub(crate) fn held_as(&self, key: &PathKey) -> PathAction {
        self.engine
            .path(key)
            .map_or(PathAction::Fail, |p| p.held_as)
    }

    /// Hold `key` out as marginal in multipathd (`setmarginal path`): it stays active in dm,
    /// in a lowest-priority path group of its own, so none of the fail rules apply: no fresh
    /// read of the map's active paths (the last-active-path rule does not hold for a path
    /// that remains a last resort), no announcement of an own PATH_FAILED (none comes).
    /// Without multipathd answering the command fails and is retried with backoff: the path
    /// stays in service meanwhile, which is safe. `force`: send it even if the state file says
    /// it was sent (multipathd restarted and forgot it).
    fn set_marginal(&mut self, key: &PathKey, map: &MapName, now: Timestamp, force: bool) {
        let Some((_, watched)) = self.topology.path(key) else {
            return;
        };
        let path_ref = PathRef::new(
            watched.device.name.clone(),
            (watched.device.major, watched.device.minor),
        );
        let confirmed = !self.retries.contains_key(key)
            && self
                .held_out
                .get(key.as_str())
                .is_some_and(|e| e.action == PathAction::SetMarginal);
        if confirmed && !force {
            return;
        }
        // Held by a fail before (the map's action changed, and a restart adopted it): give
        // the path back to dm first, or it would stay failed behind a "last resort".
        let was_failed = self
            .held_out
            .get(key.as_str())
            .is_some_and(|e| e.action == PathAction::Fail);
        // The state file holds it as setmarginal once it is active in dm (at once, or when
        // the reinstate is done: Daemon::on_action_done).
        let mut steps = Vec::new();
        if was_failed {
            steps.push(Step::required(Call::Reinstate));
        } else {
            self.record_set_marginal(key, map);
        }
        steps.push(Step::required(Call::SetMarginal));
        let reacting_to = self.reacting_to.remove(key);
        let job = Job {
            key: key.clone(),
            map: map.clone(),
            path: path_ref,
            actuator: self.actuators.current(),
            steps,
            purpose: Purpose::SetMarginal,
        };
        self.submit(job, reacting_to, now);
    }

    /// The path is out: counted, with the reaction time if a double failure (kernel time
    /// `reacting_to`) caused it.
    pub(crate) fn count_fail(&mut self, key: &PathKey, reacting_to: Option<Timestamp>) {
        let totals = self.totals.entry(key.clone()).or_default();
        totals.failed_by_daemon += 1;
        if let Some(second_at) = reacting_to {
            totals.last_reaction = Some(monotonic_now().saturating_since(second_at));
        }
    }

    pub(crate) fn announce_own_fail(&mut self, dev: u32, until_ns: u64) {
        if let Err(e) = self
            .kernel
            .control(dev, &mut |c| c.own_fail_until_ns = until_ns)
        {
            log::warn!("{e:#}");
        }
    }

    /// Put `key` back into service, if marginal failed it. `respect_engine`: not while the
    /// engine holds it out again (a later event of the same batch).
    pub(crate) fn give_back(
        &mut self,
        key: &PathKey,
        map: &MapName,
        kind: ReturnKind,
        now: Timestamp,
        respect_engine: bool,
    ) {
        let actuator = self.actuators.current();
        let Some(path_ref) = self.path_ref(key) else {
            return;
        };
        if self.observe {
            let _ = match self.held_as(key) {
                PathAction::Fail => actuator.reinstate_path(map.as_str(), &path_ref),
                PathAction::SetMarginal => actuator.unset_marginal(map.as_str(), &path_ref),
            };
            self.totals
                .entry(key.clone())
                .or_default()
                .returned_by_daemon += 1;
            return;
        }
        if self.wait_behind(key, PendingAction::Return(kind), map, false) {
            return;
        }
        if respect_engine && self.engine.path(key).is_some_and(|p| p.held_out) {
            return;
        }
        let Some(entry) = self.held_out.get(key.as_str()).cloned() else {
            self.retries.remove(key);
            return; // marginal never failed it: nothing is owed
        };
        if entry.action == PathAction::SetMarginal {
            self.unset_marginal(key, map, &path_ref, kind, now);
            return;
        }
        if let Some(dm) = &self.dm {
            match dm.read_map(map.as_str()) {
                Ok(fresh) => match fresh.path_by_dev(path_ref.dev) {
                    Some(p) if p.active => {
                        log::info!("{key} is active in {map} already");
                        self.settle_return(key);
                        return;
                    }
                    Some(_) => {}
                    None => {
                        log::warn!("{key} is no longer a path of {map}: nothing to return");
                        self.retries.remove(key);
                        return;
                    }
                },
                Err(e) => {
                    self.schedule_retry(key, map, PendingAction::Return(kind), &e, now);
                    return;
                }
            }
        }
        if entry.dm_failed_first
            && kind == ReturnKind::Unproven
            && !self.actuators.through_multipathd()
        {
            log::warn!(
                "leaving {key} failed, as dm had it before marginal took it: not proven healthy"
            );
            self.settle_return(key);
            return;
        }
        self.submit_return(key, map, path_ref, Call::Reinstate, kind, now);
    }

    fn submit_return(
        &mut self,
        key: &PathKey,
        map: &MapName,
        path: PathRef,
        call: Call,
        kind: ReturnKind,
        now: Timestamp,
    ) {
        let job = Job {
            key: key.clone(),
            map: map.clone(),
            path,
            actuator: self.actuators.current(),
            steps: vec![Step::required(call)],
            purpose: Purpose::Return(kind),
        };
        self.submit(job, None, now);
    }

    /// The end of a return: off the books if the actuator did it, tried again later if not.
    pub(crate) fn returned(
        &mut self,
        key: &PathKey,
        map: &MapName,
        kind: ReturnKind,
        result: anyhow::Result<()>,
        now: Timestamp,
    ) {
        match result {
            Ok(()) => {
                self.settle_return(key);
                self.totals
                    .entry(key.clone())
                    .or_default()
                    .returned_by_daemon += 1;
            }
            Err(e) => self.schedule_retry(key, map, PendingAction::Return(kind), &e, now),
        }
    }

    /// Return a path held as marginal in multipathd: `unsetmarginal path` (it is active in dm
    /// all along, so dm's view says nothing about what is owed).
    fn unset_marginal(
        &mut self,
        key: &PathKey,
        map: &MapName,
        path_ref: &PathRef,
        kind: ReturnKind,
        now: Timestamp,
    ) {
        if let Some(dm) = &self.dm
            && let Ok(fresh) = dm.read_map(map.as_str())
            && fresh.path_by_dev(path_ref.dev).is_none()
        {
            log::warn!("{key} is no longer a path of {map}: nothing to return");
            self.retries.remove(key);
            return;
        }
        self.submit_return(key, map, path_ref.clone(), Call::UnsetMarginal, kind, now);
    }

    /// Nothing more is owed to `key`: off the state file.
    fn settle_return(&mut self, key: &PathKey) {
        self.retries.remove(key);
        if let Err(e) = self.held_out.remove(key.as_str()) {
            log::error!("{key}: updating the state file: {e:#}");
        }
    }

    pub(crate) fn schedule_retry(
        &mut self,
        key: &PathKey,
        map: &MapName,
        action: PendingAction,
        error: &anyhow::Error,
        now: Timestamp,
    ) {
        self.actuator_errors += 1;
        let attempts = self
            .retries
            .get(key)
            .filter(|r| r.action == action)
            .map_or(0, |r| r.attempts)
            + 1;
        let backoff = FIRST_RETRY
            .saturating_mul(1 << (attempts - 1).min(5))
            .min(MAX_RETRY);
        log::error!("{error:#}; trying again in {backoff:?} (attempt {attempts})");
        self.retries.insert(
            key.clone(),
            Retry {
                action,
                map: map.clone(),
                attempts,
                next_at: now + backoff,
                last_error: format!("{error:#}"),
            },
        );
    }

    /// Try again the actions whose time has come.
    pub(crate) fn retry_due(&mut self, now: Timestamp) {
        let due: Vec<(PathKey, Retry)> = self
            .retries
            .iter()
            .filter(|(_, r)| r.next_at <= now)
            .map(|(k, r)| (k.clone(), r.clone()))
            .collect();
        for (key, retry) in due {
            match retry.action {
                PendingAction::Fail => self.take_out(&key, &retry.map, now, false),
                PendingAction::Return(kind) => self.give_back(&key, &retry.map, kind, now, true),
            }
        }
    }

    /// On shutdown: return the paths marginal failed (unless told to keep them out), so that
    /// every map has at least as many active paths as before. Observe mode changes nothing.
    pub fn shutdown(&mut self, keep_failed: bool) {
        if self.observe {
            // Say what a real run would give back now; the state file is not touched.
            let now = monotonic_now();
            for decision in self.engine.shutdown_plan() {
                if let Decision::ReinstatePath { path, map, .. } = decision {
                    self.give_back(&path, &map, ReturnKind::Unproven, now, false);
                }
            }
            return;
        }
        let held: Vec<(String, HeldOutPath)> = self
            .held_out
            .held_out()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if keep_failed {
            if !held.is_empty() {
                log::warn!(
                    "leaving {} path(s) failed as asked; the next start takes them up again",
                    held.len()
                );
            }
            return;
        }
        let now = monotonic_now();
        for (name, entry) in held {
            let key = PathKey::new(name);
            if self.topology.path(&key).is_none() {
                continue; // in no map now: kept for the next run to take up
            }
            let _ = self.sampler.stop(key.as_str());
            let map = MapName::new(entry.map.clone());
            log::warn!("returning {key} to {map}: {}", Reason::Shutdown);
            self.give_back(&key, &map, ReturnKind::Unproven, now, false);
        }
    }
}
