//! `marginal_path_action setmarginal`: the path is set marginal in multipathd instead of
//! failed, stays active in dm (a last resort), is not fought by the reconciliation, is not
//! recovered when its map loses the other paths, and returns by `unsetmarginal`.
use super::*;
use crate::{config::MultipathdConfig, engine::PathAction};

const SETMARGINAL: &str = "defaults {
    marginal_path_double_failed_time 60
    marginal_path_err_sample_time 120
    marginal_path_err_rate_threshold 100
    marginal_path_err_recheck_gap_time 300
    marginal_path_action setmarginal
}
";

/// marginal.conf asking for setmarginal, multipathd running with `pathgroups`.
fn setmarginal_config(pathgroups: &str) -> Config {
    let running = format!("defaults {{\n\tmarginal_pathgroups \"{pathgroups}\"\n}}\n");
    let multipathd = MultipathdConfig::from_parts(
        Config::parse_str("multipath.conf", "").unwrap(),
        Some(&running),
    );
    Config::parse_str("marginal.conf", SETMARGINAL)
        .unwrap()
        .with_multipathd(multipathd)
}

fn setmarginal_bed(pathgroups: &str) -> Bed {
    bed(Options {
        config: Some(setmarginal_config(pathgroups)),
        ..Options::default()
    })
}

fn calls(bed: &Bed, path: &str) -> Vec<Call> {
    bed.actuator
        .calls()
        .into_iter()
        .filter(|c| match c {
            Call::Fail(p) | Call::Reinstate(p) | Call::SetMarginal(p) | Call::UnsetMarginal(p) => {
                p == path
            }
        })
        .collect()
}

/// sdb fails twice (dm fails it, as the flapping path's I/O does); multipathd's checker puts
/// it back; its run is bad: marginal.
fn marginal_sdb(bed: &mut Bed) {
    bed.double_failure(SDB);
    bed.dm.set_active(SDB, true);
    let now = bed.at();
    bed.daemon.on_kernel_events(
        vec![KernelEvent::DmPathReinstated {
            dev: dev(SDB),
            at_ns: now.as_nanos(),
            valid_paths: 2,
        }],
        now,
    );
    bed.report("sdb", 100, 50);
    assert_eq!(bed.state("sdb"), StateName::Marginal);
}

fn state_entry(bed: &Bed, path: &str) -> Option<HeldOutPath> {
    HeldOutFile::open_read_only(&bed.state_file)
        .unwrap()
        .get(path)
        .cloned()
}

#[test]
fn a_marginal_path_is_set_marginal_not_failed_and_the_state_says_so() {
    let mut bed = setmarginal_bed("on");
    marginal_sdb(&mut bed);
    assert_eq!(calls(&bed, "sdb"), vec![Call::SetMarginal("sdb".into())]);
    assert_eq!(
        state_entry(&bed, "sdb").map(|e| e.action),
        Some(PathAction::SetMarginal)
    );
    let status = bed.daemon.snapshot(0.0);
    let map = &status.maps[0];
    assert_eq!(map.action, "setmarginal");
    let sdb = map.paths.iter().find(|p| p.name == "sdb").unwrap();
    assert!(sdb.active && sdb.failed_by_marginal);
    assert_eq!(sdb.held_as, "setmarginal");
}

#[test]
fn reconciliation_does_not_fight_a_marginal_path_active_in_dm() {
    let mut bed = setmarginal_bed("on");
    marginal_sdb(&mut bed);
    bed.dm.reload("mpatha");
    bed.rediscover();
    assert_eq!(calls(&bed, "sdb"), vec![Call::SetMarginal("sdb".into())]);
    assert!(bed.dm.is_active(SDB));
    assert!(bed.held("sdb"));
}

#[test]
fn a_multipathd_that_forgot_the_flag_is_told_again() {
    let mut bed = setmarginal_bed("on");
    marginal_sdb(&mut bed);
    bed.actuator.marginal.lock().unwrap().clear(); // multipathd restarted
    bed.rediscover();
    assert_eq!(
        calls(&bed, "sdb"),
        vec![
            Call::SetMarginal("sdb".into()),
            Call::SetMarginal("sdb".into())
        ]
    );
}

#[test]
fn losing_the_other_path_leaves_it_marginal_as_the_last_resort_then_a_passing_recheck_returns_it() {
    let mut bed = setmarginal_bed("on");
    marginal_sdb(&mut bed);
    // sda fails: sdb carries the I/O from its own group; nothing to recover.
    bed.dm.set_active(SDA, false);
    let now = bed.at();
    bed.daemon
        .on_kernel_events(vec![dm_failed(SDA, now.as_nanos())], now);
    assert_eq!(
        calls(&bed, "sdb").len(),
        1,
        "no unsetmarginal, no reinstate"
    );
    assert!(bed.held("sdb"));
    // The recheck comes after the gap even so, and passes: unsetmarginal.
    bed.later(300);
    assert_eq!(bed.state("sdb"), StateName::Sampling);
    bed.report("sdb", 100, 0);
    assert_eq!(
        calls(&bed, "sdb").last(),
        Some(&Call::UnsetMarginal("sdb".into()))
    );
    assert_eq!(bed.state("sdb"), StateName::Healthy);
    assert!(!bed.state_file_lists("sdb"));
}

#[test]
fn shutdown_unsets_marginal() {
    let mut bed = setmarginal_bed("on");
    marginal_sdb(&mut bed);
    bed.daemon.shutdown(false);
    assert_eq!(
        calls(&bed, "sdb").last(),
        Some(&Call::UnsetMarginal("sdb".into()))
    );
    assert!(!bed.state_file_lists("sdb"));
}

#[test]
fn without_marginal_pathgroups_on_it_falls_back_to_failing_and_says_why() {
    let mut bed = setmarginal_bed("off");
    let status = bed.daemon.snapshot(0.0);
    assert_eq!(status.maps[0].action, "fail");
    let detail = &status.maps[0].action_detail;
    assert!(
        detail.contains("marginal_pathgroups off") && detail.contains("falling back"),
        "{detail}"
    );
    bed.double_failure(SDB);
    assert_eq!(calls(&bed, "sdb"), vec![Call::Fail("sdb".into())]);
    assert_eq!(
        state_entry(&bed, "sdb").map(|e| e.action),
        Some(PathAction::Fail)
    );
}

#[test]
fn a_path_a_previous_run_failed_taken_up_under_setmarginal_is_given_back_to_dm_first() {
    // A previous run failed sda (dm has it failed); the map's action is setmarginal now.
    let dm = FakeDm::new(vec![fakes::map(
        "mpatha",
        WWID,
        0,
        &[("sda", 0), ("sdb", 16)],
    )]);
    dm.set_active(SDA, false);
    let bed = bed_with(
        dm,
        Options {
            state: Some(state_text(&[("sda", held_entry("8:0", WWID))])),
            config: Some(setmarginal_config("on")),
            ..Options::default()
        },
    );
    assert_eq!(
        calls(&bed, "sda"),
        vec![
            Call::Reinstate("sda".into()),
            Call::SetMarginal("sda".into())
        ]
    );
    assert!(bed.dm.is_active(SDA), "in service, as a last resort");
    assert_eq!(
        state_entry(&bed, "sda").map(|e| e.action),
        Some(PathAction::SetMarginal)
    );
    assert_eq!(bed.state("sda"), StateName::Sampling);
}
