//! No failed path is ever forgotten: adoption after a restart, and the shutdown plan.
use super::*;

#[test]
fn adopted_path_still_failed_in_dm_is_resampled_at_once() {
    let mut engine = engine_with(&[("sda", false), ("sdb", true)]);
    let out = engine.adopt_failed_path(&key("sda"), t(100)).unwrap();
    assert_eq!(actions(&out), vec![start_sampling("sda", Reason::Adopted)]);
    let snap = engine.path(&key("sda")).unwrap();
    assert_eq!(snap.state, StateName::Sampling);
    assert!(snap.held_out);
    assert_eq!(snap.sampling_started_at, Some(t(100)));
    assert_eq!(snap.last_reason, Some(Reason::Adopted));
}

#[test]
fn adopted_path_that_dm_shows_active_is_failed_again() {
    let mut engine = engine_with(&[("sda", true), ("sdb", true)]);
    let out = engine.adopt_failed_path(&key("sda"), t(100)).unwrap();
    assert_eq!(
        actions(&out),
        vec![
            fail_path("sda", Reason::Adopted),
            start_sampling("sda", Reason::Adopted),
        ]
    );
}

#[test]
fn adopted_path_the_map_cannot_spare_is_recovered() {
    let mut engine = engine_with(&[("sda", false), ("sdb", false)]);
    let out = engine.adopt_failed_path(&key("sda"), t(100)).unwrap();
    assert_eq!(
        actions(&out),
        vec![recover_path("sda", Reason::MapWithoutActivePath)]
    );
    assert_eq!(state(&engine, "sda"), StateName::Healthy);

    let mut engine = engine_with(&[("sda", true), ("sdb", false)]);
    let out = engine.adopt_failed_path(&key("sda"), t(100)).unwrap();
    assert_eq!(
        actions(&out),
        vec![keep_in_service("sda", Reason::LastActivePath)]
    );
    assert!(!held_out(&engine, "sda"));
}

#[test]
fn adopted_path_that_passes_is_reinstated() {
    let mut engine = engine_with(&[("sda", false), ("sdb", true)]);
    engine.adopt_failed_path(&key("sda"), t(100)).unwrap();
    let out = finish(&mut engine, "sda", 110, 100, 0);
    let m = engine.path(&key("sda")).unwrap().last_measurement.unwrap();
    assert_eq!(
        actions(&out),
        vec![reinstate_path("sda", Reason::Passed(m))]
    );
}

#[test]
fn adopted_path_whose_run_fails_stays_out_for_a_recheck() {
    let mut engine = engine_with(&[("sda", false), ("sdb", true)]);
    engine.adopt_failed_path(&key("sda"), t(100)).unwrap();
    let out = engine.handle(
        t(101),
        Event::SamplingFailed {
            path: key("sda"),
            error: "open: EBUSY".into(),
        },
    );
    assert_eq!(actions(&out), vec![]);
    let snap = engine.path(&key("sda")).unwrap();
    assert_eq!(snap.state, StateName::Marginal);
    assert_eq!(snap.next_recheck_at, Some(t(101) + GAP));
}

#[test]
fn adopting_a_path_already_held_out_changes_nothing() {
    let mut engine = engine_with(&[("sda", true), ("sdb", true)]);
    make_marginal(&mut engine, "sda", 0);
    let before = engine.path(&key("sda"));
    assert_eq!(
        engine.adopt_failed_path(&key("sda"), t(50)).unwrap(),
        vec![]
    );
    assert_eq!(engine.path(&key("sda")), before);
}

#[test]
fn adopted_path_of_a_map_with_checking_off_is_reinstated() {
    let mut engine = engine_with(&[("sda", false), ("sdb", true), ("sdc", true)]);
    engine.upsert_map(mpatha(), None, t(0));
    let out = engine.adopt_failed_path(&key("sda"), t(100)).unwrap();
    assert_eq!(out, vec![reinstate_path("sda", Reason::CheckingDisabled)]);
    assert_eq!(
        engine.adopt_failed_path(&key("sdb"), t(100)).unwrap(),
        vec![]
    );
}

#[test]
fn shutdown_plan_reinstates_every_held_out_path_and_changes_nothing() {
    let mut engine = engine_with(&[("sda", true), ("sdb", true), ("sdc", true), ("sdd", true)]);
    make_marginal(&mut engine, "sda", 0);
    start_check(&mut engine, "sdb", 30);
    fail(&mut engine, "sdc", 40);
    let before = engine.snapshot();
    assert_eq!(
        engine.shutdown_plan(),
        vec![
            reinstate_path("sda", Reason::Shutdown),
            reinstate_path("sdb", Reason::Shutdown),
        ]
    );
    assert_eq!(engine.snapshot(), before);
}

#[test]
fn shutdown_plan_leaves_out_paths_sampled_in_service() {
    let mut engine = engine_with(&[("sda", true), ("sdb", false)]);
    fail(&mut engine, "sda", 0);
    fail(&mut engine, "sda", 1);
    assert_eq!(state(&engine, "sda"), StateName::SamplingInService);
    assert!(engine.shutdown_plan().is_empty());
}

#[test]
fn held_out_paths_survive_a_restart_through_snapshot_and_adoption() {
    let mut before = engine_with(&[("sda", true), ("sdb", true), ("sdc", true)]);
    make_marginal(&mut before, "sda", 0);
    start_check(&mut before, "sdb", 30);
    let persisted: Vec<PathKey> = before
        .snapshot()
        .into_iter()
        .filter(|s| s.held_out)
        .map(|s| s.path)
        .collect();
    assert_eq!(persisted, vec![key("sda"), key("sdb")]);

    // The new daemon rediscovers the maps (sda and sdb are failed in dm), then adopts.
    let mut after = engine_with(&[("sda", false), ("sdb", false), ("sdc", true)]);
    for path in &persisted {
        after.adopt_failed_path(path, t(1000)).unwrap();
    }
    let held: Vec<PathKey> = after
        .snapshot()
        .into_iter()
        .filter(|s| s.held_out)
        .map(|s| s.path)
        .collect();
    assert_eq!(held, persisted);
    assert_eq!(state(&after, "sda"), StateName::Sampling);
    assert_eq!(state(&after, "sdb"), StateName::Sampling);
}
