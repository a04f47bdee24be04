//! Discovery and configuration: maps and paths coming and going, parameters per map.
use super::*;
use crate::engine::{EngineError, SAMPLING_GRACE};

fn mpathb() -> MapName {
    MapName::from("mpathb")
}

#[test]
fn path_removed_mid_run_stops_sampling_and_is_released() {
    let mut engine = engine_with(&[("sda", true), ("sdb", true)]);
    start_check(&mut engine, "sda", 0);
    let out = engine.remove_path(&key("sda"), t(7));
    assert_eq!(
        out,
        vec![
            stop_sampling("sda", Reason::PathRemoved),
            Decision::Released {
                path: key("sda"),
                reason: Reason::PathRemoved,
            },
        ]
    );
    assert!(!engine.knows_path(&key("sda")));
    assert_eq!(engine.next_deadline(), None);
    assert_eq!(finish(&mut engine, "sda", 15, 10, 10), vec![]);
}

#[test]
fn removed_marginal_path_is_released_and_a_healthy_one_just_dropped() {
    let mut engine = engine_with(&[("sda", true), ("sdb", true), ("sdc", true)]);
    make_marginal(&mut engine, "sda", 0);
    assert_eq!(
        engine.remove_path(&key("sda"), t(30)),
        vec![Decision::Released {
            path: key("sda"),
            reason: Reason::PathRemoved,
        }]
    );
    assert_eq!(engine.remove_path(&key("sdc"), t(31)), vec![]);
    assert_eq!(engine.remove_path(&key("sdz"), t(31)), vec![]);
    assert_eq!(engine.maps()[0].paths, vec![key("sdb")]);
}

#[test]
fn removed_map_takes_its_paths_and_their_runs_with_it() {
    let mut engine = engine_with(&[("sda", true), ("sdb", true), ("sdc", true)]);
    make_marginal(&mut engine, "sda", 0);
    start_check(&mut engine, "sdb", 30);
    let out = engine.remove_map(&mpatha(), t(40));
    assert_eq!(
        out,
        vec![
            Decision::Released {
                path: key("sda"),
                reason: Reason::MapRemoved,
            },
            stop_sampling("sdb", Reason::MapRemoved),
            Decision::Released {
                path: key("sdb"),
                reason: Reason::MapRemoved,
            },
        ]
    );
    assert!(engine.maps().is_empty());
    assert!(engine.snapshot().is_empty());
    assert_eq!(engine.next_deadline(), None);
}

#[test]
fn paths_need_a_known_map() {
    let mut engine = Engine::new();
    assert_eq!(
        engine.add_path(&mpatha(), key("sda"), true, t(0)),
        Err(EngineError::UnknownMap(mpatha()))
    );
    assert_eq!(
        engine.adopt_failed_path(&key("sda"), t(0)),
        Err(EngineError::UnknownPath(key("sda")))
    );
}

#[test]
fn adding_a_known_path_again_updates_its_dm_state() {
    let mut engine = engine_with(&[("sda", true), ("sdb", true)]);
    make_marginal(&mut engine, "sda", 0);
    let out = engine
        .add_path(&mpatha(), key("sdb"), false, t(30))
        .unwrap();
    assert_eq!(
        actions(&out),
        vec![recover_path("sda", Reason::MapWithoutActivePath)]
    );
    assert!(!engine.path(&key("sdb")).unwrap().dm_active);
}

#[test]
fn a_path_that_moves_to_another_map_starts_afresh() {
    let mut engine = engine_with(&[("sda", true), ("sdb", true), ("sdc", true)]);
    engine.upsert_map(mpathb(), Some(params()), t(0));
    make_marginal(&mut engine, "sda", 0);
    let out = engine.add_path(&mpathb(), key("sda"), true, t(30)).unwrap();
    assert_eq!(
        out,
        vec![Decision::Released {
            path: key("sda"),
            reason: Reason::PathRemoved,
        }]
    );
    let snap = engine.path(&key("sda")).unwrap();
    assert_eq!(snap.map, mpathb());
    assert_eq!(snap.state, StateName::Healthy);
    assert_eq!(snap.failures, 0);
}

#[test]
fn turning_checking_off_returns_held_out_paths_and_forgets_pending_failures() {
    let mut engine = engine_with(&[("sda", true), ("sdb", true), ("sdc", true), ("sdd", true)]);
    make_marginal(&mut engine, "sda", 0);
    start_check(&mut engine, "sdb", 30);
    fail(&mut engine, "sdc", 40);
    let out = engine.upsert_map(mpatha(), None, t(50));
    assert_eq!(
        actions(&out),
        vec![
            reinstate_path("sda", Reason::CheckingDisabled),
            stop_sampling("sdb", Reason::CheckingDisabled),
            reinstate_path("sdb", Reason::CheckingDisabled),
        ]
    );
    for path in ["sda", "sdb", "sdc", "sdd"] {
        let snap = engine.path(&key(path)).unwrap();
        assert_eq!(snap.state, StateName::Healthy, "{path}");
        assert!(!snap.checking);
    }
    assert_eq!(engine.next_deadline(), None);
    assert!(engine.shutdown_plan().is_empty());
}

#[test]
fn turning_checking_back_on_starts_from_scratch() {
    let mut engine = engine_with(&[("sda", true), ("sdb", true)]);
    engine.upsert_map(mpatha(), None, t(0));
    fail(&mut engine, "sda", 1);
    assert!(engine.upsert_map(mpatha(), Some(params()), t(2)).is_empty());
    reinstated(&mut engine, "sda", 3);
    fail(&mut engine, "sda", 4);
    assert_eq!(
        state(&engine, "sda"),
        StateName::Suspect,
        "failure at 1 not held"
    );
}

#[test]
fn each_map_uses_its_own_parameters() {
    let mut engine = engine_with(&[("sda", true), ("sdb", true)]);
    let strict = Params {
        double_failed_time: Duration::from_secs(10),
        sample_time: Duration::from_secs(3),
        err_rate_threshold: 5,
        recheck_gap_time: Duration::from_secs(30),
        slow: None,
        action: Default::default(),
    };
    engine.upsert_map(mpathb(), Some(strict), t(0));
    engine.add_path(&mpathb(), key("sdc"), true, t(0)).unwrap();
    engine.add_path(&mpathb(), key("sdd"), true, t(0)).unwrap();

    // Failures 30 s apart: a double failure in mpatha (60 s window), not in mpathb (10 s).
    fail(&mut engine, "sda", 0);
    fail(&mut engine, "sdc", 0);
    fail(&mut engine, "sda", 30);
    fail(&mut engine, "sdc", 30);
    assert_eq!(state(&engine, "sda"), StateName::Sampling);
    assert_eq!(state(&engine, "sdc"), StateName::Suspect);

    // mpathb's own sample time.
    let out = fail(&mut engine, "sdc", 35);
    assert!(out.contains(&Decision::StartSampling {
        path: key("sdc"),
        duration: Duration::from_secs(3),
        reason: Reason::DoubleFailure {
            first_at: t(30),
            second_at: t(35),
            window: Duration::from_secs(10),
        },
    }));

    // The same rate (1 %) passes mpatha's 50 ‰ threshold and fails mpathb's 5 ‰.
    finish(&mut engine, "sda", 40, 1000, 10);
    finish(&mut engine, "sdc", 40, 1000, 10);
    assert_eq!(state(&engine, "sda"), StateName::Healthy);
    assert_eq!(state(&engine, "sdc"), StateName::Marginal);
    // ... and mpathb's own recheck gap.
    assert_eq!(
        engine.path(&key("sdc")).unwrap().next_recheck_at,
        Some(t(70))
    );
}

#[test]
fn sample_time_is_used_as_given_without_a_floor() {
    let mut engine = Engine::new();
    let quick = Params {
        sample_time: Duration::from_millis(500),
        ..params()
    };
    engine.upsert_map(mpatha(), Some(quick), t(0));
    engine.add_path(&mpatha(), key("sda"), true, t(0)).unwrap();
    engine.add_path(&mpatha(), key("sdb"), true, t(0)).unwrap();
    fail(&mut engine, "sda", 0);
    let out = fail(&mut engine, "sda", 1);
    assert!(out.contains(&Decision::StartSampling {
        path: key("sda"),
        duration: Duration::from_millis(500),
        reason: double(0, 1),
    }));
}

#[test]
fn changed_parameters_apply_from_the_next_transition() {
    let mut engine = engine_with(&[("sda", true), ("sdb", true)]);
    start_check(&mut engine, "sda", 0);
    let longer = Params {
        sample_time: Duration::from_secs(100),
        recheck_gap_time: Duration::from_secs(1000),
        action: Default::default(),
        ..params()
    };
    assert!(engine.upsert_map(mpatha(), Some(longer), t(6)).is_empty());
    // The run in progress keeps its own length ...
    assert_eq!(engine.next_deadline(), Some(t(5) + SAMPLE + SAMPLING_GRACE));
    // ... its verdict uses the new gap.
    finish(&mut engine, "sda", 15, 100, 100);
    assert_eq!(
        engine.path(&key("sda")).unwrap().next_recheck_at,
        Some(t(1015))
    );
}

#[test]
fn map_snapshot_reports_params_paths_and_counts() {
    let mut engine = engine_with(&[("sda", true), ("sdb", true), ("sdc", false)]);
    engine.upsert_map(mpathb(), None, t(0));
    make_marginal(&mut engine, "sda", 0);
    let maps = engine.maps();
    assert_eq!(maps.len(), 2);
    assert_eq!(maps[0].map, mpatha());
    assert_eq!(maps[0].params, Some(params()));
    assert_eq!(maps[0].paths, vec![key("sda"), key("sdb"), key("sdc")]);
    assert_eq!((maps[0].active_paths, maps[0].held_out_paths), (1, 1));
    assert_eq!(maps[1].params, None);
    assert!(maps[1].paths.is_empty());
    let names: Vec<_> = engine.snapshot().into_iter().map(|s| s.path).collect();
    assert_eq!(names, vec![key("sda"), key("sdb"), key("sdc")]);
}
