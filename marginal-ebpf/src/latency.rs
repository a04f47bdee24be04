//! Path latency: for the paths in `PATH_LATENCY`, each successful read's and write's latency
//! into the path's per-CPU log2 histograms.
//!
//! The product's program, [`block_rq_latency`], is a BTF tracepoint on `block_rq_complete`:
//! the latency is the completion time less the request's own `start_time_ns` (kept by the
//! kernel for I/O statistics), read with direct loads at offsets user space found in kernel
//! BTF and set in the read-only global `REQUEST_OFFSETS` before loading. The verifier sees
//! those as constants, so the loads are plain memory loads (faulting loads turn into zeros),
//! not helper calls. Where a kernel refuses it, user space loads
//! [`block_rq_latency_probe_read`], the same on a raw tracepoint through
//! `bpf_probe_read_kernel`.
//!
//! [`block_rq_issue_stamp`] and [`block_rq_latency_per_request`] are the alternative the
//! issue asked to compare, kept for `marginal-bench latency-cost` only: the start time taken
//! at issue into a hash map keyed by the request's address, looked up and deleted at
//! completion. They cost more (see BENCHMARKS.md), so the daemon never loads them.
//!
//! Every completion on the host runs the attached program; a device not measured stops at
//! `LATENCY_FILTER`, one array word (an inlined lookup), unless its filter bit is shared with
//! a measured device, when the hash lookup in `PATH_LATENCY` tells.
use aya_ebpf::{
    helpers::{bpf_ktime_get_ns, bpf_probe_read_kernel},
    macros::{btf_tracepoint, map, raw_tracepoint},
    maps::{Array, HashMap, PerCpuHashMap},
    programs::{BtfTracePointContext, RawTracePointContext},
};
use marginal_common::{
    LATENCY_BUCKETS, LATENCY_FILTER_WORDS, MAX_LATENCY_PATHS, NO_OFFSET, PathLatency,
    RequestLayout, kernel_dev, latency_bucket, latency_filter_slot,
};

/// Entries only for paths with latency measuring on; allocated when user space adds them
/// (BPF_F_NO_PREALLOC), so the capacity costs nothing until used.
#[map(name = "PATH_LATENCY")]
static PATH_LATENCY: PerCpuHashMap<u32, PathLatency> =
    PerCpuHashMap::with_max_entries(MAX_LATENCY_PATHS, BPF_F_NO_PREALLOC);

#[map(name = "LATENCY_FILTER")]
static LATENCY_FILTER: Array<u64> = Array::with_max_entries(LATENCY_FILTER_WORDS, 0);

/// The per-request alternative's start times, by request address. Bench-only; small, since
/// its preallocated entries cost kernel memory even while no program uses them.
#[map(name = "REQUEST_STARTS")]
static REQUEST_STARTS: HashMap<u64, RequestStart> = HashMap::with_max_entries(1024, 0);

#[repr(C)]
#[derive(Clone, Copy)]
struct RequestStart {
    started_ns: u64,
    dev: u32,
    operation: u32,
}

/// Set by user space before loading (`EbpfLoader::set_global`); read-only to programs, so
/// the verifier takes its fields as known constants.
#[unsafe(no_mangle)]
static REQUEST_OFFSETS: RequestLayout = RequestLayout::UNKNOWN;

const BPF_F_NO_PREALLOC: u32 = 1;

/// One field of `REQUEST_OFFSETS`, read so that the compiler cannot fold in the placeholder.
macro_rules! offset {
    ($field:ident) => {
        unsafe { core::ptr::read_volatile(&raw const REQUEST_OFFSETS.$field) }
    };
}

/// How a program reads kernel memory.
trait Access {
    /// A `T` at `offset` bytes into the kernel object at `base`.
    fn at<T: Copy>(base: *const u8, offset: u32) -> Option<T>;
}

/// Direct loads: for BTF-typed pointers (`tp_btf`) at constant offsets.
struct Direct;

impl Access for Direct {
    #[inline(always)]
    fn at<T: Copy>(base: *const u8, offset: u32) -> Option<T> {
        if base.is_null() {
            return None;
        }
        Some(unsafe { core::ptr::read_volatile(base.add(offset as usize).cast::<T>()) })
    }
}

/// `bpf_probe_read_kernel` calls: for raw tracepoints, whose arguments are plain numbers.
struct ProbeRead;

impl Access for ProbeRead {
    #[inline(always)]
    fn at<T: Copy>(base: *const u8, offset: u32) -> Option<T> {
        if base.is_null() {
            return None;
        }
        unsafe { bpf_probe_read_kernel(base.wrapping_add(offset as usize).cast::<T>()) }.ok()
    }
}

/// `block_rq_complete(struct request *rq, blk_status_t error, unsigned int nr_bytes)` (`int
/// error` before 5.14; either way 0 is success).
#[btf_tracepoint(function = "block_rq_complete")]
pub fn block_rq_latency(ctx: BtfTracePointContext) -> i32 {
    let request: *const u8 = ctx.arg(0);
    let error: u64 = ctx.arg(1);
    if error == 0 {
        let _ = completed::<Direct>(request);
    }
    0
}

/// [`block_rq_latency`] for kernels that refuse it.
#[raw_tracepoint(tracepoint = "block_rq_complete")]
pub fn block_rq_latency_probe_read(ctx: RawTracePointContext) -> i32 {
    let request: *const u8 = ctx.arg(0);
    let error: u64 = ctx.arg(1);
    if error == 0 {
        let _ = completed::<ProbeRead>(request);
    }
    0
}

/// The device number of the request's device.
#[inline(always)]
fn request_dev<A: Access>(request: *const u8) -> Option<u32> {
    // Constants to the verifier: it follows only the branch this kernel's layout takes.
    if offset!(part) != NO_OFFSET {
        let part: *const u8 = A::at(request, offset!(part))?;
        return A::at(part, offset!(part_dev));
    }
    let disk: *const u8 = if offset!(rq_disk) != NO_OFFSET {
        A::at(request, offset!(rq_disk))?
    } else {
        let queue: *const u8 = A::at(request, offset!(queue))?;
        A::at(queue, offset!(queue_disk))?
    };
    // gendisk's `int major; int first_minor;`
    let major: u32 = A::at(disk, offset!(disk_major))?;
    let first_minor: u32 = A::at(disk, offset!(disk_major) + 4)?;
    Some(kernel_dev(major, first_minor))
}

/// The histograms of `dev` if it is measured. The filter word settles nearly every device
/// that is not; a shared bit falls through to the hash lookup.
#[inline(always)]
fn measured(dev: u32) -> Option<*mut PathLatency> {
    let (word, mask) = latency_filter_slot(dev);
    if *LATENCY_FILTER.get(word)? & mask == 0 {
        return None;
    }
    PATH_LATENCY.get_ptr_mut(&dev)
}

/// A successful completion: `Option` only to end early with `?`.
#[inline(always)]
fn completed<A: Access>(request: *const u8) -> Option<()> {
    let latency = measured(request_dev::<A>(request)?)?;
    let operation = A::at::<u32>(request, offset!(cmd_flags))? & 0xff;
    let started: u64 = A::at(request, offset!(start_time_ns))?;
    if started == 0 || operation > 1 {
        return None; // no time taken for it (iostats off), or neither a read nor a write
    }
    add(latency, operation, started)
}

/// Add the latency of a request of `operation` (0 read, 1 write) started at `started` (ns,
/// the kernel's monotonic clock) to `latency`.
#[inline(always)]
fn add(latency: *mut PathLatency, operation: u32, started: u64) -> Option<()> {
    let now = unsafe { bpf_ktime_get_ns() };
    if now <= started {
        return None;
    }
    let elapsed = now - started;
    let latency = unsafe { &mut *latency };
    let histogram = if operation == 0 {
        &mut latency.read
    } else {
        &mut latency.write
    };
    // Per-CPU: plain adds. The bounds check is for the verifier.
    let bucket = latency_bucket(elapsed);
    if bucket < LATENCY_BUCKETS {
        histogram.buckets[bucket] += 1;
    }
    histogram.sum_ns += elapsed;
    Some(())
}

/// The per-request alternative, issue side: `block_rq_issue(struct request *rq)` (5.11 and
/// later; the bench runs it on the host's kernel only).
#[btf_tracepoint(function = "block_rq_issue")]
pub fn block_rq_issue_stamp(ctx: BtfTracePointContext) -> i32 {
    let request: *const u8 = ctx.arg(0);
    let _ = issued(request);
    0
}

#[inline(always)]
fn issued(request: *const u8) -> Option<()> {
    let dev = request_dev::<Direct>(request)?;
    measured(dev)?;
    let operation = Direct::at::<u32>(request, offset!(cmd_flags))? & 0xff;
    if operation > 1 {
        return None;
    }
    let start = RequestStart {
        started_ns: unsafe { bpf_ktime_get_ns() },
        dev,
        operation,
    };
    REQUEST_STARTS.insert(&(request as u64), &start, 0).ok()
}

/// The per-request alternative, completion side: every completion looks its request up.
#[btf_tracepoint(function = "block_rq_complete")]
pub fn block_rq_latency_per_request(ctx: BtfTracePointContext) -> i32 {
    let request: *const u8 = ctx.arg(0);
    let error: u64 = ctx.arg(1);
    let _ = completed_per_request(request as u64, error);
    0
}

#[inline(always)]
fn completed_per_request(key: u64, error: u64) -> Option<()> {
    let start = *unsafe { REQUEST_STARTS.get(&key) }?;
    let _ = REQUEST_STARTS.remove(&key);
    if error != 0 {
        return None;
    }
    add(
        PATH_LATENCY.get_ptr_mut(&start.dev)?,
        start.operation,
        start.started_ns,
    )
}
