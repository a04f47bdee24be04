//! Which transport a path runs over and which ports it joins: the host adapter on this side, the
//! target port and node on the other. One host sees a marginal path; many hosts with marginal
//! paths behind one target port point at that port (an SFP, a switch port), and only these
//! identities let a fleet-wide Prometheus see it.
//!
//! Everything comes from the device's place in sysfs, reached from `/sys/dev/block/MAJ:MIN`:
//!
//! ```text
//! FC     devices/.../host3/rport-3:0-2/target3:0:0/3:0:0:1/block/sdb
//!          class/fc_remote_ports/rport-3:0-2/{port_name,node_name}, class/fc_host/host3/port_name
//! iSCSI  devices/platform/host2/session1/target2:0:0/2:0:0:1/block/sdc
//!          class/iscsi_session/session1/targetname,
//!          class/iscsi_connection/connection1:0/{persistent_address,persistent_port},
//!          class/iscsi_host/host2/ipaddress
//! SAS    devices/.../host0/port-0:0/end_device-0:0/target0:0:0/0:0:0:0/block/sda
//!          class/sas_device/end_device-0:0/sas_address
//! NVMe   devices/virtual/nvme-fabrics/ctl/nvme1/nvme1n1   (nvme_core.multipath=N)
//!          the controller's {transport,address,subsysnqn}
//! ```
//!
//! What a path's identity means per transport (the labels of `marginal_path_info`):
//!
//! | field         | FC            | iSCSI              | SAS             | NVMe-oF                  |
//! |---------------|---------------|--------------------|-----------------|--------------------------|
//! | `host`        | `host3`       | `host2`            | `host0`         | controller `nvme1`       |
//! | `target_port` | rport WWPN    | portal `addr:port` | end device SAS address | `traddr[:trsvcid]` (FC: its WWPN) |
//! | `target_node` | rport WWNN    | target IQN         | -               | subsystem NQN            |
//! | `host_port`   | fc_host WWPN  | local IP address   | -               | `host_traddr`/`src_addr` |
//!
//! A path's transport cannot change while the device exists, so [`TransportCache`] reads it
//! once per device; anything unreadable is left empty (kind `other`), never an error.
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::status::DevNum;
use super::sysfs::{Sysfs, read_trimmed};

/// The transport of a path, as `marginal_path_info`'s `transport` label names it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum TransportKind {
    Fc,
    Iscsi,
    Sas,
    NvmeTcp,
    NvmeFc,
    NvmeRdma,
    NvmeLoop,
    /// Anything else (virtio, ATA, loop, PCIe NVMe) or a device sysfs could not place.
    #[default]
    Other,
}

impl TransportKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TransportKind::Fc => "fc",
            TransportKind::Iscsi => "iscsi",
            TransportKind::Sas => "sas",
            TransportKind::NvmeTcp => "nvme-tcp",
            TransportKind::NvmeFc => "nvme-fc",
            TransportKind::NvmeRdma => "nvme-rdma",
            TransportKind::NvmeLoop => "nvme-loop",
            TransportKind::Other => "other",
        }
    }
}

/// A path's transport identity; empty strings where the transport has no such thing or sysfs
/// did not say.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Transport {
    pub kind: TransportKind,
    /// The host adapter: SCSI host (`host3`) or NVMe controller (`nvme1`).
    pub host: String,
    /// The target-side port the path enters the storage through.
    pub target_port: String,
    /// What that port belongs to: FC node, iSCSI target, NVMe subsystem.
    pub target_node: String,
    /// This host's port the path leaves through.
    pub host_port: String,
}

impl From<&Transport> for crate::status::TransportStatus {
    fn from(t: &Transport) -> Self {
        Self {
            kind: t.kind.as_str().into(),
            host: t.host.clone(),
            target_port: t.target_port.clone(),
            target_node: t.target_node.clone(),
            host_port: t.host_port.clone(),
        }
    }
}

impl Sysfs {
    /// The transport identity of the block device whose `/sys/dev/block` link points at `link`
    /// (relative, as the kernel writes it).
    pub fn transport(&self, link: &Path) -> Transport {
        let Ok(dir) = std::fs::canonicalize(self.root().join("dev/block").join(link)) else {
            return Transport::default();
        };
        let names: Vec<&str> = dir
            .strip_prefix(self.root())
            .unwrap_or(&dir)
            .iter()
            .filter_map(|c| c.to_str())
            .collect();
        let last = |pred: fn(&str) -> bool| names.iter().rev().copied().find(|n| pred(n));
        // NVMe first: a PCIe controller sits below a PCI device, never below a SCSI host.
        if let Some(ctrl) = dir.parent().filter(|p| p.join("subsysnqn").exists()) {
            return self.nvme(ctrl);
        }
        let Some(host) = last(|n| numbered(n, "host")) else {
            return Transport::default();
        };
        let mut t = Transport {
            host: host.to_string(),
            ..Default::default()
        };
        if let Some(rport) = last(|n| n.starts_with("rport-")) {
            let rport = self.root().join("class/fc_remote_ports").join(rport);
            t.kind = TransportKind::Fc;
            t.target_port = read_or_empty(&rport.join("port_name"));
            t.target_node = read_or_empty(&rport.join("node_name"));
            t.host_port = read_or_empty(&self.class("fc_host", host).join("port_name"));
        } else if let Some(session) = last(|n| numbered(n, "session")) {
            t.kind = TransportKind::Iscsi;
            t.target_node = read_or_empty(&self.class("iscsi_session", session).join("targetname"));
            t.target_port = self.iscsi_portal(&dir, session).unwrap_or_default();
            t.host_port = read_or_empty(&self.class("iscsi_host", host).join("ipaddress"));
        } else if let Some(end_device) = last(|n| n.starts_with("end_device-")) {
            t.kind = TransportKind::Sas;
            t.target_port =
                read_or_empty(&self.class("sas_device", end_device).join("sas_address"));
        }
        t
    }

    fn class(&self, class: &str, name: &str) -> PathBuf {
        self.root().join("class").join(class).join(name)
    }

    /// The portal of the session's connection (`connectionSID:CID`, a child of the session's
    /// device), as `address:port`: the one the session was made with (`persistent_*`), which
    /// a target's redirect does not change.
    fn iscsi_portal(&self, device: &Path, session: &str) -> Option<String> {
        let session_dir = device
            .ancestors()
            .find(|a| a.file_name().is_some_and(|n| n == session))?;
        let mut connections: Vec<String> = std::fs::read_dir(session_dir)
            .ok()?
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.starts_with("connection"))
            .collect();
        connections.sort();
        let conn = self.class("iscsi_connection", connections.first()?);
        let address = read_trimmed(&conn.join("persistent_address"))
            .or_else(|| read_trimmed(&conn.join("address")))?;
        let port = read_trimmed(&conn.join("persistent_port"))
            .or_else(|| read_trimmed(&conn.join("port")));
        Some(host_port(&address, port.as_deref()))
    }

    fn nvme(&self, ctrl: &Path) -> Transport {
        let kind = match read_trimmed(&ctrl.join("transport")).as_deref() {
            Some("tcp") => TransportKind::NvmeTcp,
            Some("fc") => TransportKind::NvmeFc,
            Some("rdma") => TransportKind::NvmeRdma,
            Some("loop") => TransportKind::NvmeLoop,
            _ => TransportKind::Other,
        };
        let address = nvme_address(&read_or_empty(&ctrl.join("address")));
        let name = ctrl.file_name().and_then(|n| n.to_str()).unwrap_or("");
        Transport {
            kind,
            host: name.to_string(),
            target_port: address.target,
            target_node: read_or_empty(&ctrl.join("subsysnqn")),
            host_port: address.host,
        }
    }
}

/// `host3`, `session12`: the prefix and a number.
fn numbered(name: &str, prefix: &str) -> bool {
    name.strip_prefix(prefix)
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

fn read_or_empty(path: &Path) -> String {
    read_trimmed(path).unwrap_or_default()
}

/// `address:port`, an IPv6 address in brackets.
fn host_port(address: &str, port: Option<&str>) -> String {
    match port {
        Some(port) if address.contains(':') => format!("[{address}]:{port}"),
        Some(port) => format!("{address}:{port}"),
        None => address.to_string(),
    }
}

struct NvmeAddress {
    target: String,
    host: String,
}

/// An NVMe-oF controller's `address`: `traddr=10.0.0.1,trsvcid=4420,src_addr=10.0.0.2` (TCP,
/// RDMA) or `traddr=nn-0x…:pn-0x…,host_traddr=nn-0x…:pn-0x…` (FC, whose port is its WWPN, as
/// for SCSI over FC).
fn nvme_address(text: &str) -> NvmeAddress {
    let field = |key: &str| {
        text.split(',')
            .filter_map(|kv| kv.trim().split_once('='))
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.to_string())
    };
    let fc_port = |addr: String| match addr.split_once(":pn-") {
        Some((_, wwpn)) if addr.starts_with("nn-") => wwpn.to_string(),
        _ => addr,
    };
    let target = field("traddr").map(fc_port).map(|addr| {
        let service = field("trsvcid");
        if addr.starts_with("0x") {
            addr
        } else {
            host_port(&addr, service.as_deref())
        }
    });
    let host = field("host_traddr")
        .or_else(|| field("src_addr"))
        .map(fc_port);
    NvmeAddress {
        target: target.unwrap_or_default(),
        host: host.unwrap_or_default(),
    }
}

/// Transport identities by device, each read once while its device exists. The key holds the
/// `/sys/dev/block` link too: a device number the kernel gives to a new device (another
/// remote port, another session) names another place in sysfs, and is read afresh.
#[derive(Debug, Default)]
pub struct TransportCache {
    entries: Mutex<HashMap<DevNum, (PathBuf, Transport)>>,
}

impl TransportCache {
    /// The identity of `dev`, whose `/sys/dev/block` link is `link`.
    pub fn get(&self, sysfs: &Sysfs, dev: DevNum, link: &Path) -> Transport {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((known, transport)) = entries.get(&dev)
            && known == link
        {
            return transport.clone();
        }
        let transport = sysfs.transport(link);
        entries.insert(dev, (link.to_path_buf(), transport.clone()));
        transport
    }

    /// Forgets every device not in `present` (those of a full discovery).
    pub fn retain(&self, present: &std::collections::HashSet<DevNum>) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.retain(|dev, _| present.contains(dev));
    }

    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
pub(crate) mod tests;
