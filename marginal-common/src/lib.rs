//! Types shared by the eBPF programs (`marginal-ebpf`) and the daemon (`marginal-user`).
//!
//! Everything here is `#[repr(C)]` plain data: the kernel side writes it into BPF maps and the
//! ring buffer, the user side reads the same bytes back. Keep field order and sizes in step on
//! both sides; nothing here may allocate or depend on `std`.
#![no_std]

/// Name of the map of watched path devices (key: kernel `dev_t`, value: [`PathRecord`]).
pub const WATCHED_MAP: &str = "WATCHED";
/// Name of the ring buffer carrying [`PathEvent`]s to user space.
pub const EVENTS_MAP: &str = "EVENTS";
/// Name of the one-entry array holding the [`TracepointLayout`] read from tracefs at load time
/// (used only by [`BLOCK_ERROR_TRACEFS_LAYOUT_PROGRAM`]).
pub const LAYOUT_MAP: &str = "LAYOUT";
/// Name of the map counting dm-mpath's own path transitions for every path (key: kernel `dev_t`).
pub const DM_TRANSITIONS_MAP: &str = "DM_TRANSITIONS";
/// Name of the one-entry array counting events the ring buffer had no room for.
pub const EVENTS_LOST_MAP: &str = "EVENTS_LOST";
/// Name of the map of what user space is doing to each watched path (key: kernel `dev_t`,
/// value: [`PathControl`]). Only user space writes it, so its writes never race the kernel's
/// counters in [`WATCHED_MAP`].
pub const CONTROL_MAP: &str = "CONTROL";

/// Name of the per-CPU map of latency histograms (key: kernel `dev_t`, value: [`PathLatency`]).
/// User space adds an entry for each watched path with latency measuring on: the entry is
/// the switch. [`LATENCY_FILTER_MAP`] in front of it spares the other devices the lookup.
pub const LATENCY_MAP: &str = "PATH_LATENCY";
/// Name of the array of [`LATENCY_FILTER_WORDS`] 64-bit words with a bit set for every device
/// in [`LATENCY_MAP`] (see [`latency_filter_slot`]): an array lookup, which the verifier
/// inlines, tells almost every device that is not measured to stop before the hash lookup.
pub const LATENCY_FILTER_MAP: &str = "LATENCY_FILTER";
/// Name of the read-only global holding the [`RequestLayout`] read from kernel BTF, set
/// before the object is loaded: the verifier sees its fields as constants, which the
/// `tp_btf` program needs for its direct loads from `struct request`.
pub const REQUEST_OFFSETS_GLOBAL: &str = "REQUEST_OFFSETS";
/// The latency program: a BTF tracepoint (`tp_btf`) on `block_rq_complete`, which reads the
/// completing request's own start time (`struct request`'s `start_time_ns`) with direct loads,
/// so no per-request map and nothing on issue.
pub const LATENCY_PROGRAM: &str = "block_rq_latency";
/// The same as a raw tracepoint reading the request through `bpf_probe_read_kernel`: loaded
/// only where the kernel refuses [`LATENCY_PROGRAM`].
pub const LATENCY_PROBE_READ_PROGRAM: &str = "block_rq_latency_probe_read";
/// The alternative the comparison in `marginal-bench latency-cost` measures, not used by the
/// daemon: the start time taken on `block_rq_issue` (program [`LATENCY_ISSUE_PROGRAM`]) into a
/// hash map keyed by the request's address, looked up and deleted at completion.
pub const LATENCY_PER_REQUEST_PROGRAM: &str = "block_rq_latency_per_request";
pub const LATENCY_ISSUE_PROGRAM: &str = "block_rq_issue_stamp";

/// Words of [`LATENCY_FILTER_MAP`] (64 Ki bits).
pub const LATENCY_FILTER_WORDS: u32 = 1024;

/// Where device `dev`'s bit lives in [`LATENCY_FILTER_MAP`]: (word, mask). A multiplicative
/// hash, so that the minors of one SCSI major (16 apart) spread over different words.
#[inline(always)]
pub const fn latency_filter_slot(dev: u32) -> (u32, u64) {
    let bit = dev.wrapping_mul(0x9e37_79b1) >> 16;
    ((bit >> 6) % LATENCY_FILTER_WORDS, 1 << (bit & 63))
}

/// Program names inside the eBPF object. The block error program comes in two variants, of
/// which user space loads one: [`BLOCK_ERROR_PROGRAM`] when the tracepoint's record matches
/// [`COMPILED_IN_LAYOUT`], [`BLOCK_ERROR_TRACEFS_LAYOUT_PROGRAM`] otherwise.
pub const BLOCK_ERROR_PROGRAM: &str = "block_rq_failed";
pub const BLOCK_ERROR_TRACEFS_LAYOUT_PROGRAM: &str = "block_rq_failed_tracefs_layout";
/// The variant for kernels before 5.12, whose verifier knows no atomic exchange: offsets from
/// tracefs, and the episode boundary a plain read and write (one burst completing on several
/// CPUs at once may count as two failures there). Loaded only when the others are refused.
pub const BLOCK_ERROR_LEGACY_PROGRAM: &str = "block_rq_failed_legacy";
pub const DM_PATH_UEVENT_PROGRAM: &str = "dm_path_uevent";

/// Most paths one daemon watches; sized for large SAN hosts (see BENCHMARKS.md).
pub const MAX_WATCHED_PATHS: u32 = 16384;
/// Ring buffer size in bytes (a power of two and a multiple of the page size).
pub const EVENTS_RING_BYTES: u32 = 256 * 1024;

/// Bits of the minor number in the kernel's internal `dev_t` (`MINORBITS`), which is what block
/// tracepoints and dm report. User space's `st_rdev` uses a different encoding.
pub const KERNEL_MINOR_BITS: u32 = 20;

/// The kernel-internal `dev_t` of `major:minor`.
pub const fn kernel_dev(major: u32, minor: u32) -> u32 {
    (major << KERNEL_MINOR_BITS) | (minor & ((1 << KERNEL_MINOR_BITS) - 1))
}

/// `(major, minor)` of a kernel-internal `dev_t`.
pub const fn kernel_dev_split(dev: u32) -> (u32, u32) {
    (
        dev >> KERNEL_MINOR_BITS,
        dev & ((1 << KERNEL_MINOR_BITS) - 1),
    )
}

/// Where the fields the error program needs sit in the block tracepoint's record. Read from
/// `/sys/kernel/tracing/events/block/<name>/format` at load time: the offsets moved between
/// kernel versions, so the program only relies on compiled-in ones ([`COMPILED_IN_LAYOUT`])
/// after user space has checked that this kernel has them.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TracepointLayout {
    /// Offset of `dev_t dev`.
    pub dev_offset: u32,
    /// Offset of `int error`.
    pub error_offset: u32,
}

/// The layout of `block:block_rq_error` and `block:block_rq_complete` (one event class) in the
/// kernel sources since block_rq_error exists (5.18) and in the kernels marginal is tested on
/// (6.1, 6.12, 6.18): `dev` at 8, `error` at 28 (the `ioprio` field added later came after
/// them). Compiled into the fast variant of the error program, which user space loads only
/// when tracefs reports this layout; any other layout gets the variant that reads the offsets
/// from [`LAYOUT_MAP`].
pub const COMPILED_IN_LAYOUT: TracepointLayout = TracepointLayout {
    dev_offset: 8,
    error_offset: 28,
};

/// Most paths whose latency is measured at once (the latency map's size; its entries are
/// allocated only when added, so an unused capacity costs nothing).
pub const MAX_LATENCY_PATHS: u32 = 4096;
/// Buckets of a [`LatencyHistogram`]: powers of two of nanoseconds, from below 2 µs to 137 s
/// and above.
pub const LATENCY_BUCKETS: usize = 28;
/// log2 of the first bucket's lower bound: bucket 0 holds latencies below
/// 2^(LATENCY_FIRST_SHIFT + 1) ns, bucket `i` (0 < i < last) those in
/// [2^(i + LATENCY_FIRST_SHIFT), 2^(i + LATENCY_FIRST_SHIFT + 1)), the last everything above.
pub const LATENCY_FIRST_SHIFT: u32 = 10;

/// The bucket of a latency of `ns` nanoseconds (see [`LATENCY_FIRST_SHIFT`]). Branch-light
/// and loop-free so that the verifier of old kernels takes it as is.
#[inline(always)]
pub const fn latency_bucket(ns: u64) -> usize {
    let log2 = 63 - (ns | 1).leading_zeros();
    if log2 <= LATENCY_FIRST_SHIFT {
        0
    } else if log2 - LATENCY_FIRST_SHIFT >= LATENCY_BUCKETS as u32 - 1 {
        LATENCY_BUCKETS - 1
    } else {
        (log2 - LATENCY_FIRST_SHIFT) as usize
    }
}

/// The upper bound in nanoseconds of bucket `i` (exclusive); `None` for the last, unbounded one.
pub const fn latency_bucket_upper_ns(i: usize) -> Option<u64> {
    if i + 1 >= LATENCY_BUCKETS {
        None
    } else {
        Some(1 << (i as u32 + LATENCY_FIRST_SHIFT + 1))
    }
}

/// Completed requests of one direction on one path, by latency (from the request's start to
/// its completion), on one CPU; user space adds the CPUs up.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LatencyHistogram {
    /// Sum of the latencies counted, in nanoseconds. First, so that it shares a cache line
    /// with the low buckets, where a healthy path's requests land: one line per I/O.
    pub sum_ns: u64,
    pub buckets: [u64; LATENCY_BUCKETS],
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self {
            buckets: [0; LATENCY_BUCKETS],
            sum_ns: 0,
        }
    }
}

impl LatencyHistogram {
    /// Requests counted.
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// Add `other`'s counts (another CPU's) to this one.
    pub fn add(&mut self, other: &Self) {
        for (mine, theirs) in self.buckets.iter_mut().zip(other.buckets.iter()) {
            *mine = mine.wrapping_add(*theirs);
        }
        self.sum_ns = self.sum_ns.wrapping_add(other.sum_ns);
    }
}

/// A path's successful reads and writes, by latency. Other requests (flushes, discards) and
/// failed ones are not counted: their time says nothing about the path's speed.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PathLatency {
    pub read: LatencyHistogram,
    pub write: LatencyHistogram,
}

impl PathLatency {
    pub fn add(&mut self, other: &Self) {
        self.read.add(&other.read);
        self.write.add(&other.write);
    }
}

/// Where the latency program finds what it needs from a completing `struct request`, read
/// from the kernel's BTF at load time (the layouts differ between kernels and configurations).
/// The device is `request.part->bd_dev` where the request points to its `block_device`
/// (5.11 and later), else the request's disk: `request.rq_disk` before 5.16 (with `part` an
/// `hd_struct`), `request.q->disk` after.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestLayout {
    /// Offset of `request.part`, or [`NO_OFFSET`] if it is no `struct block_device *`.
    pub part: u32,
    /// Offset of `block_device.bd_dev` (with `part`).
    pub part_dev: u32,
    /// Offset of `request.rq_disk` (kernels before 5.16), or [`NO_OFFSET`].
    pub rq_disk: u32,
    /// Offset of `request.q`.
    pub queue: u32,
    /// Offset of `request_queue.disk` (5.16 and later), or [`NO_OFFSET`].
    pub queue_disk: u32,
    /// Offset of `gendisk.major`; `first_minor` is the `int` right after it.
    pub disk_major: u32,
    /// Offset of `request.cmd_flags` (its low 8 bits are the operation: 0 read, 1 write).
    pub cmd_flags: u32,
    /// Offset of `request.start_time_ns` (0 in the request when the kernel took no time).
    pub start_time_ns: u32,
}

impl RequestLayout {
    /// What the object holds until user space sets the kernel's layout: nothing known.
    pub const UNKNOWN: Self = Self {
        part: NO_OFFSET,
        part_dev: NO_OFFSET,
        rq_disk: NO_OFFSET,
        queue: NO_OFFSET,
        queue_disk: NO_OFFSET,
        disk_major: NO_OFFSET,
        cmd_flags: NO_OFFSET,
        start_time_ns: NO_OFFSET,
    };
}

impl Default for RequestLayout {
    fn default() -> Self {
        Self::UNKNOWN
    }
}

/// A [`RequestLayout`] field this kernel does not have.
pub const NO_OFFSET: u32 = u32::MAX;

/// Per-path settings written by user space when it starts watching a path (and again only
/// when they change: rewriting the record can lose an increment the kernel makes meanwhile).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WatchSettings {
    /// Two failures at most this far apart raise a [`EventKind::DoubleFailure`]
    /// (`marginal_path_double_failed_time`).
    pub window_ns: u64,
    /// Block-layer errors closer together than this belong to one failure episode (only for
    /// paths without [`WATCH_DM_REPORTED`]).
    pub episode_gap_ns: u64,
    /// `WATCH_*` bits.
    pub flags: u64,
}

/// dm-mpath reports this path's transitions (the kprobe, or PATH_FAILED uevents that user
/// space feeds in): its PATH_FAILED transitions are the path's failures and block-layer errors
/// are only counted, never failures. Without it (`--watch` devices) block-layer errors are
/// grouped into failure episodes.
pub const WATCH_DM_REPORTED: u64 = 1;

/// The kernel's `blk_path_error()`: whether a failed request's status could be the path's
/// fault, so that dm-mpath fails the path for it. `errno` is the tracepoint's `error` field,
/// `blk_status_to_errno()` of the status (negative). Not-supported (EOPNOTSUPP), no-space
/// (ENOSPC), target (EREMOTEIO), reservation conflict / nexus (EBADE), medium (ENODATA) and
/// protection (EILSEQ) errors are the device's answer, the same on every path: dm-mpath does
/// not fail a path for them, and neither does marginal. Those errno values have meant those
/// statuses in every kernel since blk_status_t exists (4.13).
pub const fn is_path_error(errno: i32) -> bool {
    !matches!(
        errno,
        ERRNO_EOPNOTSUPP
            | ERRNO_ENOSPC
            | ERRNO_EREMOTEIO
            | ERRNO_EBADE
            | ERRNO_ENODATA
            | ERRNO_EILSEQ
    )
}

const ERRNO_EOPNOTSUPP: i32 = -95;
const ERRNO_ENOSPC: i32 = -28;
const ERRNO_EREMOTEIO: i32 = -121;
const ERRNO_EBADE: i32 = -52;
const ERRNO_ENODATA: i32 = -61;
const ERRNO_EILSEQ: i32 = -84;

/// What user space is doing to a watched path right now, so that the kernel does not count
/// marginal's own work as the path's failures. Written only by user space ([`CONTROL_MAP`]).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PathControl {
    /// Non-zero while marginal samples the path: its block-layer errors are not failures.
    pub sampling: u64,
    /// marginal is failing the path itself: one PATH_FAILED before this time
    /// (`CLOCK_MONOTONIC` ns) is its own action, counted in [`PathRecord::own_fails`]. 0: none.
    pub own_fail_until_ns: u64,
    /// The path's last return to service (a passed check, a recovery): a failure before it
    /// never pairs with a later one. 0: never returned.
    pub fence_ns: u64,
}

/// A watched path: its settings and what the kernel counted for it. All times are
/// `bpf_ktime_get_ns()`, i.e. `CLOCK_MONOTONIC` nanoseconds.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PathRecord {
    pub settings: WatchSettings,
    /// Failed block requests on the path device, whoever issued them.
    pub io_errors: u64,
    /// Of those, errors that are not path errors ([`is_path_error`]): never failures.
    pub non_path_errors: u64,
    /// Failure transitions: dm-mpath's PATH_FAILED for [`WATCH_DM_REPORTED`] paths, block-layer
    /// error episodes for the others. marginal's own fails and reads are never among them.
    pub failures: u64,
    /// PATH_FAILED transitions that were marginal's own action (see [`PathControl`]).
    pub own_fails: u64,
    /// dm-mpath reinstatements of the path.
    pub reinstates: u64,
    /// Double failures reported to user space.
    pub double_failures: u64,
    /// Time of the last block-layer error that counts for episodes; 0 before the first.
    pub last_error_ns: u64,
    /// Time of the last failure; 0 before the first.
    pub last_failure_ns: u64,
    /// Start of the current double-failure window (the time of its first failure); 0 if none.
    pub window_start_ns: u64,
    /// The [`PathControl::own_fail_until_ns`] already taken by a PATH_FAILED, so that one
    /// announcement covers one transition.
    pub own_fail_taken_ns: u64,
}

impl PathRecord {
    /// A fresh record for a newly watched path.
    pub const fn new(settings: WatchSettings) -> Self {
        Self {
            settings,
            io_errors: 0,
            non_path_errors: 0,
            failures: 0,
            own_fails: 0,
            reinstates: 0,
            double_failures: 0,
            last_error_ns: 0,
            last_failure_ns: 0,
            window_start_ns: 0,
            own_fail_taken_ns: 0,
        }
    }
}

/// dm-mpath's own transitions for one path, counted for every path the kprobe sees.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DmTransitions {
    pub failed: u64,
    pub reinstated: u64,
    /// The map's valid path count reported with the latest transition.
    pub valid_paths: u32,
    pub _pad: u32,
}

/// What a [`PathEvent`] reports.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// A watched path failed for the second time within its window.
    DoubleFailure = 1,
    /// dm-mpath failed a path (any path, watched or not).
    DmPathFailed = 2,
    /// dm-mpath reinstated a path (any path, watched or not).
    DmPathReinstated = 3,
}

impl EventKind {
    pub const fn from_u32(value: u32) -> Option<Self> {
        match value {
            1 => Some(Self::DoubleFailure),
            2 => Some(Self::DmPathFailed),
            3 => Some(Self::DmPathReinstated),
            _ => None,
        }
    }
}

/// Which kernel signal saw a failure.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureSource {
    /// A block-layer error episode on the path device.
    BlockError = 1,
    /// dm-mpath's `dm_path_uevent` (PATH_FAILED).
    DmPath = 2,
    /// A PATH_FAILED that was marginal's own `fail path`: not a failure of the path.
    OwnAction = 3,
    /// A PATH_FAILED less than the episode gap after the path's last failure: the same outage
    /// (multipathd reinstating a path from a stale checker state right after dm failed it, and
    /// the next I/O failing it again), not a second failure.
    SameOutage = 4,
}

impl FailureSource {
    pub const fn from_u32(value: u32) -> Option<Self> {
        match value {
            1 => Some(Self::BlockError),
            2 => Some(Self::DmPath),
            3 => Some(Self::OwnAction),
            4 => Some(Self::SameOutage),
            _ => None,
        }
    }
}

/// One ring-buffer record.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PathEvent {
    /// An [`EventKind`] as `u32`.
    pub kind: u32,
    /// Kernel-internal `dev_t` of the path.
    pub dev: u32,
    /// When it happened (`CLOCK_MONOTONIC` ns).
    pub time_ns: u64,
    /// For a double failure: the first failure of the window.
    pub window_start_ns: u64,
    /// The path's failure count including this one (0 for unwatched dm events).
    pub failures: u64,
    /// For dm events: the map's valid paths after the transition.
    pub valid_paths: u32,
    /// A [`FailureSource`] as `u32` (the signal behind the latest failure).
    pub source: u32,
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: all of these are `#[repr(C)]`, `Copy`, made of integers, without padding holes
    // that could leak uninitialised bytes (sizes are multiples of 8 and fields are aligned).
    unsafe impl aya::Pod for super::TracepointLayout {}
    unsafe impl aya::Pod for super::WatchSettings {}
    unsafe impl aya::Pod for super::PathRecord {}
    unsafe impl aya::Pod for super::PathControl {}
    unsafe impl aya::Pod for super::DmTransitions {}
    unsafe impl aya::Pod for super::PathEvent {}
    unsafe impl aya::Pod for super::LatencyHistogram {}
    unsafe impl aya::Pod for super::PathLatency {}
    unsafe impl aya::Pod for super::RequestLayout {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_dev_round_trips() {
        let dev = kernel_dev(7, 3);
        assert_eq!(dev, (7 << 20) | 3);
        assert_eq!(kernel_dev_split(dev), (7, 3));
        assert_eq!(kernel_dev_split(kernel_dev(254, 1048575)), (254, 1048575));
    }

    /// Every `blk_status_t` the kernel has, by the errno `blk_status_to_errno()` gives it
    /// (block/blk-core.c's table), against `blk_path_error()` (include/linux/blk_types.h).
    #[test]
    fn path_errors_follow_blk_path_error() {
        let statuses: [(&str, i32, bool); 19] = [
            ("BLK_STS_NOTSUPP", -95, false),
            ("BLK_STS_TIMEOUT", -110, true),
            ("BLK_STS_NOSPC", -28, false),
            ("BLK_STS_TRANSPORT", -67, true),
            ("BLK_STS_TARGET", -121, false),
            ("BLK_STS_RESV_CONFLICT (NEXUS)", -52, false),
            ("BLK_STS_MEDIUM", -61, false),
            ("BLK_STS_PROTECTION", -84, false),
            ("BLK_STS_RESOURCE", -12, true),
            ("BLK_STS_IOERR", -5, true),
            ("BLK_STS_DM_REQUEUE (EREMCHG)", -78, true),
            ("BLK_STS_AGAIN", -11, true),
            ("BLK_STS_DEV_RESOURCE", -16, true),
            ("BLK_STS_ZONE_OPEN_RESOURCE (ETOOMANYREFS)", -109, true),
            ("BLK_STS_ZONE_ACTIVE_RESOURCE (EOVERFLOW)", -75, true),
            ("BLK_STS_OFFLINE", -19, true),
            ("BLK_STS_DURATION_LIMIT", -62, true),
            ("BLK_STS_INVAL", -22, true),
            ("an errno no status maps to", -1, true),
        ];
        for (status, errno, path_error) in statuses {
            assert_eq!(is_path_error(errno), path_error, "{status} ({errno})");
        }
    }

    #[test]
    fn event_layout_is_stable() {
        assert_eq!(core::mem::size_of::<PathEvent>(), 40);
        assert_eq!(core::mem::size_of::<PathRecord>(), 104);
        assert_eq!(core::mem::size_of::<PathControl>(), 24);
        assert_eq!(EventKind::from_u32(1), Some(EventKind::DoubleFailure));
        assert_eq!(EventKind::from_u32(9), None);
        assert_eq!(FailureSource::from_u32(2), Some(FailureSource::DmPath));
        assert_eq!(
            core::mem::size_of::<PathLatency>(),
            2 * 8 * (LATENCY_BUCKETS + 1)
        );
        assert_eq!(core::mem::size_of::<RequestLayout>(), 32);
    }

    #[test]
    fn latency_filter_slots_spread_scsi_disks() {
        // sda..sdp and the first disks of the next SCSI majors: no two share a bit, and
        // the words stay in the map.
        let mut seen = [(0u32, 0u64); 48];
        let mut n = 0;
        for major in [8, 65, 66] {
            for disk in 0..16 {
                let slot = latency_filter_slot(kernel_dev(major, disk * 16));
                assert!(slot.0 < LATENCY_FILTER_WORDS);
                assert_eq!(slot.1.count_ones(), 1);
                assert!(
                    !seen[..n].contains(&slot),
                    "{major}:{} shares a bit",
                    disk * 16
                );
                seen[n] = slot;
                n += 1;
            }
        }
        assert_eq!(latency_filter_slot(7), latency_filter_slot(7));
    }

    #[test]
    fn latency_buckets_are_powers_of_two() {
        assert_eq!(latency_bucket(0), 0);
        assert_eq!(latency_bucket(2047), 0);
        assert_eq!(latency_bucket(2048), 1);
        assert_eq!(latency_bucket(4095), 1);
        assert_eq!(latency_bucket(1_000_000), 9); // 1 ms: 2^19 <= 1e6 < 2^20
        assert_eq!(latency_bucket(u64::MAX), LATENCY_BUCKETS - 1);
        for i in 0..LATENCY_BUCKETS - 1 {
            let upper = latency_bucket_upper_ns(i).unwrap();
            assert_eq!(latency_bucket(upper - 1), i, "bucket {i}");
            assert_eq!(latency_bucket(upper), i + 1, "bucket {i}");
        }
        assert_eq!(latency_bucket_upper_ns(LATENCY_BUCKETS - 1), None);
    }
}
