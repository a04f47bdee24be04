//! healthy -> suspect -> check: the double-failure window.
use super::*;

#[test]
fn first_failure_makes_the_path_suspect_and_remembers_t0() {
    let mut engine = engine_with(&[("sda", true), ("sdb", true)]);
    let out = fail(&mut engine, "sda", 100);
    assert_eq!(
        out,
        vec![Decision::StateChanged {
            path: key("sda"),
            from: StateName::Healthy,
            to: StateName::Suspect,
        }]
    );
    let snap = engine.path(&key("sda")).unwrap();
    assert_eq!(snap.first_failure_at, Some(t(100)));
    assert_eq!(snap.failures, 1);
    assert!(!snap.dm_active, "a failure marks the path failed in dm");
    assert!(!snap.held_out);
}

#[test]
fn second_failure_within_the_window_fails_and_samples_the_path() {
    let mut engine = engine_with(&[("sda", true), ("sdb", true)]);
    fail(&mut engine, "sda", 100);
    let out = fail(&mut engine, "sda", 130);
    assert_eq!(
        actions(&out),
        vec![
            fail_path("sda", double(100, 130)),
            start_sampling("sda", double(100, 130)),
        ]
    );
    let snap = engine.path(&key("sda")).unwrap();
    assert_eq!(snap.state, StateName::Sampling);
    assert!(snap.held_out);
    assert_eq!(snap.sampling_started_at, Some(t(130)));
    assert_eq!((snap.checks_started, snap.sampling_runs), (1, 1));
}

#[test]
fn window_bound_is_inclusive() {
    let mut engine = engine_with(&[("sda", true), ("sdb", true)]);
    fail(&mut engine, "sda", 100);
    fail(&mut engine, "sda", 160);
    assert_eq!(state(&engine, "sda"), StateName::Sampling);
}

#[test]
fn failure_after_the_window_restarts_it() {
    let mut engine = engine_with(&[("sda", true), ("sdb", true)]);
    fail(&mut engine, "sda", 0);
    let out = fail(&mut engine, "sda", 61);
    assert_eq!(actions(&out), vec![], "outside the window: no check");
    assert_eq!(state(&engine, "sda"), StateName::Suspect);
    assert_eq!(
        engine.path(&key("sda")).unwrap().first_failure_at,
        Some(t(61))
    );
    // 100 - 0 > window, but 100 - 61 <= window: only the restarted window catches this.
    let out = fail(&mut engine, "sda", 100);
    assert_eq!(actions(&out)[0], fail_path("sda", double(61, 100)));
    assert_eq!(engine.path(&key("sda")).unwrap().failures, 3);
}

#[test]
fn reinstatement_between_failures_keeps_the_window() {
    let mut engine = engine_with(&[("sda", true), ("sdb", true)]);
    fail(&mut engine, "sda", 0);
    assert_eq!(reinstated(&mut engine, "sda", 20), vec![]);
    assert_eq!(state(&engine, "sda"), StateName::Suspect);
    assert!(engine.path(&key("sda")).unwrap().dm_active);
    fail(&mut engine, "sda", 40);
    assert_eq!(state(&engine, "sda"), StateName::Sampling);
}

#[test]
fn kernel_double_failure_starts_the_check() {
    let mut engine = engine_with(&[("sda", true), ("sdb", true)]);
    let out = engine.handle(
        t(31),
        Event::DoubleFailure {
            path: key("sda"),
            first_at: t(10),
            second_at: t(30),
        },
    );
    assert_eq!(
        actions(&out),
        vec![
            fail_path("sda", double(10, 30)),
            start_sampling("sda", double(10, 30)),
        ]
    );
    let snap = engine.path(&key("sda")).unwrap();
    assert_eq!(snap.failures, 2, "neither failure was reported before");
    assert_eq!(snap.sampling_started_at, Some(t(31)), "runs start at now");
}

#[test]
fn kernel_double_failure_after_a_reported_first_counts_one_more() {
    let mut engine = engine_with(&[("sda", true), ("sdb", true)]);
    fail(&mut engine, "sda", 10);
    engine.handle(
        t(30),
        Event::DoubleFailure {
            path: key("sda"),
            first_at: t(10),
            second_at: t(30),
        },
    );
    let snap = engine.path(&key("sda")).unwrap();
    assert_eq!(snap.failures, 2);
    assert_eq!(snap.state, StateName::Sampling);
}

#[test]
fn kernel_double_failure_outside_the_maps_window_only_restarts_it() {
    let mut engine = engine_with(&[("sda", true), ("sdb", true)]);
    let out = engine.handle(
        t(200),
        Event::DoubleFailure {
            path: key("sda"),
            first_at: t(10),
            second_at: t(200),
        },
    );
    assert_eq!(actions(&out), vec![]);
    let snap = engine.path(&key("sda")).unwrap();
    assert_eq!(snap.state, StateName::Suspect);
    assert_eq!(snap.first_failure_at, Some(t(200)));
}

#[test]
fn failures_while_sampling_or_marginal_are_counted_and_restart_nothing() {
    let mut engine = engine_with(&[("sda", true), ("sdb", true)]);
    start_check(&mut engine, "sda", 0);
    // Our own fail_path shows up as a failure too.
    assert_eq!(fail(&mut engine, "sda", 6), vec![]);
    let snap = engine.path(&key("sda")).unwrap();
    assert_eq!(snap.sampling_started_at, Some(t(5)), "run not restarted");
    assert_eq!((snap.failures, snap.failures_while_checked), (3, 1));

    finish(&mut engine, "sda", 15, 100, 60);
    assert_eq!(state(&engine, "sda"), StateName::Marginal);
    let due = engine.path(&key("sda")).unwrap().next_recheck_at;
    assert_eq!(fail(&mut engine, "sda", 20), vec![]);
    let out = engine.handle(
        t(21),
        Event::DoubleFailure {
            path: key("sda"),
            first_at: t(20),
            second_at: t(21),
        },
    );
    assert_eq!(out, vec![]);
    let snap = engine.path(&key("sda")).unwrap();
    assert_eq!(snap.state, StateName::Marginal);
    assert_eq!(snap.next_recheck_at, due, "recheck not moved");
    assert_eq!((snap.failures, snap.failures_while_checked), (5, 3));
    assert_eq!(snap.last_failure_at, Some(t(21)));
    assert_eq!(snap.checks_started, 1);
}

#[test]
fn failures_of_a_map_with_checking_off_are_only_counted() {
    let mut engine = Engine::new();
    engine.upsert_map(mpatha(), None, t(0));
    engine.add_path(&mpatha(), key("sda"), true, t(0)).unwrap();
    engine.add_path(&mpatha(), key("sdb"), true, t(0)).unwrap();
    assert_eq!(fail(&mut engine, "sda", 1), vec![]);
    assert_eq!(fail(&mut engine, "sda", 2), vec![]);
    let snap = engine.path(&key("sda")).unwrap();
    assert_eq!(snap.state, StateName::Healthy);
    assert_eq!(snap.failures, 2);
    assert!(!snap.checking);
    assert_eq!(engine.next_deadline(), None);
}

#[test]
fn events_about_unknown_paths_are_ignored() {
    let mut engine = engine_with(&[("sda", true)]);
    assert_eq!(fail(&mut engine, "sdz", 1), vec![]);
    assert_eq!(finish(&mut engine, "sdz", 1, 10, 10), vec![]);
    assert!(!engine.knows_path(&key("sdz")));
}

#[test]
fn a_check_of_one_path_leaves_the_others_alone() {
    let mut engine = engine_with(&[("sda", true), ("sdb", true), ("sdc", true)]);
    start_check(&mut engine, "sda", 0);
    assert_eq!(state(&engine, "sdb"), StateName::Healthy);
    assert_eq!(state(&engine, "sdc"), StateName::Healthy);
    let map = &engine.maps()[0];
    assert_eq!((map.active_paths, map.held_out_paths), (2, 1));
}

fn kernel_double(engine: &mut Engine, path: &str, first: u64, second: u64) -> Vec<Decision> {
    engine.handle(
        t(second),
        Event::DoubleFailure {
            path: key(path),
            first_at: t(first),
            second_at: t(second),
        },
    )
}

#[test]
fn a_failure_from_before_a_passed_check_never_pairs() {
    let mut engine = engine_with(&[("sda", true), ("sdb", true)]);
    start_check(&mut engine, "sda", 100);
    finish(&mut engine, "sda", 115, 200, 1);
    reinstated(&mut engine, "sda", 116);
    assert_eq!(state(&engine, "sda"), StateName::Healthy);
    // The kernel's window still starts at the failure of 105, inside 60 s of 120.
    let out = kernel_double(&mut engine, "sda", 105, 120);
    assert_eq!(actions(&out), vec![], "history paired with a new failure");
    assert_eq!(state(&engine, "sda"), StateName::Suspect);
    assert_eq!(
        engine.path(&key("sda")).unwrap().first_failure_at,
        Some(t(120)),
        "the new failure opens the window"
    );
    // A genuine second failure since the return still starts a check.
    let out = fail(&mut engine, "sda", 130);
    assert_eq!(
        actions(&out),
        vec![
            fail_path("sda", double(120, 130)),
            start_sampling("sda", double(120, 130)),
        ]
    );
}

#[test]
fn a_failure_from_before_a_recovery_never_pairs() {
    let mut engine = engine_with(&[("sda", true), ("sdb", true)]);
    start_check(&mut engine, "sda", 100);
    // The other path fails: sda is recovered at once, its check ends.
    fail(&mut engine, "sdb", 110);
    assert_eq!(state(&engine, "sda"), StateName::Healthy);
    reinstated(&mut engine, "sda", 111);
    let out = fail(&mut engine, "sda", 112);
    assert_eq!(actions(&out), vec![]);
    assert_eq!(state(&engine, "sda"), StateName::Suspect);
    let out = kernel_double(&mut engine, "sda", 100, 113);
    assert_eq!(
        actions(&out),
        vec![
            keep_in_service("sda", Reason::LastActivePath),
            start_sampling("sda", double(112, 113))
        ],
        "only the failure since the recovery pairs"
    );
}
