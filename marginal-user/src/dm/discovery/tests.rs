//! Assembling maps from table, status and sysfs; what a resync compares.
use super::*;
use crate::dm::{GroupState, sysfs::tests::FakeSysfs};

fn raw(table: &str, status: &str) -> RawMap {
    RawMap {
        name: "mpatha".into(),
        uuid: Some("mpath-36001405a1b2c3d4e5f60718293a4b5c6".into()),
        dev: (254, 2),
        table: table.into(),
        status: status.into(),
    }
}

#[test]
fn a_resync_sees_a_path_change_but_not_the_selector_s_in_flight_counts() {
    // service-time: each path's status ends with its in-flight size and relative throughput.
    let idle = "2 0 0 0 1 1 A 0 2 2 8:16 A 0 0 1 8:32 A 0 0 1";
    let busy = "2 0 0 0 1 1 A 0 2 2 8:16 A 0 12 1 8:32 A 0 4 1";
    let failed = "2 0 0 0 1 1 A 0 2 2 8:16 F 1 0 1 8:32 A 0 0 1";
    // A reload that put the failed path back: state A, fail count reset.
    let reloaded = "2 0 0 0 1 1 A 0 2 2 8:16 A 0 0 1 8:32 A 0 0 1";
    assert!(status_key(idle).is_some());
    assert_eq!(status_key(idle), status_key(busy));
    assert_ne!(status_key(idle), status_key(failed));
    assert_ne!(status_key(failed), status_key(reloaded));
    let regrouped = "2 0 0 0 2 1 A 0 1 2 8:16 A 0 0 1 E 0 1 2 8:32 A 0 0 1";
    assert_ne!(status_key(idle), status_key(regrouped));
    assert_eq!(status_key("not a status"), None);
}

#[test]
fn assembles_a_two_group_alua_map_with_sysfs_names() {
    let fake = FakeSysfs::new("assemble");
    fake.disk(
        "sdb",
        (8, 16),
        "LIO-ORG",
        "disk0",
        "naa.6001405a1b2c3d4e5f60718293a4b5c6",
    );
    fake.disk(
        "sdd",
        (8, 48),
        "LIO-ORG",
        "disk0",
        "naa.6001405a1b2c3d4e5f60718293a4b5c6",
    );
    let map = assemble_map(
        &raw(
            "1 queue_if_no_path 1 alua 2 1 service-time 0 1 2 8:16 1 1 \
             service-time 0 1 2 8:48 1 1",
            "2 0 0 0 2 1 A 0 1 2 8:16 A 0 0 1 E 0 1 2 8:48 F 2 0 1",
        ),
        &fake.sysfs(),
        &TransportCache::default(),
    )
    .unwrap();
    assert_eq!(
        map.wwid.as_deref(),
        Some("36001405a1b2c3d4e5f60718293a4b5c6")
    );
    assert_eq!(map.hw_handler.as_deref(), Some("alua"));
    assert_eq!(map.features, ["queue_if_no_path"]);
    assert_eq!(map.groups[1].state, GroupState::Enabled);
    assert_eq!(map.groups[0].selector, "service-time");
    let sdd = map.path_by_name("sdd").unwrap();
    assert_eq!((sdd.dev, sdd.active, sdd.fail_count), ((8, 48), false, 2));
    assert_eq!(map.vendor_product(), Some(("LIO-ORG", "disk0")));
    let identity = map.identity_path().unwrap();
    assert_eq!(identity.revision.as_deref(), Some("9800"));
    let active: Vec<_> = map.active_paths().map(|p| p.name.as_str()).collect();
    assert_eq!(active, ["sdb"]);
    assert!(map.is_last_active((8, 16)));
    assert!(!map.is_last_active((8, 48)));
}

#[test]
fn fc_paths_carry_their_ports_each_read_once() {
    let fake = FakeSysfs::new("assemble-fc");
    crate::dm::transport::tests::fc_tree(&fake);
    let transports = TransportCache::default();
    let r = raw(
        "0 0 1 1 round-robin 0 2 1 8:16 1000 8:32 1000",
        "2 0 0 0 1 1 A 0 2 0 8:16 A 0 8:32 A 0",
    );
    let map = assemble_map(&r, &fake.sysfs(), &transports).unwrap();
    let ports: Vec<_> = map
        .paths()
        .map(|p| {
            (
                p.name.as_str(),
                p.transport.host.as_str(),
                p.transport.target_port.as_str(),
            )
        })
        .collect();
    assert_eq!(
        ports,
        [
            ("sdb", "host3", "0x500a0981891b8dc5"),
            ("sdc", "host4", "0x500a0982891b8dc5")
        ]
    );
    assert_eq!(
        map.paths().next().unwrap().vendor.as_deref(),
        Some("NETAPP")
    );
    assert_eq!(transports.len(), 2);
}

#[test]
fn paths_sysfs_does_not_know_are_named_by_number() {
    let fake = FakeSysfs::new("unnamed");
    fake.link("dm-0", (254, 0));
    let mut r = raw(
        "3 queue_if_no_path queue_mode bio 0 1 1 round-robin 0 2 1 254:0 1 254:1 1",
        "2 0 0 0 1 1 A 0 2 0 254:0 A 0 254:1 A 1",
    );
    r.uuid = None;
    let map = assemble_map(&r, &fake.sysfs(), &TransportCache::default()).unwrap();
    let names: Vec<_> = map.paths().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["dm-0", "254:1"]);
    assert_eq!(map.wwid, None);
    assert_eq!(map.vendor_product(), None);
    assert_eq!(map.active_count(), 2);
    assert!(!map.is_last_active((254, 0)));
}

#[test]
fn wwid_falls_back_to_a_path_when_the_uuid_has_none() {
    let fake = FakeSysfs::new("pathwwid");
    fake.disk("sdb", (8, 16), "QEMU", "QEMU HARDDISK", "naa.600140501");
    let mut r = raw(
        "0 0 1 1 round-robin 0 1 1 8:16 1000",
        "2 0 0 0 1 1 A 0 1 0 8:16 A 0",
    );
    r.uuid = None;
    let map = assemble_map(&r, &fake.sysfs(), &TransportCache::default()).unwrap();
    assert_eq!(map.wwid.as_deref(), Some("3600140501"));
}

#[test]
fn table_and_status_that_disagree_are_an_error_naming_the_map() {
    let fake = FakeSysfs::new("disagree");
    let r = raw(
        "0 0 1 1 round-robin 0 2 1 8:16 1000 8:32 1000",
        "2 0 0 0 1 1 A 0 2 0 8:16 A 0 8:48 A 0",
    );
    let err = format!(
        "{:#}",
        assemble_map(&r, &fake.sysfs(), &TransportCache::default()).unwrap_err()
    );
    assert!(err.contains("map mpatha"), "{err}");
    assert!(!same_paths(&r.table, &r.status));
    assert!(same_paths(
        "0 0 1 1 round-robin 0 1 1 8:16 1000",
        "2 0 0 0 1 1 A 0 1 0 8:16 F 1"
    ));
}

#[test]
fn without_device_mapper_opening_says_so() {
    // This host's kernel has no device-mapper; where it has one, the open succeeds.
    if std::path::Path::new("/dev/mapper/control").exists() {
        return;
    }
    let err = format!("{:#}", DmDiscovery::open().err().unwrap());
    assert!(err.contains("/dev/mapper/control"), "{err}");
}
