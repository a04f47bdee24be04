//! The per-path state machine on its own, for branches the engine's at-once rule normally
//! pre-empts (a held-out path facing a map with no other active path).
use super::*;
use crate::engine::{
    Verdict,
    path::{Ctx, MapView, PathRecord, PathState},
};

fn view(other_active: usize) -> MapView {
    MapView {
        params: params(),
        other_active,
    }
}

fn held_out_sampling() -> PathRecord {
    let mut record = PathRecord::new(false, t(0));
    record.state = PathState::Sampling {
        started_at: t(0),
        duration: SAMPLE,
        held_out: true,
        recheck: false,
    };
    record
}

#[test]
fn held_out_path_judged_marginal_with_no_other_active_path_is_recovered() {
    let mut record = held_out_sampling();
    let (path, map) = (key("sda"), mpatha());
    let mut out = Vec::new();
    let mut ctx = Ctx {
        path: &path,
        map: &map,
        now: t(10),
        out: &mut out,
    };
    record.sampling_finished(&mut ctx, view(0), 100, 100, None);
    let m = record.stats.last_measurement.unwrap();
    assert_eq!(m.verdict, Verdict::MarginalButLastPath);
    assert_eq!(
        actions(&out),
        vec![recover_path("sda", Reason::MarginalButLastPath(m))]
    );
    assert_eq!(record.state, PathState::Healthy);
    assert_eq!(
        (record.stats.recoveries, record.stats.marginal_verdicts),
        (1, 1)
    );
}

#[test]
fn due_recheck_with_no_other_active_path_recovers_instead_of_sampling() {
    let mut record = PathRecord::new(false, t(0));
    record.state = PathState::Marginal {
        recheck_at: t(5),
        slow: false,
    };
    let (path, map) = (key("sda"), mpatha());
    let mut out = Vec::new();
    let mut ctx = Ctx {
        path: &path,
        map: &map,
        now: t(5),
        out: &mut out,
    };
    record.poll(&mut ctx, view(0));
    assert_eq!(
        actions(&out),
        vec![recover_path("sda", Reason::MapWithoutActivePath)]
    );
    assert_eq!(record.state, PathState::Healthy);
}

#[test]
fn reinstated_held_out_path_with_no_other_active_path_is_accepted_as_recovered() {
    let mut record = held_out_sampling();
    let (path, map) = (key("sda"), mpatha());
    let mut out = Vec::new();
    let mut ctx = Ctx {
        path: &path,
        map: &map,
        now: t(3),
        out: &mut out,
    };
    record.reinstated(&mut ctx, Some(view(0)));
    assert_eq!(
        actions(&out),
        vec![
            stop_sampling("sda", Reason::MapWithoutActivePath),
            recover_path("sda", Reason::MapWithoutActivePath),
        ]
    );
    assert!(record.is_active());
}

#[test]
fn held_out_means_not_active_whatever_dm_says() {
    let mut record = held_out_sampling();
    record.dm_active = true;
    assert!(!record.is_active());
    record.state = PathState::Sampling {
        started_at: t(0),
        duration: SAMPLE,
        held_out: false,
        recheck: false,
    };
    assert!(record.is_active());
}
