//! The daemon's heart: feeds kernel events and sampling reports into the engine and carries out
//! its decisions with the sampler and the actuator. Single-threaded (the event loop owns it).
use std::{
    collections::{BTreeSet, HashMap},
    sync::Arc,
    time::Duration,
};

use anyhow::Result;
use marginal_common::WatchSettings;

use super::{
    held_out::{HeldOutFile, HeldOutPath},
    topology::Topology,
};
use crate::{
    actuator::{Actuator, PathRef},
    config::Config,
    engine::{Decision, Engine, Event, MapName, Params, PathKey, Timestamp},
    kernel::{KernelEvent, KernelProbes},
    sampler::{SampleOutcome, SampleReport, SamplerHandle},
};

/// Daemon-wide settings that are not multipath.conf's.
#[derive(Clone, Debug)]
pub struct DaemonSettings {
    /// Block-layer errors closer together than this are one failure.
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
    /// The daemon's reaction the last time it failed the path on a double failure: from the
    /// kernel's timestamp of the second failure to the actuator having taken the path out.
    pub last_reaction: Option<std::time::Duration>,
}

pub struct Daemon {
    pub engine: Engine,
    pub probes: KernelProbes,
    pub sampler: SamplerHandle,
    pub actuator: Arc<dyn Actuator>,
    pub actuator_reason: String,
    pub topology: Topology,
    pub config: Config,
    pub settings: DaemonSettings,
    pub held_out: HeldOutFile,
    /// Observe mode: nothing is really failed, so nothing is recorded as held out.
    pub observe: bool,
    pub totals: HashMap<PathKey, PathTotals>,
    /// The second failure being acted on, while its decisions are applied: a `FailPath` for the
    /// same path then records how long the reaction took.
    pub reacting_to: Option<(PathKey, Timestamp)>,
}

/// CLOCK_MONOTONIC now, the clock the kernel's events are stamped with.
pub fn monotonic_now() -> Timestamp {
    let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .expect("CLOCK_MONOTONIC is always readable");
    Timestamp::from_nanos(now.tv_sec() as u64 * 1_000_000_000 + now.tv_nsec() as u64)
}

impl Daemon {
    /// The effective parameters of a map, after the testing override.
    pub fn params_for(&self, identity: &crate::config::MapIdentity) -> Option<Params> {
        let mut params = self.config.resolve(identity).params()?;
        if let Some(sample_time) = self.settings.sample_time_for_testing {
            params.sample_time = sample_time;
        }
        Some(params)
    }

    /// Bring engine and kernel watch map in line with `topology` (start-up and re-discovery).
    pub fn apply_topology(&mut self, topology: Topology, now: Timestamp) -> Result<()> {
        let mut decisions = Vec::new();
        let wanted: BTreeSet<PathKey> = topology.paths().map(|(_, p)| p.key.clone()).collect();
        for (_, path) in self.topology.paths() {
            if !wanted.contains(&path.key) {
                decisions.extend(self.engine.remove_path(&path.key, now));
                self.probes.unwatch(path.device.kernel_dev())?;
            }
        }
        let wanted_maps: BTreeSet<&str> = topology.maps.iter().map(|m| m.name.as_str()).collect();
        for map in &self.topology.maps {
            if !wanted_maps.contains(map.name.as_str()) {
                decisions.extend(self.engine.remove_map(&MapName::new(map.name.clone()), now));
            }
        }
        for map in &topology.maps {
            // An unchanged map (paths and their states alike) has nothing new for the engine;
            // re-applying every map on every change would cost time quadratic in the paths.
            if self.topology.maps.contains(map) {
                continue;
            }
            let params = self.params_for(&map.identity);
            let name = MapName::new(map.name.clone());
            decisions.extend(self.engine.upsert_map(name.clone(), params, now));
            for path in &map.paths {
                decisions.extend(self.engine.add_path(
                    &name,
                    path.key.clone(),
                    path.active,
                    now,
                )?);
                // Unchecked maps are still counted: the counters are worth exporting.
                let window = params.map_or(Duration::ZERO, |p| p.double_failed_time);
                self.probes.watch(
                    path.device.kernel_dev(),
                    WatchSettings {
                        window_ns: window.as_nanos() as u64,
                        episode_gap_ns: self.settings.episode_gap.as_nanos() as u64,
                    },
                )?;
            }
            let active = map
                .paths
                .iter()
                .filter(|p| p.active)
                .map(|p| p.key.clone())
                .collect();
            decisions.extend(
                self.engine
                    .handle(now, Event::MapActivePaths { map: name, active }),
            );
        }
        self.topology = topology;
        self.apply(decisions);
        Ok(())
    }

    /// Apply every map again, changed or not (after the configuration changed).
    pub fn reapply_all(&mut self, now: Timestamp) -> Result<()> {
        let device_mapper = self.topology.device_mapper;
        let topology = std::mem::replace(
            &mut self.topology,
            Topology {
                maps: Vec::new(),
                device_mapper,
            },
        );
        self.apply_topology(topology, now)
    }

    /// Take up the paths a previous run of the daemon failed.
    pub fn adopt_held_out(&mut self, now: Timestamp) {
        let held: Vec<(String, HeldOutPath)> = self
            .held_out
            .held_out()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (name, entry) in held {
            let key = PathKey::new(name.clone());
            match self.topology.path(&key) {
                Some((_, path)) if path.device.numbers() == entry.device => {
                    log::warn!(
                        "taking up {name} of map {}: a previous run failed it; it will be \
                         sampled again",
                        entry.map
                    );
                    match self.engine.adopt_failed_path(&key, now) {
                        Ok(decisions) => self.apply(decisions),
                        Err(e) => log::error!("cannot take up {name}: {e}"),
                    }
                }
                _ => log::warn!(
                    "{name} ({}) of map {} was failed by a previous run but is not a path of \
                     any map now; keeping it in {} until it returns",
                    entry.device,
                    entry.map,
                    "the state file"
                ),
            }
        }
    }

    pub fn on_kernel_event(&mut self, event: KernelEvent) {
        let now = monotonic_now();
        let Some((_, path)) = self.topology.path_by_kernel_dev(event.dev()) else {
            return; // dm events of paths we do not watch
        };
        let key = path.key.clone();
        let engine_events = match event {
            KernelEvent::DoubleFailure {
                first_ns,
                second_ns,
                ..
            } => {
                self.reacting_to = Some((key.clone(), Timestamp::from_nanos(second_ns)));
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
            KernelEvent::DmPathFailed { at_ns, .. } => vec![
                Event::PathActive {
                    path: key.clone(),
                    active: false,
                },
                Event::PathFailed {
                    path: key,
                    at: Timestamp::from_nanos(at_ns),
                },
            ],
            KernelEvent::DmPathReinstated { .. } => vec![Event::PathReinstated { path: key }],
        };
        for event in engine_events {
            let decisions = self.engine.handle(now, event);
            self.apply(decisions);
        }
        self.reacting_to = None;
    }

    pub fn on_sample_report(&mut self, report: SampleReport) {
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
        let event = match report.outcome {
            SampleOutcome::Completed => Event::SamplingFinished {
                path: key,
                reads: report.reads,
                errors: report.errors,
            },
            SampleOutcome::Failed(error) => Event::SamplingFailed { path: key, error },
            // The engine asked for the stop; it expects no verdict.
            SampleOutcome::Stopped => return,
        };
        let decisions = self.engine.handle(monotonic_now(), event);
        self.apply(decisions);
    }

    pub fn on_timer(&mut self) {
        let decisions = self.engine.poll(monotonic_now());
        self.apply(decisions);
    }

    /// Carry out the engine's decisions, in order.
    pub fn apply(&mut self, decisions: Vec<Decision>) {
        for decision in decisions {
            if let Err(e) = self.apply_one(&decision) {
                log::error!("{e:#}");
            }
        }
    }

    fn apply_one(&mut self, decision: &Decision) -> Result<()> {
        match decision {
            Decision::FailPath { path, map, reason } => {
                log::warn!("failing {path} of {map}: {reason}");
                let path_ref = self.path_ref(path)?;
                // Record first: if we die between the two, the restart re-checks the path
                // rather than forgetting it.
                if !self.observe {
                    self.held_out.insert(
                        path.as_str(),
                        HeldOutPath {
                            map: map.to_string(),
                            device: path_ref.numbers(),
                        },
                    )?;
                }
                if let Err(e) = self.actuator.fail_path(map.as_str(), &path_ref) {
                    // Nothing was failed, so nothing is owed a return.
                    self.held_out.remove(path.as_str())?;
                    return Err(e);
                }
                let totals = self.totals.entry(path.clone()).or_default();
                totals.failed_by_daemon += 1;
                if let Some((_, second_at)) = self.reacting_to.take_if(|(p, _)| p == path) {
                    totals.last_reaction = Some(monotonic_now().saturating_since(second_at));
                }
            }
            Decision::ReinstatePath { path, map, reason }
            | Decision::RecoverPath { path, map, reason } => {
                log::warn!("returning {path} to {map}: {reason}");
                let path_ref = self.path_ref(path)?;
                self.actuator.reinstate_path(map.as_str(), &path_ref)?;
                self.held_out.remove(path.as_str())?;
                self.totals
                    .entry(path.clone())
                    .or_default()
                    .returned_by_daemon += 1;
            }
            Decision::StartSampling {
                path,
                duration,
                reason,
            } => {
                log::info!("sampling {path} for {duration:?}: {reason}");
                let (_, watched) = self
                    .topology
                    .path(path)
                    .ok_or_else(|| anyhow::anyhow!("{path} is not a watched path"))?;
                self.sampler
                    .start(path.as_str(), watched.device.node(), *duration)?;
            }
            Decision::StopSampling { path, reason } => {
                log::info!("stopping the sampling of {path}: {reason}");
                self.sampler.stop(path.as_str())?;
            }
            Decision::KeepInService { path, map, reason } => {
                log::warn!("keeping {path} of {map} in service: {reason}");
            }
            Decision::Released { path, reason } => {
                log::warn!("forgetting {path}: {reason}");
                self.held_out.remove(path.as_str())?;
            }
            Decision::Measured { path, measurement } => {
                log::debug!("{path}: {measurement:?}");
            }
            Decision::StateChanged { path, from, to } => {
                log::info!("{path}: {} -> {}", from.as_str(), to.as_str());
            }
        }
        Ok(())
    }

    fn path_ref(&self, key: &PathKey) -> Result<PathRef> {
        let (_, path) = self
            .topology
            .path(key)
            .ok_or_else(|| anyhow::anyhow!("{key} is not a watched path"))?;
        Ok(PathRef::new(
            path.device.name.clone(),
            (path.device.major, path.device.minor),
        ))
    }

    /// On shutdown: return the paths the daemon holds out (unless told to keep them out).
    pub fn shutdown(&mut self, keep_failed: bool) {
        if keep_failed {
            let held = self.held_out.held_out().len();
            if held > 0 {
                log::warn!(
                    "leaving {held} path(s) failed as asked; the next start takes them up again"
                );
            }
            return;
        }
        let plan = self.engine.shutdown_plan();
        self.apply(plan);
    }
}
