//! Never leave a map without an active path: at the start, at the verdict, while held out.
use super::*;
use crate::engine::Verdict;

/// sda and sdb in mpatha, only sda active; sda fails twice: it is the last active path.
fn last_path_check() -> (Engine, Vec<Decision>) {
    let mut engine = engine_with(&[("sda", true), ("sdb", false)]);
    fail(&mut engine, "sda", 0);
    let out = fail(&mut engine, "sda", 5);
    (engine, out)
}

#[test]
fn last_active_path_is_never_failed_at_the_start_but_sampled_in_service() {
    let (engine, out) = last_path_check();
    assert_eq!(
        actions(&out),
        vec![
            keep_in_service("sda", Reason::LastActivePath),
            start_sampling("sda", double(0, 5)),
        ]
    );
    let snap = engine.path(&key("sda")).unwrap();
    assert_eq!(snap.state, StateName::SamplingInService);
    assert!(!snap.held_out);
    assert_eq!(snap.last_reason, Some(Reason::LastActivePath));
}

#[test]
fn single_path_map_is_never_failed() {
    let mut engine = engine_with(&[("sda", true)]);
    fail(&mut engine, "sda", 0);
    let out = fail(&mut engine, "sda", 1);
    assert!(!out.iter().any(|d| matches!(d, Decision::FailPath { .. })));
    finish(&mut engine, "sda", 11, 10, 10);
    assert_eq!(state(&engine, "sda"), StateName::Healthy);
    assert!(!held_out(&engine, "sda"));
}

#[test]
fn in_service_run_that_passes_needs_no_reinstatement() {
    let (mut engine, _) = last_path_check();
    let out = finish(&mut engine, "sda", 15, 100, 0);
    assert_eq!(actions(&out), vec![]);
    assert_eq!(state(&engine, "sda"), StateName::Healthy);
}

#[test]
fn in_service_marginal_run_still_last_path_is_kept_in_service() {
    let (mut engine, _) = last_path_check();
    let out = finish(&mut engine, "sda", 15, 100, 90);
    let m = engine.path(&key("sda")).unwrap().last_measurement.unwrap();
    assert_eq!(m.verdict, Verdict::MarginalButLastPath);
    assert_eq!(
        actions(&out),
        vec![keep_in_service("sda", Reason::MarginalButLastPath(m))]
    );
    let snap = engine.path(&key("sda")).unwrap();
    assert_eq!(snap.state, StateName::Healthy);
    assert_eq!(snap.marginal_verdicts, 1);
}

#[test]
fn in_service_marginal_run_is_failed_once_the_map_can_spare_it() {
    let (mut engine, _) = last_path_check();
    reinstated(&mut engine, "sdb", 8);
    let out = finish(&mut engine, "sda", 15, 100, 90);
    let m = engine.path(&key("sda")).unwrap().last_measurement.unwrap();
    assert_eq!(m.verdict, Verdict::Marginal);
    assert_eq!(actions(&out), vec![fail_path("sda", Reason::Marginal(m))]);
    let snap = engine.path(&key("sda")).unwrap();
    assert_eq!(snap.state, StateName::Marginal);
    assert!(snap.held_out);
    assert_eq!(snap.next_recheck_at, Some(t(15) + GAP));
}

#[test]
fn marginal_path_is_recovered_at_once_when_the_map_loses_its_last_active_path() {
    let mut engine = engine_with(&[("sda", true), ("sdb", true)]);
    make_marginal(&mut engine, "sda", 0);
    let out = fail(&mut engine, "sdb", 100);
    assert_eq!(
        actions(&out),
        vec![recover_path("sda", Reason::MapWithoutActivePath)]
    );
    let snap = engine.path(&key("sda")).unwrap();
    assert_eq!(snap.state, StateName::Healthy);
    assert!(!snap.held_out);
    assert_eq!(snap.recoveries, 1);
    assert_eq!(engine.next_deadline(), None, "no recheck left");
}

#[test]
fn marginal_path_stays_out_while_another_path_is_active() {
    let mut engine = engine_with(&[("sda", true), ("sdb", true), ("sdc", true)]);
    make_marginal(&mut engine, "sda", 0);
    assert_eq!(actions(&fail(&mut engine, "sdb", 100)), vec![]);
    assert_eq!(state(&engine, "sda"), StateName::Marginal);
    let out = fail(&mut engine, "sdc", 101);
    assert_eq!(
        actions(&out),
        vec![recover_path("sda", Reason::MapWithoutActivePath)]
    );
}

#[test]
fn held_out_sampling_path_is_recovered_at_once_and_its_run_stopped() {
    let mut engine = engine_with(&[("sda", true), ("sdb", true)]);
    start_check(&mut engine, "sda", 0);
    let out = fail(&mut engine, "sdb", 7);
    assert_eq!(
        actions(&out),
        vec![
            stop_sampling("sda", Reason::MapWithoutActivePath),
            recover_path("sda", Reason::MapWithoutActivePath),
        ]
    );
    assert_eq!(state(&engine, "sda"), StateName::Healthy);
}

#[test]
fn a_resync_that_shows_the_last_active_path_failed_also_recovers() {
    let mut engine = engine_with(&[("sda", true), ("sdb", true)]);
    make_marginal(&mut engine, "sda", 0);
    let out = engine.handle(
        t(50),
        Event::PathActive {
            path: key("sdb"),
            active: false,
        },
    );
    assert_eq!(
        actions(&out),
        vec![recover_path("sda", Reason::MapWithoutActivePath)]
    );
    assert_eq!(
        state(&engine, "sdb"),
        StateName::Healthy,
        "a resync is no failure"
    );
}

#[test]
fn removing_the_last_active_path_recovers_held_out_siblings() {
    let mut engine = engine_with(&[("sda", true), ("sdb", true)]);
    make_marginal(&mut engine, "sda", 0);
    let out = engine.remove_path(&key("sdb"), t(50));
    assert_eq!(
        actions(&out),
        vec![recover_path("sda", Reason::MapWithoutActivePath)]
    );
}

#[test]
fn every_held_out_path_of_a_map_gone_dry_is_recovered() {
    let mut engine = engine_with(&[("sda", true), ("sdb", true), ("sdc", true)]);
    make_marginal(&mut engine, "sda", 0);
    start_check(&mut engine, "sdb", 30);
    let out = fail(&mut engine, "sdc", 40);
    assert_eq!(
        actions(&out),
        vec![
            recover_path("sda", Reason::MapWithoutActivePath),
            stop_sampling("sdb", Reason::MapWithoutActivePath),
            recover_path("sdb", Reason::MapWithoutActivePath),
        ]
    );
}

#[test]
fn a_recovered_path_counts_as_active_only_once_dm_reinstates_it() {
    let mut engine = engine_with(&[("sda", true), ("sdb", true)]);
    make_marginal(&mut engine, "sda", 0);
    fail(&mut engine, "sdb", 100);
    // sda recovered but not yet back in dm: sdb is, for now, the last hope.
    reinstated(&mut engine, "sdb", 101);
    fail(&mut engine, "sdb", 200);
    let out = fail(&mut engine, "sdb", 201);
    assert_eq!(
        actions(&out)[0],
        keep_in_service("sdb", Reason::LastActivePath)
    );
    // Once dm has sda back, sdb's next check may fail it.
    let mut engine = engine_with(&[("sda", true), ("sdb", true)]);
    make_marginal(&mut engine, "sda", 0);
    fail(&mut engine, "sdb", 100);
    reinstated(&mut engine, "sda", 101);
    reinstated(&mut engine, "sdb", 101);
    fail(&mut engine, "sdb", 200);
    let out = fail(&mut engine, "sdb", 201);
    assert_eq!(actions(&out)[0], fail_path("sdb", double(200, 201)));
}

#[test]
fn a_held_out_path_dm_still_shows_active_does_not_count_as_active() {
    // Observe mode: nothing is really failed, so dm keeps reporting sda active.
    let mut engine = engine_with(&[("sda", true), ("sdb", true)]);
    make_marginal(&mut engine, "sda", 0);
    engine.handle(
        t(20),
        Event::PathActive {
            path: key("sda"),
            active: true,
        },
    );
    assert_eq!(engine.maps()[0].active_paths, 1);
    fail(&mut engine, "sdb", 30);
    // The map has no active path in the engine's view: sda is released at once.
    assert_eq!(state(&engine, "sda"), StateName::Healthy);
    assert_eq!(engine.maps()[0].active_paths, 1, "sda is active again");
}
