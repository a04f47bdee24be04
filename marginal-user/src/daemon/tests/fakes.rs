//! Fake edges for the daemon core: a device-mapper whose paths the fake actuator really fails
//! and reinstates, a kernel that remembers what it was told, a sampler that records its runs.
use std::{
    collections::{BTreeSet, HashMap},
    path::Path,
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::{Result, anyhow, bail};
use marginal_common::{PathControl, PathLatency, PathRecord, WatchSettings};

use crate::{
    actuator::{Actuator, ActuatorChange, Actuators, PathRef},
    daemon::{
        actuation::{ActionRunner, Done, Job},
        edges::{KernelEdge, SamplerEdge},
    },
    dm::{DevNum, GroupState, MapPath, MapSource, MultipathMap, PathGroup},
    engine::Timestamp,
    kernel::ProgramStats,
};

/// One LUN's map: `paths` are (name, minor) of sdX devices (major 8).
pub fn map(name: &str, wwid: &str, minor: u32, paths: &[(&str, u32)]) -> MultipathMap {
    MultipathMap {
        name: name.into(),
        uuid: Some(format!("mpath-{wwid}")),
        wwid: Some(wwid.into()),
        dev: (254, minor),
        features: vec![],
        hw_handler: None,
        groups: vec![PathGroup {
            state: GroupState::Active,
            selector: "round-robin".into(),
            paths: paths
                .iter()
                .map(|&(name, minor)| MapPath {
                    dev: (8, minor),
                    name: name.into(),
                    active: true,
                    fail_count: 0,
                    vendor: None,
                    product: None,
                    revision: None,
                    wwid: Some(wwid.into()),
                    transport: Default::default(),
                })
                .collect(),
        }],
    }
}

#[derive(Default)]
struct DmState {
    maps: Vec<MultipathMap>,
    /// Maps left out of the next `discover` only (a listing racing a reload).
    hidden_once: BTreeSet<String>,
    /// Devices that no longer exist.
    gone: BTreeSet<DevNum>,
    /// Commands each SCSI path completed without error (absent: not SCSI).
    succeeded: HashMap<DevNum, u64>,
}

/// Device-mapper: maps and the state of every path.
#[derive(Clone, Default)]
pub struct FakeDm(Arc<Mutex<DmState>>);

impl FakeDm {
    pub fn new(maps: Vec<MultipathMap>) -> Self {
        let dm = Self::default();
        dm.0.lock().unwrap().maps = maps;
        dm
    }

    fn with_path<T>(&self, dev: DevNum, f: impl FnOnce(&mut MapPath) -> T) -> Option<T> {
        let mut state = self.0.lock().unwrap();
        let path = state
            .maps
            .iter_mut()
            .flat_map(|m| m.groups.iter_mut())
            .flat_map(|g| g.paths.iter_mut())
            .find(|p| p.dev == dev)?;
        Some(f(path))
    }

    /// dm's own state of a path (the kernel failing or reinstating it).
    pub fn set_active(&self, dev: DevNum, active: bool) {
        self.with_path(dev, |p| p.active = active)
            .expect("known path");
    }

    pub fn is_active(&self, dev: DevNum) -> bool {
        self.with_path(dev, |p| p.active).expect("known path")
    }

    /// A table reload: every path active again, with no event.
    pub fn reload(&self, map: &str) {
        let mut state = self.0.lock().unwrap();
        for m in state.maps.iter_mut().filter(|m| m.name == map) {
            for p in m.groups.iter_mut().flat_map(|g| g.paths.iter_mut()) {
                p.active = true;
            }
        }
    }

    pub fn hide_once(&self, map: &str) {
        self.0.lock().unwrap().hidden_once.insert(map.into());
    }

    /// A path device vanishes: out of its map and gone from the system.
    pub fn remove_device(&self, dev: DevNum) {
        let mut state = self.0.lock().unwrap();
        for group in state.maps.iter_mut().flat_map(|m| m.groups.iter_mut()) {
            group.paths.retain(|p| p.dev != dev);
        }
        state.gone.insert(dev);
    }

    /// The path's SCSI counters say it completed `count` commands without error.
    pub fn set_commands_succeeded(&self, dev: DevNum, count: u64) {
        self.0.lock().unwrap().succeeded.insert(dev, count);
    }

    /// A map and its paths' devices (SCSI reused sdX names for other LUNs, say).
    pub fn replace_maps(&self, maps: Vec<MultipathMap>) {
        self.0.lock().unwrap().maps = maps;
    }
}

impl MapSource for FakeDm {
    fn discover(&self) -> Result<Vec<MultipathMap>> {
        let mut state = self.0.lock().unwrap();
        let hidden = std::mem::take(&mut state.hidden_once);
        Ok(state
            .maps
            .iter()
            .filter(|m| !hidden.contains(&m.name))
            .cloned()
            .collect())
    }

    fn read_map(&self, name: &str) -> Result<MultipathMap> {
        let state = self.0.lock().unwrap();
        state
            .maps
            .iter()
            .find(|m| m.name == name)
            .cloned()
            .ok_or_else(|| anyhow!("map {name}: no such multipath map"))
    }

    fn device_exists(&self, dev: DevNum) -> bool {
        !self.0.lock().unwrap().gone.contains(&dev)
    }

    fn commands_succeeded(&self, dev: DevNum) -> Option<u64> {
        self.0.lock().unwrap().succeeded.get(&dev).copied()
    }
}

/// What the fake actuator was asked to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Call {
    Fail(String),
    Reinstate(String),
    SetMarginal(String),
    UnsetMarginal(String),
}

/// Fails and reinstates paths in the [`FakeDm`]; can be told to refuse the next calls.
pub struct FakeActuator {
    pub name: &'static str,
    dm: FakeDm,
    pub calls: Mutex<Vec<Call>>,
    pub refuse_next: Mutex<u32>,
    /// The paths set marginal (multipathd's flag; a restart clears it).
    pub marginal: Mutex<std::collections::BTreeSet<String>>,
}

impl FakeActuator {
    pub fn new(name: &'static str, dm: &FakeDm) -> Arc<Self> {
        Arc::new(Self {
            name,
            dm: dm.clone(),
            calls: Mutex::new(Vec::new()),
            refuse_next: Mutex::new(0),
            marginal: Mutex::new(Default::default()),
        })
    }

    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    pub fn refuse(&self, times: u32) {
        *self.refuse_next.lock().unwrap() = times;
    }

    fn act(&self, call: Call, path: &PathRef, active: bool) -> Result<()> {
        self.calls.lock().unwrap().push(call);
        let mut refuse = self.refuse_next.lock().unwrap();
        if *refuse > 0 {
            *refuse -= 1;
            bail!("{}: answered \"fail\" for {path}", self.name);
        }
        self.dm.set_active(path.dev, active);
        Ok(())
    }
}

impl Actuator for FakeActuator {
    fn name(&self) -> &str {
        self.name
    }

    fn fail_path(&self, _map: &str, path: &PathRef) -> Result<()> {
        self.act(Call::Fail(path.name.clone()), path, false)
    }

    fn reinstate_path(&self, _map: &str, path: &PathRef) -> Result<()> {
        self.act(Call::Reinstate(path.name.clone()), path, true)
    }

    // The path stays as dm has it: setmarginal moves it to another group, still active.
    fn set_marginal(&self, _map: &str, path: &PathRef) -> Result<()> {
        let active = self.dm.is_active(path.dev);
        self.act(Call::SetMarginal(path.name.clone()), path, active)?;
        self.marginal.lock().unwrap().insert(path.name.clone());
        Ok(())
    }

    fn unset_marginal(&self, _map: &str, path: &PathRef) -> Result<()> {
        let active = self.dm.is_active(path.dev);
        self.act(Call::UnsetMarginal(path.name.clone()), path, active)?;
        self.marginal.lock().unwrap().remove(&path.name);
        Ok(())
    }

    fn is_marginal(&self, path: &PathRef) -> Option<bool> {
        Some(self.marginal.lock().unwrap().contains(&path.name))
    }
}

/// Who acts: one fake actuator, whose name says whether it is "multipathd"; `changes` are
/// what the next refreshes report.
pub struct FakeActuators {
    pub actuator: Arc<FakeActuator>,
    pub changes: Arc<Mutex<Vec<ActuatorChange>>>,
}

impl Actuators for FakeActuators {
    fn current(&self) -> Arc<dyn Actuator> {
        self.actuator.clone()
    }

    fn reason(&self) -> &str {
        "fake"
    }

    fn refresh(&mut self) -> Option<ActuatorChange> {
        self.changes.lock().unwrap().pop()
    }
}

#[derive(Default)]
struct KernelState {
    watched: HashMap<u32, WatchSettings>,
    control: HashMap<u32, PathControl>,
    /// Every control written, in order (to see an announcement that was withdrawn since).
    history: Vec<(u32, PathControl)>,
    pub events_lost: u64,
    latency: HashMap<u32, PathLatency>,
}

#[derive(Clone, Default)]
pub struct FakeKernel(Arc<Mutex<KernelState>>);

impl FakeKernel {
    /// The ring buffer overflowed: `n` more events lost.
    pub fn lose_events(&self, n: u64) {
        self.0.lock().unwrap().events_lost += n;
    }

    pub fn control_of(&self, dev: u32) -> PathControl {
        self.0
            .lock()
            .unwrap()
            .control
            .get(&dev)
            .copied()
            .unwrap_or_default()
    }

    pub fn announced_own_fail(&self, dev: u32) -> bool {
        self.0
            .lock()
            .unwrap()
            .history
            .iter()
            .any(|(d, c)| *d == dev && c.own_fail_until_ns != 0)
    }

    pub fn watched(&self, dev: u32) -> Option<WatchSettings> {
        self.0.lock().unwrap().watched.get(&dev).copied()
    }
}

impl KernelEdge for FakeKernel {
    fn watch(&mut self, dev: u32, settings: WatchSettings) -> Result<()> {
        self.0.lock().unwrap().watched.insert(dev, settings);
        Ok(())
    }

    fn unwatch(&mut self, dev: u32) -> Result<()> {
        let mut state = self.0.lock().unwrap();
        state.watched.remove(&dev);
        state.control.remove(&dev);
        Ok(())
    }

    fn control(&mut self, dev: u32, change: &mut dyn FnMut(&mut PathControl)) -> Result<()> {
        let mut state = self.0.lock().unwrap();
        let control = state.control.entry(dev).or_default();
        change(control);
        let written = *control;
        state.history.push((dev, written));
        Ok(())
    }

    fn current_control(&self, dev: u32) -> PathControl {
        self.control_of(dev)
    }

    fn record(&self, dev: u32) -> Option<PathRecord> {
        self.watched(dev).map(PathRecord::new)
    }

    fn watched_count(&self) -> usize {
        self.0.lock().unwrap().watched.len()
    }

    fn events_lost(&self) -> u64 {
        self.0.lock().unwrap().events_lost
    }

    fn program_stats(&self) -> Vec<ProgramStats> {
        Vec::new()
    }

    fn measure_latency(&mut self, dev: u32, on: bool) -> Result<()> {
        let mut state = self.0.lock().unwrap();
        if on {
            state.latency.entry(dev).or_default();
        } else {
            state.latency.remove(&dev);
        }
        Ok(())
    }

    fn latency(&self, dev: u32) -> Option<PathLatency> {
        self.0.lock().unwrap().latency.get(&dev).copied()
    }
}

impl FakeKernel {
    /// `ios` more reads of `dev` completed, `mean_ms` each (if its latency is measured).
    pub fn complete_reads(&self, dev: u32, ios: u64, mean_ms: u64) {
        if let Some(latency) = self.0.lock().unwrap().latency.get_mut(&dev) {
            latency.read.buckets[0] += ios;
            latency.read.sum_ns += ios * mean_ms * 1_000_000;
        }
    }

    pub fn measures_latency(&self, dev: u32) -> bool {
        self.0.lock().unwrap().latency.contains_key(&dev)
    }
}

#[derive(Clone, Default)]
pub struct FakeSampler {
    pub running: Arc<Mutex<BTreeSet<String>>>,
    pub started: Arc<Mutex<Vec<String>>>,
    /// Runs started with one read at a time (slow paths' checks).
    pub one_at_a_time: Arc<Mutex<Vec<String>>>,
}

impl SamplerEdge for FakeSampler {
    fn start(&self, key: &str, _node: &Path, _duration: Duration, one: bool) -> Result<()> {
        if one {
            self.one_at_a_time.lock().unwrap().push(key.into());
        }
        self.running.lock().unwrap().insert(key.into());
        self.started.lock().unwrap().push(key.into());
        Ok(())
    }

    fn stop(&self, key: &str) -> Result<bool> {
        Ok(self.running.lock().unwrap().remove(key))
    }

    fn progress(&self, _key: &str) -> Option<(u64, u64)> {
        None
    }
}

/// Keeps the actuator jobs it is given until the test runs them ([`Deferred::finish`]): the
/// calls are under way meanwhile, as on the daemon's worker thread.
#[derive(Clone, Default)]
pub struct Deferred(Arc<Mutex<Vec<Job>>>);

impl ActionRunner for Deferred {
    fn submit(&mut self, job: Job) -> Option<Done> {
        self.0.lock().unwrap().push(job);
        None
    }
}

impl Deferred {
    /// Jobs waiting.
    pub fn waiting(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    /// Runs the waiting jobs, and any they lead to, handing each outcome to `daemon`.
    pub fn finish(&self, daemon: &mut crate::daemon::core::Daemon, now: Timestamp) {
        loop {
            let jobs = std::mem::take(&mut *self.0.lock().unwrap());
            if jobs.is_empty() {
                return;
            }
            for job in jobs {
                let done = job.run();
                daemon.on_action_done(done, now);
            }
        }
    }
}
