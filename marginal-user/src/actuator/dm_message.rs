//! Device-mapper target messages: `fail_path MAJ:MIN` / `reinstate_path MAJ:MIN` sent to
//! sector 0 of the map, for hosts without multipathd.
//!
//! Without multipathd nobody reinstates a path behind our back, so the kernel's own state is
//! all there is. That makes one mistake fatal: failing the last active path takes the map
//! down. The engine never asks for that, but the map may have lost paths since it decided, so
//! this actuator re-reads the status right before failing and refuses if the path is the last
//! active one. That narrows the window, it cannot close it (dm has no "fail unless last"): a
//! path that fails in the kernel between the read and the message can still leave the map
//! without one, which is why the engine recovers a path at once when a map has none left.
use anyhow::{Result, bail};

use super::{Actuator, PathRef};
use crate::dm::{DeviceMapper, parse_status};

/// What this actuator needs from device-mapper: the I/O seam, so the rules around it are
/// tested without a kernel that has device-mapper.
pub trait MapControl: Send + Sync {
    /// The status parameters of multipath map `map`.
    fn status(&self, map: &str) -> Result<String>;
    /// Sends `message` to sector 0 of `map`.
    fn message(&self, map: &str, message: &str) -> Result<()>;
}

impl MapControl for DeviceMapper {
    fn status(&self, map: &str) -> Result<String> {
        DeviceMapper::status(self, map)
    }

    fn message(&self, map: &str, message: &str) -> Result<()> {
        self.target_message(map, message)
    }
}

/// Fails and reinstates paths with device-mapper target messages.
pub struct DmMessage<C: MapControl = DeviceMapper> {
    control: C,
}

impl DmMessage<DeviceMapper> {
    /// Opens `/dev/mapper/control`.
    pub fn open() -> Result<Self> {
        Ok(Self::new(DeviceMapper::open()?))
    }
}

impl<C: MapControl> DmMessage<C> {
    pub fn new(control: C) -> Self {
        Self { control }
    }

    pub fn control(&self) -> &C {
        &self.control
    }
}

/// Refuses to fail `path` if the map's status shows it as the last active path, or does not
/// list it at all.
pub fn check_can_fail(map: &str, status: &str, path: &PathRef) -> Result<()> {
    let status = parse_status(status)?;
    let Some(this) = status.path(path.dev) else {
        bail!("map {map} has no path {path}");
    };
    if this.active && status.active_count() == 1 {
        bail!("would leave map {map} without an active path: {path} is its last one");
    }
    Ok(())
}

impl<C: MapControl> Actuator for DmMessage<C> {
    fn name(&self) -> &str {
        "device-mapper messages"
    }

    fn fail_path(&self, map: &str, path: &PathRef) -> Result<()> {
        let status = self.control.status(map);
        status
            .and_then(|status| check_can_fail(map, &status, path))
            .and_then(|()| {
                self.control
                    .message(map, &format!("fail_path {}", path.numbers()))
            })
            .map_err(|e| e.context(format!("map {map}, path {path}: fail_path")))
    }

    fn reinstate_path(&self, map: &str, path: &PathRef) -> Result<()> {
        self.control
            .message(map, &format!("reinstate_path {}", path.numbers()))
            .map_err(|e| e.context(format!("map {map}, path {path}: reinstate_path")))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// A map as the kernel would keep it: a status line, and the messages received.
    struct FakeMap {
        status: Mutex<String>,
        sent: Mutex<Vec<String>>,
    }

    impl FakeMap {
        fn new(status: &str) -> Self {
            Self {
                status: Mutex::new(status.into()),
                sent: Mutex::new(Vec::new()),
            }
        }
    }

    impl MapControl for FakeMap {
        fn status(&self, map: &str) -> Result<String> {
            if map != "mpatha" {
                bail!("map {map}: no such multipath map");
            }
            Ok(self.status.lock().unwrap().clone())
        }

        fn message(&self, _map: &str, message: &str) -> Result<()> {
            self.sent.lock().unwrap().push(message.into());
            Ok(())
        }
    }

    const TWO_ACTIVE: &str = "2 0 0 0 1 1 A 0 2 0 8:16 A 0 8:32 A 0";

    #[test]
    fn fails_and_reinstates_by_device_number() {
        let dm = DmMessage::new(FakeMap::new(TWO_ACTIVE));
        dm.fail_path("mpatha", &PathRef::new("sdc", (8, 32)))
            .unwrap();
        dm.reinstate_path("mpatha", &PathRef::new("sdc", (8, 32)))
            .unwrap();
        assert_eq!(
            *dm.control().sent.lock().unwrap(),
            ["fail_path 8:32", "reinstate_path 8:32"]
        );
    }

    #[test]
    fn never_fails_the_last_active_path() {
        let dm = DmMessage::new(FakeMap::new("2 0 0 0 1 1 A 0 2 0 8:16 A 0 8:32 F 4"));
        let err = dm
            .fail_path("mpatha", &PathRef::new("sdb", (8, 16)))
            .unwrap_err();
        let text = format!("{err:#}");
        assert!(
            text.contains("would leave map mpatha without an active path"),
            "{text}"
        );
        assert!(text.contains("sdb (8:16)"), "{text}");
        assert!(dm.control().sent.lock().unwrap().is_empty());
        // Failing the already failed one is harmless and allowed (the kernel ignores it).
        dm.fail_path("mpatha", &PathRef::new("sdc", (8, 32)))
            .unwrap();
    }

    #[test]
    fn active_paths_in_other_groups_count() {
        let status = "2 0 0 0 2 1 A 0 1 0 8:16 A 0 E 0 1 0 8:48 A 0";
        check_can_fail("mpatha", status, &PathRef::new("sdb", (8, 16))).unwrap();
    }

    #[test]
    fn unknown_maps_and_paths_are_errors_naming_them() {
        let dm = DmMessage::new(FakeMap::new(TWO_ACTIVE));
        let text = format!(
            "{:#}",
            dm.fail_path("mpathz", &PathRef::new("sdb", (8, 16)))
                .unwrap_err()
        );
        assert!(text.contains("map mpathz, path sdb (8:16)"), "{text}");
        let text = format!(
            "{:#}",
            dm.fail_path("mpatha", &PathRef::new("sdq", (65, 0)))
                .unwrap_err()
        );
        assert!(text.contains("map mpatha has no path sdq (65:0)"), "{text}");
    }

    #[test]
    fn without_device_mapper_opening_says_so() {
        if std::path::Path::new("/dev/mapper/control").exists() {
            return;
        }
        let text = format!("{:#}", DmMessage::open().err().unwrap());
        assert!(text.contains("/dev/mapper/control"), "{text}");
    }
}
