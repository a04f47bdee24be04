//! Transport identities read off recorded sysfs trees: directories, attributes and symlinks laid
//! out as the kernel makes them (scsi_transport_fc, scsi_transport_iscsi, scsi_transport_sas,
//! nvme-fabrics). This test bed has no FC or SAS hardware; these trees are the seam for them.
use std::collections::HashSet;
use std::path::Path;

use super::*;
use crate::dm::sysfs::tests::FakeSysfs;

/// Builds a sysfs tree under a [`FakeSysfs`] root.
pub(crate) struct Tree<'a>(pub &'a FakeSysfs);

impl Tree<'_> {
    fn path(&self, rel: &str) -> PathBuf {
        self.0.root.join(rel)
    }

    pub fn file(&self, rel: &str, text: &str) {
        let path = self.path(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, format!("{text}\n")).unwrap();
    }

    /// A symlink at `rel` whose (relative) target is `target`, as sysfs writes them.
    pub fn link(&self, rel: &str, target: &str) {
        let path = self.path(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(target, path).unwrap();
    }

    /// `class/<class>/<name>` pointing at the class device below `device` (a path under
    /// `devices/`), which is created.
    pub fn class_device(&self, class: &str, name: &str, device: &str) -> String {
        let dir = format!("{device}/{class}/{name}");
        std::fs::create_dir_all(self.path(&dir)).unwrap();
        self.link(&format!("class/{class}/{name}"), &format!("../../{dir}"));
        dir
    }

    /// SCSI disk `name` at `dev`, whose SCSI device directory is `sdev` (`devices/.../H:C:T:L`).
    pub fn scsi_disk(&self, name: &str, dev: DevNum, sdev: &str) {
        let block = format!("{sdev}/block/{name}");
        self.file(&format!("{block}/dev"), &format!("{}:{}", dev.0, dev.1));
        let hctl = sdev.rsplit('/').next().unwrap();
        self.link(&format!("{block}/device"), &format!("../../../{hctl}"));
        self.link(&format!("block/{name}"), &format!("../{block}"));
        self.link(
            &format!("dev/block/{}:{}", dev.0, dev.1),
            &format!("../../{block}"),
        );
        self.file(&format!("{sdev}/vendor"), "NETAPP  ");
        self.file(&format!("{sdev}/model"), "LUN C-Mode      ");
    }

    /// An NVMe-oF controller `ctrl` with namespace block device `ns` at `dev`
    /// (`nvme_core.multipath=N`: the namespace is the controller's child).
    pub fn nvme(&self, ctrl: &str, ns: &str, dev: DevNum, transport: &str, address: &str) {
        let ctrl_dir = format!("devices/virtual/nvme-fabrics/ctl/{ctrl}");
        self.file(&format!("{ctrl_dir}/transport"), transport);
        self.file(&format!("{ctrl_dir}/address"), address);
        self.file(
            &format!("{ctrl_dir}/subsysnqn"),
            "nqn.2014-08.org.nvmexpress:uuid:5a0c5bba-0b89-4d2e-9b3b-2d4bd1f8c5a1",
        );
        self.link(&format!("class/nvme/{ctrl}"), &format!("../../{ctrl_dir}"));
        let block = format!("{ctrl_dir}/{ns}");
        self.file(&format!("{block}/dev"), &format!("{}:{}", dev.0, dev.1));
        self.link(&format!("block/{ns}"), &format!("../{block}"));
        self.link(
            &format!("dev/block/{}:{}", dev.0, dev.1),
            &format!("../../{block}"),
        );
    }
}

/// The PCI device of a two-port FC HBA; its functions `.0` and `.1` are the ports.
pub(crate) const FC_HBA: &str = "devices/pci0000:00/0000:00:03.0/0000:05:00";

/// Two FC paths, one per HBA port (host3, host4), each through its own array port. Returns
/// the tree for further attributes (statistics).
pub(crate) fn fc_tree(fake: &FakeSysfs) -> Tree<'_> {
    let tree = Tree(fake);
    for (host, rport, wwpn, hba_wwpn, disk, minor) in [
        (
            3,
            "rport-3:0-2",
            "0x500a0981891b8dc5",
            "0x10000090fa1b2c3d",
            "sdb",
            16,
        ),
        (
            4,
            "rport-4:0-1",
            "0x500a0982891b8dc5",
            "0x10000090fa1b2c3e",
            "sdc",
            32,
        ),
    ] {
        let host_dir = format!("{FC_HBA}.{}/host{host}", host - 3);
        tree.class_device("scsi_host", &format!("host{host}"), &host_dir);
        let fc_host = tree.class_device("fc_host", &format!("host{host}"), &host_dir);
        tree.file(&format!("{fc_host}/port_name"), hba_wwpn);
        tree.file(&format!("{fc_host}/node_name"), "0x20000090fa1b2c3d");
        let rport_dir = format!("{host_dir}/{rport}");
        let rp = tree.class_device("fc_remote_ports", rport, &rport_dir);
        tree.file(&format!("{rp}/port_name"), wwpn);
        tree.file(&format!("{rp}/node_name"), "0x500a0980891b8dc5");
        tree.file(&format!("{rp}/port_state"), "Online");
        let target = format!("{rport_dir}/target{host}:0:0");
        tree.scsi_disk(disk, (8, minor), &format!("{target}/{host}:0:0:1"));
    }
    tree
}

fn transport_of(fake: &FakeSysfs, dev: DevNum) -> Transport {
    let sysfs = fake.sysfs();
    sysfs.transport(&sysfs.block_link(dev).expect("device in the tree"))
}

#[test]
fn fc_paths_name_their_remote_and_host_ports() {
    let fake = FakeSysfs::new("fc");
    fc_tree(&fake);
    assert_eq!(
        transport_of(&fake, (8, 16)),
        Transport {
            kind: TransportKind::Fc,
            host: "host3".into(),
            target_port: "0x500a0981891b8dc5".into(),
            target_node: "0x500a0980891b8dc5".into(),
            host_port: "0x10000090fa1b2c3d".into(),
        }
    );
    let sdc = transport_of(&fake, (8, 32));
    assert_eq!(
        (sdc.host.as_str(), sdc.target_port.as_str()),
        ("host4", "0x500a0982891b8dc5")
    );
    // The SCSI identity is still read through the `device` link.
    let info = fake.sysfs().path_info("sdb");
    assert_eq!(info.vendor.as_deref(), Some("NETAPP"));
}

#[test]
fn an_unreadable_remote_port_leaves_its_names_empty_not_the_transport() {
    let fake = FakeSysfs::new("fc-bare");
    fc_tree(&fake);
    let rport = fake.root.join("class/fc_remote_ports/rport-3:0-2");
    std::fs::remove_file(rport.join("port_name")).unwrap();
    std::fs::remove_file(rport.join("node_name")).unwrap();
    let t = transport_of(&fake, (8, 16));
    assert_eq!(t.kind, TransportKind::Fc);
    assert_eq!((t.target_port.as_str(), t.target_node.as_str()), ("", ""));
    assert_eq!(t.host_port, "0x10000090fa1b2c3d");
}

fn iscsi_tree<'a>(fake: &'a FakeSysfs, address: &str) -> Tree<'a> {
    let tree = Tree(fake);
    let host = "devices/platform/host2";
    tree.class_device("scsi_host", "host2", host);
    let ih = tree.class_device("iscsi_host", "host2", host);
    tree.file(&format!("{ih}/ipaddress"), "192.168.122.10");
    tree.file(
        &format!("{ih}/initiatorname"),
        "iqn.1993-08.org.debian:01:abc",
    );
    let session = format!("{host}/session1");
    let s = tree.class_device("iscsi_session", "session1", &session);
    tree.file(
        &format!("{s}/targetname"),
        "iqn.2003-01.org.linux-iscsi.target:sn.1",
    );
    tree.file(&format!("{s}/tpgt"), "1");
    let conn = format!("{session}/connection1:0");
    let c = tree.class_device("iscsi_connection", "connection1:0", &conn);
    tree.file(&format!("{c}/persistent_address"), address);
    tree.file(&format!("{c}/persistent_port"), "3260");
    tree.file(&format!("{c}/address"), "10.9.9.9");
    tree.file(&format!("{c}/port"), "3261");
    tree.scsi_disk("sdd", (8, 48), &format!("{session}/target2:0:0/2:0:0:1"));
    tree
}

#[test]
fn iscsi_paths_name_their_target_and_portal() {
    let fake = FakeSysfs::new("iscsi");
    iscsi_tree(&fake, "192.168.122.1");
    assert_eq!(
        transport_of(&fake, (8, 48)),
        Transport {
            kind: TransportKind::Iscsi,
            host: "host2".into(),
            target_port: "192.168.122.1:3260".into(),
            target_node: "iqn.2003-01.org.linux-iscsi.target:sn.1".into(),
            host_port: "192.168.122.10".into(),
        }
    );
    let fake = FakeSysfs::new("iscsi6");
    iscsi_tree(&fake, "fd00::1");
    assert_eq!(transport_of(&fake, (8, 48)).target_port, "[fd00::1]:3260");
}

#[test]
fn sas_paths_name_their_end_device_behind_an_expander() {
    let fake = FakeSysfs::new("sas");
    let tree = Tree(&fake);
    let host = "devices/pci0000:00/0000:00:1c.0/0000:03:00.0/host0";
    tree.class_device("scsi_host", "host0", host);
    let end = format!("{host}/port-0:0/expander-0:0/port-0:0:4/end_device-0:0:4");
    let sd = tree.class_device("sas_device", "end_device-0:0:4", &end);
    tree.file(&format!("{sd}/sas_address"), "0x5000c500a1b2c3d5");
    tree.file(&format!("{sd}/device_type"), "end device");
    // The expander is a sas_device too; the path's own end device is the one that counts.
    let ex = tree.class_device(
        "sas_device",
        "expander-0:0",
        &format!("{host}/port-0:0/expander-0:0"),
    );
    tree.file(&format!("{ex}/sas_address"), "0x500605b0000272bf");
    tree.scsi_disk("sde", (8, 64), &format!("{end}/target0:0:4/0:0:4:0"));
    assert_eq!(
        transport_of(&fake, (8, 64)),
        Transport {
            kind: TransportKind::Sas,
            host: "host0".into(),
            target_port: "0x5000c500a1b2c3d5".into(),
            ..Default::default()
        }
    );
}

#[test]
fn nvme_paths_name_their_subsystem_and_controller_address() {
    let fake = FakeSysfs::new("nvme");
    let tree = Tree(&fake);
    tree.nvme(
        "nvme1",
        "nvme1n1",
        (259, 1),
        "tcp",
        "traddr=192.168.122.1,trsvcid=4420,src_addr=192.168.122.10",
    );
    tree.nvme(
        "nvme2",
        "nvme2n1",
        (259, 2),
        "fc",
        "traddr=nn-0x200000109b1c1234:pn-0x100000109b1c1234,host_traddr=nn-0x20000090fa1b2c3d:pn-0x10000090fa1b2c3d",
    );
    tree.nvme("nvme3", "nvme3n1", (259, 3), "loop", "");
    tree.nvme(
        "nvme4",
        "nvme4n1",
        (259, 4),
        "rdma",
        "traddr=fd00::1,trsvcid=4420",
    );
    let nqn = "nqn.2014-08.org.nvmexpress:uuid:5a0c5bba-0b89-4d2e-9b3b-2d4bd1f8c5a1";
    assert_eq!(
        transport_of(&fake, (259, 1)),
        Transport {
            kind: TransportKind::NvmeTcp,
            host: "nvme1".into(),
            target_port: "192.168.122.1:4420".into(),
            target_node: nqn.into(),
            host_port: "192.168.122.10".into(),
        }
    );
    let fc = transport_of(&fake, (259, 2));
    assert_eq!(fc.kind, TransportKind::NvmeFc);
    assert_eq!(
        (fc.target_port.as_str(), fc.host_port.as_str()),
        ("0x100000109b1c1234", "0x10000090fa1b2c3d")
    );
    let lo = transport_of(&fake, (259, 3));
    assert_eq!(
        (lo.kind, lo.target_port.as_str()),
        (TransportKind::NvmeLoop, "")
    );
    let rdma = transport_of(&fake, (259, 4));
    assert_eq!(
        (
            rdma.kind,
            rdma.target_port.as_str(),
            rdma.host_port.as_str()
        ),
        (TransportKind::NvmeRdma, "[fd00::1]:4420", "")
    );
}

#[test]
fn other_devices_are_other() {
    let fake = FakeSysfs::new("other");
    let tree = Tree(&fake);
    // virtio-scsi: a SCSI host, but no transport class.
    tree.scsi_disk(
        "sdf",
        (8, 80),
        "devices/pci0000:00/0000:00:05.0/virtio2/host0/target0:0:0/0:0:0:1",
    );
    let virtio = transport_of(&fake, (8, 80));
    assert_eq!(
        (virtio.kind, virtio.host.as_str()),
        (TransportKind::Other, "host0")
    );
    assert_eq!(virtio.target_port, "");
    // A loop device: no host at all; a link to nowhere: nothing, and no error.
    tree.file("devices/virtual/block/loop0/dev", "7:0");
    tree.link("dev/block/7:0", "../../devices/virtual/block/loop0");
    assert_eq!(transport_of(&fake, (7, 0)), Transport::default());
    let sysfs = fake.sysfs();
    assert_eq!(
        sysfs.transport(Path::new("../../devices/gone/block/sdz")),
        Transport::default()
    );
    assert_eq!(TransportKind::default().as_str(), "other");
}

#[test]
fn the_cache_reads_a_device_once_and_again_when_its_number_is_reused() {
    let fake = FakeSysfs::new("cache");
    fc_tree(&fake);
    let sysfs = fake.sysfs();
    let cache = TransportCache::default();
    let link = sysfs.block_link((8, 16)).unwrap();
    let first = cache.get(&sysfs, (8, 16), &link);
    assert_eq!(first.target_port, "0x500a0981891b8dc5");
    // Read once: a change in sysfs is not seen while the device is the same one.
    std::fs::remove_file(
        fake.root
            .join("class/fc_remote_ports/rport-3:0-2/port_name"),
    )
    .unwrap();
    assert_eq!(cache.get(&sysfs, (8, 16), &link), first);
    // 8:16 given to a device behind another remote port is another device.
    let other = sysfs.block_link((8, 32)).unwrap();
    assert_eq!(
        cache.get(&sysfs, (8, 16), &other).target_port,
        "0x500a0982891b8dc5"
    );
    assert_eq!(cache.len(), 1);
    cache.get(&sysfs, (8, 32), &other);
    cache.retain(&HashSet::from([(8, 32)]));
    assert_eq!(cache.len(), 1);
    cache.retain(&HashSet::new());
    assert!(cache.is_empty());
}
