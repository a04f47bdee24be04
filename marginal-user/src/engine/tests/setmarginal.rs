//! `marginal_path_action setmarginal`: the path stays active in dm as a last resort, so the
//! last-active-path rule and the recovery of a map left without active paths do not apply;
//! rechecks and returns are as for a failed path.
use super::*;
use crate::engine::{PathAction, Verdict};

fn setmarginal_engine(paths: &[(&str, bool)]) -> Engine {
    let mut engine = Engine::new();
    let params = Params {
        action: PathAction::SetMarginal,
        ..params()
    };
    engine.upsert_map(mpatha(), Some(params), t(0));
    for &(name, active) in paths {
        engine.add_path(&mpatha(), key(name), active, t(0)).unwrap();
    }
    engine
}

#[test]
fn even_the_last_active_path_is_held_as_marginal_and_sampled() {
    let mut engine = setmarginal_engine(&[("sda", true), ("sdb", false)]);
    fail(&mut engine, "sda", 0);
    let out = fail(&mut engine, "sda", 5);
    assert_eq!(
        actions(&out),
        vec![
            fail_path("sda", double(0, 5)),
            start_sampling("sda", double(0, 5)),
        ]
    );
    let snap = engine.path(&key("sda")).unwrap();
    assert_eq!(snap.state, StateName::Sampling);
    assert!(snap.held_out);
    assert_eq!(snap.held_as, PathAction::SetMarginal);
}

#[test]
fn a_bad_run_is_marginal_even_with_no_other_active_path() {
    let mut engine = setmarginal_engine(&[("sda", true), ("sdb", false)]);
    fail(&mut engine, "sda", 0);
    fail(&mut engine, "sda", 5);
    let out = finish(&mut engine, "sda", 15, 100, 90);
    let m = engine.path(&key("sda")).unwrap().last_measurement.unwrap();
    assert_eq!(m.verdict, Verdict::Marginal, "not MarginalButLastPath");
    assert_eq!(actions(&out), vec![], "no recovery, no reinstatement");
    assert_eq!(state(&engine, "sda"), StateName::Marginal);
}

#[test]
fn the_other_path_failing_recovers_nothing_and_the_recheck_still_comes() {
    let mut engine = setmarginal_engine(&[("sda", true), ("sdb", true)]);
    make_marginal(&mut engine, "sdb", 0);
    // sda, the only other path, fails: sdb still carries I/O from its own group.
    let out = fail(&mut engine, "sda", 30);
    assert!(
        !out.iter()
            .any(|d| matches!(d, Decision::RecoverPath { .. })),
        "{out:?}"
    );
    assert!(held_out(&engine, "sdb"));
    // The recheck is due after the gap although no other path is active.
    let out = engine.poll(t(15 + GAP.as_secs()));
    assert_eq!(
        actions(&out),
        vec![start_sampling("sdb", Reason::RecheckDue)]
    );
    // It passes: returned (the daemon sends unsetmarginal).
    let out = finish(&mut engine, "sdb", 25 + GAP.as_secs(), 100, 0);
    let m = engine.path(&key("sdb")).unwrap().last_measurement.unwrap();
    assert_eq!(
        actions(&out),
        vec![reinstate_path("sdb", Reason::Passed(m))]
    );
    assert_eq!(state(&engine, "sdb"), StateName::Healthy);
}

#[test]
fn a_reinstatement_by_dm_is_not_fought() {
    let mut engine = setmarginal_engine(&[("sda", true), ("sdb", true)]);
    make_marginal(&mut engine, "sdb", 0);
    // dm failed sdb while it carried I/O as a last resort; the checker reinstated it.
    let out = reinstated(&mut engine, "sdb", 40);
    assert_eq!(
        actions(&out),
        vec![],
        "no fail: it is marginal in multipathd still"
    );
    assert!(held_out(&engine, "sdb"));
}

#[test]
fn a_path_failed_before_the_switch_to_setmarginal_is_still_recovered() {
    // Held by a fail; the map then changes to setmarginal: the hold keeps its kind.
    let mut engine = engine_with(&[("sda", true), ("sdb", true)]);
    make_marginal(&mut engine, "sdb", 0);
    let params = Params {
        action: PathAction::SetMarginal,
        ..params()
    };
    engine.upsert_map(mpatha(), Some(params), t(20));
    assert_eq!(engine.path(&key("sdb")).unwrap().held_as, PathAction::Fail);
    let out = fail(&mut engine, "sda", 30);
    assert_eq!(
        actions(&out),
        vec![recover_path("sdb", Reason::MapWithoutActivePath)]
    );
}

#[test]
fn the_default_action_is_fail() {
    assert_eq!(params().action, PathAction::Fail);
    let mut engine = engine_with(&[("sda", true), ("sdb", true)]);
    make_marginal(&mut engine, "sdb", 0);
    assert_eq!(engine.path(&key("sdb")).unwrap().held_as, PathAction::Fail);
}
