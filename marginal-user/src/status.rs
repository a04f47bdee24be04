//! The daemon's state as users see it: one [`Snapshot`] built by the daemon from the engine, the
//! kernel maps and the sampler, then rendered by the exporter (`/metrics`), `/status` (JSON)
//! and `marginal status`. Nothing here decides anything; it is read off the engine's state.
use serde::{Deserialize, Serialize};

/// Everything the daemon knows, at one instant.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Seconds since the daemon started.
    pub uptime_seconds: f64,
    /// Kernel signals and whether each is live, e.g. "block:block_rq_error".
    pub signals: Vec<SignalStatus>,
    /// How the daemon acts on paths: "multipathd", "device-mapper messages" or "observe".
    pub actuator: String,
    /// Why that actuator (multipathd answers, or not).
    #[serde(default)]
    pub actuator_reason: String,
    /// Actuator calls that failed (each is retried), over the daemon's life.
    #[serde(default)]
    pub actuator_errors_total: u64,
    /// Events the kernel dropped because its ring buffer was full (each loss triggers a resync
    /// from dm).
    #[serde(default)]
    pub kernel_events_lost_total: u64,
    /// What was wrong with the state file at start-up (it was moved aside); empty if nothing.
    #[serde(default)]
    pub state_file_problem: String,
    /// Observe mode: the paths the state file says a previous run holds out.
    #[serde(default)]
    pub held_by_previous_run: Vec<String>,
    pub maps: Vec<MapStatus>,
    /// Cost of each eBPF program as the kernel accounts it.
    pub programs: Vec<ProgramStatus>,
    /// This host's FC ports (`/sys/class/fc_host`) and the remote ports they logged in to
    /// (`/sys/class/fc_remote_ports`) with the kernel's statistics; empty without FC.
    #[serde(default)]
    pub fc_host_ports: Vec<FcPortStatus>,
    #[serde(default)]
    pub fc_remote_ports: Vec<FcPortStatus>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignalStatus {
    pub name: String,
    pub live: bool,
    /// Why it is not live, if it is not.
    pub detail: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MapStatus {
    pub name: String,
    /// Paths dm-mpath currently considers active.
    pub active_paths: u32,
    /// Whether marginal-path checking is on for this map, and why not if it is off.
    pub checking: bool,
    pub checking_detail: String,
    /// Why marginal leaves the map to multipathd, which checks it itself: "marginal_path",
    /// "san_path_err" or "marginal_pathgroups_fpin"; empty when multipathd does not.
    #[serde(default)]
    pub left_to_multipathd: String,
    /// How marginal holds this map's marginal paths out: "fail" or "setmarginal"
    /// (`marginal_path_action`, after the fallback).
    #[serde(default)]
    pub action: String,
    /// The same in words, with why `setmarginal` falls back to `fail` where it does.
    #[serde(default)]
    pub action_detail: String,
    /// Why `setmarginal`, asked for, falls back to `fail`; empty when it does not.
    #[serde(default)]
    pub action_fallback: String,
    /// The effective parameters (0 where unset).
    pub double_failed_time_seconds: u64,
    pub err_sample_time_seconds: u64,
    pub err_rate_threshold_permille: u32,
    pub err_recheck_gap_time_seconds: u64,
    pub paths: Vec<PathStatus>,
}

/// Every state a path can be in, in the order the exporter lists them.
pub const PATH_STATES: &[&str] = &[
    "healthy",
    "suspect",
    "sampling",
    "sampling_in_service",
    "marginal",
    "slow",
];

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PathStatus {
    /// Kernel name, e.g. "sdb".
    pub name: String,
    /// "MAJ:MIN".
    pub device: String,
    /// One of [`PATH_STATES`].
    pub state: String,
    /// Whether dm-mpath has the path active.
    pub active: bool,
    /// Whether marginal took it out of service (and owes it a return).
    pub failed_by_marginal: bool,
    /// How marginal holds it while `failed_by_marginal`: "fail" (failed in dm) or
    /// "setmarginal" (marginal in multipathd, active in dm as a last resort); else empty.
    #[serde(default)]
    pub held_as: String,
    /// Failure transitions (marginal's own fails and reads never among them), counted by
    /// `failure_signal`: "dm_kprobe" and "block_errors" in the kernel, "dm_uevent" by the
    /// daemon from dm's uevents.
    pub kernel_failures: u64,
    #[serde(default)]
    pub failure_signal: String,
    /// Failed requests on the path device (anyone's), and of those the ones that are not path
    /// errors (medium, no space, target, reservation, protection, not supported).
    pub kernel_io_errors: u64,
    #[serde(default)]
    pub kernel_non_path_errors: u64,
    pub kernel_double_failures: u64,
    /// dm transitions to failed that were marginal's own `fail path`.
    #[serde(default)]
    pub own_fails: u64,
    /// dm transitions to failed taken for the same outage: no command had succeeded on the
    /// path since its previous failure (it was put back on a stale check).
    #[serde(default)]
    pub same_outage_refails: u64,
    /// Observe mode: a previous run holds this path out (the state file says so).
    #[serde(default)]
    pub held_by_previous_run: bool,
    /// An action that failed and waits for its next attempt ("fail" or "return(...)").
    #[serde(default)]
    pub pending_action: String,
    #[serde(default)]
    pub last_action_error: String,
    /// Sampling, over the daemon's life.
    pub sampling_runs: u64,
    pub sampling_reads: u64,
    pub sampling_errors: u64,
    pub sampling_timeouts: u64,
    /// The run in progress, if any.
    pub current_run_reads: u64,
    pub current_run_errors: u64,
    /// The last finished run's rate and verdict ("healthy" / "marginal" / "none").
    pub last_rate_permille: Option<u32>,
    pub last_verdict: String,
    /// Seconds until the next recheck of a marginal path.
    pub next_recheck_seconds: Option<f64>,
    /// Paths failed and returned by marginal, over the daemon's life.
    pub failed_by_daemon_total: u64,
    pub returned_by_daemon_total: u64,
    /// The last time marginal failed this path on a double failure: seconds from the kernel's
    /// timestamp of the second failure to the path being out of service.
    #[serde(default)]
    pub last_reaction_seconds: Option<f64>,
    /// Latency measured in the kernel (maps with slow-path checking only).
    #[serde(default)]
    pub latency: Option<LatencyStatus>,
    /// The last slow-path window's mean latency over the active siblings' (absent when the
    /// path was not compared).
    #[serde(default)]
    pub latency_ratio: Option<f64>,
    /// The reason behind the latest decision.
    pub reason: String,
    /// The path's SCSI identity from sysfs; empty where sysfs has none (e.g. NVMe vendor).
    #[serde(default)]
    pub wwid: String,
    #[serde(default)]
    pub vendor: String,
    #[serde(default)]
    pub product: String,
    /// Transport, host adapter and the target port the path goes through.
    #[serde(default)]
    pub transport: TransportStatus,
}

/// A path's transport identity. What each field holds per transport (FC WWPNs, iSCSI portal and
/// target name, SAS address, NVMe-oF address and NQN) is tabled in [`crate::dm::transport`];
/// empty where the transport has no such thing or sysfs did not say.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TransportStatus {
    /// fc, iscsi, sas, nvme-tcp, nvme-fc, nvme-rdma, nvme-loop or other.
    pub kind: String,
    /// Host adapter: SCSI host (`host3`) or NVMe controller (`nvme1`).
    pub host: String,
    pub target_port: String,
    pub target_node: String,
    pub host_port: String,
}

/// One FC port and the kernel's statistics of it (scsi_transport_fc).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct FcPortStatus {
    /// The SCSI host of this host's port (`host3`), the one a remote port was seen through.
    pub host: String,
    /// Its sysfs name: `host3`, or `rport-3:0-2` for a remote port.
    pub name: String,
    /// The port's WWPN (`0x500a0981891b8dc5`).
    pub port_name: String,
    /// Counters by their sysfs name (`link_failure_count`, `fpin_li`, ...); those the driver
    /// does not keep are left out.
    pub statistics: std::collections::BTreeMap<String, u64>,
}

impl PathStatus {
    /// Whether a sampling run is under way: the engine is sampling the path, or the sampler
    /// has counted reads of a run that has not reported yet.
    pub fn run_in_progress(&self) -> bool {
        self.current_run_reads > 0
            || matches!(self.state.as_str(), "sampling" | "sampling_in_service")
    }

    /// The last finished run's verdict, "none" before the first.
    pub fn verdict(&self) -> &str {
        if self.last_verdict.is_empty() {
            "none"
        } else {
            &self.last_verdict
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgramStatus {
    pub name: String,
    pub run_count: u64,
    pub run_time_ns: u64,
}

/// A path's reads and writes by latency, as the kernel counted them since it was measured.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencyStatus {
    pub read: HistogramStatus,
    pub write: HistogramStatus,
}

/// One direction's histogram: `buckets[i]` counts requests below
/// `marginal_common::latency_bucket_upper_ns(i)` (and at or above the previous bound); the
/// last bucket has no upper bound.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HistogramStatus {
    pub buckets: Vec<u64>,
    pub sum_seconds: f64,
}

impl HistogramStatus {
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }
}

impl From<&marginal_common::LatencyHistogram> for HistogramStatus {
    fn from(h: &marginal_common::LatencyHistogram) -> Self {
        Self {
            buckets: h.buckets.to_vec(),
            sum_seconds: h.sum_ns as f64 / 1e9,
        }
    }
}

impl From<&marginal_common::PathLatency> for LatencyStatus {
    fn from(l: &marginal_common::PathLatency) -> Self {
        Self {
            read: (&l.read).into(),
            write: (&l.write).into(),
        }
    }
}
