//! The end of a sampling run: rate, verdict, and what happens to the path.
use super::*;
use crate::engine::{Measurement, Verdict};

fn measurement(at: u64, reads: u64, errors: u64, rate: u32, verdict: Verdict) -> Measurement {
    Measurement {
        at: t(at),
        reads,
        errors,
        latency: None,
        rate_permille: rate,
        threshold_permille: THRESHOLD,
        verdict,
    }
}

#[test]
fn passing_run_reinstates_the_path_and_makes_it_healthy() {
    let mut engine = engine_with(&[("sda", true), ("sdb", true)]);
    start_check(&mut engine, "sda", 0);
    let out = finish(&mut engine, "sda", 15, 1000, 50);
    let m = measurement(15, 1000, 50, 50, Verdict::Passed);
    assert_eq!(
        out,
        vec![
            Decision::Measured {
                path: key("sda"),
                measurement: m,
            },
            reinstate_path("sda", Reason::Passed(m)),
            Decision::StateChanged {
                path: key("sda"),
                from: StateName::Sampling,
                to: StateName::Healthy,
            },
        ]
    );
    let snap = engine.path(&key("sda")).unwrap();
    assert!(!snap.held_out);
    assert_eq!(snap.last_measurement, Some(m));
    assert_eq!(snap.first_failure_at, None, "window forgotten");
    assert_eq!(engine.next_deadline(), None);
}

#[test]
fn healthy_again_needs_a_fresh_double_failure() {
    let mut engine = engine_with(&[("sda", true), ("sdb", true)]);
    start_check(&mut engine, "sda", 0);
    finish(&mut engine, "sda", 15, 1000, 0);
    reinstated(&mut engine, "sda", 16);
    assert_eq!(actions(&fail(&mut engine, "sda", 20)), vec![]);
    assert_eq!(state(&engine, "sda"), StateName::Suspect);
}

#[test]
fn failing_run_with_another_active_path_keeps_the_path_out() {
    let mut engine = engine_with(&[("sda", true), ("sdb", true)]);
    start_check(&mut engine, "sda", 0);
    let out = finish(&mut engine, "sda", 15, 1000, 51);
    let m = measurement(15, 1000, 51, 51, Verdict::Marginal);
    assert_eq!(actions(&out), vec![], "already failed: nothing to do");
    assert!(out.contains(&Decision::StateChanged {
        path: key("sda"),
        from: StateName::Sampling,
        to: StateName::Marginal,
    }));
    let snap = engine.path(&key("sda")).unwrap();
    assert!(snap.held_out);
    assert_eq!(snap.next_recheck_at, Some(t(15) + GAP));
    assert_eq!(snap.last_reason, Some(Reason::Marginal(m)));
    assert_eq!(snap.marginal_verdicts, 1);
    assert_eq!(engine.next_deadline(), Some(t(15) + GAP));
}

#[test]
fn map_losing_its_last_active_path_mid_run_recovers_before_any_verdict() {
    // A held-out path never reaches a verdict with no other active path: the at-once rule
    // returns it the moment the map runs dry (the verdict rule for the last path is exercised
    // on paths sampled in service, see last_path.rs, and on the record itself in path.rs).
    let mut engine = engine_with(&[("sda", true), ("sdb", true)]);
    start_check(&mut engine, "sda", 0);
    let resync = engine.handle(
        t(15),
        Event::MapActivePaths {
            map: mpatha(),
            active: Default::default(),
        },
    );
    assert_eq!(
        actions(&resync),
        vec![
            stop_sampling("sda", Reason::MapWithoutActivePath),
            recover_path("sda", Reason::MapWithoutActivePath),
        ]
    );
    assert_eq!(state(&engine, "sda"), StateName::Healthy);
    assert_eq!(
        finish(&mut engine, "sda", 15, 100, 100),
        vec![],
        "late report ignored"
    );
}

#[test]
fn no_reads_means_rate_zero_and_a_pass() {
    let mut engine = engine_with(&[("sda", true), ("sdb", true)]);
    start_check(&mut engine, "sda", 0);
    let out = finish(&mut engine, "sda", 15, 0, 0);
    let m = measurement(15, 0, 0, 0, Verdict::Passed);
    assert_eq!(
        actions(&out),
        vec![reinstate_path("sda", Reason::Passed(m))]
    );
}

#[test]
fn more_errors_than_reads_is_a_rate_of_1000_not_more() {
    let mut engine = engine_with(&[("sda", true), ("sdb", true)]);
    start_check(&mut engine, "sda", 0);
    finish(&mut engine, "sda", 15, 10, 40);
    let m = engine.path(&key("sda")).unwrap().last_measurement.unwrap();
    assert_eq!(m.rate_permille, 1000);
    assert_eq!(m.verdict, Verdict::Marginal);
}

#[test]
fn rate_exactly_at_threshold_passes_one_above_does_not() {
    let mut engine = engine_with(&[("sda", true), ("sdb", true), ("sdc", true)]);
    start_check(&mut engine, "sda", 0);
    start_check(&mut engine, "sdb", 0);
    finish(&mut engine, "sda", 15, 1000, 50);
    finish(&mut engine, "sdb", 15, 1000, 51);
    assert_eq!(state(&engine, "sda"), StateName::Healthy);
    assert_eq!(state(&engine, "sdb"), StateName::Marginal);
}

#[test]
fn a_report_for_a_path_not_sampling_is_ignored() {
    let mut engine = engine_with(&[("sda", true), ("sdb", true)]);
    assert_eq!(finish(&mut engine, "sda", 15, 100, 100), vec![]);
    make_marginal(&mut engine, "sda", 20);
    assert_eq!(finish(&mut engine, "sda", 40, 100, 0), vec![]);
    assert_eq!(state(&engine, "sda"), StateName::Marginal);
}
