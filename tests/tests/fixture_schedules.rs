//! The flaky device fails exactly the reads its schedule says, one FUSE read per O_DIRECT
//! read of the loop device. Needs root: without it every test fails saying so.

use std::fs::OpenOptions;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use io_uring::{IoUring, opcode, types};
use marginal_tests::{
    FlakyDevice, FlakyOptions, Outcome, READ_SIZE, Schedule, Stats, fill_pattern, read_direct,
    read_direct_at, read_direct_outcomes, sample_offset,
};

fn device(schedule: Schedule) -> FlakyDevice {
    FlakyDevice::create(FlakyOptions {
        size_bytes: 16 << 20,
        schedule,
        ..FlakyOptions::default()
    })
    .unwrap_or_else(|e| panic!("creating the flaky device: {e:#}"))
}

fn outcomes(dev: &FlakyDevice, count: usize) -> Vec<bool> {
    read_direct_outcomes(dev.loop_path(), dev.size_bytes(), count)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dev.loop_path().display()))
}

/// What the schedule predicts for reads 1..=count, as `read_direct_outcomes` reports them.
fn predicted(schedule: Schedule, count: usize) -> Vec<bool> {
    (1..=count as u64)
        .map(|i| schedule.outcome(i) != Outcome::Fail)
        .collect()
}

fn failed_indices(outcomes: &[bool]) -> Vec<usize> {
    (0..outcomes.len()).filter(|&i| !outcomes[i]).collect()
}

#[test]
fn every_nth_fails_exactly_every_nth_read() {
    let dev = device(Schedule::EveryNth(10));
    let got = outcomes(&dev, 100);
    assert_eq!(
        failed_indices(&got),
        (1..=10).map(|k| 10 * k - 1).collect::<Vec<_>>()
    );
    let stats = dev.stats();
    assert_eq!(
        stats,
        Stats {
            reads: 100,
            reads_ok: 90,
            reads_failed: 10,
            ..Stats::default()
        },
        "each O_DIRECT read must be exactly one FUSE read"
    );
}

#[test]
fn seeded_fraction_repeats_and_is_near_the_fraction() {
    let schedule = Schedule::FractionPermille {
        permille: 100,
        seed: 42,
    };
    let dev = device(schedule);
    let first = outcomes(&dev, 1000);
    // Setting the schedule again restarts its count, so the same reads fail again.
    dev.set_schedule(schedule);
    let second = outcomes(&dev, 1000);
    assert_eq!(first, second);
    assert_eq!(first, predicted(schedule, 1000));
    let failed = first.iter().filter(|ok| !**ok).count();
    assert!((70..=130).contains(&failed), "{failed} of 1000 failed");

    let other = Schedule::FractionPermille {
        permille: 100,
        seed: 43,
    };
    dev.set_schedule(other);
    assert_ne!(outcomes(&dev, 1000), first, "another seed, other failures");
}

#[test]
fn burst_fails_a_run_of_reads_then_recovers() {
    let schedule = Schedule::Burst { after: 5, fail: 4 };
    let dev = device(schedule);
    let got = outcomes(&dev, 30);
    assert_eq!(failed_indices(&got), vec![5, 6, 7, 8]);
    assert_eq!(dev.stats().reads_failed, 4);
}

#[test]
fn schedule_changes_at_run_time() {
    let dev = device(Schedule::Healthy);
    assert_eq!(read_direct(&dev, 20), (20, 0));
    dev.set_schedule(Schedule::FailAll);
    assert_eq!(read_direct(&dev, 7), (0, 7));
    dev.set_schedule(Schedule::EveryNth(2));
    assert_eq!(read_direct(&dev, 10), (5, 5));
    dev.set_schedule(Schedule::Healthy);
    assert_eq!(read_direct(&dev, 5), (5, 0));
    assert_eq!(dev.stats().reads, 42);
    dev.reset_stats();
    assert_eq!(dev.stats(), Stats::default());
}

#[test]
fn hung_read_stays_pending_until_released() {
    let dev = device(Schedule::Hang);
    let (tx, rx) = mpsc::channel();
    std::thread::scope(|s| {
        s.spawn(|| tx.send(read_direct(&dev, 1)).unwrap());
        assert!(
            dev.wait_for_hung(1, Duration::from_secs(10)),
            "no read hung"
        );
        assert!(
            rx.recv_timeout(Duration::from_millis(500)).is_err(),
            "a hung read completed before it was released"
        );
        let stats = dev.stats();
        assert_eq!((stats.reads_hung, stats.hung_now, stats.reads), (1, 1, 1));
        assert_eq!(dev.release_hung(), 1);
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)), Ok((1, 0)));
    });
    let stats = dev.stats();
    assert_eq!(
        (stats.reads_ok, stats.hung_now, stats.reads_hung),
        (1, 0, 1)
    );
}

#[test]
fn hung_read_can_be_failed() {
    let dev = device(Schedule::Hang);
    std::thread::scope(|s| {
        let reader = s.spawn(|| read_direct(&dev, 1));
        assert!(
            dev.wait_for_hung(1, Duration::from_secs(10)),
            "no read hung"
        );
        assert_eq!(dev.fail_hung(), 1);
        assert_eq!(reader.join().unwrap(), (0, 1));
    });
    dev.set_schedule(Schedule::Healthy);
    assert_eq!(read_direct(&dev, 3), (3, 0));
}

#[test]
fn reads_return_the_sector_pattern() {
    let dev = device(Schedule::Healthy);
    for offset in [
        0,
        4096,
        sample_offset(17, dev.size_bytes()),
        (16 << 20) - 4096,
    ] {
        let data = read_direct_at(dev.loop_path(), offset).unwrap();
        let mut expected = vec![0u8; READ_SIZE];
        fill_pattern(&mut expected, offset);
        assert_eq!(data, expected, "data at offset {offset}");
    }
}

/// Submits one O_DIRECT read per offset in a single io_uring batch, so that they are in the
/// block layer together; returns each read's result (bytes or -errno).
fn batch_read(path: &Path, offsets: &[u64]) -> Vec<i32> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
        .unwrap();
    let mut raw = vec![0u8; (offsets.len() + 1) * READ_SIZE];
    let start = raw.as_ptr().align_offset(READ_SIZE);
    let bufs = &mut raw[start..start + offsets.len() * READ_SIZE];
    let mut ring = IoUring::new(offsets.len().next_power_of_two() as u32).unwrap();
    for (i, (&offset, buf)) in offsets.iter().zip(bufs.chunks_mut(READ_SIZE)).enumerate() {
        let read = opcode::Read::new(
            types::Fd(file.as_raw_fd()),
            buf.as_mut_ptr(),
            READ_SIZE as u32,
        )
        .offset(offset)
        .build()
        .user_data(i as u64);
        // SAFETY: the buffers and the file outlive the ring's use of them (we wait below).
        unsafe { ring.submission().push(&read).unwrap() };
    }
    ring.submit_and_wait(offsets.len()).unwrap();
    let mut results = vec![0; offsets.len()];
    let mut seen = 0;
    while seen < offsets.len() {
        for cqe in ring.completion() {
            results[cqe.user_data() as usize] = cqe.result();
            seen += 1;
        }
        if seen < offsets.len() {
            ring.submit_and_wait(1).unwrap();
        }
    }
    results
}

fn adjacent_batch(nomerges: u8) -> (Stats, Vec<i32>) {
    let dev = FlakyDevice::create(FlakyOptions {
        size_bytes: 16 << 20,
        schedule: Schedule::EveryNth(4),
        nomerges,
    })
    .unwrap_or_else(|e| panic!("creating the flaky device: {e:#}"));
    let offsets: Vec<u64> = (0..32).map(|i| (64 + i) * READ_SIZE as u64).collect();
    let results = batch_read(dev.loop_path(), &offsets);
    (dev.stats(), results)
}

#[test]
fn adjacent_reads_in_flight_together_stay_separate() {
    // With nomerges = 2 each of the 32 adjacent reads is its own request and FUSE read, so
    // exactly every 4th fails, whatever order they reach the daemon in.
    let (stats, results) = adjacent_batch(2);
    assert_eq!((stats.reads, stats.reads_failed), (32, 8), "{stats:?}");
    assert_eq!(results.iter().filter(|&&r| r == -libc::EIO).count(), 8);
    assert!(
        results
            .iter()
            .all(|&r| r == READ_SIZE as i32 || r == -libc::EIO)
    );
}

#[test]
fn adjacent_reads_in_flight_together_merge_without_nomerges() {
    // Why the fixture sets nomerges: otherwise the block layer merges the batch into fewer,
    // larger requests (one 128 KiB FUSE read here), which fail or succeed as a whole.
    let (stats, _) = adjacent_batch(0);
    assert!(stats.reads < 32, "{stats:?}");
}
