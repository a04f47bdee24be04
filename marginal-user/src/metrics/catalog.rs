//! Every metric family the exporter can emit, defined once.
//!
//! The collector encodes families from these definitions, and the tests check dashboards and
//! alert rules against [`sample_names`], so a renamed metric breaks a test instead of silently
//! blanking a Grafana panel.
//!
//! Conventions (<https://prometheus.io/docs/practices/naming/>): every name starts with
//! `marginal_`, counters end in `_total`, durations are in seconds. Error rates stay in
//! permille, the unit multipath.conf uses for `marginal_path_err_rate_threshold`, so a rate can be
//! compared with its map's threshold without a conversion in every query.

/// How a family is typed in the exposition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Monotonic; its sample is named `<family>_total`.
    Counter,
    Gauge,
    /// Constant 1 with descriptive labels; its sample is named `<family>_info`.
    Info,
    /// Cumulative `<family>_bucket{le=...}` samples with `<family>_sum` and `<family>_count`.
    Histogram,
}

/// Which labels a family's series carry (all bounded: maps and paths exist on the host, the
/// rest are fixed sets).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Labels {
    None,
    /// `signal`: the kernel signal's name.
    Signal,
    /// `actuator`.
    Actuator,
    /// `version`.
    Build,
    /// `map`.
    Map,
    /// `map`, `state`: one of [`crate::status::PATH_STATES`].
    MapState,
    /// `map`, `reason`: one of [`LEFT_TO_MULTIPATHD_REASONS`].
    MapReason,
    /// `map`, `path` (kernel name), `device` (major:minor).
    Path,
    /// Path labels plus `direction`: `read` or `write`.
    PathDirection,
    /// Path labels plus `state`: the path's state, one of [`crate::status::PATH_STATES`].
    PathState,
    /// Path labels plus `verdict`: the path's last verdict, one of [`VERDICTS`].
    PathVerdict,
    /// Path labels plus `signal`: which signal counts the path's failures, one of
    /// [`FAILURE_SIGNALS`].
    PathSignal,
    /// `program`: the eBPF program's name.
    Program,
    /// Path labels plus what the path is: `wwid`, `vendor`, `product`, `transport` (one of
    /// [`TRANSPORTS`]), `host` (adapter), `target_port`, `target_node`, `host_port` (what
    /// each holds per transport: [`crate::dm::transport`]). One series per path.
    PathInfo,
    /// `host` (SCSI host of the HBA port), `host_port` (its WWPN), `statistic` (the kernel's
    /// counter name, a fixed set).
    FcHost,
    /// `host` (the HBA port it is seen through), `rport` (`rport-H:B-R`), `target_port` (its
    /// WWPN), `statistic`.
    FcRemotePort,
}

impl Labels {
    /// The label names, in the order they are written.
    pub fn names(self) -> &'static [&'static str] {
        match self {
            Labels::None => &[],
            Labels::Signal => &["signal"],
            Labels::Actuator => &["actuator"],
            Labels::Build => &["version"],
            Labels::Map => &["map"],
            Labels::MapState => &["map", "state"],
            Labels::MapReason => &["map", "reason"],
            Labels::Path => &["map", "path", "device"],
            Labels::PathDirection => &["map", "path", "device", "direction"],
            Labels::PathState => &["map", "path", "device", "state"],
            Labels::PathVerdict => &["map", "path", "device", "verdict"],
            Labels::PathSignal => &["map", "path", "device", "signal"],
            Labels::Program => &["program"],
            Labels::PathInfo => &[
                "map",
                "path",
                "device",
                "wwid",
                "vendor",
                "product",
                "transport",
                "host",
                "target_port",
                "target_node",
                "host_port",
            ],
            Labels::FcHost => &["host", "host_port", "statistic"],
            Labels::FcRemotePort => &["host", "rport", "target_port", "statistic"],
        }
    }
}

/// Why multipathd checks a map itself, as `marginal_map_left_to_multipathd` names it; "none"
/// when it does not.
pub const LEFT_TO_MULTIPATHD_REASONS: &[&str] = &[
    "none",
    "marginal_path",
    "san_path_err",
    "marginal_pathgroups_fpin",
];

/// Verdicts of a path's last finished sampling run, as `marginal_path_last_verdict` names them.
pub const VERDICTS: &[&str] = &["none", "healthy", "marginal", "slow"];

/// The signals that count failures, as `marginal_path_failure_signal` names them.
pub const FAILURE_SIGNALS: &[&str] = &["dm_kprobe", "dm_uevent", "block_errors"];

/// Transports, as `marginal_path_info` names them.
pub const TRANSPORTS: &[&str] = &[
    "fc",
    "iscsi",
    "sas",
    "nvme-tcp",
    "nvme-fc",
    "nvme-rdma",
    "nvme-loop",
    "other",
];

/// One metric family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MetricDef {
    /// The family name as written in `# TYPE` (for counters and infos without the suffix).
    pub family: &'static str,
    pub kind: Kind,
    /// OpenMetrics unit; the family name ends with it.
    pub unit: Option<&'static str>,
    pub labels: Labels,
    pub help: &'static str,
}

impl MetricDef {
    /// The name of this family's samples, as PromQL queries it (a histogram's buckets).
    pub fn sample_name(&self) -> String {
        match self.kind {
            Kind::Counter => format!("{}_total", self.family),
            Kind::Gauge => self.family.to_string(),
            Kind::Info => format!("{}_info", self.family),
            Kind::Histogram => format!("{}_bucket", self.family),
        }
    }
}

const fn def(
    family: &'static str,
    kind: Kind,
    unit: Option<&'static str>,
    labels: Labels,
    help: &'static str,
) -> MetricDef {
    MetricDef {
        family,
        kind,
        unit,
        labels,
        help,
    }
}

const SECONDS: Option<&str> = Some("seconds");
const PERMILLE: Option<&str> = Some("permille");

pub const BUILD: MetricDef = def(
    "marginal_build",
    Kind::Info,
    None,
    Labels::Build,
    "Version of the running marginal daemon.",
);
pub const UPTIME: MetricDef = def(
    "marginal_uptime_seconds",
    Kind::Gauge,
    SECONDS,
    Labels::None,
    "Seconds since the daemon started.",
);
pub const SIGNAL_LIVE: MetricDef = def(
    "marginal_signal_live",
    Kind::Gauge,
    None,
    Labels::Signal,
    "1 if the kernel signal is attached and counting, 0 if not (see /status for why).",
);
pub const ACTUATOR: MetricDef = def(
    "marginal_actuator",
    Kind::Info,
    None,
    Labels::Actuator,
    "How the daemon acts on paths: multipathd, dm-message or observe.",
);
pub const ACTUATOR_ERRORS: MetricDef = def(
    "marginal_actuator_errors",
    Kind::Counter,
    None,
    Labels::None,
    "Fail and reinstate actions that failed (each is retried with backoff).",
);
pub const KERNEL_EVENTS_LOST: MetricDef = def(
    "marginal_kernel_events_lost",
    Kind::Counter,
    None,
    Labels::None,
    "Path events the kernel dropped because its ring buffer was full; each loss makes the daemon \
     re-read dm's maps.",
);
pub const STATE_FILE_PROBLEM: MetricDef = def(
    "marginal_state_file_problem",
    Kind::Gauge,
    None,
    Labels::None,
    "1 if the state file of held-out paths was unreadable at start-up (moved aside; see /status).",
);

pub const MAP_PATHS: MetricDef = def(
    "marginal_map_paths",
    Kind::Gauge,
    None,
    Labels::Map,
    "Paths of the map that marginal watches.",
);
pub const MAP_ACTIVE_PATHS: MetricDef = def(
    "marginal_map_active_paths",
    Kind::Gauge,
    None,
    Labels::Map,
    "Paths dm-mpath currently has active in the map.",
);
pub const MAP_CHECKING: MetricDef = def(
    "marginal_map_checking",
    Kind::Gauge,
    None,
    Labels::Map,
    "1 if marginal-path checking is on for the map (all marginal_path_* settings set), else 0.",
);
pub const MAP_DOUBLE_FAILED_TIME: MetricDef = def(
    "marginal_map_double_failed_time_seconds",
    Kind::Gauge,
    SECONDS,
    Labels::Map,
    "Effective marginal_path_double_failed_time of the map (0 if unset).",
);
pub const MAP_ERR_SAMPLE_TIME: MetricDef = def(
    "marginal_map_err_sample_time_seconds",
    Kind::Gauge,
    SECONDS,
    Labels::Map,
    "Effective marginal_path_err_sample_time of the map (0 if unset).",
);
pub const MAP_ERR_RATE_THRESHOLD: MetricDef = def(
    "marginal_map_err_rate_threshold_permille",
    Kind::Gauge,
    PERMILLE,
    Labels::Map,
    "Effective marginal_path_err_rate_threshold of the map; a sampled rate above it is marginal.",
);
pub const MAP_ERR_RECHECK_GAP_TIME: MetricDef = def(
    "marginal_map_err_recheck_gap_time_seconds",
    Kind::Gauge,
    SECONDS,
    Labels::Map,
    "Effective marginal_path_err_recheck_gap_time of the map (0 if unset).",
);
pub const MAP_SETMARGINAL_FALLBACK: MetricDef = def(
    "marginal_map_setmarginal_fallback",
    Kind::Gauge,
    None,
    Labels::Map,
    "1 if marginal_path_action setmarginal is asked for the map but multipathd cannot set \
     paths marginal (not answering, marginal_pathgroups not on, too old): marginal fails its \
     marginal paths instead (the reason is in /status).",
);
pub const MAP_LEFT_TO_MULTIPATHD: MetricDef = def(
    "marginal_map_left_to_multipathd",
    Kind::Gauge,
    None,
    Labels::MapReason,
    "1 if multipathd checks the map itself (reason: marginal_path, san_path_err or \
     marginal_pathgroups_fpin in its configuration) and marginal acts on nothing there; \
     0 with reason \"none\" otherwise.",
);

pub const MAP_PATHS_IN_STATE: MetricDef = def(
    "marginal_map_paths_in_state",
    Kind::Gauge,
    None,
    Labels::MapState,
    "Paths of the map in each state; every state is listed, 0 included.",
);

pub const PATH_INFO: MetricDef = def(
    "marginal_path",
    Kind::Info,
    None,
    Labels::PathInfo,
    "What the path is: its LUN, transport, host adapter and the target port it goes through \
     (join on instance, map, path to count marginal paths per target port across hosts).",
);
pub const PATH_STATE: MetricDef = def(
    "marginal_path_state",
    Kind::Gauge,
    None,
    Labels::PathState,
    "Always 1; its state label is the state the path is in (counts per state: marginal_map_paths_in_state).",
);
pub const PATH_ACTIVE: MetricDef = def(
    "marginal_path_active",
    Kind::Gauge,
    None,
    Labels::Path,
    "1 if dm-mpath has the path active, else 0.",
);
pub const PATH_FAILED_BY_MARGINAL: MetricDef = def(
    "marginal_path_failed_by_marginal",
    Kind::Gauge,
    None,
    Labels::Path,
    "1 while marginal holds the path out of service (and owes it a return), else 0.",
);
pub const PATH_FAILURES: MetricDef = def(
    "marginal_path_failures",
    Kind::Counter,
    None,
    Labels::Path,
    "Path failures: dm-mpath's transitions of the path to failed (block-layer error episodes for \
     --watch devices); marginal's own fails and reads are never counted here.",
);
pub const PATH_FAILURE_SIGNAL: MetricDef = def(
    "marginal_path_failure_signal",
    Kind::Gauge,
    None,
    Labels::PathSignal,
    "Always 1; its signal label says what counts the path's failures: dm_kprobe, dm_uevent or \
     block_errors.",
);
pub const PATH_IO_ERRORS: MetricDef = def(
    "marginal_path_io_errors",
    Kind::Counter,
    None,
    Labels::Path,
    "Failed I/O requests on the path device counted in the kernel (anyone's, marginal's included).",
);
pub const PATH_NON_PATH_ERRORS: MetricDef = def(
    "marginal_path_non_path_errors",
    Kind::Counter,
    None,
    Labels::Path,
    "Of the path's I/O errors, those that are not path errors (medium, no space, target, \
     reservation, protection, not supported): never failures.",
);
pub const PATH_DOUBLE_FAILURES: MetricDef = def(
    "marginal_path_double_failures",
    Kind::Counter,
    None,
    Labels::Path,
    "Second failures within marginal_path_double_failed_time counted in the kernel.",
);
pub const PATH_OWN_FAILS: MetricDef = def(
    "marginal_path_own_fails",
    Kind::Counter,
    None,
    Labels::Path,
    "dm-mpath transitions of the path to failed that were marginal's own fail (not failures).",
);
pub const PATH_SAME_OUTAGE_REFAILS: MetricDef = def(
    "marginal_path_same_outage_refails",
    Kind::Counter,
    None,
    Labels::Path,
    "dm-mpath transitions of the path to failed taken for the same outage, not a failure: no \
     command had succeeded on it since its previous failure (put back on a stale check).",
);
pub const PATH_SAMPLING_RUNS: MetricDef = def(
    "marginal_path_sampling_runs",
    Kind::Counter,
    None,
    Labels::Path,
    "Finished sampling runs (error-rate measurements) of the path.",
);
pub const PATH_SAMPLING_READS: MetricDef = def(
    "marginal_path_sampling_reads",
    Kind::Counter,
    None,
    Labels::Path,
    "Direct reads issued by sampling runs of the path.",
);
pub const PATH_SAMPLING_ERRORS: MetricDef = def(
    "marginal_path_sampling_errors",
    Kind::Counter,
    None,
    Labels::Path,
    "Sampling reads of the path that failed (timeouts included).",
);
pub const PATH_SAMPLING_TIMEOUTS: MetricDef = def(
    "marginal_path_sampling_timeouts",
    Kind::Counter,
    None,
    Labels::Path,
    "Sampling reads of the path that timed out (each counted once as an error).",
);
pub const PATH_SAMPLING_RUN_READS: MetricDef = def(
    "marginal_path_sampling_run_reads",
    Kind::Gauge,
    None,
    Labels::Path,
    "Reads so far in the sampling run in progress (absent when none is).",
);
pub const PATH_SAMPLING_RUN_ERRORS: MetricDef = def(
    "marginal_path_sampling_run_errors",
    Kind::Gauge,
    None,
    Labels::Path,
    "Errors so far in the sampling run in progress (absent when none is).",
);
pub const PATH_ERROR_RATE: MetricDef = def(
    "marginal_path_error_rate_permille",
    Kind::Gauge,
    PERMILLE,
    Labels::Path,
    "Error rate of the last finished sampling run, errors * 1000 / reads (absent before the first).",
);
pub const PATH_LAST_VERDICT: MetricDef = def(
    "marginal_path_last_verdict",
    Kind::Gauge,
    None,
    Labels::PathVerdict,
    "Always 1; its verdict label is the last finished sampling run's verdict (none before the first).",
);
pub const PATH_NEXT_RECHECK: MetricDef = def(
    "marginal_path_next_recheck_seconds",
    Kind::Gauge,
    SECONDS,
    Labels::Path,
    "Seconds until a marginal path is sampled again (absent if none is due).",
);
pub const PATH_FAILED_BY_DAEMON: MetricDef = def(
    "marginal_path_failed_by_daemon",
    Kind::Counter,
    None,
    Labels::Path,
    "Times marginal took the path out of service.",
);
pub const PATH_RETURNED_BY_DAEMON: MetricDef = def(
    "marginal_path_returned_by_daemon",
    Kind::Counter,
    None,
    Labels::Path,
    "Times marginal returned the path to service.",
);
pub const PATH_LAST_REACTION: MetricDef = def(
    "marginal_path_last_reaction_seconds",
    Kind::Gauge,
    SECONDS,
    Labels::Path,
    "The last time marginal failed the path on a double failure: seconds from the kernel's \
     timestamp of the second failure to the path being out of service (absent before that).",
);

pub const PATH_IO_LATENCY: MetricDef = def(
    "marginal_path_io_latency_seconds",
    Kind::Histogram,
    SECONDS,
    Labels::PathDirection,
    "Latency of the path's successful reads and writes (anyone's), from the request's start to \
     its completion, measured in the kernel; only for maps with slow-path checking \
     (marginal_path_slow_factor).",
);
pub const PATH_LATENCY_RATIO: MetricDef = def(
    "marginal_path_latency_ratio",
    Kind::Gauge,
    None,
    Labels::Path,
    "The path's mean I/O latency over the last slow-path window divided by its active \
     siblings' (the median of theirs); above marginal_path_slow_factor the path is slow. Absent \
     when it was not compared (too few I/Os, no active sibling, held out).",
);

pub const EBPF_PROGRAM_RUNS: MetricDef = def(
    "marginal_ebpf_program_runs",
    Kind::Counter,
    None,
    Labels::Program,
    "Runs of the eBPF program as the kernel counts them (bpf_stats).",
);
pub const EBPF_PROGRAM_RUN_TIME: MetricDef = def(
    "marginal_ebpf_program_run_seconds",
    Kind::Counter,
    SECONDS,
    Labels::Program,
    "CPU time the eBPF program ran as the kernel counts it (bpf_stats).",
);

pub const FC_HOST_STATISTIC: MetricDef = def(
    "marginal_fc_host_statistic",
    Kind::Counter,
    None,
    Labels::FcHost,
    "The kernel's counters of this host's FC port (link failures, loss of sync and signal, \
     CRC errors, FPIN notifications received); those the driver does not keep are absent.",
);
pub const FC_RPORT_STATISTIC: MetricDef = def(
    "marginal_fc_rport_statistic",
    Kind::Counter,
    None,
    Labels::FcRemotePort,
    "The kernel's FPIN counters of an FC remote port (Linux 5.13 and later): link integrity, \
     congestion and delivery notifications the fabric sent about it.",
);

/// All families, in the order the exporter writes them.
pub const METRICS: &[MetricDef] = &[
    BUILD,
    UPTIME,
    SIGNAL_LIVE,
    ACTUATOR,
    ACTUATOR_ERRORS,
    KERNEL_EVENTS_LOST,
    STATE_FILE_PROBLEM,
    MAP_PATHS,
    MAP_ACTIVE_PATHS,
    MAP_CHECKING,
    MAP_DOUBLE_FAILED_TIME,
    MAP_ERR_SAMPLE_TIME,
    MAP_ERR_RATE_THRESHOLD,
    MAP_ERR_RECHECK_GAP_TIME,
    MAP_SETMARGINAL_FALLBACK,
    MAP_LEFT_TO_MULTIPATHD,
    MAP_PATHS_IN_STATE,
    PATH_INFO,
    PATH_STATE,
    PATH_ACTIVE,
    PATH_FAILED_BY_MARGINAL,
    PATH_FAILURES,
    PATH_FAILURE_SIGNAL,
    PATH_IO_ERRORS,
    PATH_NON_PATH_ERRORS,
    PATH_DOUBLE_FAILURES,
    PATH_OWN_FAILS,
    PATH_SAME_OUTAGE_REFAILS,
    PATH_SAMPLING_RUNS,
    PATH_SAMPLING_READS,
    PATH_SAMPLING_ERRORS,
    PATH_SAMPLING_TIMEOUTS,
    PATH_SAMPLING_RUN_READS,
    PATH_SAMPLING_RUN_ERRORS,
    PATH_ERROR_RATE,
    PATH_LAST_VERDICT,
    PATH_NEXT_RECHECK,
    PATH_FAILED_BY_DAEMON,
    PATH_RETURNED_BY_DAEMON,
    PATH_LAST_REACTION,
    PATH_IO_LATENCY,
    PATH_LATENCY_RATIO,
    EBPF_PROGRAM_RUNS,
    EBPF_PROGRAM_RUN_TIME,
    FC_HOST_STATISTIC,
    FC_RPORT_STATISTIC,
];

/// Every sample name the exporter can emit, as dashboards and rules query them (a
/// histogram's `_sum` and `_count` too).
pub fn sample_names() -> Vec<String> {
    METRICS
        .iter()
        .flat_map(|def| match def.kind {
            Kind::Histogram => vec![
                def.sample_name(),
                format!("{}_sum", def.family),
                format!("{}_count", def.family),
            ],
            _ => vec![def.sample_name()],
        })
        .collect()
}
