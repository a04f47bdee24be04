//! What the daemon watches: maps and their paths, from `--watch` devices (one group, on hosts
//! without device-mapper) or from device-mapper's multipath maps.
use anyhow::Result;

use crate::{
    config::MapIdentity,
    device::BlockDevice,
    dm::{MapSource, MultipathMap, Sysfs, Transport},
    engine::PathKey,
};

/// The map name given to the `--watch` group.
pub const WATCH_GROUP: &str = "watch";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topology {
    pub maps: Vec<WatchedMap>,
    /// The maps are device-mapper's; false for the `--watch` group, whose paths nothing
    /// ever fails or reinstates.
    pub device_mapper: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchedMap {
    pub name: String,
    pub identity: MapIdentity,
    pub paths: Vec<WatchedPath>,
    /// The map's own block device (`dm-N`), for its removal uevent; None for `--watch`.
    pub dev: Option<(u32, u32)>,
}

impl WatchedMap {
    /// The map's kernel name, `dm-N`, as its removal uevent names it.
    pub fn kernel_name(&self) -> Option<String> {
        self.dev.map(|(_, minor)| format!("dm-{minor}"))
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchedPath {
    pub key: PathKey,
    pub device: BlockDevice,
    /// dm-mpath has the path active (always true for `--watch` devices).
    pub active: bool,
    /// What the path is, for the fleet view (`marginal_path_info`).
    pub identity: PathIdentity,
}

/// A path's SCSI identity and transport, fixed while the device exists.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PathIdentity {
    pub vendor: Option<String>,
    pub product: Option<String>,
    pub wwid: Option<String>,
    pub transport: Transport,
}

impl PathIdentity {
    /// Read from sysfs for a `--watch` device (dm paths get theirs from discovery).
    fn read(sysfs: &Sysfs, device: &BlockDevice) -> Self {
        let info = sysfs.path_info(&device.name);
        let link = sysfs.block_link((device.major, device.minor));
        Self {
            vendor: info.vendor,
            product: info.product,
            wwid: info.wwid,
            transport: link.map(|l| sysfs.transport(&l)).unwrap_or_default(),
        }
    }
}

impl Topology {
    /// The `--watch` devices as the paths of one group.
    pub fn from_watch_list(devices: &[String]) -> Result<Self> {
        let mut paths = Vec::new();
        for spec in devices {
            let device = BlockDevice::resolve(spec)?;
            if paths.iter().any(|p: &WatchedPath| p.device == device) {
                continue;
            }
            paths.push(WatchedPath {
                key: PathKey::new(device.name.clone()),
                identity: PathIdentity::read(&Sysfs::default(), &device),
                device,
                active: true,
            });
        }
        Ok(Self {
            maps: vec![WatchedMap {
                name: WATCH_GROUP.into(),
                identity: MapIdentity {
                    alias: Some(WATCH_GROUP.into()),
                    ..Default::default()
                },
                paths,
                dev: None,
            }],
            device_mapper: false,
        })
    }

    /// Every multipath map device-mapper knows.
    pub fn discover(source: &dyn MapSource) -> Result<Self> {
        Ok(Self::of(&source.discover()?))
    }

    /// [`Topology::discover`] by [`MapSource::resync`]: None if nothing changed.
    pub fn resync(source: &dyn MapSource) -> Result<Option<Self>> {
        Ok(source.resync()?.as_deref().map(Self::of))
    }

    fn of(maps: &[crate::dm::MultipathMap]) -> Self {
        Self {
            maps: maps.iter().map(WatchedMap::from_dm).collect(),
            device_mapper: true,
        }
    }

    pub fn paths(&self) -> impl Iterator<Item = (&WatchedMap, &WatchedPath)> {
        self.maps
            .iter()
            .flat_map(|map| map.paths.iter().map(move |path| (map, path)))
    }

    pub fn path(&self, key: &PathKey) -> Option<(&WatchedMap, &WatchedPath)> {
        self.paths().find(|(_, path)| &path.key == key)
    }

    /// Records what marginal just did to a path, until the next discovery reads dm again.
    pub fn set_active(&mut self, key: &PathKey, active: bool) {
        let path = self
            .maps
            .iter_mut()
            .flat_map(|map| map.paths.iter_mut())
            .find(|path| &path.key == key);
        if let Some(path) = path {
            path.active = active;
        }
    }

    pub fn path_by_kernel_dev(&self, dev: u32) -> Option<(&WatchedMap, &WatchedPath)> {
        self.paths()
            .find(|(_, path)| path.device.kernel_dev() == dev)
    }
}

impl WatchedMap {
    fn from_dm(map: &MultipathMap) -> Self {
        // multipathd matches devices entries against the path's real vendor, product and
        // revision; a path without a revision in sysfs has an empty one there (never
        // "unknown"), so a revision-specific entry is tested against "".
        let identity = map.identity_path();
        Self {
            name: map.name.clone(),
            identity: MapIdentity {
                wwid: map.wwid.clone().unwrap_or_default(),
                alias: Some(map.name.clone()),
                vendor: identity.and_then(|p| p.vendor.clone()),
                product: identity.and_then(|p| p.product.clone()),
                revision: identity.map(|p| p.revision.clone().unwrap_or_default()),
            },
            paths: map
                .paths()
                .map(|path| WatchedPath {
                    key: PathKey::new(path.name.clone()),
                    device: BlockDevice {
                        name: path.name.clone(),
                        major: path.dev.0,
                        minor: path.dev.1,
                    },
                    active: path.active,
                    identity: PathIdentity {
                        vendor: path.vendor.clone(),
                        product: path.product.clone(),
                        wwid: path.wwid.clone(),
                        transport: path.transport.clone(),
                    },
                })
                .collect(),
            dev: Some(map.dev),
        }
    }
}
