//! Device-mapper discovery: which multipath maps exist, which paths each has, and what the
//! kernel thinks of every path right now.
//!
//! ```text
//! DM ioctls (devicemapper crate)        sysfs
//!   list devices ─┐                      /sys/dev/block/MAJ:MIN -> sdb
//!   table  ───────┼─> status::parse_* ─┐ /sys/block/sdb/device/{vendor,model,wwid}
//!   status ───────┘                    ├─> discovery::assemble_map ─> MultipathMap
//!                                      │
//! ```
//!
//! * [`status`]: pure parsers for a multipath target's table and status lines.
//! * [`transport`]: each path's transport, host adapter and target port (the fleet view).
//! * [`fc`]: FC port statistics and FPIN counters of this host's and the remote ports.
//! * [`sysfs`]: path names, vendor/product and WWIDs, with an injectable sysfs root.
//! * [`discovery`]: [`DeviceMapper`] (the ioctls) and [`DmDiscovery`], the [`MapSource`] the
//!   daemon uses; re-discovery is triggered by the uevent listener ([`crate::kernel::uevent`]) on
//!   `DevicesChanged`.
//!
//! A path is *active* when the kernel's status says `A`: that is what dm-mpath's
//! `nr_valid_paths` counts, whatever state its group is in.
pub mod discovery;
pub mod fc;
pub mod status;
pub mod sysfs;
pub mod transport;

use anyhow::Result;

pub use discovery::{DeviceMapper, DmDiscovery, RawMap, assemble_map};
pub use status::{DevNum, GroupState, MultipathStatus, MultipathTable, parse_status, parse_table};
pub use sysfs::{PathInfo, Sysfs};
pub use transport::{Transport, TransportCache, TransportKind};

/// Where the daemon gets its maps from: device-mapper on a real host, a canned list in tests.
pub trait MapSource: Send + Sync {
    /// Every multipath map with its paths. A map that cannot be read (e.g. removed while
    /// listing) is left out with a warning; only failing to list maps at all is an error.
    fn discover(&self) -> Result<Vec<MultipathMap>>;

    /// [`MapSource::discover`] for the periodic resync, which mostly finds nothing changed:
    /// it may take a map whose device-mapper status is as last time from that time, and
    /// answers None when no map changed since the last read.
    fn resync(&self) -> Result<Option<Vec<MultipathMap>>> {
        self.discover().map(Some)
    }

    /// One map, read afresh (e.g. to check its active paths before acting on it).
    fn read_map(&self, name: &str) -> Result<MultipathMap>;

    /// Commands of path `dev` that succeeded so far, if the device counts them (SCSI): a
    /// path that failed, was put back and failed again with none succeeding in between
    /// never worked meanwhile (one outage, put back on a stale checker result).
    fn commands_succeeded(&self, _dev: DevNum) -> Option<u64> {
        None
    }

    /// Whether the block device `dev` still exists (a path that vanished is released, not
    /// waited for).
    fn device_exists(&self, dev: DevNum) -> bool;
}

/// A fixed list of maps, for tests and tools that have no device-mapper: [`MapSource`] over
/// whatever was last [`set`](StaticMaps::set).
#[derive(Debug, Default)]
pub struct StaticMaps {
    maps: std::sync::Mutex<Vec<MultipathMap>>,
}

impl StaticMaps {
    pub fn new(maps: Vec<MultipathMap>) -> Self {
        Self {
            maps: std::sync::Mutex::new(maps),
        }
    }

    /// Replaces the maps the next `discover` returns.
    pub fn set(&self, maps: Vec<MultipathMap>) {
        *self.maps.lock().unwrap_or_else(|e| e.into_inner()) = maps;
    }
}

impl MapSource for StaticMaps {
    fn discover(&self) -> Result<Vec<MultipathMap>> {
        Ok(self.maps.lock().unwrap_or_else(|e| e.into_inner()).clone())
    }

    fn read_map(&self, name: &str) -> Result<MultipathMap> {
        self.discover()?
            .into_iter()
            .find(|m| m.name == name)
            .ok_or_else(|| anyhow::anyhow!("map {name}: no such multipath map"))
    }

    /// A device exists while some map lists it.
    fn device_exists(&self, dev: DevNum) -> bool {
        self.discover()
            .is_ok_and(|maps| maps.iter().any(|m| m.path_by_dev(dev).is_some()))
    }
}

/// A dm-multipath map and its paths, as device-mapper and sysfs describe it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MultipathMap {
    /// Device-mapper name: the alias (`mpatha`) or the WWID.
    pub name: String,
    /// Device-mapper uuid, `mpath-<wwid>` for maps multipathd made.
    pub uuid: Option<String>,
    /// The LUN's WWID: from the uuid, else from the first path that has one in sysfs.
    pub wwid: Option<String>,
    /// The map's own block device (`254:0`).
    pub dev: DevNum,
    /// Table feature words, e.g. `queue_if_no_path`.
    pub features: Vec<String>,
    /// Hardware handler name, e.g. `alua`.
    pub hw_handler: Option<String>,
    pub groups: Vec<PathGroup>,
}

/// A priority group of a map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathGroup {
    pub state: GroupState,
    /// Path selector, e.g. `service-time`.
    pub selector: String,
    pub paths: Vec<MapPath>,
}

/// One path of a map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapPath {
    pub dev: DevNum,
    /// Kernel name (`sdb`); `MAJ:MIN` if sysfs does not know the device.
    pub name: String,
    /// The kernel's state: `A` in the status line.
    pub active: bool,
    /// How often the kernel failed the path since the table was loaded.
    pub fail_count: u32,
    pub vendor: Option<String>,
    pub product: Option<String>,
    pub revision: Option<String>,
    pub wwid: Option<String>,
    /// Transport, host adapter and target port (read once per device).
    pub transport: Transport,
}

impl MapPath {
    /// `MAJ:MIN`, as dm target messages and multipathd accept it.
    pub fn numbers(&self) -> String {
        format!("{}:{}", self.dev.0, self.dev.1)
    }
}

impl MultipathMap {
    /// Every path of every group, in table order.
    pub fn paths(&self) -> impl Iterator<Item = &MapPath> {
        self.groups.iter().flat_map(|g| g.paths.iter())
    }

    /// The paths the kernel can use.
    pub fn active_paths(&self) -> impl Iterator<Item = &MapPath> {
        self.paths().filter(|p| p.active)
    }

    pub fn active_count(&self) -> usize {
        self.active_paths().count()
    }

    pub fn path_by_dev(&self, dev: DevNum) -> Option<&MapPath> {
        self.paths().find(|p| p.dev == dev)
    }

    pub fn path_by_name(&self, name: &str) -> Option<&MapPath> {
        self.paths().find(|p| p.name == name)
    }

    /// Whether `dev` is the only active path left: failing it would leave the map without one.
    pub fn is_last_active(&self, dev: DevNum) -> bool {
        let mut active = self.active_paths();
        matches!((active.next(), active.next()), (Some(p), None) if p.dev == dev)
    }

    /// Vendor and product of the map's first path that has both (all paths of a LUN report
    /// the same), for matching multipath.conf `devices` entries.
    pub fn vendor_product(&self) -> Option<(&str, &str)> {
        self.paths()
            .find_map(|p| Some((p.vendor.as_deref()?, p.product.as_deref()?)))
    }

    /// The path whose vendor, product and revision stand for the map, as multipathd takes a
    /// map's hardware entry from its first path that has one: the first with vendor and
    /// product.
    pub fn identity_path(&self) -> Option<&MapPath> {
        self.paths()
            .find(|p| p.vendor.is_some() && p.product.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(name: &str, dev: DevNum, active: bool) -> MapPath {
        MapPath {
            dev,
            name: name.into(),
            active,
            fail_count: 0,
            vendor: None,
            product: None,
            revision: None,
            wwid: None,
            transport: Transport::default(),
        }
    }

    fn map(paths: Vec<MapPath>) -> MultipathMap {
        MultipathMap {
            name: "mpatha".into(),
            uuid: None,
            wwid: None,
            dev: (254, 0),
            features: vec![],
            hw_handler: None,
            groups: vec![PathGroup {
                state: GroupState::Active,
                selector: "round-robin".into(),
                paths,
            }],
        }
    }

    #[test]
    fn last_active_path() {
        let m = map(vec![
            path("sdb", (8, 16), true),
            path("sdc", (8, 32), false),
        ]);
        assert!(m.is_last_active((8, 16)));
        assert!(
            !m.is_last_active((8, 32)),
            "a failed path is not the last active one"
        );
        let none = map(vec![path("sdb", (8, 16), false)]);
        assert!(!none.is_last_active((8, 16)));
        assert_eq!(none.active_count(), 0);
    }

    #[test]
    fn static_maps_serve_what_was_set() {
        let source = StaticMaps::default();
        assert!(source.discover().unwrap().is_empty());
        source.set(vec![map(vec![path("sdb", (8, 16), true)])]);
        assert_eq!(source.read_map("mpatha").unwrap().paths().count(), 1);
        assert!(source.read_map("mpathb").is_err());
    }
}
