//! Actuator jobs under way ([`super::actuation`]), finished on the event loop.
//!
//! While a path's job is out, the loop goes on: kernel events, sampling (a path being failed
//! is already being sampled), other paths' jobs. What this keeps true meanwhile:
//! * one job per path at a time: an action asked for a path whose job is out waits for it and
//!   then runs with what is known then (the latest ask wins; asking again for what is under
//!   way adds nothing);
//! * a path whose fail is under way counts as out when another path of its map is checked
//!   against the last-active-path rule (dm still shows it active until the call is done);
//! * the state file, retries, counters and the reaction time are settled when the outcome
//!   comes back, as they were when the calls were made in place.
use super::{
    actions::PendingAction,
    actuation::{Call, Done, Job, Purpose},
    core::Daemon,
    held_out::HeldOutPath,
};
use crate::{
    dm::DevNum,
    engine::{MapName, PathAction, PathKey, Timestamp},
};

/// A path's job on its way.
#[derive(Clone, Debug)]
pub struct InFlight {
    pub purpose: Purpose,
    pub dev: DevNum,
    /// The second failure this job answers (its kernel timestamp), for the reaction time.
    pub reacting_to: Option<Timestamp>,
    /// Asked for meanwhile, done once this job is.
    pub then: Option<Queued>,
}

/// An action that waits for the path's job under way.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Queued {
    pub action: PendingAction,
    pub map: MapName,
    pub force: bool,
}

impl Daemon {
    /// Hand `job` to the runner; `reacting_to`: the second failure it answers.
    pub(crate) fn submit(&mut self, job: Job, reacting_to: Option<Timestamp>, now: Timestamp) {
        self.in_flight.insert(
            job.key.clone(),
            InFlight {
                purpose: job.purpose,
                dev: job.path.dev,
                reacting_to,
                then: None,
            },
        );
        if let Some(done) = self.runner.submit(job) {
            self.on_action_done(done, now);
        }
    }

    /// If `key` has a job out, `action` waits for it: returns true (the caller stops there).
    pub(crate) fn wait_behind(
        &mut self,
        key: &PathKey,
        action: PendingAction,
        map: &MapName,
        force: bool,
    ) -> bool {
        let Some(flight) = self.in_flight.get_mut(key) else {
            return false;
        };
        let same = matches!(
            (flight.purpose, action),
            (Purpose::Fail { .. }, PendingAction::Fail)
                | (Purpose::SetMarginal, PendingAction::Fail)
                | (Purpose::Return(_), PendingAction::Return(_))
        );
        flight.then = if same {
            None // under way already; a failure of it is retried on its own
        } else {
            Some(Queued {
                action,
                map: map.clone(),
                force,
            })
        };
        true
    }

    /// Whether a fail of the path `dev` is under way (it counts as out).
    pub(crate) fn failing_in_flight(&self, dev: DevNum) -> bool {
        self.in_flight
            .values()
            .any(|f| f.dev == dev && matches!(f.purpose, Purpose::Fail { .. }))
    }

    /// A job's outcome: settle it, then run what waited for it.
    pub fn on_action_done(&mut self, done: Done, now: Timestamp) {
        let flight = self.in_flight.remove(&done.key);
        let reacting_to = flight.as_ref().and_then(|f| f.reacting_to);
        let Done {
            key,
            map,
            purpose,
            succeeded,
            result,
        } = done;
        match purpose {
            Purpose::Fail { dev } => match result {
                Ok(()) => {
                    self.retries.remove(&key);
                    self.topology.set_active(&key, false);
                    if self.failure_signal() == super::core::FailureSignal::DmKprobe {
                        // The kprobe saw the transition inside that call; nothing more to expect.
                        self.announce_own_fail(dev, 0);
                    }
                    self.count_fail(&key, reacting_to);
                }
                Err(e) => {
                    self.announce_own_fail(dev, 0);
                    self.schedule_retry(&key, &map, PendingAction::Fail, &e, now);
                }
            },
            Purpose::SetMarginal => {
                if succeeded.first() == Some(&Call::Reinstate) {
                    // Given back to dm: from now on the state file holds it as setmarginal.
                    self.record_set_marginal(&key, &map);
                }
                match result {
                    Ok(()) => {
                        log::warn!(
                            "{key} of {map} is set marginal in multipathd: it stays in service \
                             as a last resort, in a path group of its own"
                        );
                        self.retries.remove(&key);
                        self.count_fail(&key, reacting_to);
                    }
                    Err(e) => self.schedule_retry(&key, &map, PendingAction::Fail, &e, now),
                }
            }
            Purpose::Return(kind) => self.returned(&key, &map, kind, result, now),
        }
        if let Some(next) = flight.and_then(|f| f.then) {
            match next.action {
                PendingAction::Fail => self.take_out(&key, &next.map, now, next.force),
                PendingAction::Return(kind) => self.give_back(&key, &next.map, kind, now, true),
            }
        }
    }

    /// The state file holds `key` as set marginal in multipathd.
    pub(crate) fn record_set_marginal(&mut self, key: &PathKey, map: &MapName) {
        let Some((watched_map, watched)) = self.topology.path(key) else {
            return;
        };
        let entry = HeldOutPath {
            map: map.to_string(),
            device: format!("{}:{}", watched.device.major, watched.device.minor),
            wwid: Some(watched_map.identity.wwid.clone()).filter(|w| !w.is_empty()),
            dm_failed_first: false,
            action: PathAction::SetMarginal,
        };
        if let Err(e) = self.held_out.insert(key.as_str(), entry) {
            log::error!("{key}: recording it in the state file: {e:#}");
        }
    }
}
