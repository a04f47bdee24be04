//! Loading and attaching the eBPF programs, and access to their maps.
use std::{fmt, io::BufRead, path::Path, time::Duration};

use anyhow::{Context, Result, bail};
use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, HashMap, MapData, PerCpuHashMap, RingBuf},
    programs::{KProbe, TracePoint},
};
use marginal_common::{
    BLOCK_ERROR_LEGACY_PROGRAM, BLOCK_ERROR_PROGRAM, BLOCK_ERROR_TRACEFS_LAYOUT_PROGRAM,
    COMPILED_IN_LAYOUT, CONTROL_MAP, DM_PATH_UEVENT_PROGRAM, DM_TRANSITIONS_MAP, DmTransitions,
    EVENTS_LOST_MAP, EVENTS_MAP, LATENCY_FILTER_MAP, LATENCY_MAP, LATENCY_PROBE_READ_PROGRAM,
    LATENCY_PROGRAM, LAYOUT_MAP, PathControl, PathLatency, PathRecord, REQUEST_OFFSETS_GLOBAL,
    RequestLayout, TracepointLayout, WATCHED_MAP, WatchSettings,
};

use super::{
    latency::{LatencyLink, LatencyProgram},
    tracefs::{self, BlockErrorTracepoint},
};

/// The eBPF object built from `marginal-ebpf` by build.rs.
static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/marginal"));

/// The dm-mpath function the kprobe watches (in module dm_mod).
const DM_PATH_UEVENT_SYMBOL: &str = "dm_path_uevent";

/// Which kernel signals are live, for start-up messages, status and metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveSignals {
    /// The block tracepoint the error program is attached to.
    pub block_tracepoint: BlockErrorTracepoint,
    /// Which variant of the error program is attached.
    pub block_program: BlockErrorProgram,
    /// Whether the dm_path_uevent kprobe is attached, or why not.
    pub dm_path_kprobe: Result<(), String>,
    /// Kernel BTF is required only by the latency program; its absence is only reported.
    pub kernel_btf: bool,
    /// The latency program: `None` until some path has latency measuring on, then whether
    /// it is attached or why not.
    pub latency: Option<Result<(), String>>,
    /// Which latency program is (or was last) attached.
    pub latency_program: Option<LatencyProgram>,
}

impl fmt::Display for LiveSignals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "block errors via block:{} (live, {})",
            self.block_tracepoint.name(),
            self.block_program.describe()
        )?;
        match &self.dm_path_kprobe {
            Ok(()) => write!(
                f,
                "; dm-mpath path events via kprobe:{DM_PATH_UEVENT_SYMBOL} (live)"
            ),
            Err(why) => write!(f, "; dm-mpath kprobe not attached: {why}"),
        }?;
        match &self.latency {
            None => Ok(()),
            Some(Ok(())) => write!(
                f,
                "; path latency via {} (live)",
                self.latency_program
                    .map_or("?", |program| program.describe())
            ),
            Some(Err(why)) => write!(f, "; path latency not measured: {why}"),
        }
    }
}

/// The loaded programs and their maps. Dropping it detaches everything.
pub struct KernelProbes {
    pub(super) ebpf: Ebpf,
    watched: HashMap<MapData, u32, PathRecord>,
    control: HashMap<MapData, u32, PathControl>,
    /// What was last written to `control`, so an unchanged entry costs no syscall.
    control_written: std::collections::HashMap<u32, PathControl>,
    pub(super) latency: PerCpuHashMap<MapData, u32, PathLatency>,
    pub(super) latency_filter: Array<MapData, u64>,
    /// The devices in `latency`, from which the filter words are made.
    pub(super) latency_devs: std::collections::BTreeSet<u32>,
    /// This kernel's `struct request` offsets, set in the object before loading, or why not.
    pub(super) request_layout: Result<RequestLayout, String>,
    /// The latency program the caller chose (benches), or `None`: the best this kernel takes.
    pub(super) latency_choice: Option<LatencyProgram>,
    pub(super) latency_links: Vec<LatencyLink>,
    pub(super) signals: LiveSignals,
}

impl KernelProbes {
    /// Check the prerequisites, load the programs and attach what this kernel supports.
    pub fn load() -> Result<Self> {
        Self::load_with(None)
    }

    /// [`KernelProbes::load`] with the variant of the block error program chosen by the
    /// caller, so that tests can run both on one kernel. The compiled-in variant is refused
    /// where the kernel's record does not match it.
    pub fn load_with_block_program(variant: BlockErrorProgram) -> Result<Self> {
        Self::load_with(Some(variant))
    }

    fn load_with(block_program: Option<BlockErrorProgram>) -> Result<Self> {
        preflight()?;
        let tracefs = tracefs::ensure_mounted()?;
        let tracepoint = BlockErrorTracepoint::choose(&tracefs)?;
        let layout = tracepoint.layout(&tracefs)?;
        let suitable = BlockErrorProgram::for_layout(layout);
        let chosen_by_caller = block_program.is_some();
        let mut block_program = block_program.unwrap_or(suitable);
        if block_program == BlockErrorProgram::CompiledInLayout && suitable != block_program {
            bail!(
                "block:{} has dev at {} and error at {}, not where the compiled-in program reads them",
                tracepoint.name(),
                layout.dev_offset,
                layout.error_offset
            );
        }

        raise_memlock_limit();
        // Read now, although only the latency program needs it: the offsets are constants of
        // the object, set before it is loaded.
        let request_layout = super::btf::Btf::from_kernel()
            .and_then(|btf| btf.request_layout())
            .map_err(|e| format!("{e:#}"));
        let mut loader = EbpfLoader::new();
        if let Ok(layout) = &request_layout {
            loader.override_global(REQUEST_OFFSETS_GLOBAL, layout, true);
        }
        let mut ebpf = loader.load(EBPF_OBJECT).context(
            "loading marginal's eBPF programs failed (is BPF enabled in this kernel, \
             and is marginal running as root?)",
        )?;

        // Always written: the tracefs-layout and legacy variants read it, and a refused
        // variant falls back to the legacy one.
        let mut layout_map: Array<_, TracepointLayout> = Array::try_from(
            ebpf.map_mut(LAYOUT_MAP)
                .context("eBPF object has no LAYOUT map")?,
        )?;
        layout_map
            .set(0, layout, 0)
            .context("writing the tracepoint layout")?;

        let loaded = load_block_program(&mut ebpf, block_program);
        if let Err(refused) = loaded {
            if chosen_by_caller || block_program == BlockErrorProgram::Legacy {
                return Err(refused);
            }
            // Kernels before 5.12 know no atomic exchange; everything else they verify.
            log::warn!(
                "{refused:#}; loading the variant for kernels before 5.12 (no atomic exchange: \
                 one burst of errors completing on several CPUs at once may count as two \
                 failures of a --watch device)"
            );
            block_program = BlockErrorProgram::Legacy;
            load_block_program(&mut ebpf, block_program)?;
        }
        let program: &mut TracePoint = ebpf
            .program_mut(block_program.name())
            .with_context(|| format!("eBPF object has no program {}", block_program.name()))?
            .try_into()?;
        program
            .attach("block", tracepoint.name())
            .with_context(|| format!("attaching to tracepoint block:{}", tracepoint.name()))?;

        let dm_path_kprobe = attach_dm_kprobe(&mut ebpf).map_err(|e| format!("{e:#}"));
        let watched = HashMap::try_from(
            ebpf.take_map(WATCHED_MAP)
                .context("eBPF object has no WATCHED map")?,
        )?;
        let control = HashMap::try_from(
            ebpf.take_map(CONTROL_MAP)
                .context("eBPF object has no CONTROL map")?,
        )?;
        let latency = PerCpuHashMap::try_from(
            ebpf.take_map(LATENCY_MAP)
                .context("eBPF object has no PATH_LATENCY map")?,
        )?;
        let latency_filter = Array::try_from(
            ebpf.take_map(LATENCY_FILTER_MAP)
                .context("eBPF object has no LATENCY_FILTER map")?,
        )?;
        let signals = LiveSignals {
            block_tracepoint: tracepoint,
            block_program,
            dm_path_kprobe,
            kernel_btf: Path::new(super::btf::KERNEL_BTF).exists(),
            latency: None,
            latency_program: None,
        };
        Ok(Self {
            ebpf,
            watched,
            control,
            control_written: Default::default(),
            latency,
            latency_filter,
            latency_devs: Default::default(),
            request_layout,
            latency_choice: None,
            latency_links: Vec::new(),
            signals,
        })
    }

    pub fn signals(&self) -> &LiveSignals {
        &self.signals
    }

    /// Try the dm kprobe again (dm_mod may have been loaded after start-up).
    pub fn retry_dm_kprobe(&mut self) -> &LiveSignals {
        if self.signals.dm_path_kprobe.is_err() {
            self.signals.dm_path_kprobe =
                attach_dm_kprobe(&mut self.ebpf).map_err(|e| format!("{e:#}"));
        }
        &self.signals
    }

    /// Start counting failures of the device `dev` (kernel `dev_t`). Re-watching a watched
    /// device changes its settings and keeps its counters.
    pub fn watch(&mut self, dev: u32, settings: WatchSettings) -> Result<()> {
        let record = match self.watched.get(&dev, 0) {
            // Rewriting the record would drop whatever the kernel counted between our read and
            // our write: only a change of settings is worth that (rare) risk.
            Ok(existing) if existing.settings == settings => return Ok(()),
            Ok(mut existing) => {
                existing.settings = settings;
                existing
            }
            Err(_) => PathRecord::new(settings),
        };
        self.watched
            .insert(dev, record, 0)
            .with_context(|| format!("adding device {} to the watch map", dev_name(dev)))
    }

    /// Tell the kernel what marginal is doing to the watched path `dev` (see [`PathControl`]):
    /// `change` edits the current control. Nothing is written when it stays the same.
    pub fn control(&mut self, dev: u32, change: impl FnOnce(&mut PathControl)) -> Result<()> {
        let current = self.control_written.get(&dev).copied().unwrap_or_default();
        let mut next = current;
        change(&mut next);
        if next == current && self.control_written.contains_key(&dev) {
            return Ok(());
        }
        self.control
            .insert(dev, next, 0)
            .with_context(|| format!("writing the control of device {}", dev_name(dev)))?;
        self.control_written.insert(dev, next);
        Ok(())
    }

    /// The control last written for `dev`.
    pub fn current_control(&self, dev: u32) -> PathControl {
        self.control_written.get(&dev).copied().unwrap_or_default()
    }

    /// Stop counting for `dev`; its counters (and latency histograms) are dropped.
    pub fn unwatch(&mut self, dev: u32) -> Result<()> {
        self.measure_latency(dev, false)?;
        if self.control_written.remove(&dev).is_some() {
            let _ = self.control.remove(&dev);
        }
        if self.watched.get(&dev, 0).is_err() {
            return Ok(()); // not watched: nothing to do (the kernel's ENOENT is no KeyNotFound)
        }
        match self.watched.remove(&dev) {
            Ok(()) => Ok(()),
            Err(e) => Err(e)
                .with_context(|| format!("removing device {} from the watch map", dev_name(dev))),
        }
    }

    /// What the kernel counted for a watched device.
    pub fn record(&self, dev: u32) -> Option<PathRecord> {
        self.watched.get(&dev, 0).ok()
    }

    /// Every watched device and its record, read in a few syscalls; an error (a kernel
    /// without batch lookups) leaves the caller to ask [`KernelProbes::record`] per device.
    pub fn records_batch(&self) -> std::io::Result<Vec<(u32, PathRecord)>> {
        use aya::maps::IterableMap;
        use std::os::fd::AsFd;
        super::batch::lookup_all(self.watched.map().fd().as_fd())
    }

    /// Every watched device and its record.
    pub fn records(&self) -> Vec<(u32, PathRecord)> {
        self.watched.iter().filter_map(Result::ok).collect()
    }

    /// dm-mpath's transitions seen for a path (any path, watched or not).
    pub fn dm_transitions(&self, dev: u32) -> Option<DmTransitions> {
        let map = self.ebpf.map(DM_TRANSITIONS_MAP)?;
        let map: aya::maps::HashMap<_, u32, DmTransitions> =
            aya::maps::HashMap::try_from(map).ok()?;
        map.get(&dev, 0).ok()
    }

    /// Events the kernel could not put in the full ring buffer, since the programs were loaded.
    pub fn events_lost(&self) -> u64 {
        let Some(map) = self.ebpf.map(EVENTS_LOST_MAP) else {
            return 0;
        };
        let Ok(array) = Array::<_, u64>::try_from(map) else {
            return 0;
        };
        array.get(&0, 0).unwrap_or(0)
    }

    /// Take the ring buffer of events; only one reader may have it.
    pub fn take_events(&mut self) -> Result<RingBuf<MapData>> {
        let map = self
            .ebpf
            .take_map(EVENTS_MAP)
            .context("the event ring buffer was already taken")?;
        Ok(RingBuf::try_from(map)?)
    }

    /// Run count and total run time of each of marginal's loaded programs (the kernel's
    /// bpf_stats; zero unless statistics are enabled, see [`super::stats::RunStatsGuard`]).
    /// The block error program is named [`BLOCK_ERROR_PROGRAM`] whichever variant runs, so
    /// that metrics and dashboards keep one name for it on every kernel.
    pub fn program_stats(&self) -> Vec<ProgramStats> {
        self.ebpf
            .programs()
            .filter_map(|(name, program)| {
                let info = program.info().ok()?;
                let name = if name == BLOCK_ERROR_TRACEFS_LAYOUT_PROGRAM
                    || name == BLOCK_ERROR_LEGACY_PROGRAM
                {
                    BLOCK_ERROR_PROGRAM
                } else if name == LATENCY_PROBE_READ_PROGRAM {
                    LATENCY_PROGRAM
                } else {
                    name
                };
                Some(ProgramStats {
                    name: name.to_string(),
                    run_count: info.run_count(),
                    run_time: info.run_time(),
                })
            })
            .collect()
    }
}

/// One program's cost as the kernel accounts it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProgramStats {
    pub name: String,
    pub run_count: u64,
    pub run_time: Duration,
}

/// The two variants of the block error program in the object; one is loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockErrorProgram {
    /// `block_rq_failed`: reads the record at the offsets of [`COMPILED_IN_LAYOUT`] with
    /// direct loads (the fast one; every kernel marginal was run on has that layout).
    CompiledInLayout,
    /// `block_rq_failed_tracefs_layout`: takes the offsets tracefs gave from the LAYOUT map
    /// and reads each field through a helper call (any other layout).
    TracefsLayout,
    /// `block_rq_failed_legacy`: as `TracefsLayout`, without the atomic exchange kernels before
    /// 5.12 refuse; loaded when the suitable variant is refused.
    Legacy,
}

impl BlockErrorProgram {
    pub const ALL: [Self; 2] = [Self::CompiledInLayout, Self::TracefsLayout];

    /// The program's name in the eBPF object.
    pub fn name(self) -> &'static str {
        match self {
            Self::CompiledInLayout => BLOCK_ERROR_PROGRAM,
            Self::TracefsLayout => BLOCK_ERROR_TRACEFS_LAYOUT_PROGRAM,
            Self::Legacy => BLOCK_ERROR_LEGACY_PROGRAM,
        }
    }

    /// How it reads the record, for start-up messages and status.
    pub fn describe(self) -> &'static str {
        match self {
            Self::CompiledInLayout => "record offsets compiled in",
            Self::TracefsLayout => "record offsets from tracefs",
            Self::Legacy => "record offsets from tracefs, no atomic exchange (kernel before 5.12)",
        }
    }

    /// The variant for a tracepoint record `layout`: the compiled-in one wherever it matches.
    pub fn for_layout(layout: TracepointLayout) -> Self {
        if layout == COMPILED_IN_LAYOUT {
            Self::CompiledInLayout
        } else {
            Self::TracefsLayout
        }
    }
}

pub(super) fn dev_name(dev: u32) -> String {
    let (major, minor) = marginal_common::kernel_dev_split(dev);
    format!("{major}:{minor}")
}

fn preflight() -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!("marginal needs root to load eBPF programs and read tracefs (run it with sudo)");
    }
    Ok(())
}

/// Kernels before 5.11 charge BPF maps to RLIMIT_MEMLOCK; raising it is harmless elsewhere.
fn raise_memlock_limit() {
    let unlimited = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: plain syscall with a valid pointer to a stack value.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &unlimited) } != 0 {
        log::debug!("could not raise RLIMIT_MEMLOCK; fine on kernels >= 5.11");
    }
}

fn load_block_program(ebpf: &mut Ebpf, variant: BlockErrorProgram) -> Result<()> {
    let program: &mut TracePoint = ebpf
        .program_mut(variant.name())
        .with_context(|| format!("eBPF object has no program {}", variant.name()))?
        .try_into()?;
    program.load().with_context(|| {
        format!(
            "the kernel's verifier rejected the block error program {}",
            variant.name()
        )
    })
}

fn attach_dm_kprobe(ebpf: &mut Ebpf) -> Result<()> {
    if !kernel_has_symbol(DM_PATH_UEVENT_SYMBOL)? {
        bail!("{DM_PATH_UEVENT_SYMBOL} is not in this kernel (dm_mod not loaded, or no dm-mpath)");
    }
    let program: &mut KProbe = ebpf
        .program_mut(DM_PATH_UEVENT_PROGRAM)
        .context("eBPF object has no dm_path_uevent program")?
        .try_into()?;
    if program.fd().is_err() {
        program
            .load()
            .context("the verifier rejected the dm kprobe")?;
    }
    program
        .attach(DM_PATH_UEVENT_SYMBOL, 0)
        .context("this kernel refused the kprobe (no kprobe support?)")?;
    Ok(())
}

fn kernel_has_symbol(symbol: &str) -> Result<bool> {
    let file = std::fs::File::open("/proc/kallsyms").context("reading /proc/kallsyms")?;
    for line in std::io::BufReader::new(file).lines() {
        let line = line?;
        if line.split_whitespace().nth(2) == Some(symbol) {
            return Ok(true);
        }
    }
    Ok(false)
}
