//! A path put back on a stale check and failed again is one outage, not a double failure.
use super::*;

const SDA: (u32, u32) = (8, 0);
const SDB: (u32, u32) = (8, 16);

/// dm fails `path` at `secs` on the bed's clock; with `second_of` the kernel pairs it with the
/// failure at that time (a double failure, sent before the transition, as the kernel does).
fn fail(bed: &mut Bed, path: (u32, u32), second_of: Option<u64>) {
    bed.dm.set_active(path, false);
    let now = bed.at();
    let at_ns = now.as_nanos();
    let mut events = Vec::new();
    if let Some(first) = second_of {
        events.push(KernelEvent::DoubleFailure {
            dev: dev(path),
            first_ns: Timestamp::from_secs(first).as_nanos(),
            second_ns: at_ns,
            failures: 2,
            source: marginal_common::FailureSource::DmPath,
        });
    }
    events.push(dm_failed(path, at_ns));
    bed.daemon.on_kernel_events(events, now);
}

fn put_back(bed: &mut Bed, path: (u32, u32)) {
    bed.dm.set_active(path, true);
    let now = bed.at();
    bed.daemon.on_kernel_events(
        vec![KernelEvent::DmPathReinstated {
            dev: dev(path),
            at_ns: now.as_nanos(),
            valid_paths: 2,
        }],
        now,
    );
}

#[test]
fn failed_again_after_a_stale_reinstatement_is_one_outage() {
    let mut bed = bed(Options::default());
    bed.dm.set_commands_succeeded(SDA, 500);
    let first = bed.now;
    fail(&mut bed, SDA, None);
    assert_eq!(bed.state("sda"), StateName::Suspect);
    // multipathd puts it back on a check from before the outage; no command succeeds.
    bed.now += 8;
    put_back(&mut bed, SDA);
    bed.now += 4;
    fail(&mut bed, SDA, Some(first));
    assert!(!bed.held("sda"), "an outage does not hold a path out");
    assert_eq!(bed.fails("sda"), 0);
    assert!(bed.sampler.started.lock().unwrap().is_empty());
    assert_eq!(
        bed.daemon.totals[&PathKey::from("sda")].same_outage_refails,
        1
    );
}

#[test]
fn failed_again_after_working_is_a_double_failure() {
    let mut bed = bed(Options::default());
    bed.dm.set_commands_succeeded(SDA, 500);
    let first = bed.now;
    fail(&mut bed, SDA, None);
    // The checker's TEST UNIT READY passed: it worked, and was put back for that.
    bed.now += 8;
    bed.dm.set_commands_succeeded(SDA, 501);
    put_back(&mut bed, SDA);
    bed.now += 4;
    fail(&mut bed, SDA, Some(first));
    assert!(bed.held("sda"));
    assert_eq!(bed.state("sda"), StateName::Sampling);
    assert_eq!(bed.fails("sda"), 1);
    assert_eq!(
        bed.daemon
            .totals
            .get(&PathKey::from("sda"))
            .map_or(0, |t| t.same_outage_refails),
        0
    );
}

#[test]
fn a_device_that_does_not_count_its_commands_is_judged_by_timing_alone() {
    let mut bed = bed(Options::default());
    let first = bed.now;
    fail(&mut bed, SDB, None);
    bed.now += 8;
    put_back(&mut bed, SDB);
    bed.now += 4;
    fail(&mut bed, SDB, Some(first));
    assert!(
        bed.held("sdb"),
        "no counters: the second failure counts, as before"
    );
}

/// dm fails (`failed`) or reinstates `path`, seen by its uevent (no kprobe).
fn uevent(bed: &mut Bed, failed: bool, path: (u32, u32)) {
    bed.dm.set_active(path, !failed);
    let now = bed.at();
    bed.daemon.on_path_uevent(failed, path, now);
}

#[test]
fn with_uevents_a_stale_reinstatement_is_one_outage_too() {
    let mut bed = bed(Options {
        kprobe: false,
        ..Options::default()
    });
    bed.dm.set_commands_succeeded(SDB, 70);
    uevent(&mut bed, true, SDB);
    assert_eq!(bed.state("sdb"), StateName::Suspect);
    bed.now += 8;
    uevent(&mut bed, false, SDB);
    bed.now += 4;
    uevent(&mut bed, true, SDB);
    assert!(!bed.held("sdb"));
    assert_eq!(bed.fails("sdb"), 0);

    // Once it worked (a check passed), the next failure in the window counts.
    bed.now += 8;
    bed.dm.set_commands_succeeded(SDB, 71);
    uevent(&mut bed, false, SDB);
    bed.now += 4;
    uevent(&mut bed, true, SDB);
    assert!(bed.held("sdb"));
    assert_eq!(bed.fails("sdb"), 1);
}
