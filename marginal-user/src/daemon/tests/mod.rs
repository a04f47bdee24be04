//! The daemon core with fake edges (`fakes`): the rules of SPEC.md "Acting on paths", each a
//! test. Time is injected (`Bed::now`); nothing here sleeps.
mod fakes;
mod held_paths;
mod in_flight;
mod outage;
mod resolved;
mod setmarginal;
mod signal;
mod slow;

use std::{
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use marginal_common::kernel_dev;

use self::fakes::{
    Call, Deferred, FakeActuator, FakeActuators, FakeDm, FakeKernel, FakeSampler, map,
};
use super::{
    actuation::{ActionRunner, Inline},
    core::{Daemon, DaemonParts, DaemonSettings},
    held_out::{HeldOutFile, HeldOutPath},
};
use crate::{
    actuator::ActuatorChange,
    config::Config,
    dm::MapSource,
    engine::{PathKey, StateName, Timestamp},
    kernel::{BlockErrorProgram, BlockErrorTracepoint, KernelEvent, LiveSignals},
    sampler::{SampleOutcome, SampleReport},
};

pub const WWID: &str = "3600a098038303053";
/// sda and sdb: the two paths of mpatha.
pub const SDA: (u32, u32) = (8, 0);
pub const SDB: (u32, u32) = (8, 16);

const CONFIG: &str = "defaults {
    marginal_path_double_failed_time 60
    marginal_path_err_sample_time 120
    marginal_path_err_rate_threshold 100
    marginal_path_err_recheck_gap_time 300
}
";

/// How a test bed is made.
pub struct Options {
    pub observe: bool,
    /// The actuator's name: "multipathd" or "device-mapper messages".
    pub actuator: &'static str,
    /// Whether the kprobe is live (else dm's uevents are the signal).
    pub kprobe: bool,
    /// A state file to start from.
    pub state: Option<String>,
    /// Another configuration than [`CONFIG`].
    pub config: Option<Config>,
    /// Another runner of actuator calls than [`Inline`] (which calls at once).
    pub runner: Option<Box<dyn ActionRunner>>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            observe: false,
            actuator: "multipathd",
            kprobe: true,
            state: None,
            config: None,
            runner: None,
        }
    }
}

/// A daemon over fake edges, and handles on them.
pub struct Bed {
    pub daemon: Daemon,
    pub dm: FakeDm,
    pub actuator: Arc<FakeActuator>,
    pub kernel: FakeKernel,
    pub sampler: FakeSampler,
    pub changes: Arc<Mutex<Vec<ActuatorChange>>>,
    pub state_file: PathBuf,
    /// Seconds on the fake monotonic clock.
    pub now: u64,
}

static BEDS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

pub fn bed(options: Options) -> Bed {
    let dm = FakeDm::new(vec![map("mpatha", WWID, 0, &[("sda", 0), ("sdb", 16)])]);
    bed_with(dm, options)
}

pub fn bed_with(dm: FakeDm, mut options: Options) -> Bed {
    let n = BEDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("marginal-core-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let state_file = dir.join("held-out.json");
    if let Some(text) = &options.state {
        std::fs::write(&state_file, text).unwrap();
    }
    let held_out = if options.observe {
        HeldOutFile::open_read_only(&state_file).unwrap()
    } else {
        HeldOutFile::open(&state_file).unwrap()
    };
    let actuator = FakeActuator::new(options.actuator, &dm);
    let changes = Arc::new(Mutex::new(Vec::new()));
    let kernel = FakeKernel::default();
    let sampler = FakeSampler::default();
    let daemon = Daemon::new(DaemonParts {
        kernel: Box::new(kernel.clone()),
        signals: LiveSignals {
            block_tracepoint: BlockErrorTracepoint::RqError,
            block_program: BlockErrorProgram::CompiledInLayout,
            dm_path_kprobe: if options.kprobe {
                Ok(())
            } else {
                Err("no kprobes".into())
            },
            kernel_btf: true,
            latency: None,
            latency_program: None,
        },
        sampler: Box::new(sampler.clone()),
        actuators: Box::new(FakeActuators {
            actuator: actuator.clone(),
            changes: changes.clone(),
        }),
        runner: options.runner.take().unwrap_or_else(|| Box::new(Inline)),
        dm: Some(Arc::new(dm.clone()) as Arc<dyn MapSource>),
        config: options
            .config
            .clone()
            .unwrap_or_else(|| Config::parse_str("test.conf", CONFIG).unwrap()),
        settings: DaemonSettings {
            episode_gap: Duration::from_secs(1),
            sample_time_for_testing: Some(Duration::from_secs(10)),
        },
        held_out,
        observe: options.observe,
    });
    let mut bed = Bed {
        daemon,
        dm,
        actuator,
        kernel,
        sampler,
        changes,
        state_file,
        now: 1000,
    };
    bed.rediscover();
    bed
}

pub fn dev(numbers: (u32, u32)) -> u32 {
    kernel_dev(numbers.0, numbers.1)
}

impl Bed {
    pub fn at(&self) -> Timestamp {
        Timestamp::from_secs(self.now)
    }

    pub fn later(&mut self, secs: u64) {
        self.now += secs;
        let now = self.at();
        self.daemon.on_timer(now);
    }

    pub fn rediscover(&mut self) {
        let now = self.at();
        self.daemon.rediscover(&Default::default(), now);
    }

    pub fn state(&self, path: &str) -> StateName {
        self.daemon
            .engine
            .path(&PathKey::from(path))
            .expect("known path")
            .state
    }

    pub fn held(&self, path: &str) -> bool {
        self.daemon
            .engine
            .path(&PathKey::from(path))
            .is_some_and(|p| p.held_out)
    }

    pub fn state_file_lists(&self, path: &str) -> bool {
        HeldOutFile::open_read_only(&self.state_file)
            .unwrap()
            .get(path)
            .is_some()
    }

    /// dm fails `path` (the kprobe's report) as part of a double failure: the kernel sends
    /// the DoubleFailure first, then the transition, in one batch.
    pub fn double_failure(&mut self, path: (u32, u32)) {
        self.dm.set_active(path, false);
        let now = self.at();
        let second = now.as_nanos();
        let events = vec![
            KernelEvent::DoubleFailure {
                dev: dev(path),
                first_ns: second - 5_000_000_000,
                second_ns: second,
                failures: 2,
                source: marginal_common::FailureSource::DmPath,
            },
            dm_failed(path, second),
        ];
        self.daemon.on_kernel_events(events, now);
    }

    pub fn report(&mut self, path: &str, reads: u64, errors: u64) {
        self.report_outcome(path, reads, errors, SampleOutcome::Completed);
    }

    pub fn report_outcome(&mut self, path: &str, reads: u64, errors: u64, outcome: SampleOutcome) {
        self.sampler.running.lock().unwrap().remove(path);
        let now = self.at();
        self.daemon.on_sample_report(
            SampleReport {
                path_key: path.into(),
                device: format!("/dev/{path}").into(),
                block_size: 512,
                reads,
                errors,
                timeouts: 0,
                rate_permille: (errors * 1000).checked_div(reads).unwrap_or(0) as u32,
                elapsed: Duration::from_secs(10),
                outcome,
            },
            now,
        );
    }

    pub fn fails(&self, path: &str) -> usize {
        self.actuator
            .calls()
            .iter()
            .filter(|c| **c == Call::Fail(path.into()))
            .count()
    }

    pub fn reinstates(&self, path: &str) -> usize {
        self.actuator
            .calls()
            .iter()
            .filter(|c| **c == Call::Reinstate(path.into()))
            .count()
    }
}

pub fn dm_failed(path: (u32, u32), at_ns: u64) -> KernelEvent {
    KernelEvent::DmPathFailed {
        dev: dev(path),
        at_ns,
        valid_paths: 1,
        own: false,
    }
}

pub fn state_text(entries: &[(&str, HeldOutPath)]) -> String {
    let map: std::collections::BTreeMap<&str, &HeldOutPath> =
        entries.iter().map(|(k, v)| (*k, v)).collect();
    serde_json::to_string(&map).unwrap()
}

pub fn held_entry(device: &str, wwid: &str) -> HeldOutPath {
    HeldOutPath {
        map: "mpatha".into(),
        device: device.into(),
        wwid: Some(wwid.into()),
        dm_failed_first: false,
        action: Default::default(),
    }
}
