//! Time-driven transitions: the recheck of marginal paths, lost sampler reports, and what
//! happens when a run yields no verdict or someone else reinstates a held-out path.
use super::*;
use crate::engine::SAMPLING_GRACE;

/// mpatha with sda marginal since t=20 (double failure at 0/5, bad run reported at 20).
fn marginal_sda() -> Engine {
    let mut engine = engine_with(&[("sda", true), ("sdb", true)]);
    start_check(&mut engine, "sda", 0);
    finish(&mut engine, "sda", 20, 100, 60);
    assert_eq!(state(&engine, "sda"), StateName::Marginal);
    engine
}

fn recheck_due() -> Timestamp {
    t(20) + GAP
}

#[test]
fn nothing_happens_before_the_recheck_gap_elapses() {
    let mut engine = marginal_sda();
    assert_eq!(engine.next_deadline(), Some(recheck_due()));
    let just_before = Timestamp::from_nanos(recheck_due().as_nanos() - 1);
    assert_eq!(engine.poll(just_before), vec![]);
    assert_eq!(state(&engine, "sda"), StateName::Marginal);
}

#[test]
fn recheck_samples_again_while_the_path_stays_out() {
    let mut engine = marginal_sda();
    let out = engine.poll(recheck_due());
    assert_eq!(
        actions(&out),
        vec![start_sampling("sda", Reason::RecheckDue)],
        "no fail (already out), no reinstate (not passed yet)"
    );
    let snap = engine.path(&key("sda")).unwrap();
    assert_eq!(snap.state, StateName::Sampling);
    assert!(snap.held_out);
    assert_eq!(snap.sampling_runs, 2);
    assert_eq!(snap.sampling_started_at, Some(recheck_due()));
}

#[test]
fn recheck_that_passes_returns_the_path() {
    let mut engine = marginal_sda();
    engine.poll(recheck_due());
    let done = recheck_due() + SAMPLE;
    let out = engine.handle(
        done,
        Event::SamplingFinished {
            path: key("sda"),
            reads: 100,
            errors: 0,
            latency_ns: None,
        },
    );
    let m = engine.path(&key("sda")).unwrap().last_measurement.unwrap();
    assert_eq!(
        actions(&out),
        vec![reinstate_path("sda", Reason::Passed(m))]
    );
    assert_eq!(state(&engine, "sda"), StateName::Healthy);
}

#[test]
fn recheck_that_fails_keeps_the_path_out_for_another_gap() {
    let mut engine = marginal_sda();
    engine.poll(recheck_due());
    let done = recheck_due() + SAMPLE;
    let out = engine.handle(
        done,
        Event::SamplingFinished {
            path: key("sda"),
            reads: 100,
            errors: 10,
            latency_ns: None,
        },
    );
    assert_eq!(actions(&out), vec![]);
    let snap = engine.path(&key("sda")).unwrap();
    assert_eq!(snap.state, StateName::Marginal);
    assert_eq!(snap.next_recheck_at, Some(done + GAP));
    assert_eq!(snap.marginal_verdicts, 2);
    assert_eq!(engine.next_deadline(), Some(done + GAP));
}

#[test]
fn sampler_that_never_reports_is_given_up_on_and_the_path_kept_out_for_a_recheck() {
    let mut engine = engine_with(&[("sda", true), ("sdb", true)]);
    start_check(&mut engine, "sda", 0);
    let overdue = t(5) + SAMPLE + SAMPLING_GRACE;
    assert_eq!(engine.next_deadline(), Some(overdue));
    assert_eq!(engine.poll(t(5) + SAMPLE), vec![], "still within grace");
    let out = engine.poll(overdue);
    let reason = Reason::SamplingOverdue { started_at: t(5) };
    assert_eq!(actions(&out), vec![stop_sampling("sda", reason)]);
    let snap = engine.path(&key("sda")).unwrap();
    assert_eq!(snap.state, StateName::Marginal);
    assert!(snap.held_out, "nothing proved it healthy");
    assert_eq!(snap.next_recheck_at, Some(overdue + GAP));
}

#[test]
fn overdue_recheck_keeps_the_marginal_verdict() {
    let mut engine = marginal_sda();
    engine.poll(recheck_due());
    let overdue = recheck_due() + SAMPLE + SAMPLING_GRACE;
    let out = engine.poll(overdue);
    let reason = Reason::SamplingOverdue {
        started_at: recheck_due(),
    };
    assert_eq!(actions(&out), vec![stop_sampling("sda", reason)]);
    let snap = engine.path(&key("sda")).unwrap();
    assert_eq!(snap.state, StateName::Marginal);
    assert_eq!(snap.next_recheck_at, Some(overdue + GAP));
}

/// An offline device (open fails with ENXIO) that dm itself failed is not put back in front
/// of I/O: it stays out until a recheck can measure it.
#[test]
fn failed_first_run_keeps_the_path_out_until_a_recheck() {
    let mut engine = engine_with(&[("sda", true), ("sdb", true)]);
    start_check(&mut engine, "sda", 0);
    let out = engine.handle(
        t(8),
        Event::SamplingFailed {
            path: key("sda"),
            error: "No such device or address".into(),
        },
    );
    let reason = Reason::SamplingFailed("No such device or address".into());
    assert_eq!(actions(&out), vec![]);
    let snap = engine.path(&key("sda")).unwrap();
    assert_eq!(snap.state, StateName::Marginal);
    assert!(snap.held_out);
    assert_eq!(snap.next_recheck_at, Some(t(8) + GAP));
    assert_eq!(snap.last_reason, Some(reason));
    // The recheck passes once the device is back: then it returns.
    engine.poll(t(8) + GAP);
    let out = finish(&mut engine, "sda", 8 + GAP.as_secs() + 10, 100, 0);
    assert!(matches!(
        actions(&out).as_slice(),
        [Decision::ReinstatePath { .. }]
    ));
}

#[test]
fn failed_recheck_keeps_the_path_marginal() {
    let mut engine = marginal_sda();
    engine.poll(recheck_due());
    let at = recheck_due() + Duration::from_secs(3);
    let out = engine.handle(
        at,
        Event::SamplingFailed {
            path: key("sda"),
            error: "EIO on open".into(),
        },
    );
    assert_eq!(actions(&out), vec![]);
    let snap = engine.path(&key("sda")).unwrap();
    assert_eq!(snap.state, StateName::Marginal);
    assert_eq!(snap.next_recheck_at, Some(at + GAP));
}

#[test]
fn failed_in_service_run_just_ends_the_check() {
    let mut engine = engine_with(&[("sda", true), ("sdb", false)]);
    fail(&mut engine, "sda", 0);
    fail(&mut engine, "sda", 1);
    let out = engine.handle(
        t(3),
        Event::SamplingFailed {
            path: key("sda"),
            error: "gone".into(),
        },
    );
    assert_eq!(actions(&out), vec![]);
    assert_eq!(state(&engine, "sda"), StateName::Healthy);
}

#[test]
fn marginal_path_reinstated_by_someone_else_is_failed_again() {
    let mut engine = marginal_sda();
    let out = reinstated(&mut engine, "sda", 30);
    assert_eq!(
        actions(&out),
        vec![fail_path("sda", Reason::ReinstatedWhileHeldOut)]
    );
    let snap = engine.path(&key("sda")).unwrap();
    assert_eq!(snap.state, StateName::Marginal);
    assert!(snap.dm_active && snap.held_out);
    assert_eq!(
        snap.next_recheck_at,
        Some(recheck_due()),
        "recheck unchanged"
    );
}

#[test]
fn sampling_path_reinstated_by_someone_else_is_failed_again_and_keeps_sampling() {
    let mut engine = engine_with(&[("sda", true), ("sdb", true)]);
    start_check(&mut engine, "sda", 0);
    let out = reinstated(&mut engine, "sda", 6);
    assert_eq!(
        actions(&out),
        vec![fail_path("sda", Reason::ReinstatedWhileHeldOut)]
    );
    let snap = engine.path(&key("sda")).unwrap();
    assert_eq!(snap.state, StateName::Sampling);
    assert_eq!(snap.sampling_started_at, Some(t(5)));
}

#[test]
fn poll_handles_every_due_path_and_deadline_is_the_earliest() {
    let mut engine = engine_with(&[("sda", true), ("sdb", true), ("sdc", true)]);
    make_marginal(&mut engine, "sda", 0); // recheck at 15 + GAP
    make_marginal(&mut engine, "sdb", 10); // recheck at 25 + GAP
    assert_eq!(engine.next_deadline(), Some(t(15) + GAP));
    let out = engine.poll(t(25) + GAP);
    assert_eq!(
        actions(&out),
        vec![
            start_sampling("sda", Reason::RecheckDue),
            start_sampling("sdb", Reason::RecheckDue),
        ]
    );
    assert_eq!(
        engine.next_deadline(),
        Some(t(25) + GAP + SAMPLE + SAMPLING_GRACE),
        "both runs started at the poll"
    );
}
