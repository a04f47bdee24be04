//! Hand-built snapshots: one in which every field the exporter reads is set, with values
//! distinct enough that a series read from the wrong field shows.
use marginal::status::{
    FcPortStatus, HistogramStatus, LatencyStatus, MapStatus, PATH_STATES, PathStatus,
    ProgramStatus, SignalStatus, Snapshot, TransportStatus,
};

/// A path whose every counter derives from `seed`, so tests can predict each value.
pub fn path(name: &str, device: &str, state: &str, seed: u64) -> PathStatus {
    PathStatus {
        name: name.into(),
        device: device.into(),
        state: state.into(),
        active: !matches!(state, "sampling" | "marginal" | "slow"),
        failed_by_marginal: matches!(state, "sampling" | "marginal" | "slow"),
        held_as: if matches!(state, "sampling" | "marginal" | "slow") {
            "fail".into()
        } else {
            String::new()
        },
        kernel_failures: seed + 1,
        kernel_io_errors: seed + 2,
        kernel_double_failures: seed + 3,
        sampling_runs: seed + 4,
        sampling_reads: seed + 5,
        sampling_errors: seed + 6,
        sampling_timeouts: seed + 7,
        current_run_reads: seed + 8,
        current_run_errors: seed + 9,
        last_rate_permille: Some(seed as u32 + 10),
        last_verdict: match state {
            "marginal" | "slow" => state,
            _ => "healthy",
        }
        .into(),
        next_recheck_seconds: matches!(state, "marginal" | "slow").then_some(seed as f64 + 11.5),
        failed_by_daemon_total: seed + 12,
        returned_by_daemon_total: seed + 13,
        // A power-of-two fraction: exact in JSON both ways.
        last_reaction_seconds: (state != "healthy").then_some(seed as f64 / 1024.0),
        // Requests in three of the kernel's buckets; exact sums in binary fractions.
        latency: Some(LatencyStatus {
            read: HistogramStatus {
                buckets: latency_buckets(seed, 0),
                sum_seconds: seed as f64 / 512.0,
            },
            write: HistogramStatus {
                buckets: latency_buckets(seed, 5),
                sum_seconds: seed as f64 / 256.0,
            },
        }),
        latency_ratio: Some(seed as f64 / 64.0),
        reason: format!("reason of {name}"),
        failure_signal: "dm_kprobe".into(),
        kernel_non_path_errors: seed + 14,
        own_fails: seed + 15,
        same_outage_refails: seed + 16,
        held_by_previous_run: false,
        pending_action: String::new(),
        last_action_error: String::new(),
        wwid: "3600a098038314d2d4a5d4f6b6f4e7a31".into(),
        vendor: "NETAPP".into(),
        product: "LUN C-Mode".into(),
        // Two HBA ports, each through its own array port: the host and port from the seed.
        transport: TransportStatus {
            kind: "fc".into(),
            host: format!("host{}", 3 + seed / 100 % 2),
            target_port: format!("0x500a09818{}1b8dc5", seed / 100 % 2 + 1),
            target_node: "0x500a0980891b8dc5".into(),
            host_port: format!("0x10000090fa1b2c3{}", seed / 100 % 2),
        },
    }
}

/// `seed / 100` requests in kernel buckets `shift`, `shift + 3` and the last.
fn latency_buckets(seed: u64, shift: usize) -> Vec<u64> {
    let mut buckets = vec![0; marginal_common::LATENCY_BUCKETS];
    buckets[shift] = seed / 100;
    buckets[shift + 3] = seed / 100 + 1;
    buckets[marginal_common::LATENCY_BUCKETS - 1] = 1;
    buckets
}

/// An FC port with the given counters.
fn fc_port(host: &str, name: &str, port_name: &str, statistics: &[(&str, u64)]) -> FcPortStatus {
    FcPortStatus {
        host: host.into(),
        name: name.into(),
        port_name: port_name.into(),
        statistics: statistics
            .iter()
            .map(|&(k, v)| (k.to_string(), v))
            .collect(),
    }
}

/// Two maps, a path in every state (so every `state` series is 1 somewhere), two signals
/// (one not live), two eBPF programs.
pub fn full() -> Snapshot {
    let states = PATH_STATES;
    assert_eq!(
        states.len(),
        6,
        "extend this fixture when PATH_STATES changes"
    );
    Snapshot {
        uptime_seconds: 4321.25,
        signals: vec![
            SignalStatus {
                name: "block:block_rq_error".into(),
                live: true,
                detail: String::new(),
            },
            SignalStatus {
                name: "dm_mod:dm_path_uevent".into(),
                live: false,
                detail: "kprobes are not available".into(),
            },
        ],
        actuator: "dm-message".into(),
        actuator_reason: "multipathd does not answer".into(),
        actuator_errors_total: 3,
        kernel_events_lost_total: 2,
        state_file_problem: String::new(),
        held_by_previous_run: Vec::new(),
        maps: vec![
            MapStatus {
                name: "mpatha".into(),
                active_paths: 2,
                checking: true,
                checking_detail: String::new(),
                left_to_multipathd: String::new(),
                action: "fail".into(),
                action_detail: "fail".into(),
                action_fallback: String::new(),
                double_failed_time_seconds: 60,
                err_sample_time_seconds: 120,
                err_rate_threshold_permille: 5,
                err_recheck_gap_time_seconds: 300,
                paths: vec![
                    path("sdb", "8:16", "healthy", 100),
                    path("sdc", "8:32", "suspect", 200),
                    path("sdd", "8:48", "sampling", 300),
                    path("sde", "8:64", "marginal", 400),
                    path("sdg", "8:96", "slow", 600),
                ],
            },
            MapStatus {
                name: "mpathb".into(),
                active_paths: 1,
                checking: false,
                checking_detail: "marginal_path_err_sample_time is not set".into(),
                left_to_multipathd: String::new(),
                action: "fail".into(),
                action_detail: "fail (marginal_path_action setmarginal at ..., but multipathd runs with marginal_pathgroups off ...: falling back to failing paths)".into(),
                action_fallback: "multipathd runs with marginal_pathgroups off".into(),
                double_failed_time_seconds: 30,
                err_sample_time_seconds: 0,
                err_rate_threshold_permille: 10,
                err_recheck_gap_time_seconds: 600,
                paths: vec![PathStatus {
                    // A marginal verdict, but the map's last active path: kept in service
                    // and sampled in service again.
                    last_verdict: "marginal".into(),
                    ..path("sdf", "8:80", "sampling_in_service", 500)
                }],
            },
        ],
        programs: vec![
            ProgramStatus {
                name: "block_rq_error".into(),
                run_count: 1234,
                run_time_ns: 5_000_000,
            },
            ProgramStatus {
                name: "block_rq_complete".into(),
                run_count: 98765,
                run_time_ns: 250_000_000,
            },
        ],
        fc_host_ports: vec![fc_port(
            "host3",
            "host3",
            "0x10000090fa1b2c3d",
            &[
                ("fpin_li", 2),
                ("link_failure_count", 3),
                ("invalid_crc_count", 41),
            ],
        )],
        fc_remote_ports: vec![fc_port(
            "host3",
            "rport-3:0-2",
            "0x500a0981891b8dc5",
            &[("fpin_li_link_failure_count", 5), ("fpin_cn", 0)],
        )],
    }
}
