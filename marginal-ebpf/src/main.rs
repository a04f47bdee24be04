//! marginal's kernel side: counts path failures where they happen.
//!
//! * `block_rq_failed` runs on `block:block_rq_error` (or `block:block_rq_complete`, filtered on
//!   `error != 0`, on kernels before 5.18). For a watched path device it counts the I/O error.
//!   A failure, though, is a transition of the path to failed, not a failed request: for paths
//!   dm-mpath reports on (`WATCH_DM_REPORTED`) the errors are only counted; for the others
//!   (`--watch` devices) path errors are grouped into failure episodes. Errors that are not
//!   path errors (`is_path_error`) and errors while marginal samples the path never fail it.
//!   Unwatched devices cost one map lookup.
//! * `dm_path_uevent` is a kprobe on dm-mpath's `dm_path_uevent()`: every PATH_FAILED and
//!   PATH_REINSTATED transition, counted per path and sent to user space; on watched paths a
//!   PATH_FAILED is the failure (unless marginal announced it as its own `fail path`).
//!
//! * `block_rq_latency` (module [`latency`]) is a BTF tracepoint on `block_rq_complete`,
//!   attached only once some path has latency measuring on: for paths in `PATH_LATENCY` it adds
//!   each successful read's and write's latency to the path's per-CPU histogram. The latency
//!   is the completion time less the request's own `start_time_ns`, read from the request
//!   (offsets from kernel BTF, set as constants before loading), so no per-request map and
//!   nothing on issue.
//!
//! Both feed one double-failure window per path: when a path fails twice within its window
//! (and the first failure is not older than its last return to service), a `DoubleFailure`
//! event goes through the ring buffer at once.
//!
//! Concurrency: dm-mpath calls `dm_path_uevent()` with the map's spinlock held
//! (`fail_path()`/`reinstate_path()` in drivers/md/dm-mpath.c), so a path's transitions reach
//! the kprobe one at a time. Block errors complete on any CPU at once: the episode boundary is an
//! atomic exchange of the last error's time, so of errors racing on several CPUs exactly one
//! sees the old time and starts the failure.
//!
//! `block_rq_failed` reads the tracepoint record at compiled-in offsets; user space loads it
//! only on kernels whose record has them (all current ones), and loads
//! `block_rq_failed_tracefs_layout`, which takes the offsets read from tracefs from `LAYOUT`,
//! anywhere else.
#![no_std]
#![no_main]
#![feature(core_intrinsics)]
#![allow(internal_features)]

mod latency;

use aya_ebpf::{
    EbpfContext,
    helpers::{bpf_ktime_get_ns, bpf_probe_read_kernel_str_bytes},
    macros::{kprobe, map, tracepoint},
    maps::{Array, HashMap, LruHashMap, RingBuf},
    programs::{ProbeContext, TracePointContext},
};
use marginal_common::{
    COMPILED_IN_LAYOUT, DmTransitions, EVENTS_RING_BYTES, EventKind, FailureSource,
    MAX_WATCHED_PATHS, PathControl, PathEvent, PathRecord, TracepointLayout, WATCH_DM_REPORTED,
    is_path_error, kernel_dev,
};

#[map(name = "WATCHED")]
static WATCHED: HashMap<u32, PathRecord> = HashMap::with_max_entries(MAX_WATCHED_PATHS, 0);

/// Events the ring buffer had no room for (index 0): user space resyncs from dm when it grows.
#[map(name = "EVENTS_LOST")]
static EVENTS_LOST: Array<u64> = Array::with_max_entries(1, 0);

#[map(name = "CONTROL")]
static CONTROL: HashMap<u32, PathControl> = HashMap::with_max_entries(MAX_WATCHED_PATHS, 0);

#[map(name = "EVENTS")]
static EVENTS: RingBuf = RingBuf::with_byte_size(EVENTS_RING_BYTES, 0);

#[map(name = "LAYOUT")]
static LAYOUT: Array<TracepointLayout> = Array::with_max_entries(1, 0);

#[map(name = "DM_TRANSITIONS")]
static DM_TRANSITIONS: LruHashMap<u32, DmTransitions> =
    LruHashMap::with_max_entries(MAX_WATCHED_PATHS, 0);

/// Atomic add: the same path can fail on several CPUs at once. `fetch_add` does not exist on
/// bpfel (no compare-and-swap); this intrinsic lowers to BPF's atomic add.
#[inline(always)]
fn count(counter: &mut u64) {
    unsafe {
        core::intrinsics::atomic_xadd::<u64, u64, { core::intrinsics::AtomicOrdering::Relaxed }>(
            counter, 1,
        )
    };
}

/// The error program for kernels whose record has `dev` and `error` where
/// [`COMPILED_IN_LAYOUT`] says: the fields are direct loads from the record at constant
/// offsets, which the verifier allows (at an offset from a map, even a read-only one, it
/// refuses them), instead of a map lookup and helper calls. User space loads this one or
/// [`block_rq_failed_tracefs_layout`], never both.
#[tracepoint]
pub fn block_rq_failed(ctx: TracePointContext) -> u32 {
    // Error first: on block_rq_complete most requests succeed, and this load is nearly free.
    let error: i32 = unsafe { record_field(&ctx, COMPILED_IN_LAYOUT.error_offset) };
    if error == 0 {
        return 0;
    }
    let dev: u32 = unsafe { record_field(&ctx, COMPILED_IN_LAYOUT.dev_offset) };
    if let Some(record) = WATCHED.get_ptr_mut(&dev) {
        io_error::<true>(dev, unsafe { &mut *record }, error);
    }
    0
}

/// A field of the tracepoint's record, loaded directly from the context.
///
/// # Safety
/// `offset` must be a compile-time constant inside the record, aligned for `T`: the verifier
/// rejects a context load at any offset it cannot see as a constant.
#[inline(always)]
unsafe fn record_field<T: Copy>(ctx: &TracePointContext, offset: u32) -> T {
    unsafe {
        ctx.as_ptr()
            .cast::<u8>()
            .add(offset as usize)
            .cast::<T>()
            .read()
    }
}

/// The error program for any other layout, with the offsets user space read from tracefs
/// (`LAYOUT`): each field costs a map lookup and a `bpf_probe_read_kernel` call.
#[tracepoint]
pub fn block_rq_failed_tracefs_layout(ctx: TracePointContext) -> u32 {
    tracefs_layout::<true>(&ctx)
}

/// [`block_rq_failed_tracefs_layout`] for kernels before 5.12, which refuse the atomic exchange
/// (user space loads it only when the others are refused).
#[tracepoint]
pub fn block_rq_failed_legacy(ctx: TracePointContext) -> u32 {
    tracefs_layout::<false>(&ctx)
}

#[inline(always)]
fn tracefs_layout<const ATOMIC: bool>(ctx: &TracePointContext) -> u32 {
    let Some(layout) = LAYOUT.get(0) else {
        return 0;
    };
    let Ok(dev) = (unsafe { ctx.read_at::<u32>(layout.dev_offset as usize) }) else {
        return 0;
    };
    // The one lookup every failed (or, with block_rq_complete, every) request pays.
    let Some(record) = WATCHED.get_ptr_mut(&dev) else {
        return 0;
    };
    let Ok(error) = (unsafe { ctx.read_at::<i32>(layout.error_offset as usize) }) else {
        return 0;
    };
    if error != 0 {
        io_error::<ATOMIC>(dev, unsafe { &mut *record }, error);
    }
    0
}

/// A failed request on the watched path `dev`: count it; on a path without dm's report,
/// group path errors into failure episodes.
#[inline(always)]
fn io_error<const ATOMIC: bool>(dev: u32, record: &mut PathRecord, error: i32) {
    count(&mut record.io_errors);
    if !is_path_error(error) {
        count(&mut record.non_path_errors);
        return;
    }
    if record.settings.flags & WATCH_DM_REPORTED != 0 {
        return; // dm-mpath's PATH_FAILED is this path's failure, not its errors
    }
    // The largest single part of a watched error's cost in `marginal-bench ebpf-cost`, and
    // it must stay: episode boundaries need each error's precise time. The cheap clocks
    // (bpf_jiffies64, bpf_ktime_get_coarse_ns) lag by a tick or more (4 ms at HZ=250; more
    // when the tick was stopped or the vCPU preempted), which would move boundaries for the
    // short episode gaps the daemon accepts.
    let now = unsafe { bpf_ktime_get_ns() };
    let control = unsafe { CONTROL.get(&dev) };
    if control.is_some_and(|c| c.sampling != 0) {
        return; // marginal's own reads (and whatever fails beside them) start nothing
    }
    // Atomic: of errors of one burst completing on several CPUs, exactly one gets the time
    // from before the burst and starts the failure; the others see its time.
    let last_error = if ATOMIC {
        exchange(&mut record.last_error_ns, now)
    } else {
        let last = record.last_error_ns;
        record.last_error_ns = now;
        last
    };
    if within(last_error, now, record.settings.episode_gap_ns) {
        return; // same episode: one failure however many errors it holds
    }
    path_failed(dev, record, now, control, FailureSource::BlockError);
}

/// Atomic exchange (BPF_XCHG, kernel 5.12 and later); like [`count`], through the intrinsic
/// because bpfel has no atomic types with read-modify-write methods.
#[inline(always)]
fn exchange(value: &mut u64, new: u64) -> u64 {
    unsafe {
        core::intrinsics::atomic_xchg::<u64, { core::intrinsics::AtomicOrdering::Relaxed }>(
            value, new,
        )
    }
}

/// Whether `then` (0 = never) is less than `gap` before `now`, or after it: of errors racing
/// on two CPUs, one may take its time first and exchange it in second, and then sees a time
/// newer than its own, from the same burst.
#[inline(always)]
fn within(then: u64, now: u64, gap: u64) -> bool {
    then != 0 && (then >= now || now - then < gap)
}

/// A failure transition of a watched path: count it and run the double-failure window.
#[inline(always)]
fn path_failed(
    dev: u32,
    record: &mut PathRecord,
    now: u64,
    control: Option<&PathControl>,
    source: FailureSource,
) {
    count(&mut record.failures);
    record.last_failure_ns = now;
    let window_start = record.window_start_ns;
    // The new failure always opens the next window, so a third failure soon after the second
    // is judged against the second (the window restarts).
    record.window_start_ns = now;
    if window_start == 0 || now.wrapping_sub(window_start) > record.settings.window_ns {
        return;
    }
    // A first failure from before the path's last return to service is history.
    if control.is_some_and(|c| window_start < c.fence_ns) {
        return;
    }
    count(&mut record.double_failures);
    send(PathEvent {
        kind: EventKind::DoubleFailure as u32,
        dev,
        time_ns: now,
        window_start_ns: window_start,
        failures: record.failures,
        valid_paths: 0,
        source: source as u32,
    });
}

#[inline(always)]
fn send(event: PathEvent) {
    if let Some(mut entry) = EVENTS.reserve::<PathEvent>(0) {
        entry.write(event);
        entry.submit(0);
    } else if let Some(lost) = EVENTS_LOST.get_ptr_mut(0) {
        count(unsafe { &mut *lost });
    }
}

/// `dm_path_uevent(enum dm_uevent_type type, struct dm_target *ti, const char *path,
/// unsigned int nr_valid_paths)`; type 0 is PATH_FAILED, 1 PATH_REINSTATED.
#[kprobe]
pub fn dm_path_uevent(ctx: ProbeContext) -> u32 {
    let Some(kind) = ctx.arg::<u32>(0) else {
        return 0;
    };
    let Some(path) = ctx.arg::<*const u8>(2) else {
        return 0;
    };
    let valid_paths = ctx.arg::<u32>(3).unwrap_or(0);
    let mut text = [0u8; 16];
    let Ok(text) = (unsafe { bpf_probe_read_kernel_str_bytes(path, &mut text) }) else {
        return 0;
    };
    let Some(dev) = parse_major_minor(text) else {
        return 0;
    };
    let now = unsafe { bpf_ktime_get_ns() };
    let failed = kind == 0;

    let mut transitions = match unsafe { DM_TRANSITIONS.get(&dev) } {
        Some(existing) => *existing,
        None => DmTransitions::default(),
    };
    if failed {
        transitions.failed += 1;
    } else {
        transitions.reinstated += 1;
    }
    transitions.valid_paths = valid_paths;
    let _ = DM_TRANSITIONS.insert(&dev, &transitions, 0);

    let mut failures = 0;
    let mut source = FailureSource::DmPath;
    if let Some(record) = WATCHED.get_ptr_mut(&dev) {
        let record = unsafe { &mut *record };
        if failed {
            let control = unsafe { CONTROL.get(&dev) };
            if own_fail(record, control, now) {
                source = FailureSource::OwnAction;
                count(&mut record.own_fails);
            } else if within(record.last_failure_ns, now, record.settings.episode_gap_ns) {
                // Failed again right after a reinstatement that never held: one outage.
                source = FailureSource::SameOutage;
            } else {
                path_failed(dev, record, now, control, FailureSource::DmPath);
            }
        } else {
            count(&mut record.reinstates);
        }
        failures = record.failures;
    }
    send(PathEvent {
        kind: if failed {
            EventKind::DmPathFailed as u32
        } else {
            EventKind::DmPathReinstated as u32
        },
        dev,
        time_ns: now,
        window_start_ns: 0,
        failures,
        valid_paths,
        source: source as u32,
    });
    0
}

/// Whether this PATH_FAILED is the one marginal announced before its own `fail path`; each
/// announcement covers one transition (dm reports none while the path stays failed).
#[inline(always)]
fn own_fail(record: &mut PathRecord, control: Option<&PathControl>, now: u64) -> bool {
    let Some(control) = control else {
        return false;
    };
    let until = control.own_fail_until_ns;
    if until == 0 || now >= until || record.own_fail_taken_ns == until {
        return false;
    }
    record.own_fail_taken_ns = until;
    true
}

/// Parse dm's "major:minor" path name into a kernel `dev_t`.
#[inline(always)]
fn parse_major_minor(text: &[u8]) -> Option<u32> {
    let mut major: u32 = 0;
    let mut minor: u32 = 0;
    let mut seen_colon = false;
    let mut digits = 0;
    let mut i = 0;
    while i < 16 {
        if i >= text.len() {
            break;
        }
        let c = text[i];
        if c == b':' && !seen_colon && digits > 0 {
            seen_colon = true;
            digits = 0;
        } else if c.is_ascii_digit() {
            let d = (c - b'0') as u32;
            if seen_colon {
                minor = minor.wrapping_mul(10).wrapping_add(d);
            } else {
                major = major.wrapping_mul(10).wrapping_add(d);
            }
            digits += 1;
        } else {
            break;
        }
        i += 1;
    }
    if !seen_colon || digits == 0 {
        return None;
    }
    Some(kernel_dev(major, minor))
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
