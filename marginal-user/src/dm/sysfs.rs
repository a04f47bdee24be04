//! What sysfs says about a path device: its kernel name, vendor, product, revision and WWID.
//!
//! Device-mapper names paths only by `MAJ:MIN`; the engine, multipathd and the multipath.conf
//! `devices` section want `sdb`, the SCSI vendor and product, and the WWID. The sysfs root is a
//! field so tests can point it at a directory tree they built.
use std::path::{Path, PathBuf};

use super::status::DevNum;

/// Facts about one path device, each absent when sysfs does not have it (e.g. vendor/model for
/// a loop device or a dm device used as a path in a test bed).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PathInfo {
    /// SCSI vendor (`device/vendor`), trimmed.
    pub vendor: Option<String>,
    /// SCSI product (`device/model`), trimmed.
    pub product: Option<String>,
    /// SCSI revision (`device/rev`), trimmed: what multipathd matches `revision` patterns
    /// against.
    pub revision: Option<String>,
    /// The WWID in multipath's form (`3600140...`), from `device/wwid` or `device/vpd_pg83`.
    pub wwid: Option<String>,
}

/// A sysfs tree, `/sys` unless a test says otherwise.
#[derive(Clone, Debug)]
pub struct Sysfs {
    root: PathBuf,
}

impl Default for Sysfs {
    fn default() -> Self {
        Self::new("/sys")
    }
}

impl Sysfs {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The kernel name (`sdb`, `dm-3`) of block device `dev`, from the `/sys/dev/block/MAJ:MIN`
    /// link; None if no such device is present.
    pub fn block_name(&self, dev: DevNum) -> Option<String> {
        block_name_of(&self.block_link(dev)?)
    }

    /// Where `/sys/dev/block/MAJ:MIN` points (`../../devices/.../block/sdb`), None if no such
    /// device is present.
    pub fn block_link(&self, dev: DevNum) -> Option<PathBuf> {
        std::fs::read_link(self.root.join(format!("dev/block/{}:{}", dev.0, dev.1))).ok()
    }

    /// SCSI commands of device `dev` that completed without error (`device/iodone_cnt` less
    /// `device/ioerr_cnt`, both counted by the SCSI midlayer for every command, a checker's
    /// TEST UNIT READY included); None for a device that is not SCSI (NVMe, loop, dm).
    pub fn scsi_commands_succeeded(&self, dev: DevNum) -> Option<u64> {
        let device = self
            .root
            .join(format!("dev/block/{}:{}/device", dev.0, dev.1));
        let count = |name: &str| {
            let text = read_trimmed(&device.join(name))?;
            u64::from_str_radix(text.trim_start_matches("0x"), 16).ok()
        };
        Some(count("iodone_cnt")?.saturating_sub(count("ioerr_cnt")?))
    }

    /// Vendor, product, revision and WWID of path device `name` (`sdb`). Missing attributes are None:
    /// a path without them is still a path.
    pub fn path_info(&self, name: &str) -> PathInfo {
        let device = self.root.join("block").join(name).join("device");
        let wwid = read_trimmed(&device.join("wwid"))
            .and_then(|text| normalize_wwid(&text))
            .or_else(|| {
                std::fs::read(device.join("vpd_pg83"))
                    .ok()
                    .and_then(|page| wwid_from_vpd_pg83(&page))
            });
        PathInfo {
            vendor: read_trimmed(&device.join("vendor")),
            product: read_trimmed(&device.join("model")),
            revision: read_trimmed(&device.join("rev")),
            wwid,
        }
    }

    /// The device-mapper name and uuid of `dm-N`, from `/sys/block/dm-N/dm/{name,uuid}`.
    pub fn dm_name_uuid(&self, kernel_name: &str) -> (Option<String>, Option<String>) {
        let dir = self.root.join("block").join(kernel_name).join("dm");
        (
            read_trimmed(&dir.join("name")),
            read_trimmed(&dir.join("uuid")),
        )
    }
}

/// The kernel name a `/sys/dev/block` link ends in.
pub fn block_name_of(link: &Path) -> Option<String> {
    Some(link.file_name()?.to_str()?.to_string())
}

pub(crate) fn read_trimmed(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

/// The WWID of a multipath map from its dm uuid: multipathd names maps `mpath-<wwid>`.
pub fn wwid_from_dm_uuid(uuid: &str) -> Option<&str> {
    uuid.strip_prefix("mpath-").filter(|w| !w.is_empty())
}

/// The kernel's `device/wwid` text (`naa.6001405...`, `eui.0025...`, `t10.ATA ...`) in the form
/// multipath uses (`36001405...`, `20025...`, `1ATA_...`): a designator-type digit, then the id
/// (hex ids lowercased, whitespace runs of text ids as one `_`, as udev's scsi_id prints them).
pub fn normalize_wwid(text: &str) -> Option<String> {
    let text = text.trim_matches(|c: char| c.is_whitespace() || c == '\0');
    if text.is_empty() {
        return None;
    }
    let prefixed = |digit: char, rest: &str| Some(format!("{digit}{}", rest.to_ascii_lowercase()));
    if let Some(rest) = text.strip_prefix("naa.") {
        prefixed('3', rest)
    } else if let Some(rest) = text.strip_prefix("eui.") {
        prefixed('2', rest)
    } else if let Some(rest) = text.strip_prefix("t10.") {
        Some(format!("1{}", underscore_whitespace(rest)))
    } else {
        Some(text.to_string())
    }
}

fn underscore_whitespace(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join("_")
}

/// The WWID from a raw SCSI VPD page 0x83 (device identification), as sysfs `vpd_pg83` holds
/// it. Only logical-unit designators count (association 0); NAA beats EUI-64 beats SCSI name
/// string beats T10 vendor id, as the most specific identifier wins.
pub fn wwid_from_vpd_pg83(page: &[u8]) -> Option<String> {
    if page.len() < 4 || page[1] != 0x83 {
        return None;
    }
    let end = (4 + usize::from(u16::from_be_bytes([page[2], page[3]]))).min(page.len());
    let mut best: Option<(u8, String)> = None;
    let mut at = 4;
    while at + 4 <= end {
        let code_set = page[at] & 0x0f;
        let association = (page[at + 1] >> 4) & 0x03;
        let kind = page[at + 1] & 0x0f;
        let len = usize::from(page[at + 3]);
        let Some(id) = page.get(at + 4..at + 4 + len) else {
            break;
        };
        at += 4 + len;
        if association != 0 || id.is_empty() {
            continue;
        }
        let candidate = match kind {
            0x3 => Some((4, format!("3{}", hex(id)))),
            0x2 => Some((3, format!("2{}", hex(id)))),
            // SCSI name strings are UTF-8 (code set 3), `naa.`/`eui.`-prefixed or free text.
            0x8 if code_set == 3 => {
                let text = String::from_utf8_lossy(id);
                normalize_wwid(&text).map(|w| (2, w))
            }
            0x1 => {
                let text = String::from_utf8_lossy(id);
                let text = underscore_whitespace(&text);
                (!text.is_empty()).then(|| (1, format!("1{text}")))
            }
            _ => None,
        };
        if let Some((rank, wwid)) = candidate
            && best.as_ref().is_none_or(|(r, _)| rank > *r)
        {
            best = Some((rank, wwid));
        }
    }
    best.map(|(_, wwid)| wwid)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A throwaway sysfs tree under the system temp dir, removed on drop.
    pub(crate) struct FakeSysfs {
        pub root: PathBuf,
    }

    impl FakeSysfs {
        pub fn new(tag: &str) -> Self {
            let root = std::env::temp_dir().join(format!(
                "marginal-sysfs-{tag}-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            let _ = std::fs::remove_dir_all(&root);
            std::fs::create_dir_all(root.join("dev/block")).unwrap();
            Self { root }
        }

        pub fn sysfs(&self) -> Sysfs {
            Sysfs::new(&self.root)
        }

        /// A SCSI disk `name` at `dev` with the given attributes.
        pub fn disk(&self, name: &str, dev: DevNum, vendor: &str, model: &str, wwid: &str) {
            let device = self.root.join("block").join(name).join("device");
            std::fs::create_dir_all(&device).unwrap();
            // sysfs pads vendor/model with spaces and ends attributes with a newline.
            std::fs::write(device.join("vendor"), format!("{vendor:<8}\n")).unwrap();
            std::fs::write(device.join("model"), format!("{model:<16}\n")).unwrap();
            std::fs::write(device.join("rev"), "9800\n").unwrap();
            if !wwid.is_empty() {
                std::fs::write(device.join("wwid"), format!("{wwid}\n")).unwrap();
            }
            self.link(name, dev);
        }

        /// Only the `/sys/dev/block` link (e.g. a loop or dm device used as a path).
        pub fn link(&self, name: &str, dev: DevNum) {
            let link = self.root.join(format!("dev/block/{}:{}", dev.0, dev.1));
            let target = format!("../../devices/virtual/block/{name}");
            std::os::unix::fs::symlink(target, link).unwrap();
        }
    }

    impl Drop for FakeSysfs {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }

    #[test]
    fn scsi_commands_that_succeeded_are_done_less_errors_and_none_for_other_devices() {
        let fake = FakeSysfs::new("iodone");
        fake.link("sdb", (8, 16));
        fake.link("loop0", (7, 0));
        let device = fake.root.join("devices/virtual/block/sdb/device");
        std::fs::create_dir_all(&device).unwrap();
        // The midlayer prints both counters in hex.
        std::fs::write(device.join("iodone_cnt"), "0x2a\n").unwrap();
        std::fs::write(device.join("ioerr_cnt"), "0x2\n").unwrap();
        let sysfs = fake.sysfs();
        assert_eq!(sysfs.scsi_commands_succeeded((8, 16)), Some(40));
        assert_eq!(sysfs.scsi_commands_succeeded((7, 0)), None);
        assert_eq!(sysfs.scsi_commands_succeeded((8, 32)), None);
    }

    #[test]
    fn names_and_attributes_from_a_tree() {
        let fake = FakeSysfs::new("attrs");
        fake.disk(
            "sdb",
            (8, 16),
            "LIO-ORG",
            "disk0",
            "naa.6001405A1B2C3D4E5F60718293A4B5C6",
        );
        let sysfs = fake.sysfs();
        assert_eq!(sysfs.block_name((8, 16)).as_deref(), Some("sdb"));
        assert_eq!(sysfs.block_name((8, 32)), None);
        let info = sysfs.path_info("sdb");
        assert_eq!(info.vendor.as_deref(), Some("LIO-ORG"));
        assert_eq!(info.product.as_deref(), Some("disk0"));
        assert_eq!(info.revision.as_deref(), Some("9800"));
        assert_eq!(
            info.wwid.as_deref(),
            Some("36001405a1b2c3d4e5f60718293a4b5c6")
        );
        assert_eq!(sysfs.path_info("sdz"), PathInfo::default());
    }

    #[test]
    fn wwid_texts() {
        assert_eq!(
            normalize_wwid("t10.ATA     QEMU HARDDISK                           QM00001\n")
                .as_deref(),
            Some("1ATA_QEMU_HARDDISK_QM00001")
        );
        assert_eq!(
            normalize_wwid("eui.0025388B91B5A4C1").as_deref(),
            Some("20025388b91b5a4c1")
        );
        assert_eq!(normalize_wwid(" \n"), None);
        assert_eq!(
            wwid_from_dm_uuid("mpath-3600140512345"),
            Some("3600140512345")
        );
        assert_eq!(wwid_from_dm_uuid("LVM-abc"), None);
    }

    #[test]
    fn vpd_page_0x83_prefers_naa_for_the_logical_unit() {
        let mut page = vec![0x00, 0x83, 0x00, 0x00];
        // T10 vendor id, ASCII, LU association.
        let t10 = b"LIO-ORG disk0";
        page.extend_from_slice(&[0x02, 0x01, 0x00, t10.len() as u8]);
        page.extend_from_slice(t10);
        // NAA of the target port (association 1): must be ignored.
        page.extend_from_slice(&[0x01, 0x13, 0x00, 0x08, 0x50, 1, 2, 3, 4, 5, 6, 7]);
        // NAA IEEE registered extended, binary, LU association.
        page.extend_from_slice(&[0x01, 0x03, 0x00, 0x10]);
        page.extend_from_slice(&[
            0x60, 0x01, 0x40, 0x5a, 0x1b, 0x2c, 0x3d, 0x4e, 0x5f, 0x60, 0x71, 0x82, 0x93, 0xa4,
            0xb5, 0xc6,
        ]);
        let len = (page.len() - 4) as u16;
        page[2..4].copy_from_slice(&len.to_be_bytes());
        assert_eq!(
            wwid_from_vpd_pg83(&page).as_deref(),
            Some("36001405a1b2c3d4e5f60718293a4b5c6")
        );
        // Without the NAA the T10 id is used.
        let mut t10_only = page[..4 + 4 + t10.len()].to_vec();
        t10_only[3] = (4 + t10.len()) as u8;
        assert_eq!(
            wwid_from_vpd_pg83(&t10_only).as_deref(),
            Some("1LIO-ORG_disk0")
        );
        assert_eq!(wwid_from_vpd_pg83(&[0, 0x80, 0, 0]), None);
        // A designator running past the end is ignored, not a panic.
        assert_eq!(
            wwid_from_vpd_pg83(&[0, 0x83, 0, 6, 1, 3, 0, 16, 0x60, 1]),
            None
        );
    }

    #[test]
    fn vpd_page_from_the_tree_when_wwid_is_missing() {
        let fake = FakeSysfs::new("vpd");
        fake.disk("sdc", (8, 32), "QEMU", "QEMU HARDDISK", "");
        let device = fake.root.join("block/sdc/device");
        std::fs::write(
            device.join("vpd_pg83"),
            [
                0, 0x83, 0, 12, 1, 2, 0, 8, 0, 0x25, 0x38, 0x8b, 0x91, 0xb5, 0xa4, 0xc1,
            ],
        )
        .unwrap();
        assert_eq!(
            fake.sysfs().path_info("sdc").wwid.as_deref(),
            Some("20025388b91b5a4c1")
        );
    }
}
