//! FC port health as the kernel counts it: the statistics of this host's FC ports
//! (`/sys/class/fc_host/hostN/statistics/`: link failures, loss of sync and signal, CRC errors,
//! FPIN notifications received) and, since Linux 5.13, the FPIN counters of each remote port
//! (`/sys/class/fc_remote_ports/rport-H:B-R/statistics/fpin_*`). A fabric that tells the host a
//! link is degrading (FPIN-LI) or congested (FPIN-CN) often does so before paths go marginal.
//!
//! The kernel writes each counter as `0x…`; a driver that does not keep one reports all ones,
//! which is left out rather than exported as a huge count. Reading them costs the driver a
//! query of the HBA, so they are read when someone asks (a scrape, `/status`), not on a timer.
use std::collections::BTreeMap;
use std::path::Path;

use super::sysfs::{Sysfs, read_trimmed};
use crate::status::FcPortStatus;

/// This host's FC ports, by SCSI host.
pub fn host_ports(sysfs: &Sysfs) -> Vec<FcPortStatus> {
    ports(sysfs, "fc_host", |name| Some(name.to_string()))
}

/// The remote ports this host's FC ports see, each with the host it is seen through.
pub fn remote_ports(sysfs: &Sysfs) -> Vec<FcPortStatus> {
    // rport-H:B-R: remote port R on bus B of SCSI host H.
    ports(sysfs, "fc_remote_ports", |name| {
        let (host, _) = name.strip_prefix("rport-")?.split_once(':')?;
        Some(format!("host{host}"))
    })
}

fn ports(sysfs: &Sysfs, class: &str, host_of: fn(&str) -> Option<String>) -> Vec<FcPortStatus> {
    let Ok(entries) = std::fs::read_dir(sysfs.root().join("class").join(class)) else {
        return Vec::new();
    };
    let mut ports: Vec<FcPortStatus> = entries
        .filter_map(|e| {
            let e = e.ok()?;
            let name = e.file_name().into_string().ok()?;
            let dir = e.path();
            Some(FcPortStatus {
                host: host_of(&name)?,
                port_name: read_trimmed(&dir.join("port_name")).unwrap_or_default(),
                statistics: statistics(&dir.join("statistics")),
                name,
            })
        })
        .collect();
    ports.sort_by(|a, b| a.name.cmp(&b.name));
    ports
}

/// Every counter in a `statistics` directory.
fn statistics(dir: &Path) -> BTreeMap<String, u64> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return BTreeMap::new();
    };
    entries
        .filter_map(|e| {
            let e = e.ok()?;
            let name = e.file_name().into_string().ok()?;
            // A gauge and a write-only trigger, not counters; any other name becomes a label
            // value, so only the kernel's own kind of name is taken.
            if matches!(
                name.as_str(),
                "seconds_since_last_reset" | "reset_statistics"
            ) || !name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            {
                return None;
            }
            let value = parse_counter(&read_trimmed(&e.path())?)?;
            Some((name, value))
        })
        .collect()
}

/// `0x1a` (how scsi_transport_fc writes them) or decimal; all ones means "not kept".
fn parse_counter(text: &str) -> Option<u64> {
    let value = match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok()?,
        None => text.parse().ok()?,
    };
    (value != u64::MAX).then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dm::sysfs::tests::FakeSysfs;
    use crate::dm::transport::tests::fc_tree;

    #[test]
    fn host_and_remote_port_counters_from_a_recorded_tree() {
        let fake = FakeSysfs::new("fcstats");
        let tree = fc_tree(&fake);
        let host3 = "class/fc_host/host3/statistics";
        tree.file(&format!("{host3}/link_failure_count"), "0x3");
        tree.file(&format!("{host3}/loss_of_sync_count"), "0x1a");
        tree.file(&format!("{host3}/invalid_crc_count"), "0x0");
        tree.file(&format!("{host3}/fpin_li"), "0x2");
        tree.file(&format!("{host3}/seconds_since_last_reset"), "0x4e20");
        // lpfc and qla2xxx leave counters they do not keep at -1.
        tree.file(&format!("{host3}/fc_no_free_exch"), "0xffffffffffffffff");
        tree.file(&format!("{host3}/reset_statistics"), "");
        let rport = "class/fc_remote_ports/rport-3:0-2/statistics";
        tree.file(&format!("{rport}/fpin_li_link_failure_count"), "0x5");
        tree.file(&format!("{rport}/fpin_cn_credit_stall"), "0x0");

        let hosts = host_ports(&fake.sysfs());
        assert_eq!(hosts.len(), 2, "{hosts:?}");
        let h3 = &hosts[0];
        assert_eq!(
            (h3.host.as_str(), h3.name.as_str(), h3.port_name.as_str()),
            ("host3", "host3", "0x10000090fa1b2c3d")
        );
        let expected: BTreeMap<String, u64> = [
            ("fpin_li", 2),
            ("invalid_crc_count", 0),
            ("link_failure_count", 3),
            ("loss_of_sync_count", 26),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        assert_eq!(h3.statistics, expected);
        // A driver without statistics: the port is there, its counters are not.
        assert!(hosts[1].statistics.is_empty());

        let remotes = remote_ports(&fake.sysfs());
        let names: Vec<_> = remotes
            .iter()
            .map(|r| (r.host.as_str(), r.name.as_str(), r.port_name.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("host3", "rport-3:0-2", "0x500a0981891b8dc5"),
                ("host4", "rport-4:0-1", "0x500a0982891b8dc5")
            ]
        );
        assert_eq!(remotes[0].statistics["fpin_li_link_failure_count"], 5);
        assert_eq!(remotes[0].statistics.len(), 2);
    }

    #[test]
    fn without_fc_there_are_no_ports() {
        let fake = FakeSysfs::new("nofc");
        assert!(host_ports(&fake.sysfs()).is_empty());
        assert!(remote_ports(&fake.sysfs()).is_empty());
        assert_eq!(parse_counter("12"), Some(12));
        assert_eq!(parse_counter("0xzz"), None);
    }
}
