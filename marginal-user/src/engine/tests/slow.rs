//! Slow paths: checked like a double failure, judged on latency too, said "slow".
use super::*;
use crate::engine::SlowParams;

const MS: u64 = 1_000_000;

fn slow_params() -> Params {
    Params {
        slow: Some(SlowParams {
            factor: 3,
            min_ios: 100,
            floor: Duration::from_millis(20),
            window: Duration::from_secs(30),
        }),
        ..params()
    }
}

fn engine_slow(paths: &[(&str, bool)]) -> Engine {
    let mut engine = engine_with(paths);
    engine.upsert_map(mpatha(), Some(slow_params()), t(0));
    engine
}

fn found_slow(engine: &mut Engine, path: &str, at: u64) -> Vec<Decision> {
    engine.handle(
        t(at),
        Event::Slow {
            path: key(path),
            mean_ns: 200 * MS,
            siblings_ns: 10 * MS,
        },
    )
}

fn finish_with_latency(engine: &mut Engine, path: &str, at: u64, mean_ms: u64) -> Vec<Decision> {
    engine.handle(
        t(at),
        Event::SamplingFinished {
            path: key(path),
            reads: 1000,
            errors: 0,
            latency_ns: Some(mean_ms * MS),
        },
    )
}

fn state(engine: &Engine, path: &str) -> StateName {
    engine.path(&key(path)).unwrap().state
}

fn fails(out: &[Decision]) -> bool {
    out.iter().any(|d| matches!(d, Decision::FailPath { .. }))
}

fn reinstates(out: &[Decision]) -> bool {
    out.iter()
        .any(|d| matches!(d, Decision::ReinstatePath { .. }))
}

#[test]
fn a_slow_path_is_taken_out_and_sampled() {
    let mut engine = engine_slow(&[("sda", true), ("sdb", true)]);
    let out = found_slow(&mut engine, "sdb", 5);
    assert!(fails(&out), "{out:?}");
    assert!(
        out.iter()
            .any(|d| matches!(d, Decision::StartSampling { .. })),
        "{out:?}"
    );
    assert_eq!(state(&engine, "sdb"), StateName::Sampling);
}

#[test]
fn still_slow_keeps_it_out_as_slow_and_a_fast_recheck_returns_it() {
    let mut engine = engine_slow(&[("sda", true), ("sdb", true)]);
    found_slow(&mut engine, "sdb", 5);
    // No errors, but reads 10 times slower than the siblings were: stays out, "slow".
    let out = finish_with_latency(&mut engine, "sdb", 15, 100);
    assert!(!reinstates(&out), "{out:?}");
    assert_eq!(state(&engine, "sdb"), StateName::Slow);
    let snap = engine.path(&key("sdb")).unwrap();
    assert!(
        snap.last_reason.unwrap().to_string().starts_with("slow: "),
        "reason says slow"
    );
    // Recheck after the gap: fast now (within the factor), so it returns.
    let out = engine.poll(t(15) + GAP);
    assert!(
        out.iter()
            .any(|d| matches!(d, Decision::StartSampling { .. }))
    );
    let out = finish_with_latency(&mut engine, "sdb", 15 + GAP.as_secs() + 10, 12);
    assert!(reinstates(&out), "{out:?}");
    assert_eq!(state(&engine, "sdb"), StateName::Healthy);
}

#[test]
fn errors_in_a_slow_paths_run_make_it_marginal() {
    let mut engine = engine_slow(&[("sda", true), ("sdb", true)]);
    found_slow(&mut engine, "sdb", 5);
    let out = engine.handle(
        t(15),
        Event::SamplingFinished {
            path: key("sdb"),
            reads: 100,
            errors: 50,
            latency_ns: Some(5 * MS),
        },
    );
    assert!(!reinstates(&out));
    assert_eq!(state(&engine, "sdb"), StateName::Marginal);
}

#[test]
fn the_last_active_path_is_never_taken_out_for_slowness() {
    let mut engine = engine_slow(&[("sda", false), ("sdb", true)]);
    let out = found_slow(&mut engine, "sdb", 5);
    assert!(!fails(&out), "{out:?}");
    assert_eq!(state(&engine, "sdb"), StateName::SamplingInService);
    let out = finish_with_latency(&mut engine, "sdb", 15, 100);
    assert!(!fails(&out), "{out:?}");
    assert_eq!(state(&engine, "sdb"), StateName::Healthy);
}

#[test]
fn slowness_is_ignored_where_slow_checking_is_off() {
    let mut engine = engine_with(&[("sda", true), ("sdb", true)]);
    let out = found_slow(&mut engine, "sdb", 5);
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(state(&engine, "sdb"), StateName::Healthy);
}

#[test]
fn a_double_failures_run_is_judged_on_errors_only() {
    let mut engine = engine_slow(&[("sda", true), ("sdb", true)]);
    fail(&mut engine, "sdb", 1);
    fail(&mut engine, "sdb", 2);
    assert_eq!(state(&engine, "sdb"), StateName::Sampling);
    let out = finish_with_latency(&mut engine, "sdb", 12, 1000);
    assert!(reinstates(&out), "{out:?}");
}
