//! The daemon's heart: feeds kernel events, path uevents and sampling reports into the engine,
//! and hands the engine's decisions to [`super::actions`]. Single-threaded (the event loop
//! owns it); every edge is a trait object ([`super::edges`], [`crate::dm::MapSource`],
//! [`crate::actuator::Actuators`]), so the rules here are unit-tested with fakes.
use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::Arc,
    time::Duration,
};

use marginal_common::kernel_dev;

use super::{
    actions::Retry,
    actuation::ActionRunner,
    edges::{KernelEdge, SamplerEdge},
    held_out::HeldOutFile,
    in_flight::InFlight,
    outage::FailureMark,
    reconcile::Absence,
    topology::Topology,
};
use crate::{
    actuator::Actuators,
    config::{Config, MapIdentity, Resolved},
    dm::MapSource,
    engine::{Decision, Engine, Event, Params, PathKey, Timestamp},
    kernel::{KernelEvent, LiveSignals},
    sampler::{SampleOutcome, SampleReport},
};

/// Daemon-wide settings that are not the configuration file's.
#[derive(Clone, Debug)]
pub struct DaemonSettings {
    /// Block-layer errors closer together than this are one failure (`--watch` devices).
    pub episode_gap: Duration,
    /// Testing and demos only: sampling runs last this long, whatever the configuration says.
    pub sample_time_for_testing: Option<Duration>,
}

/// What the daemon counts per path on top of the engine's own state (for metrics).
#[derive(Clone, Debug, Default)]
pub struct PathTotals {
    pub sampling_reads: u64,
    pub sampling_errors: u64,
    pub sampling_timeouts: u64,
    pub failed_by_daemon: u64,
    pub returned_by_daemon: u64,
    /// PATH_FAILED uevents that were marginal's own fail (uevent mode; the kprobe counts its
    /// own in the kernel).
    pub own_fails_seen: u64,
    /// The daemon's reaction the last time it failed the path on a double failure: from the
    /// kernel's timestamp of the second failure to the actuator having taken the path out.
    pub last_reaction: Option<Duration>,
    /// Failures taken for the same outage because no command succeeded on the path since
    /// its previous one ([`super::outage`]).
    pub same_outage_refails: u64,
}

/// Which signal counts a path's failures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureSignal {
    /// dm-mpath's PATH_FAILED, seen by the `dm_path_uevent` kprobe.
    DmKprobe,
    /// dm-mpath's PATH_FAILED uevents (kernels without kprobes).
    DmUevent,
    /// Block-layer error episodes (`--watch` devices, no dm above them).
    BlockErrors,
}

impl FailureSignal {
    /// As status and the metrics' `signal` label show it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DmKprobe => "dm_kprobe",
            Self::DmUevent => "dm_uevent",
            Self::BlockErrors => "block_errors",
        }
    }
}

/// The edges and settings a [`Daemon`] is made of.
pub struct DaemonParts {
    pub kernel: Box<dyn KernelEdge>,
    pub signals: LiveSignals,
    pub sampler: Box<dyn SamplerEdge>,
    pub actuators: Box<dyn Actuators>,
    /// Makes the actuators' calls: off the event loop in the daemon.
    pub runner: Box<dyn ActionRunner>,
    /// None for `--watch` devices (no device-mapper).
    pub dm: Option<Arc<dyn MapSource>>,
    pub config: Config,
    pub settings: DaemonSettings,
    pub held_out: HeldOutFile,
    pub observe: bool,
}

pub struct Daemon {
    pub engine: Engine,
    pub kernel: Box<dyn KernelEdge>,
    pub signals: LiveSignals,
    pub sampler: Box<dyn SamplerEdge>,
    pub actuators: Box<dyn Actuators>,
    pub runner: Box<dyn ActionRunner>,
    /// Actuator jobs under way, by path.
    pub in_flight: HashMap<PathKey, InFlight>,
    pub dm: Option<Arc<dyn MapSource>>,
    pub topology: Topology,
    /// Read with [`Daemon::config`], replaced with [`Daemon::set_config`] (which drops what
    /// `resolved` kept of the old one).
    config: Config,
    /// Each map's resolved settings, by map identity: resolving walks the configuration's
    /// `devices` entries (multipathd's built-in table and the files), which `/status` and
    /// `/metrics` did for every map on every scrape. Filled by [`Daemon::apply_topology`]
    /// for the maps it takes up, pruned to the topology's maps there, emptied when the
    /// configuration is replaced.
    resolved: HashMap<MapIdentity, Arc<Resolved>>,
    pub settings: DaemonSettings,
    pub held_out: HeldOutFile,
    /// Observe mode: nothing is really failed, and the state file is only read.
    pub observe: bool,
    pub totals: HashMap<PathKey, PathTotals>,
    /// Actions that failed, waiting for their next attempt.
    pub retries: BTreeMap<PathKey, Retry>,
    /// Actuator calls that failed, over the daemon's life.
    pub actuator_errors: u64,
    /// The kernel's count of events it dropped (ring buffer full), as last seen.
    pub events_lost: u64,
    /// Maps missing from discovery, kept for a few rounds (a reload race is not a removal).
    pub(crate) absent_maps: HashMap<String, Absence>,
    /// State-file entries whose path is in no map: discovery rounds seen so.
    pub(crate) orphan_rounds: HashMap<String, Absence>,
    /// Second failures being acted on in this batch: a `FailPath` for the same path records
    /// how long the reaction took.
    pub(crate) reacting_to: HashMap<PathKey, Timestamp>,
    /// Slow-path windows and sampling runs' latency.
    pub latency: super::latency::LatencyState,
    /// Each path's recent failures and what it had done by then ([`super::outage`]).
    pub(crate) failure_marks: HashMap<PathKey, std::collections::VecDeque<FailureMark>>,
}

/// CLOCK_MONOTONIC now, the clock the kernel's events are stamped with.
pub fn monotonic_now() -> Timestamp {
    let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .expect("CLOCK_MONOTONIC is always readable");
    Timestamp::from_nanos(now.tv_sec() as u64 * 1_000_000_000 + now.tv_nsec() as u64)
}

impl Daemon {
    pub fn new(parts: DaemonParts) -> Self {
        Self {
            engine: Engine::new(),
            kernel: parts.kernel,
            signals: parts.signals,
            sampler: parts.sampler,
            actuators: parts.actuators,
            runner: parts.runner,
            in_flight: HashMap::new(),
            topology: Topology {
                maps: Vec::new(),
                device_mapper: parts.dm.is_some(),
            },
            dm: parts.dm,
            config: parts.config,
            resolved: HashMap::new(),
            settings: parts.settings,
            held_out: parts.held_out,
            observe: parts.observe,
            totals: HashMap::new(),
            retries: BTreeMap::new(),
            actuator_errors: 0,
            events_lost: 0,
            absent_maps: HashMap::new(),
            orphan_rounds: HashMap::new(),
            reacting_to: HashMap::new(),
            latency: Default::default(),
            failure_marks: HashMap::new(),
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Replaces the configuration (a reload); every map's settings are resolved again.
    /// The engine keeps the old settings until [`Daemon::reapply_all`].
    pub fn set_config(&mut self, config: Config) {
        self.config = config;
        self.resolved.clear();
    }

    /// A map's resolved settings: cached for the topology's maps, resolved on the spot for
    /// any other.
    pub fn resolved(&self, identity: &MapIdentity) -> Arc<Resolved> {
        match self.resolved.get(identity) {
            Some(resolved) => Arc::clone(resolved),
            None => Arc::new(self.config.resolve(identity)),
        }
    }

    /// Keeps the resolved settings of exactly `topology`'s maps: those already resolved
    /// against the configuration in force stay, new identities are resolved, the rest go.
    pub(crate) fn cache_resolved(&mut self, topology: &Topology) {
        let wanted: HashSet<&MapIdentity> = topology.maps.iter().map(|m| &m.identity).collect();
        self.resolved
            .retain(|identity, _| wanted.contains(identity));
        for identity in wanted {
            if !self.resolved.contains_key(identity) {
                let resolved = Arc::new(self.config.resolve(identity));
                self.resolved.insert(identity.clone(), resolved);
            }
        }
    }

    /// How many maps' settings are cached (tests).
    #[cfg(test)]
    pub(crate) fn resolved_cached(&self) -> usize {
        self.resolved.len()
    }

    /// The effective parameters of a map, after the testing override.
    pub fn params_for(&self, identity: &MapIdentity) -> Option<Params> {
        let mut params = self.resolved(identity).params()?;
        if let Some(sample_time) = self.settings.sample_time_for_testing {
            params.sample_time = sample_time;
        }
        Some(params)
    }

    /// Which signal counts the failures of the daemon's paths.
    pub fn failure_signal(&self) -> FailureSignal {
        if !self.topology.device_mapper {
            FailureSignal::BlockErrors
        } else if self.signals.dm_path_kprobe.is_ok() {
            FailureSignal::DmKprobe
        } else {
            FailureSignal::DmUevent
        }
    }

    /// Whether dm's PATH_FAILED/PATH_REINSTATED uevents must be fed in ([`Daemon::on_path_uevent`]):
    /// dm maps, and no kprobe to see the transitions in the kernel.
    pub fn wants_path_uevents(&self) -> bool {
        self.failure_signal() == FailureSignal::DmUevent
    }

    /// A batch of kernel events: all of them reach the engine before anything is acted on, so
    /// that a later event of the batch (another path failing) is known before a path is failed.
    pub fn on_kernel_events(&mut self, events: Vec<KernelEvent>, now: Timestamp) {
        let mut decisions = Vec::new();
        for event in events {
            decisions.extend(self.feed_kernel_event(event, now));
        }
        self.apply(decisions, now);
        self.reacting_to.clear();
        self.check_events_lost(now);
    }

    /// If the kernel dropped events (a storm filled the ring buffer), what they said is
    /// unknown: read dm's truth again. Returns whether any were lost since the last look.
    pub fn check_events_lost(&mut self, now: Timestamp) -> bool {
        let lost = self.kernel.events_lost();
        if lost <= self.events_lost {
            return false;
        }
        log::warn!(
            "the kernel dropped {} event(s) (ring buffer full): re-reading dm's maps",
            lost - self.events_lost
        );
        self.events_lost = lost;
        self.rediscover(&Default::default(), now);
        true
    }

    fn feed_kernel_event(&mut self, event: KernelEvent, now: Timestamp) -> Vec<Decision> {
        let Some((_, path)) = self.topology.path_by_kernel_dev(event.dev()) else {
            return Vec::new(); // dm events of paths we do not watch
        };
        let key = path.key.clone();
        let dev = (path.device.major, path.device.minor);
        let engine_events = match event {
            KernelEvent::DoubleFailure {
                first_ns,
                second_ns,
                ..
            } => {
                if self.topology.device_mapper
                    && !self.worked_between(&key, dev, first_ns, second_ns)
                {
                    log::warn!(
                        "{key}: failed again with no command succeeding on it since its last \
                         failure ({:.1} s before): one outage (put back on a stale check), not \
                         a double failure",
                        second_ns.saturating_sub(first_ns) as f64 / 1e9
                    );
                    return Vec::new();
                }
                self.reacting_to
                    .insert(key.clone(), Timestamp::from_nanos(second_ns));
                let mut events = vec![Event::DoubleFailure {
                    path: key.clone(),
                    first_at: Timestamp::from_nanos(first_ns),
                    second_at: Timestamp::from_nanos(second_ns),
                }];
                // The engine takes a failure to mean dm failed the path; a --watch device has
                // no dm above it, so it is still carrying I/O.
                if !self.topology.device_mapper {
                    events.push(Event::PathActive {
                        path: key,
                        active: true,
                    });
                }
                events
            }
            KernelEvent::DmPathFailed { at_ns, own, .. } => {
                let same_outage = !own && !self.failure_is_new(&key, dev, at_ns);
                if same_outage {
                    self.totals
                        .entry(key.clone())
                        .or_default()
                        .same_outage_refails += 1;
                }
                self.path_failed_events(key, Timestamp::from_nanos(at_ns), own || same_outage)
            }
            KernelEvent::DmPathReinstated { .. } => vec![Event::PathReinstated { path: key }],
        };
        let mut decisions = Vec::new();
        for event in engine_events {
            decisions.extend(self.engine.handle(now, event));
        }
        decisions
    }

    /// dm failed a path: a failure, unless it was marginal's own `fail path`.
    fn path_failed_events(&mut self, key: PathKey, at: Timestamp, own: bool) -> Vec<Event> {
        let inactive = Event::PathActive {
            path: key.clone(),
            active: false,
        };
        if own {
            log::debug!("{key}: dm failed it at marginal's request (not a failure)");
            return vec![inactive];
        }
        vec![inactive, Event::PathFailed { path: key, at }]
    }

    /// dm's PATH_FAILED (`failed`) or PATH_REINSTATED uevent for the path `major:minor`, where
    /// no kprobe sees them ([`Daemon::wants_path_uevents`]). marginal's own fail is recognised
    /// by the announcement [`super::actions`] made before sending it.
    pub fn on_path_uevent(&mut self, failed: bool, path: (u32, u32), now: Timestamp) {
        let dev = kernel_dev(path.0, path.1);
        let Some((_, watched)) = self.topology.path_by_kernel_dev(dev) else {
            return;
        };
        let key = watched.key.clone();
        let events = if failed {
            let own = self.take_own_fail(dev, now);
            if own {
                self.totals.entry(key.clone()).or_default().own_fails_seen += 1;
            }
            // As the kprobe does: failed again within the episode gap of its last failure (a
            // reinstatement that never held) is the same outage.
            let quick_refail = self
                .engine
                .path(&key)
                .and_then(|p| p.last_failure_at)
                .is_some_and(|at| now.saturating_since(at) < self.settings.episode_gap);
            // And, where the device counts its commands, one that never worked since.
            let never_worked = !own && !self.failure_is_new(&key, path, now.as_nanos());
            if never_worked && !quick_refail {
                self.totals
                    .entry(key.clone())
                    .or_default()
                    .same_outage_refails += 1;
            }
            self.path_failed_events(key, now, own || quick_refail || never_worked)
        } else {
            vec![Event::PathReinstated { path: key }]
        };
        let mut decisions = Vec::new();
        for event in events {
            decisions.extend(self.engine.handle(now, event));
        }
        self.apply(decisions, now);
    }

    /// Whether a PATH_FAILED of `dev` now is the one marginal announced (taking it).
    fn take_own_fail(&mut self, dev: u32, now: Timestamp) -> bool {
        let until = self.kernel.current_control(dev).own_fail_until_ns;
        if until == 0 || now.as_nanos() >= until {
            return false;
        }
        if let Err(e) = self.kernel.control(dev, &mut |c| c.own_fail_until_ns = 0) {
            log::warn!("{e:#}");
        }
        true
    }

    pub fn on_sample_report(&mut self, report: SampleReport, now: Timestamp) {
        let key = PathKey::new(report.path_key.clone());
        let totals = self.totals.entry(key.clone()).or_default();
        totals.sampling_reads += report.reads;
        totals.sampling_errors += report.errors;
        totals.sampling_timeouts += report.timeouts;
        log::info!(
            "{}: sampling {:?}: {} reads, {} errors ({} timed out), rate {} permille",
            report.path_key,
            report.outcome,
            report.reads,
            report.errors,
            report.timeouts,
            report.rate_permille
        );
        self.set_sampling(&key, false);
        let latency_ns = self.latency_of_run(&key);
        let event = match report.outcome {
            SampleOutcome::Completed => Event::SamplingFinished {
                path: key,
                reads: report.reads,
                errors: report.errors,
                latency_ns,
            },
            SampleOutcome::Failed(error) => Event::SamplingFailed { path: key, error },
            // The engine asked for the stop; it expects no verdict.
            SampleOutcome::Stopped => return,
        };
        let decisions = self.engine.handle(now, event);
        self.apply(decisions, now);
    }

    /// Time-driven work: the engine's deadlines and the actions due for another attempt.
    pub fn on_timer(&mut self, now: Timestamp) {
        let decisions = self.engine.poll(now);
        self.apply(decisions, now);
        self.retry_due(now);
    }

    /// The earliest time [`Daemon::on_timer`] has something to do.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        let retry = self.retries.values().map(|r| r.next_at).min();
        match (self.engine.next_deadline(), retry) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Tell the kernel whether marginal is sampling the path (its block errors are then
    /// marginal's own reads, never failures).
    pub(crate) fn set_sampling(&mut self, key: &PathKey, sampling: bool) {
        let Some((_, path)) = self.topology.path(key) else {
            return;
        };
        let dev = path.device.kernel_dev();
        if let Err(e) = self
            .kernel
            .control(dev, &mut |c| c.sampling = u64::from(sampling))
        {
            log::warn!("{e:#}");
        }
    }
}
