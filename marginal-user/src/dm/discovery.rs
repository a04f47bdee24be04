//! Reading multipath maps from device-mapper and putting them together with sysfs facts.
//!
//! [`DeviceMapper`] is the thin I/O layer (ioctls on `/dev/mapper/control` through the
//! devicemapper crate); [`assemble_map`] is the pure part that turns a map's table and status
//! lines plus sysfs into a [`MultipathMap`], unit-tested without device-mapper. [`DmDiscovery`]
//! joins them as the daemon's [`MapSource`].
use std::{
    collections::{HashMap, HashSet},
    sync::{
        Mutex,
        atomic::{AtomicU32, Ordering},
    },
};

use anyhow::{Context, Result, anyhow, bail};
use devicemapper::{DM, DevId, DmError, DmFlags, DmName, DmOptions, errors};

use super::{
    MapPath, MapSource, MultipathMap, PathGroup,
    status::{DevNum, MultipathStatus, parse_status, parse_table},
    sysfs::{Sysfs, block_name_of, wwid_from_dm_uuid},
    transport::TransportCache,
};

/// The raw facts device-mapper gives about one multipath map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawMap {
    pub name: String,
    pub uuid: Option<String>,
    pub dev: DevNum,
    /// Table parameters of the `multipath` target.
    pub table: String,
    /// Status parameters of the `multipath` target.
    pub status: String,
}

/// Device-mapper's control device.
pub struct DeviceMapper {
    dm: DM,
}

impl DeviceMapper {
    /// Opens `/dev/mapper/control`; fails on kernels without device-mapper.
    pub fn open() -> Result<Self> {
        let dm = DM::new().map_err(|e| {
            anyhow!("cannot open /dev/mapper/control (is device-mapper in this kernel?): {e}")
        })?;
        Ok(Self { dm })
    }

    /// Every map whose (single) target is `multipath`. Maps that vanish while being read are
    /// skipped; other per-map errors are logged and the map left out.
    pub fn multipath_maps(&self) -> Result<Vec<RawMap>> {
        let mut maps = Vec::new();
        for name in self.device_names()? {
            match self.raw_map(&name) {
                Ok(Some(map)) => maps.push(map),
                Ok(None) => {}
                Err(e) => log::warn!("device-mapper map {name}: {e:#}; left out"),
            }
        }
        Ok(maps)
    }

    /// The names of every device-mapper device (one ioctl).
    pub fn device_names(&self) -> Result<Vec<String>> {
        let devices = self
            .dm
            .list_devices()
            .map_err(|e| anyhow!("listing device-mapper devices: {e}"))?;
        Ok(devices
            .into_iter()
            .map(|(name, _, _)| name.to_string())
            .collect())
    }

    /// `(uuid, dev, status parameters)` of map `name` (one ioctl); None if it is another kind
    /// or is gone.
    pub fn status_of(&self, name: &str) -> Result<Option<(Option<String>, DevNum, String)>> {
        self.target(name, false)
    }

    /// The map `name` if it is a multipath map, None if it is another kind or is gone.
    pub fn raw_map(&self, name: &str) -> Result<Option<RawMap>> {
        // Table and status are two ioctls; a reload in between (multipathd adding or removing
        // a path) makes them disagree, so read again once before giving up.
        for attempt in 0..2 {
            let Some((uuid, dev, table)) = self.target(name, true)? else {
                return Ok(None);
            };
            let Some((_, _, status)) = self.target(name, false)? else {
                return Ok(None);
            };
            let map = RawMap {
                name: name.to_string(),
                uuid,
                dev,
                table,
                status,
            };
            if attempt == 1 || same_paths(&map.table, &map.status) {
                return Ok(Some(map));
            }
            log::debug!("map {name}: table and status disagree (reloaded?), reading again");
        }
        unreachable!("the second attempt always returns")
    }

    /// The status parameters of multipath map `name`.
    pub fn status(&self, name: &str) -> Result<String> {
        match self.target(name, false)? {
            Some((_, _, status)) => Ok(status),
            None => bail!("map {name}: no such multipath map"),
        }
    }

    /// Sends a target message (e.g. `fail_path 8:16`) to sector 0 of map `name`.
    pub fn target_message(&self, name: &str, message: &str) -> Result<()> {
        let id = dev_id(name)?;
        self.dm
            .target_msg(&id, None, message)
            .map_err(|e| anyhow!("map {name}: device-mapper message {message:?} failed: {e}"))?;
        Ok(())
    }

    /// `(uuid, dev, params)` of the map's multipath target: the table with `table`, else the
    /// status. None if the map is gone or not a single multipath target.
    fn target(&self, name: &str, table: bool) -> Result<Option<(Option<String>, DevNum, String)>> {
        let id = dev_id(name)?;
        let options = if table {
            DmOptions::default().set_flags(DmFlags::DM_STATUS_TABLE)
        } else {
            // Multipath has no metadata to flush; never make a status read write anything.
            DmOptions::default().set_flags(DmFlags::DM_NOFLUSH)
        };
        let (info, targets) = match self.dm.table_status(&id, options) {
            Ok(result) => result,
            Err(e) if is_gone(&e) => return Ok(None),
            Err(e) => bail!("map {name}: reading its {}: {e}", kind(table)),
        };
        let [(_, _, target_type, params)] = targets.as_slice() else {
            return Ok(None);
        };
        if target_type != "multipath" {
            return Ok(None);
        }
        let device = info.device();
        let uuid = info.uuid().map(|u| u.to_string()).filter(|u| !u.is_empty());
        Ok(Some((uuid, (device.major, device.minor), params.clone())))
    }
}

fn kind(table: bool) -> &'static str {
    if table { "table" } else { "status" }
}

fn dev_id(name: &str) -> Result<DevId<'_>> {
    let name = DmName::new(name).map_err(|e| anyhow!("{name:?} is no device-mapper name: {e}"))?;
    Ok(DevId::Name(name))
}

/// ENXIO: the map was removed between listing and reading it.
fn is_gone(e: &DmError) -> bool {
    matches!(e, DmError::Core(errors::Error::Ioctl(_, _, _, errno)) if **errno as i32 == libc::ENXIO)
}

fn same_paths(table: &str, status: &str) -> bool {
    match (parse_table(table), parse_status(status)) {
        (Ok(t), Ok(s)) => {
            let table_devs: Vec<Vec<DevNum>> = t
                .groups
                .iter()
                .map(|g| g.paths.iter().map(|p| p.dev).collect())
                .collect();
            let status_devs: Vec<Vec<DevNum>> = s
                .groups
                .iter()
                .map(|g| g.paths.iter().map(|p| p.dev).collect())
                .collect();
            table_devs == status_devs
        }
        _ => false,
    }
}

/// Puts a map together from its table and status lines and sysfs: groups and paths from the
/// table, each path's state and fail count from the status, names and ids from sysfs, and
/// transports from `transports` (which reads sysfs for devices it has not seen).
pub fn assemble_map(
    raw: &RawMap,
    sysfs: &Sysfs,
    transports: &TransportCache,
) -> Result<MultipathMap> {
    let name = &raw.name;
    let table = parse_table(&raw.table).with_context(|| format!("map {name}: table"))?;
    let status = parse_status(&raw.status).with_context(|| format!("map {name}: status"))?;
    if table.groups.len() != status.groups.len() {
        bail!(
            "map {name}: table has {} path groups, status {}",
            table.groups.len(),
            status.groups.len()
        );
    }
    let mut groups = Vec::with_capacity(table.groups.len());
    for (g, (tg, sg)) in table.groups.iter().zip(&status.groups).enumerate() {
        let table_devs: Vec<DevNum> = tg.paths.iter().map(|p| p.dev).collect();
        let status_devs: Vec<DevNum> = sg.paths.iter().map(|p| p.dev).collect();
        if table_devs != status_devs {
            bail!(
                "map {name}: path group {} lists {table_devs:?} in its table, {status_devs:?} in \
                 its status",
                g + 1
            );
        }
        let paths = sg
            .paths
            .iter()
            .map(|sp| {
                let link = sysfs.block_link(sp.dev);
                let kernel_name = link.as_deref().and_then(block_name_of);
                let transport = link
                    .as_deref()
                    .map(|l| transports.get(sysfs, sp.dev, l))
                    .unwrap_or_default();
                let info = kernel_name
                    .as_deref()
                    .map(|n| sysfs.path_info(n))
                    .unwrap_or_default();
                MapPath {
                    dev: sp.dev,
                    name: kernel_name.unwrap_or_else(|| format!("{}:{}", sp.dev.0, sp.dev.1)),
                    active: sp.active,
                    fail_count: sp.fail_count,
                    vendor: info.vendor,
                    product: info.product,
                    revision: info.revision,
                    wwid: info.wwid,
                    transport,
                }
            })
            .collect();
        groups.push(PathGroup {
            state: sg.state,
            selector: tg.selector.clone(),
            paths,
        });
    }
    let wwid = raw
        .uuid
        .as_deref()
        .and_then(wwid_from_dm_uuid)
        .map(str::to_string)
        .or_else(|| {
            groups
                .iter()
                .flat_map(|g| &g.paths)
                .find_map(|p| p.wwid.clone())
        });
    Ok(MultipathMap {
        name: name.clone(),
        uuid: raw.uuid.clone(),
        wwid,
        dev: raw.dev,
        features: table.features,
        hw_handler: table.hw_handler.first().cloned(),
        groups,
    })
}

/// The daemon's [`MapSource`]: device-mapper for maps, sysfs for names and ids.
pub struct DmDiscovery {
    dm: DeviceMapper,
    sysfs: Sysfs,
    transports: TransportCache,
    /// What the last read found, for [`MapSource::resync`].
    seen: Mutex<Seen>,
    resyncs: AtomicU32,
}

/// What the last read found: each multipath map, and the other devices (dm-linear partitions,
/// LVM, crypt: on a SAN host often more than the maps).
#[derive(Default)]
struct Seen {
    maps: HashMap<String, SeenMap>,
    others: HashSet<String>,
}

/// A map as a read found it: what its status said, and the map made of it.
struct SeenMap {
    uuid: Option<String>,
    dev: DevNum,
    status: Option<MultipathStatus>,
    map: MultipathMap,
}

/// Every this many resyncs, one reads every map afresh (sysfs included), whatever its status.
const FULL_RESYNC_EVERY: u32 = 12;

/// A status line without the path selector's words (service-time's in-flight sizes change
/// with every I/O and say nothing of the paths' state); None if it does not parse.
fn status_key(status: &str) -> Option<MultipathStatus> {
    let mut parsed = parse_status(status).ok()?;
    for path in parsed.groups.iter_mut().flat_map(|g| g.paths.iter_mut()) {
        path.selector_status.clear();
    }
    Some(parsed)
}

impl DmDiscovery {
    /// Opens device-mapper; reads the real `/sys`.
    pub fn open() -> Result<Self> {
        Self::with_sysfs(Sysfs::default())
    }

    pub fn with_sysfs(sysfs: Sysfs) -> Result<Self> {
        Ok(Self {
            dm: DeviceMapper::open()?,
            sysfs,
            transports: TransportCache::default(),
            seen: Mutex::new(Seen::default()),
            resyncs: AtomicU32::new(0),
        })
    }

    pub fn device_mapper(&self) -> &DeviceMapper {
        &self.dm
    }

    /// Every multipath map; `reuse`: maps whose status is unchanged come from the last read.
    fn read_maps(&self, reuse: bool) -> Result<Vec<MultipathMap>> {
        let names = self.dm.device_names()?;
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = Seen::default();
        let mut maps = Vec::new();
        for name in names {
            // A device that was no multipath map stays none until a uevent or a full round
            // says otherwise (a new map comes with a new name).
            if reuse && seen.others.contains(&name) {
                next.others.insert(name);
                continue;
            }
            if reuse && let Some(old) = seen.maps.remove(&name) {
                match self.dm.status_of(&name) {
                    Ok(Some((uuid, dev, status)))
                        if uuid == old.uuid
                            && dev == old.dev
                            && old.status.is_some()
                            && status_key(&status) == old.status =>
                    {
                        maps.push(old.map.clone());
                        next.maps.insert(name, old);
                        continue;
                    }
                    Ok(Some(_)) => {} // changed: read it all
                    Ok(None) => {
                        next.others.insert(name);
                        continue;
                    }
                    Err(e) => {
                        log::warn!("device-mapper map {name}: {e:#}; left out");
                        continue;
                    }
                }
            }
            let raw = match self.dm.raw_map(&name) {
                Ok(Some(raw)) => raw,
                Ok(None) => {
                    next.others.insert(name);
                    continue;
                }
                Err(e) => {
                    log::warn!("device-mapper map {name}: {e:#}; left out");
                    continue;
                }
            };
            match assemble_map(&raw, &self.sysfs, &self.transports) {
                Ok(map) => {
                    let status = status_key(&raw.status);
                    let entry = SeenMap {
                        uuid: raw.uuid,
                        dev: raw.dev,
                        status,
                        map: map.clone(),
                    };
                    next.maps.insert(name, entry);
                    maps.push(map);
                }
                Err(e) => log::warn!("{e:#}; map left out"),
            }
        }
        *seen = next;
        // Devices in no map now are gone or no longer paths; a map left out this round
        // (a reload race) only costs a re-read of its paths next time.
        let present = maps.iter().flat_map(|m| m.paths().map(|p| p.dev)).collect();
        self.transports.retain(&present);
        Ok(maps)
    }
}

impl MapSource for DmDiscovery {
    fn discover(&self) -> Result<Vec<MultipathMap>> {
        self.read_maps(false)
    }

    /// Only a map whose status changed (a path failed or came back, a reload changed its
    /// paths or groups) is read again with its table and sysfs; one status ioctl each for the
    /// rest. A reload leaves dm's event number as it was, so the status itself is compared.
    fn resync(&self) -> Result<Vec<MultipathMap>> {
        let round = self.resyncs.fetch_add(1, Ordering::Relaxed);
        self.read_maps(round % FULL_RESYNC_EVERY != FULL_RESYNC_EVERY - 1)
    }

    fn read_map(&self, name: &str) -> Result<MultipathMap> {
        // Always afresh: it is read to act on.
        let raw = self
            .dm
            .raw_map(name)?
            .with_context(|| format!("map {name}: no such multipath map"))?;
        assemble_map(&raw, &self.sysfs, &self.transports)
    }

    fn device_exists(&self, dev: DevNum) -> bool {
        self.sysfs.block_name(dev).is_some()
    }
}

#[cfg(test)]
mod tests {
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
}
