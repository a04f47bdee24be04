//! The latency program on the real kernel: reads and writes of a real loop device (over the
//! FUSE flaky file) land in the device's histograms, a read the test holds for a known time
//! lands in the bucket of that time, and devices without latency measuring are not counted.
//! Needs root (eBPF, loop devices, FUSE) and kernel BTF.
use std::{
    fs::OpenOptions,
    os::unix::fs::{FileExt, OpenOptionsExt},
    time::{Duration, Instant},
};

use marginal::kernel::{KernelProbes, LatencyProgram};
use marginal_common::{LatencyHistogram, PathLatency, latency_bucket, latency_bucket_upper_ns};
use marginal_tests::{
    FlakyDevice, FlakyOptions, Schedule, read_direct, read_direct_at, require_root, sample_offset,
};

fn setup() -> (KernelProbes, FlakyDevice) {
    require_root().expect("kernel latency tests need root");
    let probes = KernelProbes::load().expect("loading marginal's eBPF programs");
    let device = FlakyDevice::create(FlakyOptions::default()).expect("creating a flaky device");
    (probes, device)
}

fn latency(probes: &KernelProbes, device: &FlakyDevice) -> PathLatency {
    probes
        .latency(device.kernel_dev())
        .expect("the measured device has histograms")
}

/// `count` O_DIRECT 4 KiB writes of zeroes at [`sample_offset`]s.
fn write_direct(device: &FlakyDevice, count: usize) {
    let file = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(device.loop_path())
        .unwrap();
    let layout = std::alloc::Layout::from_size_align(4096, 4096).unwrap();
    // SAFETY: a zeroed, 4096-aligned allocation of 4096 bytes, freed below.
    let buffer = unsafe { std::alloc::alloc_zeroed(layout) };
    let data = unsafe { std::slice::from_raw_parts(buffer, 4096) };
    for i in 0..count {
        file.write_at(data, sample_offset(i, device.size_bytes()))
            .expect("writing the flaky device");
    }
    unsafe { std::alloc::dealloc(buffer, layout) };
}

/// Nothing is attached for latency until a path asks for it; then reads and writes of the
/// measured device are counted apart, each exactly once, and the sum is plausible.
#[test]
fn reads_and_writes_are_counted_apart() {
    let (mut probes, device) = setup();
    assert_eq!(
        probes.signals().latency,
        None,
        "attached before any path asked"
    );
    probes.measure_latency(device.kernel_dev(), true).unwrap();
    assert_eq!(probes.signals().latency, Some(Ok(())));
    // Every kernel marginal is tested on takes the tp_btf program; the fallback is for others.
    assert_eq!(
        probes.signals().latency_program,
        Some(LatencyProgram::KernelStartTime)
    );
    let before = latency(&probes, &device);
    assert_eq!(before, PathLatency::default(), "a new path starts empty");

    let started = Instant::now();
    let (served, failed) = read_direct(&device, 40);
    write_direct(&device, 30);
    let elapsed = started.elapsed();
    assert_eq!((served, failed), (40, 0));

    let after = latency(&probes, &device);
    assert_eq!(after.read.count(), 40, "{:?}", after.read);
    assert_eq!(after.write.count(), 30, "{:?}", after.write);
    // Each request's time is part of the test's own time, and none is zero.
    assert!(after.read.sum_ns + after.write.sum_ns <= elapsed.as_nanos() as u64);
    assert!(after.read.sum_ns >= 40 * 1_000 && after.write.sum_ns >= 30 * 1_000);
}

/// A read the FUSE file holds for 200 ms lands in the bucket of 200 ms (or the next, for the
/// time the release takes to reach the block layer), alone.
#[test]
fn a_held_read_lands_in_the_bucket_of_its_time() {
    let (mut probes, device) = setup();
    probes.measure_latency(device.kernel_dev(), true).unwrap();
    let hold = Duration::from_millis(200);
    device.set_schedule(Schedule::Hang);
    std::thread::scope(|scope| {
        let reader = scope.spawn(|| read_direct_at(device.loop_path(), 4096 * 7));
        assert!(
            device.wait_for_hung(1, Duration::from_secs(30)),
            "the read never reached the FUSE file"
        );
        std::thread::sleep(hold);
        assert_eq!(device.release_hung(), 1);
        reader.join().unwrap().expect("the held read succeeds");
    });
    let read: LatencyHistogram = latency(&probes, &device).read;
    assert_eq!(read.count(), 1, "{read:?}");
    let bucket = read.buckets.iter().position(|&n| n == 1).unwrap();
    let expected = latency_bucket(hold.as_nanos() as u64);
    assert!(
        bucket == expected || bucket == expected + 1,
        "held {hold:?}, bucket {bucket} (below {:?} ns), expected {expected}",
        latency_bucket_upper_ns(bucket)
    );
    assert!(read.sum_ns >= hold.as_nanos() as u64, "{read:?}");
    assert!(read.sum_ns < 10 * hold.as_nanos() as u64, "{read:?}");
}

/// A device nobody measures is not in the map; one turned off again leaves it.
#[test]
fn unmeasured_devices_are_not_counted() {
    let (mut probes, device) = setup();
    let other = FlakyDevice::create(FlakyOptions::default()).expect("a second flaky device");
    probes.measure_latency(other.kernel_dev(), true).unwrap();
    read_direct(&device, 10);
    assert_eq!(probes.latency(device.kernel_dev()), None);
    read_direct(&other, 10);
    assert_eq!(latency(&probes, &other).read.count(), 10);

    probes.measure_latency(other.kernel_dev(), false).unwrap();
    assert_eq!(probes.latency(other.kernel_dev()), None);
    // The last measured path gone, nothing stays attached.
    assert_eq!(probes.signals().latency, None);
    assert!(
        probes
            .latencies()
            .iter()
            .all(|(dev, _)| *dev != other.kernel_dev())
    );
}

/// The fallback (raw tracepoint, `bpf_probe_read_kernel`) and the bench's per-request map
/// count the same reads and writes as the daemon's program, and detaching stops counting.
#[test]
fn the_other_programs_count_alike() {
    for program in [
        LatencyProgram::KernelStartTimeProbeRead,
        LatencyProgram::PerRequestMap,
    ] {
        let (mut probes, device) = setup();
        probes.choose_latency_program(program).unwrap();
        probes.measure_latency(device.kernel_dev(), true).unwrap();
        assert_eq!(probes.signals().latency_program, Some(program));
        read_direct(&device, 20);
        write_direct(&device, 5);
        let counted = latency(&probes, &device);
        assert_eq!(
            (counted.read.count(), counted.write.count()),
            (20, 5),
            "{program:?}"
        );

        probes.detach_latency().unwrap();
        read_direct(&device, 5);
        assert_eq!(latency(&probes, &device), counted, "{program:?} detached");
    }
}
