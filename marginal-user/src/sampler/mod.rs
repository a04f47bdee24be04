//! The io_uring O_DIRECT sampler: measures a path's error rate (spec, "Sampling").
//!
//! One [`Sampler`] thread owns one io_uring and serves any number of runs (one per path under
//! test). For each run it opens the device O_RDONLY|O_DIRECT, reads blocks of BLKBSZGET bytes
//! (512 if that fails) into page-aligned buffers, keeps up to 32 reads in flight (every idle
//! slot refilled every 100 ms), never starts a read once elapsed + read timeout >= sample time,
//! and reports reads, errors, timeouts and the rate when the run ends.
//!
//! What it does differently from upstream's io_err_stat.c (the spec's "Known upstream bugs"):
//! * a read that passes its timeout counts as one error, once: a late completion or another
//!   poll never counts it again, so the rate cannot exceed 1000 permille;
//! * a buffer is freed only after the kernel posted its read's completion (a hung read's
//!   buffer outlives its run if need be: see `ring.rs`);
//! * no lock is held while waiting for I/O: the runs live on the sampler thread alone, and
//!   devices are opened on a bounded pool of helper threads and closed on another
//!   (`workers.rs`), so one sick device cannot stall the others;
//! * reads go to random, never adjacent blocks, so the block layer cannot merge them (upstream
//!   read block 0 every time).
//!
//! ```no_run
//! # use std::time::Duration;
//! # use marginal::sampler::{Sampler, SamplerOptions};
//! # async fn demo() -> anyhow::Result<()> {
//! let (sampler, mut reports) = Sampler::spawn(SamplerOptions::default())?;
//! sampler.start("sdc", "/dev/sdc", Duration::from_secs(120))?;
//! let report = reports.recv().await.expect("the sampler reports every run");
//! println!("{}: {} permille", report.path_key, report.rate_permille);
//! # Ok(()) }
//! ```

mod buffer;
mod command;
mod id_map;
mod offsets;
mod progress;
mod ring;
mod run;
mod tally;
mod target;
mod timers;
mod uring;
mod workers;

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
        mpsc,
    },
    time::Duration,
};

use anyhow::{Context, Result, bail};
pub use tally::{Tally, rate_permille};
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

use command::{Command, Waker};
use progress::Progress;
use ring::Ring;
use uring::Uring;

/// How the sampler samples. The defaults are the spec's production values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SamplerOptions {
    /// Reads in flight per path (32).
    pub slots_per_path: usize,
    /// How often idle slots get a new read (100 ms).
    pub refill_interval: Duration,
    /// A read still pending this long counts as one error and is cancelled (60 s). Tests use
    /// seconds.
    pub read_timeout: Duration,
}

impl Default for SamplerOptions {
    fn default() -> Self {
        Self {
            slots_per_path: 32,
            refill_interval: Duration::from_millis(100),
            read_timeout: Duration::from_secs(60),
        }
    }
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SampleOutcome {
    /// It ran its sample time (or everything was read after the cutoff): the rate is a verdict.
    Completed,
    /// [`SamplerHandle::stop`] ended it; the counts are partial.
    Stopped,
    /// It could not sample: the device could not be opened, vanished mid-run, or refused the
    /// reads. The message names the device.
    Failed(String),
}

/// The result of one run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SampleReport {
    /// The caller's name for the path (`start`'s `path_key`).
    pub path_key: String,
    /// The device node that was read.
    pub device: PathBuf,
    /// Bytes per read (0 if the device was never opened).
    pub block_size: u32,
    /// Reads that completed or timed out.
    pub reads: u64,
    /// Failed reads, timed-out reads included (once each).
    pub errors: u64,
    /// Reads that timed out.
    pub timeouts: u64,
    /// `errors * 1000 / reads`, 0 without reads; at most 1000.
    pub rate_permille: u32,
    /// From the first read to the end of the run.
    pub elapsed: Duration,
    pub outcome: SampleOutcome,
}

impl SampleReport {
    /// The spec's verdict rule: marginal if the rate is above the threshold (permille).
    pub fn exceeds(&self, threshold_permille: u32) -> bool {
        self.rate_permille > threshold_permille
    }
}

/// A run not yet reported, as the handles see it: its id and its progress so far (which the
/// ring thread updates as reads complete).
#[derive(Clone, Debug)]
pub(crate) struct ActiveRun {
    pub(crate) id: u64,
    pub(crate) progress: Arc<Progress>,
}

/// Starts the sampler thread.
pub struct Sampler;

impl Sampler {
    /// Create the io_uring and start its thread. Every run started through the handle ends
    /// with exactly one report on the receiver. The thread ends (stopping its runs) when the
    /// last handle clone is dropped.
    pub fn spawn(
        options: SamplerOptions,
    ) -> Result<(SamplerHandle, UnboundedReceiver<SampleReport>)> {
        if options.slots_per_path == 0
            || options.refill_interval.is_zero()
            || options.read_timeout.is_zero()
        {
            bail!("sampler options need slots, a refill interval and a read timeout: {options:?}");
        }
        let uring = Uring::new().context("sampler: cannot create an io_uring")?;
        let waker = Waker::new().context("sampler: cannot create its eventfd")?;
        let (commands, command_rx) = mpsc::channel();
        let (report_tx, reports) = unbounded_channel();
        let active = Arc::new(Mutex::new(HashMap::new()));
        let ring = Ring::new(
            uring,
            options,
            command_rx,
            waker.clone(),
            report_tx,
            Arc::clone(&active),
        );
        std::thread::Builder::new()
            .name("marginal-sampler".into())
            .spawn(move || ring.serve())
            .context("sampler: cannot start its thread")?;
        let shared = Shared {
            commands,
            waker,
            active,
            next_id: AtomicU64::new(1),
            openers: workers::Openers::start(workers::OPENER_THREADS)
                .context("sampler: cannot start its opener threads")?,
        };
        Ok((
            SamplerHandle {
                shared: Arc::new(shared),
            },
            reports,
        ))
    }
}

/// Commands the sampler thread. Cheap to clone; no method blocks on I/O.
#[derive(Clone)]
pub struct SamplerHandle {
    shared: Arc<Shared>,
}

struct Shared {
    commands: mpsc::Sender<Command>,
    waker: Waker,
    /// key -> id of runs not yet reported (the ring removes them as it reports).
    active: Arc<Mutex<HashMap<String, ActiveRun>>>,
    next_id: AtomicU64,
    openers: workers::Openers,
}

impl Drop for Shared {
    fn drop(&mut self) {
        let _ = self.commands.send(Command::Shutdown);
        self.waker.wake();
    }
}

impl SamplerHandle {
    /// Start sampling `device_node` for `sample_time` under the name `path_key`. Returns at
    /// once: the device is opened on a helper thread (an open can hang on a sick device); if
    /// that fails the run ends with a `Failed` report. Errors if `path_key` is already being
    /// sampled or the sampler thread is gone.
    pub fn start(
        &self,
        path_key: impl Into<String>,
        device_node: impl Into<PathBuf>,
        sample_time: Duration,
    ) -> Result<()> {
        self.start_with_slots(path_key, device_node, sample_time, None)
    }

    /// [`SamplerHandle::start`] with `slots` reads in flight instead of the sampler's default
    /// (a slow path is read one block at a time: its latency then compares with its siblings',
    /// not with a queue of the sampler's own reads).
    pub fn start_with_slots(
        &self,
        path_key: impl Into<String>,
        device_node: impl Into<PathBuf>,
        sample_time: Duration,
        slots: Option<usize>,
    ) -> Result<()> {
        let key = path_key.into();
        let node = device_node.into();
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let progress = Arc::new(Progress::default());
        {
            let mut active = self.lock_active();
            if active.contains_key(&key) {
                bail!("{key}: already being sampled");
            }
            let run = ActiveRun {
                id,
                progress: Arc::clone(&progress),
            };
            active.insert(key.clone(), run);
        }
        let begin = Command::Begin {
            id,
            key: key.clone(),
            node: node.clone(),
            sample_time,
            slots,
            progress,
        };
        if self.shared.commands.send(begin).is_err() {
            self.lock_active().remove(&key);
            bail!("{key}: the sampler thread has stopped");
        }
        // Begin is queued before the opener can send Opened, so the ring sees them in order.
        let commands = self.shared.commands.clone();
        let waker = self.shared.waker.clone();
        let open_node = node.clone();
        let submitted = self.shared.openers.submit(move || {
            let result = target::Target::open(&open_node).map_err(|err| format!("{err:#}"));
            let _ = commands.send(Command::Opened { id, result });
            waker.wake();
        });
        if !submitted {
            let why = format!("device {}: the opener threads are gone", node.display());
            let _ = self.shared.commands.send(Command::Opened {
                id,
                result: Err(why),
            });
        }
        self.shared.waker.wake();
        Ok(())
    }

    /// Stop `path_key`'s run: no new reads, in-flight ones are cancelled, and the `Stopped`
    /// report follows once the kernel has answered for every read (reads it cannot cancel are
    /// left to complete on their own; their buffers are kept until they do). Returns whether a
    /// run was found.
    pub fn stop(&self, path_key: &str) -> Result<bool> {
        let Some(id) = self.lock_active().get(path_key).map(|run| run.id) else {
            return Ok(false);
        };
        self.shared
            .commands
            .send(Command::Stop { id })
            .map_err(|_| anyhow::anyhow!("the sampler thread has stopped"))?;
        self.shared.waker.wake();
        Ok(true)
    }

    /// Whether `path_key` has a run whose report has not been sent yet.
    pub fn is_sampling(&self, path_key: &str) -> bool {
        self.lock_active().contains_key(path_key)
    }

    /// Reads and errors so far of `path_key`'s run in progress (updated as reads complete).
    pub fn progress(&self, path_key: &str) -> Option<(u64, u64)> {
        self.lock_active()
            .get(path_key)
            .map(|run| run.progress.get())
    }

    fn lock_active(&self) -> std::sync::MutexGuard<'_, HashMap<String, ActiveRun>> {
        // Held for a map lookup only, never across I/O; a poisoned map is still consistent.
        self.shared
            .active
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Sample one device once and wait for the report: for `marginal sample` and tests. Blocks the
/// calling thread (do not call it from inside an async runtime).
pub fn sample_once(
    device: &Path,
    sample_time: Duration,
    options: SamplerOptions,
) -> Result<SampleReport> {
    let (sampler, mut reports) = Sampler::spawn(options)?;
    sampler.start(device.display().to_string(), device, sample_time)?;
    reports
        .blocking_recv()
        .context("the sampler thread ended without a report")
}
