//! Spot checks of the encoding; tests/tests/metrics_exposition.rs parses the whole output.
use super::*;
use crate::status::{MapStatus, PathStatus, ProgramStatus, SignalStatus};
use catalog::LEFT_TO_MULTIPATHD_REASONS;

fn snapshot() -> Snapshot {
    Snapshot {
        uptime_seconds: 12.5,
        signals: vec![SignalStatus {
            name: "block:block_rq_error".into(),
            live: true,
            detail: String::new(),
        }],
        actuator: "observe".into(),
        maps: vec![MapStatus {
            name: "mpath\"a".into(),
            active_paths: 1,
            checking: true,
            err_rate_threshold_permille: 5,
            paths: vec![PathStatus {
                name: "sdb".into(),
                device: "8:16".into(),
                state: "marginal".into(),
                kernel_failures: 3,
                last_rate_permille: Some(250),
                last_verdict: "marginal".into(),
                next_recheck_seconds: Some(-1.0),
                last_reaction_seconds: Some(0.0025),
                ..Default::default()
            }],
            ..Default::default()
        }],
        programs: vec![ProgramStatus {
            name: "rq_error".into(),
            run_count: 7,
            run_time_ns: 1_500_000_000,
        }],
        ..Default::default()
    }
}

#[test]
fn counters_gauges_infos_and_units_are_encoded() {
    let out = render(&snapshot());
    for line in [
        "# TYPE marginal_build info",
        &format!("marginal_build_info{{version=\"{VERSION}\"}} 1"),
        "# TYPE marginal_uptime_seconds gauge",
        "# UNIT marginal_uptime_seconds seconds",
        "marginal_uptime_seconds 12.5",
        "# TYPE marginal_path_failures counter",
        r#"marginal_path_failures_total{map="mpath\"a",path="sdb",device="8:16"} 3"#,
        r#"marginal_path_state{map="mpath\"a",path="sdb",device="8:16",state="marginal"} 1"#,
        r#"marginal_path_last_verdict{map="mpath\"a",path="sdb",device="8:16",verdict="marginal"} 1"#,
        r#"marginal_map_paths_in_state{map="mpath\"a",state="marginal"} 1"#,
        r#"marginal_map_paths_in_state{map="mpath\"a",state="healthy"} 0"#,
        r#"marginal_path_error_rate_permille{map="mpath\"a",path="sdb",device="8:16"} 250"#,
        "# UNIT marginal_path_error_rate_permille permille",
        r#"marginal_path_next_recheck_seconds{map="mpath\"a",path="sdb",device="8:16"} 0.0"#,
        r#"marginal_path_last_reaction_seconds{map="mpath\"a",path="sdb",device="8:16"} 0.0025"#,
        r#"marginal_ebpf_program_run_seconds_total{program="rq_error"} 1.5"#,
        r#"marginal_actuator_info{actuator="observe"} 1"#,
    ] {
        assert!(out.lines().any(|l| l == line), "missing {line:?} in\n{out}");
    }
    assert!(out.ends_with("# EOF\n"));
}

#[test]
fn a_path_has_one_state_and_one_verdict_series_and_run_gauges_only_while_sampling() {
    let mut snapshot = snapshot();
    let out = render(&snapshot.clone());
    for family in ["marginal_path_state{", "marginal_path_last_verdict{"] {
        let series = out.lines().filter(|l| l.starts_with(family)).count();
        assert_eq!(series, 1, "{family} in\n{out}");
    }
    assert!(!out.contains("marginal_path_sampling_run_"), "{out}");

    let path = &mut snapshot.maps[0].paths[0];
    path.state = "sampling".into();
    path.current_run_reads = 40;
    path.current_run_errors = 3;
    let out = render(&snapshot);
    for line in [
        r#"marginal_path_sampling_run_reads{map="mpath\"a",path="sdb",device="8:16"} 40"#,
        r#"marginal_path_sampling_run_errors{map="mpath\"a",path="sdb",device="8:16"} 3"#,
        r#"marginal_map_paths_in_state{map="mpath\"a",state="sampling"} 1"#,
        r#"marginal_map_paths_in_state{map="mpath\"a",state="marginal"} 0"#,
    ] {
        assert!(out.lines().any(|l| l == line), "missing {line:?} in\n{out}");
    }
}

#[test]
fn families_without_series_are_left_out() {
    let out = render(&Snapshot::default());
    assert!(out.contains("marginal_build_info"));
    assert!(!out.contains("marginal_path_"), "{out}");
    assert!(!out.contains("marginal_actuator_info"), "{out}");
    assert!(out.contains("marginal_actuator_errors_total 0"), "{out}");
}

#[test]
fn every_family_name_follows_the_conventions() {
    for def in METRICS {
        assert!(def.family.starts_with("marginal_"), "{}", def.family);
        assert!(
            !def.family.ends_with("_total"),
            "{}: the encoder adds _total",
            def.family
        );
        if let Some(unit) = def.unit {
            assert!(def.family.ends_with(&format!("_{unit}")), "{}", def.family);
        }
        assert!(def.help.ends_with('.'), "{}", def.family);
    }
}

#[test]
fn a_map_left_to_multipathd_says_why_in_one_series() {
    let mut snapshot = snapshot();
    let out = render(&snapshot.clone());
    let line = r#"marginal_map_left_to_multipathd{map="mpath\"a",reason="none"} 0"#;
    assert!(out.lines().any(|l| l == line), "missing {line:?} in\n{out}");

    snapshot.maps[0].checking = false;
    snapshot.maps[0].left_to_multipathd = "san_path_err".into();
    let out = render(&snapshot);
    let series: Vec<_> = out
        .lines()
        .filter(|l| l.starts_with("marginal_map_left_to_multipathd{"))
        .collect();
    assert_eq!(
        series,
        [r#"marginal_map_left_to_multipathd{map="mpath\"a",reason="san_path_err"} 1"#]
    );
    assert!(LEFT_TO_MULTIPATHD_REASONS.contains(&"san_path_err"));
}

#[test]
fn a_setmarginal_map_falling_back_to_fail_is_flagged() {
    let mut snapshot = snapshot();
    let line = r#"marginal_map_setmarginal_fallback{map="mpath\"a"} 0"#;
    let out = render(&snapshot.clone());
    assert!(out.lines().any(|l| l == line), "missing {line:?} in\n{out}");
    snapshot.maps[0].action_fallback = "multipathd runs with marginal_pathgroups off".into();
    let out = render(&snapshot);
    let line = r#"marginal_map_setmarginal_fallback{map="mpath\"a"} 1"#;
    assert!(out.lines().any(|l| l == line), "missing {line:?} in\n{out}");
}

#[test]
fn a_path_has_one_info_series_and_fc_ports_one_series_per_counter() {
    let mut snapshot = snapshot();
    let path = &mut snapshot.maps[0].paths[0];
    path.wwid = "36001405a1b2".into();
    path.transport.kind = "iscsi".into();
    path.transport.host = "host2".into();
    path.transport.target_port = "192.168.122.1:3260".into();
    path.transport.target_node = "iqn.2003-01.org.linux-iscsi.t:sn.1".into();
    snapshot.fc_remote_ports = vec![crate::status::FcPortStatus {
        host: "host3".into(),
        name: "rport-3:0-2".into(),
        port_name: "0x500a0981891b8dc5".into(),
        statistics: [("fpin_li".to_string(), 7)].into_iter().collect(),
    }];
    let out = render(&snapshot);
    for line in [
        "# TYPE marginal_path info",
        r#"marginal_path_info{map="mpath\"a",path="sdb",device="8:16",wwid="36001405a1b2",vendor="",product="",transport="iscsi",host="host2",target_port="192.168.122.1:3260",target_node="iqn.2003-01.org.linux-iscsi.t:sn.1",host_port=""} 1"#,
        "# TYPE marginal_fc_rport_statistic counter",
        r#"marginal_fc_rport_statistic_total{host="host3",rport="rport-3:0-2",target_port="0x500a0981891b8dc5",statistic="fpin_li"} 7"#,
    ] {
        assert!(out.lines().any(|l| l == line), "missing {line:?} in\n{out}");
    }
    assert_eq!(out.matches("marginal_path_info{").count(), 1, "{out}");
    assert!(!out.contains("marginal_fc_host_statistic"), "{out}");
}

#[test]
fn a_path_without_a_transport_is_other() {
    let out = render(&snapshot());
    assert!(
        out.contains(r#"transport="other",host="",target_port="""#),
        "{out}"
    );
    assert!(catalog::TRANSPORTS.contains(&"other"));
}

/// A snapshot in which every family has series, paths differ in what they have (a run in
/// progress, a rate, a histogram, a ratio) and labels need escaping.
fn every_family() -> Snapshot {
    use crate::status::{FcPortStatus, HistogramStatus, LatencyStatus};
    let mut snapshot = snapshot();
    snapshot.maps[0].left_to_multipathd = "san_path_err".into();
    snapshot.maps[0].action_fallback = "off".into();
    let histogram = |seed: u64| HistogramStatus {
        buckets: (0..marginal_common::LATENCY_BUCKETS as u64)
            .map(|i| i * seed % 7)
            .collect(),
        sum_seconds: 0.125 * seed as f64,
    };
    let mut second = snapshot.maps[0].paths[0].clone();
    second.name = "sd\\c\nx".into();
    second.device = "8:32".into();
    second.state = "sampling".into();
    second.current_run_reads = 4;
    second.last_verdict = String::new();
    second.failure_signal = "dm_kprobe".into();
    second.latency = Some(LatencyStatus {
        read: histogram(3),
        write: histogram(5),
    });
    second.latency_ratio = Some(2.5);
    second.wwid = "3600\"q".into();
    snapshot.maps[0].paths.push(second);
    snapshot.maps.push(MapStatus {
        name: "mpathb".into(),
        paths: vec![PathStatus {
            name: "sdd".into(),
            device: "8:48".into(),
            state: "healthy".into(),
            ..Default::default()
        }],
        ..Default::default()
    });
    let port = |name: &str| FcPortStatus {
        host: "host3".into(),
        name: name.into(),
        port_name: "0x500a0981891b8dc5".into(),
        statistics: [("fpin_li".to_string(), 7), ("link_failure_count".into(), 1)]
            .into_iter()
            .collect(),
    };
    snapshot.fc_host_ports = vec![port("host3")];
    snapshot.fc_remote_ports = vec![port("rport-3:0-2")];
    snapshot.kernel_events_lost_total = 2;
    snapshot.state_file_problem = "unreadable".into();
    snapshot
}

#[test]
fn the_direct_writer_writes_what_prometheus_client_writes_byte_for_byte() {
    for snapshot in [every_family(), snapshot(), Snapshot::default()] {
        let openmetrics = render(&snapshot);
        assert_eq!(openmetrics, render_reference(snapshot.clone()));
        assert_eq!(
            render_as(&snapshot, Format::Text),
            render_reference_as(snapshot.clone(), Format::Text).unwrap()
        );
        assert_eq!(render_as(&snapshot, Format::OpenMetrics), openmetrics);
    }
    // Every family of the catalog has series in the first snapshot.
    let out = render(&every_family());
    for def in METRICS {
        assert!(
            out.contains(&format!("# TYPE {} ", def.family)),
            "{} has no series",
            def.family
        );
    }
}
