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
        for (name, _, _) in self.devices()? {
            match self.raw_map(&name) {
                Ok(Some(map)) => maps.push(map),
                Ok(None) => {}
                Err(e) => log::warn!("device-mapper map {name}: {e:#}; left out"),
            }
        }
        Ok(maps)
    }

    /// Every device-mapper device: name, number and event number (None on kernels before
    /// dm ioctl 4.37), in one ioctl.
    pub fn devices(&self) -> Result<Vec<(String, DevNum, Option<u32>)>> {
        let devices = self
            .dm
            .list_devices()
            .map_err(|e| anyhow!("listing device-mapper devices: {e}"))?;
        Ok(devices
            .into_iter()
            .map(|(name, dev, event_nr)| (name.to_string(), (dev.major, dev.minor), event_nr))
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

/// A map as a read found it: its event number, what its status said, and the map made of it.
struct SeenMap {
    uuid: Option<String>,
    dev: DevNum,
    event_nr: Option<u32>,
    status: Option<MultipathStatus>,
    map: MultipathMap,
}

/// What a read may take from the last one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reuse {
    /// Nothing: every map's table, status and sysfs facts are read.
    Nothing,
    /// A map whose status (path states, fail counts, groups) is as last time: one status
    /// ioctl a map.
    SameStatus,
    /// A map whose event number (in the listing, no ioctl of its own) is as last time: dm
    /// counts every path failure and reinstatement, but not a table reload, which the
    /// daemon learns of by its uevent (a lost uevent is known too: ENOBUFS) and which a
    /// [`Reuse::SameStatus`] round catches anyway.
    SameEvent,
}

/// Resync rounds compare every map's status this often, and read everything afresh (sysfs
/// included) every [`FULL_RESYNC_EVERY`]; the others look at the event numbers only.
const STATUS_RESYNC_EVERY: u32 = 3;
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

    /// Every multipath map; with `reuse`, a map unchanged since the last read (by
    /// [`Reuse`]'s measure) comes from that read.
    /// None: nothing changed since the last read (only when reusing).
    fn read_maps(&self, reuse: Reuse) -> Result<Option<Vec<MultipathMap>>> {
        let devices = self.dm.devices()?;
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = Seen::default();
        // The multipath maps in dm's order, and whether any is new, changed or gone.
        let mut order = Vec::new();
        let mut changed = reuse == Reuse::Nothing;
        for (name, dev, event_nr) in devices {
            // A device that was no multipath map stays none until a uevent or a full round
            // says otherwise (a new map comes with a new name and a uevent).
            if reuse != Reuse::Nothing && seen.others.contains(&name) {
                next.others.insert(name);
                continue;
            }
            if reuse != Reuse::Nothing
                && let Some(mut old) = seen.maps.remove(&name)
            {
                if reuse == Reuse::SameEvent
                    && old.dev == dev
                    && event_nr.is_some()
                    && old.event_nr == event_nr
                {
                    order.push(name.clone());
                    next.maps.insert(name, old);
                    continue;
                }
                match self.dm.status_of(&name) {
                    Ok(Some((uuid, dev, status)))
                        if uuid == old.uuid
                            && dev == old.dev
                            && old.status.is_some()
                            && status_key(&status) == old.status =>
                    {
                        old.event_nr = event_nr;
                        order.push(name.clone());
                        next.maps.insert(name, old);
                        continue;
                    }
                    Ok(Some(_)) => {} // changed: read it all
                    Ok(None) => {
                        changed = true;
                        next.others.insert(name);
                        continue;
                    }
                    Err(e) => {
                        changed = true;
                        log::warn!("device-mapper map {name}: {e:#}; left out");
                        continue;
                    }
                }
            }
            changed = true;
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
                        event_nr,
                        status,
                        map,
                    };
                    order.push(name.clone());
                    next.maps.insert(name, entry);
                }
                Err(e) => log::warn!("{e:#}; map left out"),
            }
        }
        // A map of the last read that is not in this one is gone (or left out).
        changed |= !seen.maps.is_empty();
        *seen = next;
        if !changed {
            return Ok(None);
        }
        let maps: Vec<MultipathMap> = order.iter().map(|n| seen.maps[n].map.clone()).collect();
        // Devices in no map now are gone or no longer paths; a map left out this round
        // (a reload race) only costs a re-read of its paths next time.
        let present = maps.iter().flat_map(|m| m.paths().map(|p| p.dev)).collect();
        self.transports.retain(&present);
        Ok(Some(maps))
    }
}

impl MapSource for DmDiscovery {
    fn discover(&self) -> Result<Vec<MultipathMap>> {
        Ok(self.read_maps(Reuse::Nothing)?.unwrap_or_default())
    }

    /// Only a map that changed (a path failed or came back, a reload changed its paths or
    /// groups) is read again with its table and sysfs: see [`Reuse`] for how a round tells.
    fn resync(&self) -> Result<Option<Vec<MultipathMap>>> {
        let round = self.resyncs.fetch_add(1, Ordering::Relaxed) + 1;
        self.read_maps(if round.is_multiple_of(FULL_RESYNC_EVERY) {
            Reuse::Nothing
        } else if round.is_multiple_of(STATUS_RESYNC_EVERY) {
            Reuse::SameStatus
        } else {
            Reuse::SameEvent
        })
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

    fn commands_succeeded(&self, dev: DevNum) -> Option<u64> {
        self.sysfs.scsi_commands_succeeded(dev)
    }
}

#[cfg(test)]
mod tests;
