//! Each map's settings are resolved once per topology and configuration, not per scrape: the
//! cache must follow a reload (SIGHUP) and a topology change (a map that comes, goes or
//! changes identity), or /status and /metrics would show settings no longer in force.
use super::*;
use crate::status::MapStatus;

const OTHER_WWID: &str = "3600a098038303053ffff";

/// Checking on for [`OTHER_WWID`] only, at threshold 50 permille.
const PER_WWID_CONFIG: &str = "defaults {
    marginal_path_double_failed_time 60
    marginal_path_err_sample_time 120
    marginal_path_err_recheck_gap_time 300
}
multipaths {
    multipath {
        wwid 3600a098038303053ffff
        marginal_path_err_rate_threshold 50
    }
}
";

fn map_status(bed: &Bed, name: &str) -> MapStatus {
    bed.daemon
        .snapshot(0.0)
        .maps
        .into_iter()
        .find(|m| m.name == name)
        .unwrap_or_else(|| panic!("no map {name} in the snapshot"))
}

#[test]
fn a_reload_replaces_every_cached_setting() {
    let mut bed = bed(Options::default());
    let before = map_status(&bed, "mpatha");
    assert!(before.checking);
    assert_eq!(before.err_rate_threshold_permille, 100);
    assert_eq!(before.checking_detail, "on");
    assert_eq!(bed.daemon.resolved_cached(), 1);

    // As SIGHUP does: the new configuration, then every map applied again.
    bed.daemon
        .set_config(Config::parse_str("reloaded.conf", PER_WWID_CONFIG).unwrap());
    let now = bed.at();
    bed.daemon.reapply_all(now).unwrap();

    let after = map_status(&bed, "mpatha");
    assert!(!after.checking);
    assert_eq!(after.err_rate_threshold_permille, 0);
    assert!(
        after.checking_detail.starts_with("off: "),
        "{}",
        after.checking_detail
    );
    assert_eq!(bed.daemon.resolved_cached(), 1);
}

#[test]
fn a_topology_change_resolves_new_and_changed_maps_and_forgets_gone_ones() {
    let config = Config::parse_str("test.conf", PER_WWID_CONFIG).unwrap();
    let mut bed = bed(Options {
        config: Some(config),
        ..Default::default()
    });
    assert!(!map_status(&bed, "mpatha").checking);

    // A new map whose WWID has its own settings.
    let mpatha = fakes::map("mpatha", WWID, 0, &[("sda", 0), ("sdb", 16)]);
    let mpathb = fakes::map("mpathb", OTHER_WWID, 1, &[("sdc", 32)]);
    bed.dm.replace_maps(vec![mpatha, mpathb]);
    bed.rediscover();
    let b = map_status(&bed, "mpathb");
    assert!(b.checking, "{}", b.checking_detail);
    assert_eq!(b.err_rate_threshold_permille, 50);
    assert!(!map_status(&bed, "mpatha").checking);
    assert_eq!(bed.daemon.resolved_cached(), 2);

    // The same name now on another LUN: its settings are the new WWID's.
    let renamed = fakes::map("mpatha", OTHER_WWID, 0, &[("sda", 0), ("sdb", 16)]);
    bed.dm.replace_maps(vec![renamed]);
    // A map missing from discovery is kept for a few rounds and seconds (a reload race).
    for _ in 0..=crate::daemon::reconcile::ABSENT_ROUNDS {
        bed.now += crate::daemon::reconcile::ABSENT_MIN_TIME.as_secs();
        bed.rediscover();
    }
    let a = map_status(&bed, "mpatha");
    assert!(a.checking, "{}", a.checking_detail);
    assert_eq!(a.err_rate_threshold_permille, 50);
    // mpathb is gone and mpatha's old identity with it: one identity left.
    assert!(
        bed.daemon
            .snapshot(0.0)
            .maps
            .iter()
            .all(|m| m.name != "mpathb")
    );
    assert_eq!(bed.daemon.resolved_cached(), 1);
}
