//! Unit tests of `run.rs`: the spec's sampling rules with made-up completions and instants.
use super::*;

const MS: Duration = Duration::from_millis(1);

fn config(sample_secs: u64, timeout_secs: u64) -> RunConfig {
    RunConfig {
        slots: 32,
        refill_interval: 100 * MS,
        read_timeout: Duration::from_secs(timeout_secs),
        sample_time: Duration::from_secs(sample_secs),
    }
}

struct Ids(u64);
impl Ids {
    fn next(&mut self) -> impl FnMut() -> u64 + '_ {
        || {
            self.0 += 1;
            self.0
        }
    }
}

/// The reads `run` wants to submit at `now`.
fn refill(run: &mut Run, now: Instant, ids: &mut Ids) -> Vec<ReadRequest> {
    let mut requests = Vec::new();
    run.refill(now, &mut ids.next(), &mut requests);
    requests
}

fn new_run(sample_secs: u64, timeout_secs: u64) -> (Run, Instant, Ids) {
    let t0 = Instant::now();
    (
        Run::new(config(sample_secs, timeout_secs), 4096, 1 << 20, 1, t0),
        t0,
        Ids(0),
    )
}

#[test]
fn fills_every_slot_at_start_then_only_on_the_refill_tick() {
    let (mut run, t0, mut ids) = new_run(10, 2);
    let first = refill(&mut run, t0, &mut ids);
    assert_eq!(first.len(), 32);
    for req in &first {
        assert_eq!(req.len, 4096);
        assert_eq!(req.offset % 4096, 0);
        assert_eq!(req.buf as usize % 4096, 0, "page-aligned buffer");
    }
    // Complete three; nothing is refilled before the tick.
    for req in &first[..3] {
        assert_eq!(
            run.complete(req.slot, req.read_id, 4096),
            Completion::Counted
        );
    }
    assert!(refill(&mut run, t0 + 50 * MS, &mut ids).is_empty());
    let second = refill(&mut run, t0 + 100 * MS, &mut ids);
    assert_eq!(second.len(), 3, "only the idle slots");
    // Read ids are never reused, so a stale cancel cannot hit a newer read.
    assert!(second.iter().all(|r| r.read_id > 32));
}

#[test]
fn reads_of_a_run_are_never_adjacent() {
    let (mut run, t0, mut ids) = new_run(10, 2);
    let mut now = t0;
    let mut in_flight: Vec<ReadRequest> = Vec::new();
    for round in 0..50 {
        for req in refill(&mut run, now, &mut ids) {
            for other in &in_flight {
                assert!(
                    req.offset.abs_diff(other.offset) > 4096,
                    "adjacent reads in round {round}"
                );
            }
            in_flight.push(req);
        }
        // Complete half of them.
        let done: Vec<ReadRequest> = in_flight.drain(..in_flight.len() / 2).collect();
        for req in done {
            run.complete(req.slot, req.read_id, 4096);
        }
        now += 100 * MS;
    }
}

#[test]
fn no_read_starts_once_elapsed_plus_timeout_reaches_sample_time() {
    let (mut run, t0, mut ids) = new_run(10, 3);
    assert_eq!(run.cutoff(), t0 + Duration::from_secs(7));
    let mut now = t0;
    let mut last_start = None;
    while now < t0 + Duration::from_secs(10) {
        let reqs = refill(&mut run, now, &mut ids);
        if !reqs.is_empty() {
            last_start = Some(now);
        }
        for req in reqs {
            run.complete(req.slot, req.read_id, 4096);
        }
        now += 100 * MS;
    }
    let last_start = last_start.unwrap();
    assert!(last_start < t0 + Duration::from_secs(7));
    assert!(last_start + Duration::from_secs(3) < t0 + Duration::from_secs(10));
    // And a read started just before the cutoff has its deadline inside the window.
    let (mut run, t0, mut ids) = new_run(10, 3);
    refill(&mut run, t0, &mut ids);
    let reqs = refill(&mut run, t0 + Duration::from_millis(6_999), &mut ids);
    assert!(reqs.is_empty(), "slots are busy");
    assert!(run.next_wake(t0).unwrap() <= t0 + Duration::from_secs(10));
}

#[test]
fn sample_time_not_above_timeout_means_no_reads() {
    let (mut run, t0, mut ids) = new_run(2, 2);
    assert!(refill(&mut run, t0, &mut ids).is_empty());
    assert_eq!(run.finished(t0), Some(End::Completed));
    assert_eq!(run.tally().rate_permille(), 0);
}

#[test]
fn every_tenth_read_failing_gives_100_permille() {
    let (mut run, t0, mut ids) = new_run(60, 5);
    let mut now = t0;
    let mut n = 0u64;
    while run.finished(now).is_none() {
        for req in refill(&mut run, now, &mut ids) {
            n += 1;
            let res = if n.is_multiple_of(10) {
                -libc::EIO
            } else {
                4096
            };
            assert_eq!(
                run.complete(req.slot, req.read_id, res),
                Completion::Counted
            );
        }
        now += 100 * MS;
    }
    let tally = run.tally();
    assert_eq!(tally.reads, n);
    assert_eq!(tally.errors, n / 10);
    assert_eq!(tally.timeouts, 0);
    assert_eq!(tally.rate_permille(), 100);
    // 55 s of issuing at 32 reads per 100 ms.
    assert_eq!(n, 550 * 32);
}

#[test]
fn a_hung_read_counts_once_and_its_late_completion_is_ignored() {
    let (mut run, t0, mut ids) = new_run(10, 2);
    let reqs = refill(&mut run, t0, &mut ids);
    // All but one complete fine.
    for req in &reqs[1..] {
        run.complete(req.slot, req.read_id, 4096);
    }
    let hung = &reqs[0];
    assert!(run.expire(t0 + Duration::from_millis(1_999)).is_empty());
    assert_eq!(
        run.expire(t0 + Duration::from_secs(2)),
        vec![hung.read_id],
        "cancel asked once"
    );
    // Polling again and again does not count it again (the upstream bug).
    for extra in 1..100 {
        assert!(
            run.expire(t0 + Duration::from_secs(2) + extra * MS)
                .is_empty()
        );
    }
    assert_eq!(
        run.tally(),
        Tally {
            reads: 32,
            errors: 1,
            timeouts: 1
        }
    );
    // Its slot stays busy (the kernel owns the buffer) until it completes, late, successfully.
    let refilled = refill(&mut run, t0 + Duration::from_millis(2_100), &mut ids);
    assert!(refilled.iter().all(|r| r.slot != hung.slot));
    run.cancel_answered(hung.slot, hung.read_id, -libc::ENOENT);
    assert_eq!(
        run.complete(hung.slot, hung.read_id, 4096),
        Completion::Ignored
    );
    assert_eq!(run.tally().errors, 1);
    assert_eq!(run.tally().timeouts, 1);
}

#[test]
fn a_device_that_hangs_every_read_reads_1000_never_more() {
    let (mut run, t0, mut ids) = new_run(5, 1);
    let mut now = t0;
    let mut submitted = Vec::new();
    while run.finished(now).is_none() {
        submitted.extend(refill(&mut run, now, &mut ids));
        for id in run.expire(now) {
            let req = submitted.iter().find(|r| r.read_id == id).unwrap();
            run.cancel_answered(req.slot, id, -libc::EALREADY);
        }
        now += 10 * MS;
    }
    let tally = run.tally();
    assert_eq!(
        tally,
        Tally {
            reads: 32,
            errors: 32,
            timeouts: 32
        },
        "32 hung slots, each counted once"
    );
    assert_eq!(tally.rate_permille(), 1000);
    // The run ended with the reads still in the kernel: their buffers go to the orphan list.
    let (pending, area) = run.into_orphans();
    assert_eq!(pending.len(), 32);
    assert_eq!(
        area.len(),
        32 * 4096,
        "the area they read into goes with them"
    );
}

#[test]
fn stopping_cancels_in_flight_reads_and_waits_for_them() {
    let (mut run, t0, mut ids) = new_run(10, 2);
    let reqs = refill(&mut run, t0, &mut ids);
    for req in &reqs[..10] {
        run.complete(req.slot, req.read_id, 4096);
    }
    let cancel = run.stop();
    assert_eq!(cancel.len(), 22);
    assert!(run.stop().is_empty(), "cancel asked once");
    assert!(
        refill(&mut run, t0 + 100 * MS, &mut ids).is_empty(),
        "no new reads once stopping"
    );
    assert_eq!(run.finished(t0 + MS), None, "still waiting for the kernel");
    // 20 get cancelled; one completes anyway; one cannot be cancelled.
    for req in &reqs[10..30] {
        run.cancel_answered(req.slot, req.read_id, 0);
        assert_eq!(
            run.complete(req.slot, req.read_id, -libc::ECANCELED),
            Completion::Ignored
        );
    }
    assert_eq!(
        run.complete(reqs[30].slot, reqs[30].read_id, 4096),
        Completion::Counted
    );
    assert_eq!(run.finished(t0 + MS), None);
    run.cancel_answered(reqs[31].slot, reqs[31].read_id, -libc::EALREADY);
    assert_eq!(run.finished(t0 + MS), Some(End::Stopped));
    assert_eq!(
        run.tally(),
        Tally {
            reads: 11,
            errors: 0,
            timeouts: 0
        },
        "cancelled reads are not errors"
    );
    let (pending, _area) = run.into_orphans();
    assert_eq!(pending, vec![reqs[31].read_id]);
}

#[test]
fn a_stopped_read_that_never_answers_is_given_up_at_its_timeout() {
    let (mut run, t0, mut ids) = new_run(10, 2);
    refill(&mut run, t0, &mut ids);
    run.stop();
    assert_eq!(run.finished(t0 + Duration::from_secs(1)), None);
    assert_eq!(run.next_wake(t0), Some(t0 + Duration::from_secs(2)));
    assert!(
        run.expire(t0 + Duration::from_secs(2)).is_empty(),
        "cancel was already asked"
    );
    assert_eq!(
        run.finished(t0 + Duration::from_secs(2)),
        Some(End::Stopped)
    );
}

#[test]
fn device_gone_and_refused_reads_are_not_rates() {
    let (mut run, t0, mut ids) = new_run(10, 2);
    let reqs = refill(&mut run, t0, &mut ids);
    assert_eq!(
        run.complete(reqs[0].slot, reqs[0].read_id, -libc::ENXIO),
        Completion::DeviceGone(libc::ENXIO)
    );
    assert_eq!(
        run.complete(reqs[1].slot, reqs[1].read_id, -libc::ENODEV),
        Completion::DeviceGone(libc::ENODEV)
    );
    assert_eq!(
        run.complete(reqs[2].slot, reqs[2].read_id, -libc::EINVAL),
        Completion::Refused(libc::EINVAL)
    );
    assert_eq!(
        run.complete(reqs[3].slot, reqs[3].read_id, -libc::EIO),
        Completion::Counted
    );
    assert_eq!(
        run.complete(reqs[4].slot, reqs[4].read_id, 512),
        Completion::Counted,
        "short read"
    );
    assert_eq!(
        run.tally(),
        Tally {
            reads: 2,
            errors: 2,
            timeouts: 0
        }
    );
    assert!(
        run.presence_check_due(t0),
        "an error triggers a presence check"
    );
    run.presence_checked(t0);
    assert!(!run.presence_check_due(t0 + MS));
    assert!(run.presence_check_due(t0 + PRESENCE_CHECK_INTERVAL));
    let cancel = run.fail("device /dev/x (7:0) vanished".into());
    assert_eq!(cancel.len(), 32 - 5);
    for req in &reqs[5..] {
        run.complete(req.slot, req.read_id, -libc::ECANCELED);
    }
    assert_eq!(
        run.finished(t0 + MS),
        Some(End::Failed("device /dev/x (7:0) vanished".into()))
    );
}

#[test]
fn stale_completions_are_ignored() {
    let (mut run, t0, mut ids) = new_run(10, 2);
    let reqs = refill(&mut run, t0, &mut ids);
    assert_eq!(
        run.complete(reqs[0].slot, reqs[0].read_id, 4096),
        Completion::Counted
    );
    assert_eq!(
        run.complete(reqs[0].slot, reqs[0].read_id, 4096),
        Completion::Ignored,
        "twice"
    );
    assert_eq!(
        run.complete(reqs[1].slot, 9_999, 4096),
        Completion::Ignored,
        "wrong id"
    );
    assert_eq!(
        run.complete(99, reqs[1].read_id, 4096),
        Completion::Ignored,
        "no such slot"
    );
    assert_eq!(run.tally().reads, 1);
}

#[test]
fn ends_early_after_the_cutoff_once_nothing_is_pending() {
    let (mut run, t0, mut ids) = new_run(10, 3);
    let reqs = refill(&mut run, t0, &mut ids);
    assert_eq!(
        run.finished(t0 + Duration::from_secs(7)),
        None,
        "reads still pending"
    );
    for req in reqs {
        run.complete(req.slot, req.read_id, 4096);
    }
    assert_eq!(
        run.finished(t0 + Duration::from_millis(6_999)),
        None,
        "before the cutoff"
    );
    assert_eq!(
        run.finished(t0 + Duration::from_secs(7)),
        Some(End::Completed)
    );
    assert_eq!(
        run.elapsed(t0 + Duration::from_secs(7)),
        Duration::from_secs(7)
    );
}

#[test]
fn wakes_for_refills_deadlines_cutoff_and_the_end() {
    let (mut run, t0, mut ids) = new_run(10, 3);
    assert_eq!(run.next_wake(t0), Some(t0), "first fill at once");
    refill(&mut run, t0, &mut ids);
    assert_eq!(run.next_wake(t0), Some(t0 + 100 * MS));
    // sample 4 s, timeout 3 s: cutoff at 1 s.
    let (mut run, t0, mut ids) = new_run(4, 3);
    for tick in 0..10 {
        refill(&mut run, t0 + tick * 100 * MS, &mut ids);
    }
    // The next refill would be at the cutoff, so none is planned; the cutoff itself is a
    // wake-up (the run may end there) and coincides with the first presence check.
    let now = t0 + 900 * MS;
    assert_eq!(run.next_wake(now), Some(t0 + Duration::from_secs(1)));
    // Past the cutoff: the presence checks, then the reads' deadline, never a past instant.
    let now = t0 + Duration::from_secs(1);
    run.presence_checked(now);
    assert_eq!(
        run.next_wake(now),
        Some(t0 + Duration::from_secs(2)),
        "presence check"
    );
    let now = t0 + Duration::from_secs(2);
    run.presence_checked(now);
    assert_eq!(
        run.next_wake(now),
        Some(t0 + Duration::from_secs(3)),
        "the reads' deadline"
    );
    // Everything completed: wake at the end (or a presence check), never in the past.
    let (mut run, t0, mut ids) = new_run(4, 3);
    for req in refill(&mut run, t0, &mut ids) {
        run.complete(req.slot, req.read_id, 4096);
    }
    let now = t0 + 500 * MS;
    assert_eq!(
        run.next_wake(now),
        Some(t0 + 100 * MS),
        "a refill is due (overdue)"
    );
    refill(&mut run, now, &mut ids);
    assert!(run.next_wake(now).unwrap() > now);
}

#[test]
fn tiny_devices_use_fewer_slots() {
    let t0 = Instant::now();
    let mut run = Run::new(config(10, 2), 512, 5, 3, t0);
    let reqs = refill(&mut run, t0, &mut Ids(0));
    assert!(!reqs.is_empty() && reqs.len() <= 3);
    for req in &reqs {
        assert!(req.offset + 512 <= 5 * 512, "inside the device");
    }
}

#[test]
fn only_completions_that_change_what_is_due_ask_for_service() {
    let (mut run, t0, mut ids) = new_run(10, 3);
    let reqs = refill(&mut run, t0, &mut ids);
    // A good read before the cutoff: its slot just waits for the next refill tick.
    run.complete(reqs[0].slot, reqs[0].read_id, 4096);
    assert!(!run.due_after_completion(t0 + MS));
    // A failed read: the presence check is due at once.
    run.complete(reqs[1].slot, reqs[1].read_id, -libc::EIO);
    assert!(run.due_after_completion(t0 + MS));
    assert!(run.presence_check_due(t0 + MS));
    run.presence_checked(t0 + MS);
    assert!(!run.due_after_completion(t0 + 2 * MS));
    // Past the cutoff (7 s here) any completion may be the last one the run waits for.
    assert!(!run.due_after_completion(t0 + Duration::from_millis(6_999)));
    assert!(run.due_after_completion(t0 + Duration::from_secs(7)));
    // So may any answer while it winds down.
    run.stop();
    assert!(run.due_after_completion(t0 + 2 * MS));
}

#[test]
fn each_slot_reads_into_its_own_page_aligned_part_of_one_area() {
    let t0 = Instant::now();
    let mut run = Run::new(config(10, 2), 512, 1 << 20, 3, t0);
    let (area, len) = run.read_area();
    let page = page_size();
    assert_eq!(len, 32 * page, "512-byte reads still get a page each");
    let reqs = refill(&mut run, t0, &mut Ids(0));
    assert_eq!(reqs.len(), 32);
    let mut starts: Vec<usize> = reqs.iter().map(|req| req.buf as usize).collect();
    for &start in &starts {
        assert_eq!(start % page, 0, "page-aligned");
        assert!(start >= area as usize && start + 512 <= area as usize + len);
    }
    starts.sort_unstable();
    starts.dedup();
    assert_eq!(starts.len(), 32, "no two slots share a buffer");
}
