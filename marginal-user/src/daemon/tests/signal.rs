//! What counts as a failure at the daemon's level: marginal's own fail is announced to the
//! kernel and never counted; with uevents instead of the kprobe, the daemon recognises it.
use super::*;

#[test]
fn a_double_failure_fails_the_path_once_and_announces_it_as_marginal_s_own() {
    let mut bed = bed(Options::default());
    bed.double_failure(SDA);
    assert_eq!(bed.fails("sda"), 1);
    assert_eq!(bed.state("sda"), StateName::Sampling);
    assert!(bed.state_file_lists("sda"));
    assert!(
        bed.kernel.announced_own_fail(dev(SDA)),
        "the kernel was told the PATH_FAILED is marginal's own"
    );
    assert_eq!(
        bed.kernel.control_of(dev(SDA)).own_fail_until_ns,
        0,
        "with the kprobe the announcement is withdrawn once the fail returned"
    );
    assert_eq!(
        bed.kernel.control_of(dev(SDA)).sampling,
        1,
        "sampling announced"
    );
    assert_eq!(
        *bed.sampler.started.lock().unwrap(),
        vec!["sda".to_string()]
    );
    bed.report("sda", 100, 0);
    assert_eq!(bed.kernel.control_of(dev(SDA)).sampling, 0);
    assert_eq!(bed.state("sda"), StateName::Healthy);
    assert!(
        bed.kernel.control_of(dev(SDA)).fence_ns > 0,
        "the return is a fence for the kernel's window"
    );
    assert_eq!(bed.reinstates("sda"), 1);
    assert!(!bed.state_file_lists("sda"));
}

#[test]
fn dm_paths_are_watched_as_dm_reported() {
    let bed = bed(Options::default());
    let settings = bed.kernel.watched(dev(SDA)).expect("watched");
    assert_eq!(settings.flags, marginal_common::WATCH_DM_REPORTED);
    assert_eq!(settings.window_ns, 60_000_000_000);
}

#[test]
fn with_uevents_marginal_s_own_path_failed_is_not_a_failure() {
    let mut bed = bed(Options {
        kprobe: false,
        ..Options::default()
    });
    assert!(bed.daemon.wants_path_uevents());
    // First genuine failure (dm fails sdb), reinstated by multipathd's checker.
    bed.dm.set_active(SDB, false);
    let now = bed.at();
    bed.daemon.on_path_uevent(true, SDB, now);
    assert_eq!(bed.state("sdb"), StateName::Suspect);
    bed.dm.set_active(SDB, true);
    bed.daemon.on_path_uevent(false, SDB, now);
    // Second within the window: marginal fails it; the uevent of its own fail follows.
    bed.now += 3;
    bed.dm.set_active(SDB, false);
    let now = bed.at();
    bed.daemon.on_path_uevent(true, SDB, now);
    assert_eq!(bed.fails("sdb"), 1);
    assert_eq!(bed.state("sdb"), StateName::Sampling);
    let before = bed
        .daemon
        .engine
        .path(&PathKey::from("sdb"))
        .unwrap()
        .failures;
    bed.daemon.on_path_uevent(true, SDB, now);
    let after = bed
        .daemon
        .engine
        .path(&PathKey::from("sdb"))
        .unwrap()
        .failures;
    assert_eq!(after, before, "marginal's own fail is not a failure");
    assert_eq!(bed.daemon.totals[&PathKey::from("sdb")].own_fails_seen, 1);
    // Only one announcement per fail: a later PATH_FAILED (past the episode gap) is a failure
    // again.
    bed.daemon.on_path_uevent(false, SDB, now);
    bed.now += 5;
    let now = bed.at();
    bed.daemon.on_path_uevent(true, SDB, now);
    let later = bed
        .daemon
        .engine
        .path(&PathKey::from("sdb"))
        .unwrap()
        .failures;
    assert_eq!(later, after + 1);
}

#[test]
fn one_sustained_outage_is_one_failure_and_starts_nothing() {
    let mut bed = bed(Options::default());
    bed.dm.set_active(SDB, false);
    let at = bed.at().as_nanos();
    bed.daemon
        .on_kernel_events(vec![dm_failed(SDB, at)], bed.at());
    // 20 s down: block errors from multipathd's checker never reach the engine as failures
    // (the kernel counts them only), so nothing more arrives. Then the checker reinstates.
    bed.later(20);
    bed.dm.set_active(SDB, true);
    let events = vec![KernelEvent::DmPathReinstated {
        dev: dev(SDB),
        at_ns: bed.at().as_nanos(),
        valid_paths: 2,
    }];
    let now = bed.at();
    bed.daemon.on_kernel_events(events, now);
    assert_eq!(bed.state("sdb"), StateName::Suspect);
    assert!(
        bed.actuator.calls().is_empty(),
        "{:?}",
        bed.actuator.calls()
    );
    assert!(bed.sampler.started.lock().unwrap().is_empty());
}

#[test]
fn events_the_kernel_dropped_make_the_daemon_read_dm_again() {
    let mut bed = bed(Options::default());
    bed.double_failure(SDA);
    bed.report("sda", 100, 50);
    assert!(bed.held("sda"));
    // A storm: the ring buffer overflowed, and a table reload's event was among the lost.
    bed.dm.reload("mpatha");
    bed.kernel.lose_events(7);
    let now = bed.at();
    assert!(bed.daemon.check_events_lost(now));
    assert!(
        !bed.dm.is_active(SDA),
        "the resync found the held path back and failed it"
    );
    assert_eq!(bed.daemon.snapshot(0.0).kernel_events_lost_total, 7);
    assert!(!bed.daemon.check_events_lost(now), "nothing new lost");
}

#[test]
fn a_re_fail_right_after_a_reinstatement_is_the_same_outage() {
    // multipathd reinstating from a stale checker state right after dm failed the path, and
    // the next I/O failing it again: two PATH_FAILED 0.3 s apart, one outage.
    let mut bed = bed(Options {
        kprobe: false,
        ..Options::default()
    });
    let t0 = bed.at();
    bed.daemon.on_path_uevent(true, SDB, t0);
    bed.daemon.on_path_uevent(false, SDB, t0);
    let soon = Timestamp::from_nanos(t0.as_nanos() + 300_000_000);
    bed.daemon.on_path_uevent(true, SDB, soon);
    assert_eq!(
        bed.state("sdb"),
        StateName::Suspect,
        "no check from one outage"
    );
    assert!(bed.actuator.calls().is_empty());
    assert_eq!(
        bed.daemon
            .engine
            .path(&PathKey::from("sdb"))
            .unwrap()
            .failures,
        1
    );
    // A failure a few seconds later (the checker found it up, I/O failed it) is a flap.
    bed.daemon.on_path_uevent(false, SDB, soon);
    bed.now += 3;
    let later = bed.at();
    bed.daemon.on_path_uevent(true, SDB, later);
    assert_eq!(bed.fails("sdb"), 1);
}
