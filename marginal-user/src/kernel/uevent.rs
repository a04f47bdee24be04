//! Kernel uevents for dm-multipath: path failures and reinstatements as dm-mpath reports them,
//! and block devices coming and going (the cue to re-discover maps).
//!
//! dm-mpath sends a `change` uevent on the map's device for every path it fails or reinstates
//! (drivers/md/dm-uevent.c), carrying `DM_ACTION=PATH_FAILED|PATH_REINSTATED`, `DM_PATH`
//! (`MAJ:MIN`), `DM_NR_VALID_PATHS`, `DM_NAME`, `DM_UUID` and `DM_SEQNUM`. This is the
//! "PATH_FAILED uevent" signal of the spec: exact (one event per transition), but delivered
//! through a socket buffer that can overflow, which [`DeviceChange::EventsLost`] reports.
//!
//! * [`parse_uevent`] and [`classify`] are pure and unit-tested on kernel payloads.
//! * [`UeventListener`] is the `NETLINK_KOBJECT_UEVENT` socket (the kernel's multicast group 1,
//!   not udev's), read with tokio's `AsyncFd`.
//!
//! The socket comes from `netlink-sys` (rust-netlink, the maintained netlink crate): it owns
//! the fd and does the address plumbing (sockaddr_nl, recvfrom) that would otherwise be `unsafe` here.
use std::{collections::BTreeMap, io, os::fd::AsRawFd};

use anyhow::{Context, Result};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_KOBJECT_UEVENT};
use tokio::io::unix::AsyncFd;

use crate::{device::parse_major_minor, dm::DevNum};

/// One kernel uevent: `ACTION@DEVPATH` and its `KEY=value` variables.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Uevent {
    pub action: String,
    pub devpath: String,
    pub vars: BTreeMap<String, String>,
}

impl Uevent {
    pub fn var(&self, key: &str) -> Option<&str> {
        self.vars.get(key).map(String::as_str)
    }

    /// The kernel device name: `DEVNAME`, else the last part of the device path.
    pub fn devname(&self) -> Option<&str> {
        self.var("DEVNAME")
            .or_else(|| self.devpath.rsplit('/').next())
            .filter(|n| !n.is_empty())
    }
}

/// Parses a kernel uevent datagram: `ACTION@DEVPATH\0KEY=value\0...`. None for anything else,
/// e.g. udev's re-broadcasts, which start with `libudev\0`.
pub fn parse_uevent(datagram: &[u8]) -> Option<Uevent> {
    let mut fields = datagram
        .split(|&b| b == 0)
        .filter(|f| !f.is_empty())
        .map(String::from_utf8_lossy);
    let header = fields.next()?;
    let (action, devpath) = header.split_once('@')?;
    let vars = fields
        .filter_map(|f| {
            let (k, v) = f.split_once('=')?;
            Some((k.to_string(), v.to_string()))
        })
        .collect();
    Some(Uevent {
        action: action.to_string(),
        devpath: devpath.to_string(),
        vars,
    })
}

/// What dm-mpath said about one path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathEvent {
    /// `DM_NAME`: the map's device-mapper name.
    pub map: String,
    /// `DM_UUID`, `mpath-<wwid>` for maps multipathd made.
    pub uuid: Option<String>,
    /// `DM_PATH`: the path's device number.
    pub path: DevNum,
    /// `DM_NR_VALID_PATHS`: the map's active paths after this event.
    pub valid_paths: u32,
    /// `DM_SEQNUM`: the map's own uevent counter, to spot lost events per map.
    pub dm_seqnum: Option<u64>,
}

/// Why maps should be read again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeviceChange {
    /// A block device appeared (a new path or map), by kernel name.
    Added(String),
    /// A block device went away.
    Removed(String),
    /// A dm device changed other than by a path event (table reload, resume, rename).
    Reloaded(String),
    /// The socket buffer overflowed (ENOBUFS): some uevents are lost, so is any certainty.
    EventsLost,
}

/// A uevent as the daemon acts on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MultipathEvent {
    PathFailed(PathEvent),
    PathReinstated(PathEvent),
    DevicesChanged(DeviceChange),
}

/// What a uevent means for multipath; None for events that do not matter (other subsystems,
/// partitions, `change` of non-dm disks).
pub fn classify(event: &Uevent) -> Option<MultipathEvent> {
    if event.var("SUBSYSTEM") != Some("block") {
        return None;
    }
    if event.action == "change"
        && let Some(dm_action) = event.var("DM_ACTION")
    {
        let path_event = || {
            Some(PathEvent {
                map: event.var("DM_NAME")?.to_string(),
                uuid: event.var("DM_UUID").map(str::to_string),
                path: parse_major_minor(event.var("DM_PATH")?)?,
                valid_paths: event.var("DM_NR_VALID_PATHS")?.parse().ok()?,
                dm_seqnum: event.var("DM_SEQNUM").and_then(|s| s.parse().ok()),
            })
        };
        return match dm_action {
            "PATH_FAILED" => path_event().map(MultipathEvent::PathFailed),
            "PATH_REINSTATED" => path_event().map(MultipathEvent::PathReinstated),
            _ => None,
        };
    }
    // Partitions are never paths, and maps are whole disks.
    if event.var("DEVTYPE") == Some("partition") {
        return None;
    }
    let name = event.devname()?.to_string();
    let change = match event.action.as_str() {
        "add" => DeviceChange::Added(name),
        "remove" => DeviceChange::Removed(name),
        "change" if name.starts_with("dm-") => DeviceChange::Reloaded(name),
        _ => return None,
    };
    Some(MultipathEvent::DevicesChanged(change))
}

/// The kernel's uevent multicast group (udev re-broadcasts on group 2).
const KERNEL_GROUP: u32 = 1;
/// Kernel uevents are at most a few KiB (the environment buffer is 2 KiB plus the header).
const DATAGRAM_SIZE: usize = 16 * 1024;
/// Room for bursts, e.g. a fabric outage failing hundreds of paths at once.
const RECEIVE_BUFFER: usize = 4 * 1024 * 1024;

/// A `NETLINK_KOBJECT_UEVENT` socket read with tokio.
pub struct UeventListener {
    socket: AsyncFd<Socket>,
}

impl UeventListener {
    /// Opens the socket and joins the kernel's group. Needs a tokio runtime with I/O enabled.
    pub fn open() -> Result<Self> {
        let mut socket =
            Socket::new(NETLINK_KOBJECT_UEVENT).context("opening a kobject uevent socket")?;
        socket
            .bind(&SocketAddr::new(0, KERNEL_GROUP))
            .context("joining the kernel uevent group")?;
        socket.set_non_blocking(true)?;
        // A small buffer loses events under load; the kernel caps this at rmem_max, which is
        // fine: overflow is reported, not silent.
        if let Err(e) = socket.set_rx_buf_sz(RECEIVE_BUFFER) {
            log::debug!("uevent socket: cannot raise the receive buffer: {e}");
        }
        // SAFETY: the Socket owns its fd and closes it only when dropped, which happens when
        // the AsyncFd (and with it the registration) is dropped.
        let socket = unsafe { AsyncFd::register(socket) }
            .context("registering the uevent socket with tokio")?;
        Ok(Self { socket })
    }

    /// The next uevent that matters for multipath.
    pub async fn next_event(&self) -> Result<MultipathEvent> {
        loop {
            let datagram = match self.recv().await {
                Ok(d) => d,
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    log::warn!("uevent socket overflowed: events were lost, re-discovering");
                    return Ok(MultipathEvent::DevicesChanged(DeviceChange::EventsLost));
                }
                Err(e) => return Err(e).context("reading the uevent socket"),
            };
            let Some(event) = datagram.as_deref().and_then(parse_uevent) else {
                continue;
            };
            if let Some(meaning) = classify(&event) {
                log::debug!("uevent {}@{}: {meaning:?}", event.action, event.devpath);
                return Ok(meaning);
            }
        }
    }

    /// One datagram; None if it did not come from the kernel (only the kernel, port 0, sends
    /// to this group; anything else is ignored rather than trusted).
    async fn recv(&self) -> io::Result<Option<Vec<u8>>> {
        loop {
            let mut guard = self.socket.readable().await?;
            let result = guard.try_io(|socket| {
                let mut buf = Vec::with_capacity(DATAGRAM_SIZE);
                let (_, from) = socket.get_ref().recv_from(&mut buf, 0)?;
                Ok((from.port_number() == 0).then_some(buf))
            });
            if let Ok(result) = result {
                return result;
            }
        }
    }

    pub fn as_raw_fd(&self) -> i32 {
        self.socket.get_ref().as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn datagram(header: &str, vars: &[&str]) -> Vec<u8> {
        let mut d = header.as_bytes().to_vec();
        for v in vars {
            d.push(0);
            d.extend_from_slice(v.as_bytes());
        }
        d.push(0);
        d
    }

    /// A PATH_FAILED uevent as dm-mpath sends it (dm-uevent.c order, then the block
    /// subsystem's variables and the global SEQNUM).
    fn path_failed() -> Vec<u8> {
        datagram(
            "change@/devices/virtual/block/dm-3",
            &[
                "ACTION=change",
                "DEVPATH=/devices/virtual/block/dm-3",
                "SUBSYSTEM=block",
                "DM_TARGET=multipath",
                "DM_ACTION=PATH_FAILED",
                "DM_SEQNUM=1",
                "DM_PATH=8:32",
                "DM_NR_VALID_PATHS=1",
                "DM_NAME=mpatha",
                "DM_UUID=mpath-36001405a1b2c3d4e5f60718293a4b5c6",
                "MAJOR=254",
                "MINOR=3",
                "DEVNAME=dm-3",
                "DEVTYPE=disk",
                "DISKSEQ=14",
                "SEQNUM=4242",
            ],
        )
    }

    #[test]
    fn path_failed_uevent() {
        let event = parse_uevent(&path_failed()).unwrap();
        assert_eq!(event.action, "change");
        assert_eq!(event.devpath, "/devices/virtual/block/dm-3");
        assert_eq!(event.var("SEQNUM"), Some("4242"));
        assert_eq!(
            classify(&event),
            Some(MultipathEvent::PathFailed(PathEvent {
                map: "mpatha".into(),
                uuid: Some("mpath-36001405a1b2c3d4e5f60718293a4b5c6".into()),
                path: (8, 32),
                valid_paths: 1,
                dm_seqnum: Some(1),
            }))
        );
    }

    #[test]
    fn path_reinstated_uevent() {
        let d = String::from_utf8(path_failed())
            .unwrap()
            .replace("PATH_FAILED", "PATH_REINSTATED")
            .replace("DM_NR_VALID_PATHS=1", "DM_NR_VALID_PATHS=2")
            .replace("DM_SEQNUM=1", "DM_SEQNUM=2");
        let Some(MultipathEvent::PathReinstated(e)) =
            classify(&parse_uevent(d.as_bytes()).unwrap())
        else {
            panic!("not a reinstatement");
        };
        assert_eq!((e.path, e.valid_paths, e.dm_seqnum), ((8, 32), 2, Some(2)));
    }

    #[test]
    fn path_event_missing_its_path_is_ignored() {
        let d = String::from_utf8(path_failed())
            .unwrap()
            .replace("DM_PATH=8:32", "DM_PATH=");
        assert_eq!(classify(&parse_uevent(d.as_bytes()).unwrap()), None);
    }

    #[test]
    fn block_devices_coming_and_going() {
        let add = datagram(
            "add@/devices/platform/host2/session1/target2:0:0/2:0:0:1/block/sdc",
            &[
                "ACTION=add",
                "DEVPATH=/devices/platform/host2/session1/target2:0:0/2:0:0:1/block/sdc",
                "SUBSYSTEM=block",
                "MAJOR=8",
                "MINOR=32",
                "DEVNAME=sdc",
                "DEVTYPE=disk",
                "DISKSEQ=9",
                "SEQNUM=2101",
            ],
        );
        assert_eq!(
            classify(&parse_uevent(&add).unwrap()),
            Some(MultipathEvent::DevicesChanged(DeviceChange::Added(
                "sdc".into()
            )))
        );
        let remove = String::from_utf8(add.clone())
            .unwrap()
            .replace("add", "remove");
        assert_eq!(
            classify(&parse_uevent(remove.as_bytes()).unwrap()),
            Some(MultipathEvent::DevicesChanged(DeviceChange::Removed(
                "sdc".into()
            )))
        );
        // A reload/resume of a map: change without DM_ACTION.
        let reload = datagram(
            "change@/devices/virtual/block/dm-3",
            &[
                "ACTION=change",
                "SUBSYSTEM=block",
                "DM_COOKIE=4194304",
                "DEVNAME=dm-3",
            ],
        );
        assert_eq!(
            classify(&parse_uevent(&reload).unwrap()),
            Some(MultipathEvent::DevicesChanged(DeviceChange::Reloaded(
                "dm-3".into()
            )))
        );
    }

    #[test]
    fn irrelevant_events_are_dropped() {
        let partition = datagram(
            "add@/devices/virtual/block/loop0/loop0p1",
            &[
                "ACTION=add",
                "SUBSYSTEM=block",
                "DEVNAME=loop0p1",
                "DEVTYPE=partition",
            ],
        );
        assert_eq!(classify(&parse_uevent(&partition).unwrap()), None);
        let loop_change = datagram(
            "change@/devices/virtual/block/loop0",
            &[
                "ACTION=change",
                "SUBSYSTEM=block",
                "DEVNAME=loop0",
                "DEVTYPE=disk",
            ],
        );
        assert_eq!(classify(&parse_uevent(&loop_change).unwrap()), None);
        let net = datagram(
            "add@/devices/virtual/net/veth0",
            &["ACTION=add", "SUBSYSTEM=net", "INTERFACE=veth0"],
        );
        assert_eq!(classify(&parse_uevent(&net).unwrap()), None);
        // udev's own re-broadcast format is not a kernel uevent.
        assert_eq!(parse_uevent(b"libudev\0\xfe\xed\xca\xfe"), None);
        assert_eq!(parse_uevent(b""), None);
    }

    /// The real socket on this host: a loop device made and removed through /dev/loop-control
    /// must show up as Added and Removed. Skipped where there is no loop-control (not root).
    #[tokio::test]
    async fn real_socket_sees_a_loop_device_come_and_go() {
        use std::time::Duration;
        let Ok(control) = std::fs::File::open("/dev/loop-control") else {
            eprintln!("skipped: no /dev/loop-control");
            return;
        };
        let listener = UeventListener::open().unwrap();
        // A high index that other tests and helpers on this machine do not use.
        let index = 400 + (std::process::id() % 100) as libc::c_int;
        const LOOP_CTL_ADD: libc::c_ulong = 0x4C80;
        const LOOP_CTL_REMOVE: libc::c_ulong = 0x4C81;
        // SAFETY: plain ioctls on an open fd, with an integer argument.
        let added = unsafe { libc::ioctl(control.as_raw_fd(), LOOP_CTL_ADD, index) };
        if added < 0 {
            eprintln!(
                "skipped: LOOP_CTL_ADD {index}: {}",
                io::Error::last_os_error()
            );
            return;
        }
        let name = format!("loop{index}");
        let wait = |want: MultipathEvent| {
            let listener = &listener;
            async move {
                tokio::time::timeout(Duration::from_secs(5), async {
                    loop {
                        if listener.next_event().await.unwrap() == want {
                            return;
                        }
                    }
                })
                .await
                .unwrap_or_else(|_| panic!("no {want:?} within 5 s"));
            }
        };
        wait(MultipathEvent::DevicesChanged(DeviceChange::Added(
            name.clone(),
        )))
        .await;
        // SAFETY: as above.
        let removed = unsafe { libc::ioctl(control.as_raw_fd(), LOOP_CTL_REMOVE, index) };
        assert!(
            removed >= 0,
            "LOOP_CTL_REMOVE: {}",
            io::Error::last_os_error()
        );
        wait(MultipathEvent::DevicesChanged(DeviceChange::Removed(name))).await;
    }
}
