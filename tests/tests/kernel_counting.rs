//! The eBPF programs on the real kernel: failures injected into real flaky loop devices are
//! counted exactly, grouped into episodes, and a double failure reaches user space through the
//! ring buffer. Needs root (eBPF, loop devices, FUSE). Each scenario runs against both
//! variants of the block error program: this kernel gets the one with the record offsets
//! compiled in, kernels with another layout get the one that reads them from tracefs.
use std::time::Duration;

use marginal::kernel::{BlockErrorProgram, EventStream, KernelEvent, KernelProbes};
use marginal_common::{
    BLOCK_ERROR_PROGRAM, BLOCK_ERROR_TRACEFS_LAYOUT_PROGRAM, FailureSource, PathRecord,
    WATCH_DM_REPORTED, WatchSettings, is_path_error,
};
use marginal_tests::{
    FlakyDevice, FlakyOptions, Schedule, read_direct, read_direct_at, require_root, sample_offset,
};

const SECOND: u64 = 1_000_000_000;

fn setup(program: BlockErrorProgram) -> (KernelProbes, FlakyDevice) {
    require_root().expect("kernel counting tests need root");
    let probes =
        KernelProbes::load_with_block_program(program).expect("loading marginal's eBPF programs");
    assert_eq!(probes.signals().block_program, program);
    let device = FlakyDevice::create(FlakyOptions::default()).expect("creating a flaky device");
    (probes, device)
}

fn record(probes: &KernelProbes, device: &FlakyDevice) -> PathRecord {
    probes
        .record(device.kernel_dev())
        .expect("the watched device has a record")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The probes' event stream, made in `rt` (the runtime [`events_for`] must be given).
fn event_stream(rt: &tokio::runtime::Runtime, probes: &mut KernelProbes) -> EventStream {
    rt.block_on(async { EventStream::new(probes.take_events().unwrap()) })
        .unwrap()
}

/// Events for `dev` arriving within `wait`. `rt` must be the runtime the stream was made in.
fn events_for(
    rt: &tokio::runtime::Runtime,
    events: &mut EventStream,
    dev: u32,
    wait: Duration,
) -> Vec<KernelEvent> {
    rt.block_on(async {
        let mut seen = Vec::new();
        let deadline = tokio::time::Instant::now() + wait;
        while let Ok(batch) = tokio::time::timeout_at(deadline, events.next_batch()).await {
            seen.extend(batch.unwrap().into_iter().filter(|e| e.dev() == dev));
        }
        seen
    })
}

/// A `#[test]` for each variant of the block error program, in a module named after the scenario.
macro_rules! test_both_programs {
    ($($scenario:ident),* $(,)?) => {
        $(mod $scenario {
            use super::BlockErrorProgram;

            #[test]
            fn compiled_in_layout() {
                super::$scenario(BlockErrorProgram::CompiledInLayout);
            }

            #[test]
            fn tracefs_layout() {
                super::$scenario(BlockErrorProgram::TracefsLayout);
            }
        })*
    };
}

test_both_programs!(
    every_injected_error_is_counted_exactly,
    errors_close_together_are_one_failure_episode,
    two_failures_within_the_window_raise_one_event,
    failures_outside_the_window_raise_nothing_and_restart_it,
    unwatched_devices_are_not_counted,
    rewatching_changes_settings_and_keeps_counts,
    errors_of_a_dm_reported_path_are_counted_never_failures,
    non_path_errors_are_counted_and_start_nothing,
    errors_while_marginal_samples_start_nothing,
    a_failure_from_before_the_fence_never_pairs,
    one_burst_on_two_cpus_is_one_failure,
);

/// `count` O_DIRECT reads of `device`, at non-adjacent offsets; returns the errno of each
/// failed one (any error: non-path errors reach the reader as their own errno).
fn read_errors(device: &FlakyDevice, count: usize) -> Vec<i32> {
    (0..count)
        .filter_map(|i| {
            read_direct_at(device.loop_path(), sample_offset(i, device.size_bytes()))
                .err()
                .map(|e| e.raw_os_error().expect("an OS error"))
        })
        .collect()
}

fn watch_settings(window_ns: u64, episode_gap_ns: u64, flags: u64) -> WatchSettings {
    WatchSettings {
        window_ns,
        episode_gap_ns,
        flags,
    }
}

/// A dm path's failures are dm-mpath's transitions: a dead path read again and again (by
/// multipathd's checker, blkid, the sampler) stays one failure, here none at all.
fn errors_of_a_dm_reported_path_are_counted_never_failures(program: BlockErrorProgram) {
    let (mut probes, device) = setup(program);
    let rt = runtime();
    let mut events = event_stream(&rt, &mut probes);
    let dev = device.kernel_dev();
    probes
        .watch(dev, watch_settings(60 * SECOND, 0, WATCH_DM_REPORTED))
        .unwrap();
    device.set_schedule(Schedule::FailAll);
    for _ in 0..5 {
        assert_eq!(read_direct(&device, 4), (0, 4));
        std::thread::sleep(Duration::from_millis(20));
    }
    let record = record(&probes, &device);
    assert_eq!(record.io_errors, 20);
    assert_eq!((record.failures, record.double_failures), (0, 0));
    assert!(
        events_for(&rt, &mut events, dev, Duration::from_millis(300)).is_empty(),
        "block errors of a dm path raise nothing"
    );
}

/// `blk_path_error()`'s rule on the real kernel: the loop device turns the flaky file's errno
/// into the block status `errno_to_blk_status()` gives it, and the tracepoint reports it.
fn non_path_errors_are_counted_and_start_nothing(program: BlockErrorProgram) {
    let (mut probes, device) = setup(program);
    let dev = device.kernel_dev();
    // No episode gap, a long window: two path errors would be a double failure.
    probes
        .watch(dev, watch_settings(60 * SECOND, 0, 0))
        .unwrap();
    device.set_schedule(Schedule::FailAll);
    let non_path = [
        libc::ENODATA,    // BLK_STS_MEDIUM
        libc::ENOSPC,     // BLK_STS_NOSPC
        libc::EOPNOTSUPP, // BLK_STS_NOTSUPP
        libc::EREMOTEIO,  // BLK_STS_TARGET
        libc::EBADE,      // BLK_STS_RESV_CONFLICT
        libc::EILSEQ,     // BLK_STS_PROTECTION
    ];
    for (i, errno) in non_path.into_iter().enumerate() {
        assert!(!is_path_error(-errno));
        device.set_error(errno);
        let seen = read_errors(&device, 3);
        assert_eq!(seen, vec![errno; 3], "the reader sees the device's answer");
        let record = record(&probes, &device);
        let counted = 3 * (i as u64 + 1);
        assert_eq!(
            (record.io_errors, record.non_path_errors),
            (counted, counted),
            "errno {errno}"
        );
        assert_eq!(record.failures, 0, "errno {errno} failed the path");
    }
    // A path error now is the first failure.
    device.set_error(libc::EIO);
    assert_eq!(read_errors(&device, 1), vec![libc::EIO]);
    assert_eq!(record(&probes, &device).failures, 1);
}

/// marginal's own sampling reads of a `--watch` device never fail it.
fn errors_while_marginal_samples_start_nothing(program: BlockErrorProgram) {
    let (mut probes, device) = setup(program);
    let dev = device.kernel_dev();
    probes
        .watch(dev, watch_settings(60 * SECOND, 0, 0))
        .unwrap();
    probes.control(dev, |c| c.sampling = 1).unwrap();
    device.set_schedule(Schedule::FailAll);
    assert_eq!(read_direct(&device, 10), (0, 10));
    let during = record(&probes, &device);
    assert_eq!((during.io_errors, during.failures), (10, 0));
    probes.control(dev, |c| c.sampling = 0).unwrap();
    assert_eq!(read_direct(&device, 1), (0, 1));
    assert_eq!(record(&probes, &device).failures, 1);
}

/// A failure from before the path's last return to service never pairs with a later one.
fn a_failure_from_before_the_fence_never_pairs(program: BlockErrorProgram) {
    let (mut probes, device) = setup(program);
    let rt = runtime();
    let mut events = event_stream(&rt, &mut probes);
    let dev = device.kernel_dev();
    probes
        .watch(dev, watch_settings(60 * SECOND, 0, 0))
        .unwrap();
    device.set_schedule(Schedule::FailAll);
    assert_eq!(read_direct(&device, 1), (0, 1));
    let returned = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).unwrap();
    let returned_ns = returned.tv_sec() as u64 * SECOND + returned.tv_nsec() as u64;
    probes.control(dev, |c| c.fence_ns = returned_ns).unwrap();
    assert_eq!(read_direct(&device, 1), (0, 1));
    let after = record(&probes, &device);
    assert_eq!((after.failures, after.double_failures), (2, 0));
    assert!(events_for(&rt, &mut events, dev, Duration::from_millis(300)).is_empty());
    // A third failure pairs with the second, which is after the fence.
    assert_eq!(read_direct(&device, 1), (0, 1));
    assert_eq!(record(&probes, &device).double_failures, 1);
    let seen = events_for(&rt, &mut events, dev, Duration::from_secs(2));
    assert!(
        matches!(seen.as_slice(), [KernelEvent::DoubleFailure { first_ns, .. }] if *first_ns > returned_ns),
        "{seen:?}"
    );
}

/// Errors of one burst completing on both CPUs at once are one failure: the episode boundary
/// is an atomic exchange in the kernel program.
fn one_burst_on_two_cpus_is_one_failure(program: BlockErrorProgram) {
    let (mut probes, device) = setup(program);
    let dev = device.kernel_dev();
    probes
        .watch(dev, watch_settings(60 * SECOND, SECOND, 0))
        .unwrap();
    device.set_schedule(Schedule::FailAll);
    let cpus = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .max(2);
    const READS: usize = 64;
    let start = std::sync::Barrier::new(cpus);
    std::thread::scope(|scope| {
        for cpu in 0..cpus {
            let (device, start) = (&device, &start);
            scope.spawn(move || {
                let mut set = nix::sched::CpuSet::new();
                set.set(cpu % nix::sched::CpuSet::count()).unwrap();
                let _ = nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set);
                start.wait();
                let offsets =
                    (0..READS).map(|i| sample_offset(cpu * READS + i, device.size_bytes()));
                for offset in offsets {
                    assert!(read_direct_at(device.loop_path(), offset).is_err());
                }
            });
        }
    });
    let record = record(&probes, &device);
    assert_eq!(record.io_errors, (cpus * READS) as u64);
    assert_eq!(
        record.failures, 1,
        "one burst on {cpus} CPUs, well inside one episode gap"
    );
}

fn every_injected_error_is_counted_exactly(program: BlockErrorProgram) {
    let (mut probes, device) = setup(program);
    // No episode gap: every error is its own failure.
    let settings = WatchSettings {
        window_ns: 0,
        episode_gap_ns: 0,
        flags: 0,
    };
    probes.watch(device.kernel_dev(), settings).unwrap();
    device.set_schedule(Schedule::EveryNth(5));
    let (ok, failed) = read_direct(&device, 100);
    assert_eq!(
        (ok, failed),
        (80, 20),
        "the fixture failed a different number of reads"
    );
    let record = record(&probes, &device);
    assert_eq!(record.io_errors, 20);
    assert_eq!(record.failures, 20);
    assert_eq!(record.settings, settings);
    assert!(record.last_error_ns > 0);
}

fn errors_close_together_are_one_failure_episode(program: BlockErrorProgram) {
    let (mut probes, device) = setup(program);
    probes
        .watch(
            device.kernel_dev(),
            WatchSettings {
                window_ns: 0,
                // Generous: on a loaded machine one read of the flaky file can take a good part of
                // a second, and reads of one burst must stay closer than the gap.
                episode_gap_ns: 2 * SECOND,
                flags: 0,
            },
        )
        .unwrap();
    device.set_schedule(Schedule::FailAll);
    assert_eq!(read_direct(&device, 7), (0, 7));
    let first = record(&probes, &device);
    assert_eq!(
        (first.io_errors, first.failures),
        (7, 1),
        "a burst is one failure"
    );

    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(read_direct(&device, 3), (0, 3));
    let second = record(&probes, &device);
    assert_eq!(
        (second.io_errors, second.failures),
        (10, 2),
        "a gap starts a new episode"
    );
    assert_eq!(second.double_failures, 0, "window 0 never pairs failures");
}

fn two_failures_within_the_window_raise_one_event(program: BlockErrorProgram) {
    let (mut probes, device) = setup(program);
    let rt = runtime();
    let mut events = event_stream(&rt, &mut probes);
    probes
        .watch(
            device.kernel_dev(),
            WatchSettings {
                window_ns: 10 * SECOND,
                episode_gap_ns: SECOND / 5,
                flags: 0,
            },
        )
        .unwrap();
    device.set_schedule(Schedule::FailAll);
    read_direct(&device, 4); // episode 1
    std::thread::sleep(Duration::from_millis(400));
    read_direct(&device, 4); // episode 2: the double failure

    let seen = events_for(
        &rt,
        &mut events,
        device.kernel_dev(),
        Duration::from_secs(1),
    );
    assert_eq!(seen.len(), 1, "exactly one event: {seen:?}");
    let KernelEvent::DoubleFailure {
        first_ns,
        second_ns,
        failures,
        source,
        ..
    } = seen[0]
    else {
        panic!("expected a double failure, got {:?}", seen[0]);
    };
    assert_eq!(failures, 2);
    assert_eq!(source, FailureSource::BlockError);
    let apart = second_ns - first_ns;
    assert!(
        (300_000_000..2 * SECOND).contains(&apart),
        "the two failures were ~400 ms apart, event says {apart} ns"
    );
    let record = record(&probes, &device);
    assert_eq!(record.double_failures, 1);
    assert_eq!(
        record.window_start_ns, second_ns,
        "the second failure opens the next window"
    );
}

fn failures_outside_the_window_raise_nothing_and_restart_it(program: BlockErrorProgram) {
    let (mut probes, device) = setup(program);
    let rt = runtime();
    let mut events = event_stream(&rt, &mut probes);
    probes
        .watch(
            device.kernel_dev(),
            WatchSettings {
                window_ns: SECOND / 2,
                episode_gap_ns: SECOND / 10,
                flags: 0,
            },
        )
        .unwrap();
    device.set_schedule(Schedule::FailAll);
    read_direct(&device, 1); // t0
    std::thread::sleep(Duration::from_millis(800));
    read_direct(&device, 1); // outside the window: restarts it
    let quiet = events_for(
        &rt,
        &mut events,
        device.kernel_dev(),
        Duration::from_millis(300),
    );
    assert!(
        quiet.is_empty(),
        "no double failure outside the window: {quiet:?}"
    );
    assert_eq!(record(&probes, &device).failures, 2);

    // ~300 ms after the restarted window's start (and ~1.1 s after the first failure).
    read_direct(&device, 1);
    let seen = events_for(
        &rt,
        &mut events,
        device.kernel_dev(),
        Duration::from_secs(1),
    );
    assert_eq!(
        seen.len(),
        1,
        "the restarted window pairs failures 2 and 3: {seen:?}"
    );
    let record = record(&probes, &device);
    assert_eq!((record.failures, record.double_failures), (3, 1));
}

fn unwatched_devices_are_not_counted(program: BlockErrorProgram) {
    let (mut probes, watched) = setup(program);
    let unwatched = FlakyDevice::create(FlakyOptions::default()).unwrap();
    probes
        .watch(
            watched.kernel_dev(),
            WatchSettings {
                window_ns: SECOND,
                episode_gap_ns: 0,
                flags: 0,
            },
        )
        .unwrap();
    unwatched.set_schedule(Schedule::FailAll);
    assert_eq!(read_direct(&unwatched, 10), (0, 10));
    assert!(
        probes.record(unwatched.kernel_dev()).is_none(),
        "an unwatched device must get no record"
    );
    assert_eq!(record(&probes, &watched).io_errors, 0);

    // Unwatching drops the counters and stops counting.
    probes.unwatch(watched.kernel_dev()).unwrap();
    watched.set_schedule(Schedule::FailAll);
    read_direct(&watched, 3);
    assert!(probes.record(watched.kernel_dev()).is_none());
}

fn rewatching_changes_settings_and_keeps_counts(program: BlockErrorProgram) {
    let (mut probes, device) = setup(program);
    let first = WatchSettings {
        window_ns: SECOND,
        episode_gap_ns: 0,
        flags: 0,
    };
    probes.watch(device.kernel_dev(), first).unwrap();
    device.set_schedule(Schedule::FailAll);
    read_direct(&device, 2);
    let second = WatchSettings {
        window_ns: 5 * SECOND,
        episode_gap_ns: SECOND,
        flags: 0,
    };
    probes.watch(device.kernel_dev(), second).unwrap();
    let after_change = record(&probes, &device);
    assert_eq!(after_change.settings, second);
    assert_eq!(after_change.io_errors, 2);
    // The same settings again (a re-discovery that changed nothing for the path) leave the
    // record exactly as the kernel has it.
    probes.watch(device.kernel_dev(), second).unwrap();
    assert_eq!(record(&probes, &device), after_change);
}

#[test]
fn signals_report_the_live_tracepoint() {
    require_root().expect("kernel counting tests need root");
    let probes = KernelProbes::load().expect("loading marginal's eBPF programs");
    let signals = probes.signals();
    assert_eq!(signals.block_tracepoint.name(), "block_rq_error");
    assert_eq!(
        signals.block_program,
        BlockErrorProgram::CompiledInLayout,
        "this kernel's record has the compiled-in layout: the fast program must be chosen"
    );
    // This host has no device-mapper: the kprobe must say why it is not attached.
    let has_dm = std::fs::read_to_string("/proc/kallsyms")
        .unwrap()
        .lines()
        .any(|l| l.split_whitespace().nth(2) == Some("dm_path_uevent"));
    assert_eq!(signals.dm_path_kprobe.is_ok(), has_dm, "{signals}");
}

#[test]
fn both_variants_report_their_cost_under_one_name() {
    require_root().expect("kernel counting tests need root");
    for program in BlockErrorProgram::ALL {
        let probes = KernelProbes::load_with_block_program(program).unwrap();
        let names: Vec<String> = probes.program_stats().into_iter().map(|p| p.name).collect();
        assert!(
            names.iter().any(|n| n == BLOCK_ERROR_PROGRAM),
            "{program:?}: {names:?}"
        );
        assert!(
            !names
                .iter()
                .any(|n| n == BLOCK_ERROR_TRACEFS_LAYOUT_PROGRAM),
            "{program:?}: {names:?}"
        );
    }
}

/// The variant for kernels before 5.12 (no atomic exchange) loads and counts on this kernel too:
/// the rules that do not depend on two CPUs racing hold for it.
#[test]
fn the_legacy_variant_counts_by_the_same_rules() {
    let program = BlockErrorProgram::Legacy;
    every_injected_error_is_counted_exactly(program);
    errors_of_a_dm_reported_path_are_counted_never_failures(program);
    non_path_errors_are_counted_and_start_nothing(program);
    errors_while_marginal_samples_start_nothing(program);
    a_failure_from_before_the_fence_never_pairs(program);
    two_failures_within_the_window_raise_one_event(program);
}

/// The status snapshot reads the whole watch map in batches: the same records as reading it
/// entry by entry, across more than one batch (4,096 entries each).
#[test]
fn the_watch_map_read_in_batches_is_the_watch_map() {
    require_root().expect("kernel counting tests need root");
    let mut probes = KernelProbes::load().expect("loading marginal's eBPF programs");
    assert!(probes.records_batch().unwrap().is_empty());
    // Made-up device numbers (major 4000 is never allocated), each with its own settings.
    let devs: Vec<u32> = (0..5000)
        .map(|minor| marginal_common::kernel_dev(4000, minor))
        .collect();
    for &dev in &devs {
        probes
            .watch(dev, watch_settings(u64::from(dev), SECOND, 0))
            .unwrap();
    }
    let mut batched = probes.records_batch().unwrap();
    let mut one_by_one = probes.records();
    batched.sort_by_key(|(dev, _)| *dev);
    one_by_one.sort_by_key(|(dev, _)| *dev);
    assert_eq!(batched.len(), devs.len());
    assert_eq!(batched, one_by_one);
    for (dev, record) in &batched {
        assert_eq!(record.settings.window_ns, u64::from(*dev));
    }
    for &dev in &devs {
        probes.unwatch(dev).unwrap();
    }
}
