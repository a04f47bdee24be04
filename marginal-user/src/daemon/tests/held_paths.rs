//! Held-out paths are never lost and never silently back in service (SPEC.md "Acting on
//! paths"): reconciling with dm, fresh truth before a fail, retries, multipathd coming and
//! going, the state file across runs.
use super::*;

/// A daemon starting over `dm`, whose state file says a previous run holds sda (8:0) of
/// mpatha with WWID [`WWID`].
fn bed_after_a_run_that_held_sda(dm: FakeDm, observe: bool) -> Bed {
    let state = state_text(&[("sda", held_entry("8:0", WWID))]);
    bed_with(
        dm,
        Options {
            observe,
            state: Some(state),
            ..Options::default()
        },
    )
}

/// Drives sda to marginal: double failure, a bad run.
fn marginal_sda(bed: &mut Bed) {
    bed.double_failure(SDA);
    bed.report("sda", 100, 50);
    assert_eq!(bed.state("sda"), StateName::Marginal);
    assert!(!bed.dm.is_active(SDA));
}

#[test]
fn a_table_reload_that_puts_a_held_path_back_is_undone() {
    let mut bed = bed(Options::default());
    marginal_sda(&mut bed);
    assert_eq!(bed.fails("sda"), 1);
    bed.dm.reload("mpatha"); // what multipathd reconfigure or a resize does: no event
    assert!(bed.dm.is_active(SDA));
    bed.rediscover(); // the reload's uevent, or the next resync
    assert!(!bed.dm.is_active(SDA), "failed again");
    assert_eq!(bed.fails("sda"), 2);
    assert_eq!(bed.state("sda"), StateName::Marginal, "still reported held");
    assert!(bed.held("sda"));
    assert!(bed.state_file_lists("sda"));
}

#[test]
fn a_batch_that_loses_the_other_path_fails_nothing() {
    let mut bed = bed(Options::default());
    // sda fails twice and, in the same batch, sdb fails too: sda is the last path.
    bed.dm.set_active(SDA, false);
    bed.dm.set_active(SDB, false);
    let now = bed.at().as_nanos();
    let events = vec![
        KernelEvent::DoubleFailure {
            dev: dev(SDA),
            first_ns: now - 1_000_000_000,
            second_ns: now,
            failures: 2,
            source: marginal_common::FailureSource::DmPath,
        },
        dm_failed(SDA, now),
        dm_failed(SDB, now),
    ];
    let at = bed.at();
    bed.daemon.on_kernel_events(events, at);
    assert_eq!(bed.fails("sda"), 0, "{:?}", bed.actuator.calls());
    assert!(!bed.state_file_lists("sda"));
    assert!(!bed.held("sda"));
}

#[test]
fn the_map_is_read_fresh_before_a_fail() {
    let mut bed = bed(Options::default());
    // sdb failed in dm, and the event was missed: the engine still counts it active.
    bed.dm.set_active(SDB, false);
    bed.dm.set_active(SDA, true);
    let now = bed.at().as_nanos();
    let events = vec![KernelEvent::DoubleFailure {
        dev: dev(SDA),
        first_ns: now - 1_000_000_000,
        second_ns: now,
        failures: 2,
        source: marginal_common::FailureSource::DmPath,
    }];
    let at = bed.at();
    bed.daemon.on_kernel_events(events, at);
    assert_eq!(bed.fails("sda"), 0);
    assert!(bed.dm.is_active(SDA), "the map keeps its last active path");
    assert!(!bed.held("sda"));
}

#[test]
fn a_refused_fail_is_counted_shown_and_retried_with_backoff() {
    let mut bed = bed(Options::default());
    bed.actuator.refuse(2);
    bed.double_failure(SDA);
    assert_eq!(bed.daemon.actuator_errors, 1);
    assert!(bed.state_file_lists("sda"), "recorded: never forgotten");
    let snapshot = bed.daemon.snapshot(0.0);
    let sda = &snapshot.maps[0].paths[0];
    assert_eq!(sda.pending_action, "fail");
    assert!(
        sda.last_action_error.contains("answered"),
        "{}",
        sda.last_action_error
    );
    assert_eq!(snapshot.actuator_errors_total, 1);
    bed.later(1); // first retry after 1 s: refused again
    assert_eq!((bed.fails("sda"), bed.daemon.actuator_errors), (2, 2));
    bed.later(1); // the next one is 2 s after the second attempt
    assert_eq!(bed.fails("sda"), 2, "backoff doubles");
    bed.later(1);
    assert_eq!(bed.fails("sda"), 3);
    assert!(!bed.dm.is_active(SDA));
    assert!(bed.daemon.retries.is_empty());
    assert!(
        bed.daemon.snapshot(0.0).maps[0].paths[0]
            .pending_action
            .is_empty()
    );
}

#[test]
fn a_refused_return_is_retried_until_it_goes_through() {
    let mut bed = bed(Options::default());
    bed.double_failure(SDA);
    bed.actuator.refuse(1);
    bed.report("sda", 100, 0);
    assert_eq!(bed.state("sda"), StateName::Healthy);
    assert!(!bed.dm.is_active(SDA));
    assert!(bed.state_file_lists("sda"), "a return is owed");
    bed.later(1);
    assert!(bed.dm.is_active(SDA));
    assert!(!bed.state_file_lists("sda"));
}

#[test]
fn multipathd_restarting_gets_every_held_path_failed_again() {
    let mut bed = bed(Options::default());
    marginal_sda(&mut bed);
    bed.changes.lock().unwrap().push(ActuatorChange {
        description: "multipathd restarted".into(),
        refail_held: true,
    });
    let now = bed.at();
    bed.daemon.refresh_actuators(now);
    assert_eq!(bed.fails("sda"), 2, "told again, though dm shows it failed");
}

#[test]
fn a_map_missing_from_one_discovery_round_keeps_its_held_paths() {
    let mut bed = bed(Options::default());
    marginal_sda(&mut bed);
    bed.dm.hide_once("mpatha");
    bed.later(5);
    bed.rediscover();
    assert!(bed.held("sda"), "a listing racing a reload is no removal");
    assert!(bed.state_file_lists("sda"));
    bed.later(5);
    bed.rediscover();
    assert!(bed.held("sda"));
    assert_eq!(bed.state("sda"), StateName::Marginal);
}

#[test]
fn a_removed_device_is_released_from_the_state_file() {
    let mut bed = bed(Options::default());
    marginal_sda(&mut bed);
    bed.dm.remove_device(SDA);
    bed.rediscover();
    assert!(!bed.state_file_lists("sda"), "released as removed");
    let errors = bed.daemon.actuator_errors;
    bed.later(30);
    bed.rediscover();
    assert_eq!(bed.daemon.actuator_errors, errors, "no error loop");
}

#[test]
fn a_restart_takes_up_a_held_path_of_the_same_map_wwid_and_device() {
    let dm = FakeDm::new(vec![map("mpatha", WWID, 0, &[("sda", 0), ("sdb", 16)])]);
    dm.set_active(SDA, false);
    let bed = bed_after_a_run_that_held_sda(dm, false);
    assert!(bed.held("sda"), "taken up");
    assert_eq!(bed.state("sda"), StateName::Sampling);
    assert_eq!(
        bed.fails("sda"),
        1,
        "told again through the current actuator"
    );
}

#[test]
fn a_reused_name_for_another_lun_is_not_taken_up() {
    // sda is now a path of another LUN (SCSI reused the name and the number).
    let dm = FakeDm::new(vec![map(
        "mpatha",
        "3600other",
        0,
        &[("sda", 0), ("sdb", 16)],
    )]);
    let bed = bed_after_a_run_that_held_sda(dm, false);
    assert!(!bed.held("sda"));
    assert_eq!(bed.fails("sda"), 0);
    assert!(!bed.state_file_lists("sda"));
}

#[test]
fn a_held_path_that_shows_up_later_is_taken_up_then() {
    let dm = FakeDm::new(vec![map("mpatha", WWID, 0, &[("sdb", 16)])]);
    let mut bed = bed_after_a_run_that_held_sda(dm.clone(), false);
    assert!(bed.state_file_lists("sda"), "kept while it is not back");
    dm.replace_maps(vec![map("mpatha", WWID, 0, &[("sda", 0), ("sdb", 16)])]);
    bed.later(2);
    bed.rediscover();
    assert!(bed.held("sda"));
    assert_eq!(bed.fails("sda"), 1);
}

#[test]
fn observe_mode_reports_a_previous_run_s_held_path_and_never_rewrites_the_state() {
    let dm = FakeDm::new(vec![map("mpatha", WWID, 0, &[("sda", 0), ("sdb", 16)])]);
    dm.set_active(SDA, false);
    let state = state_text(&[("sda", held_entry("8:0", WWID))]);
    let mut bed = bed_with(
        dm,
        Options {
            observe: true,
            state: Some(state.clone()),
            ..Options::default()
        },
    );
    let snapshot = bed.daemon.snapshot(0.0);
    assert_eq!(snapshot.held_by_previous_run, vec!["sda".to_string()]);
    assert!(snapshot.maps[0].paths[0].held_by_previous_run);
    bed.daemon.shutdown(false);
    assert_eq!(std::fs::read_to_string(&bed.state_file).unwrap(), state);
    assert!(bed.actuator.calls().is_empty());
    assert!(!bed.dm.is_active(SDA), "still as the previous run left it");
}

#[test]
fn a_corrupt_state_file_is_reported_and_the_daemon_runs() {
    let mut bed = bed(Options {
        state: Some("{not json".into()),
        ..Options::default()
    });
    let snapshot = bed.daemon.snapshot(0.0);
    assert!(snapshot.state_file_problem.contains("moved aside"));
    bed.double_failure(SDA);
    assert_eq!(
        bed.fails("sda"),
        1,
        "the daemon protects the host all the same"
    );
}

#[test]
fn shutdown_returns_held_paths_and_leaves_no_map_worse_off() {
    let mut bed = bed(Options::default());
    marginal_sda(&mut bed);
    let active_before = usize::from(bed.dm.is_active(SDA)) + usize::from(bed.dm.is_active(SDB));
    bed.daemon.shutdown(false);
    let active_after = usize::from(bed.dm.is_active(SDA)) + usize::from(bed.dm.is_active(SDB));
    assert!(active_after >= active_before);
    assert!(bed.dm.is_active(SDA));
    assert!(!bed.state_file_lists("sda"));
}

#[test]
fn keep_failed_on_exit_leaves_the_state_for_the_next_run() {
    let mut bed = bed(Options::default());
    marginal_sda(&mut bed);
    bed.daemon.shutdown(true);
    assert!(!bed.dm.is_active(SDA));
    assert!(bed.state_file_lists("sda"));
}

#[test]
fn a_path_dm_had_failed_is_not_reinstated_with_a_dm_message_unless_proven() {
    let mut bed = bed(Options {
        actuator: "device-mapper messages",
        ..Options::default()
    });
    marginal_sda(&mut bed); // dm had failed sda before marginal acted
    bed.daemon.shutdown(false);
    assert_eq!(bed.reinstates("sda"), 0, "{:?}", bed.actuator.calls());
    assert!(!bed.dm.is_active(SDA), "left as dm had it");
    assert!(!bed.state_file_lists("sda"), "nothing owed any more");

    // Proven healthy by marginal's reads: returned.
    let mut bed = super::bed(Options {
        actuator: "device-mapper messages",
        ..Options::default()
    });
    bed.double_failure(SDA);
    bed.report("sda", 100, 0);
    assert_eq!(bed.reinstates("sda"), 1);
    assert!(bed.dm.is_active(SDA));
}

#[test]
fn through_multipathd_a_returned_path_always_gets_its_checker_back() {
    let mut bed = bed(Options::default());
    marginal_sda(&mut bed);
    bed.daemon.shutdown(false);
    assert_eq!(
        bed.reinstates("sda"),
        1,
        "reinstate path re-enables multipathd's checker"
    );
}

#[test]
fn a_run_that_cannot_open_the_device_keeps_the_path_out() {
    let mut bed = bed(Options::default());
    bed.double_failure(SDA);
    bed.report_outcome(
        "sda",
        0,
        0,
        SampleOutcome::Failed("open /dev/sda: No such device or address".into()),
    );
    assert_eq!(
        bed.reinstates("sda"),
        0,
        "an offline path dm failed is not put back"
    );
    assert!(bed.held("sda"));
    assert_eq!(bed.state("sda"), StateName::Marginal);
}

#[test]
fn a_map_left_without_active_path_gets_its_held_path_back_at_once() {
    let mut bed = bed(Options::default());
    marginal_sda(&mut bed);
    bed.dm.set_active(SDB, false);
    let now = bed.at().as_nanos();
    let at = bed.at();
    bed.daemon.on_kernel_events(vec![dm_failed(SDB, now)], at);
    assert!(bed.dm.is_active(SDA), "recovered");
    assert!(!bed.held("sda"));
}
