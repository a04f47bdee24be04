//! Scenario tests of the engine on a fake clock: every rule of the spec is a transition here.
use std::time::Duration;

use super::{Decision, Engine, Event, MapName, Params, PathKey, Reason, StateName, Timestamp};

mod detection;
mod last_path;
mod lifecycle;
mod recheck;
mod record;
mod restart;
mod setmarginal;
mod slow;
mod verdicts;

/// Short runs on purpose: the 120 s floor belongs to the configuration layer, not the engine.
const SAMPLE: Duration = Duration::from_secs(10);
const WINDOW: Duration = Duration::from_secs(60);
const GAP: Duration = Duration::from_secs(300);
const THRESHOLD: u32 = 50;

fn params() -> Params {
    Params {
        double_failed_time: WINDOW,
        sample_time: SAMPLE,
        err_rate_threshold: THRESHOLD,
        recheck_gap_time: GAP,
        slow: None,
        action: Default::default(),
    }
}

fn t(secs: u64) -> Timestamp {
    Timestamp::from_secs(secs)
}

fn key(name: &str) -> PathKey {
    PathKey::from(name)
}

fn mpatha() -> MapName {
    MapName::from("mpatha")
}

/// An engine with map `mpatha` (default params) and the given paths, `(name, dm_active)`.
fn engine_with(paths: &[(&str, bool)]) -> Engine {
    let mut engine = Engine::new();
    assert!(engine.upsert_map(mpatha(), Some(params()), t(0)).is_empty());
    for &(name, active) in paths {
        let out = engine.add_path(&mpatha(), key(name), active, t(0)).unwrap();
        assert!(out.is_empty(), "{out:?}");
    }
    engine
}

fn fail(engine: &mut Engine, path: &str, at: u64) -> Vec<Decision> {
    engine.handle(
        t(at),
        Event::PathFailed {
            path: key(path),
            at: t(at),
        },
    )
}

fn finish(engine: &mut Engine, path: &str, at: u64, reads: u64, errors: u64) -> Vec<Decision> {
    engine.handle(
        t(at),
        Event::SamplingFinished {
            path: key(path),
            reads,
            errors,
            latency_ns: None,
        },
    )
}

fn reinstated(engine: &mut Engine, path: &str, at: u64) -> Vec<Decision> {
    engine.handle(t(at), Event::PathReinstated { path: key(path) })
}

/// Fails `path` twice (at `at` and `at + 5`) while another path is active: it is now sampled,
/// held out. Returns the decisions of the second failure.
fn start_check(engine: &mut Engine, path: &str, at: u64) -> Vec<Decision> {
    assert_eq!(actions(&fail(engine, path, at)), vec![]);
    let out = fail(engine, path, at + 5);
    assert_eq!(state(engine, path), StateName::Sampling, "{out:?}");
    out
}

/// Drives `path` to marginal: double failure at `at`, a bad run finished at `at + 15`.
fn make_marginal(engine: &mut Engine, path: &str, at: u64) {
    start_check(engine, path, at);
    finish(engine, path, at + 15, 100, 60);
    assert_eq!(state(engine, path), StateName::Marginal);
}

fn state(engine: &Engine, path: &str) -> StateName {
    engine.path(&key(path)).expect("known path").state
}

fn held_out(engine: &Engine, path: &str) -> bool {
    engine.path(&key(path)).expect("known path").held_out
}

/// The decisions that ask the daemon to do something (no state notes, no measurements).
fn actions(out: &[Decision]) -> Vec<Decision> {
    out.iter()
        .filter(|d| !matches!(d, Decision::StateChanged { .. } | Decision::Measured { .. }))
        .cloned()
        .collect()
}

fn fail_path(path: &str, reason: Reason) -> Decision {
    Decision::FailPath {
        path: key(path),
        map: mpatha(),
        reason,
    }
}

fn reinstate_path(path: &str, reason: Reason) -> Decision {
    Decision::ReinstatePath {
        path: key(path),
        map: mpatha(),
        reason,
    }
}

fn recover_path(path: &str, reason: Reason) -> Decision {
    Decision::RecoverPath {
        path: key(path),
        map: mpatha(),
        reason,
    }
}

fn keep_in_service(path: &str, reason: Reason) -> Decision {
    Decision::KeepInService {
        path: key(path),
        map: mpatha(),
        reason,
    }
}

fn start_sampling(path: &str, reason: Reason) -> Decision {
    Decision::StartSampling {
        path: key(path),
        duration: SAMPLE,
        reason,
    }
}

fn stop_sampling(path: &str, reason: Reason) -> Decision {
    Decision::StopSampling {
        path: key(path),
        reason,
    }
}

fn double(first: u64, second: u64) -> Reason {
    Reason::DoubleFailure {
        first_at: t(first),
        second_at: t(second),
        window: WINDOW,
    }
}
