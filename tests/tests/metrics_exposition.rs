//! The exporter's output, parsed strictly: valid OpenMetrics, every catalogued family with
//! its type, unit, labels and the snapshot's values, and no series of a path or map that is
//! gone. Also the HTTP endpoints that serve it.
mod metrics_common;

use std::collections::BTreeSet;

use marginal::metrics::catalog::{self, Kind, VERDICTS};
use marginal::status::{PATH_STATES, Snapshot};
use metrics_common::exposition::Exposition;
use metrics_common::{Exporter, exported_names, snapshots};

fn render(snapshot: &Snapshot) -> Exposition {
    let text = marginal::metrics::render(snapshot);
    Exposition::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

#[test]
fn the_parser_rejects_malformed_expositions() {
    assert!(Exposition::parse("# TYPE a counter\na_total 1\n# EOF\n").is_ok());
    for bad in [
        "# TYPE a counter\na_total 1\n",
        "# TYPE a counter\na 1\n# EOF\n",
        "# TYPE a counter\na_total -1\n# EOF\n",
        "# TYPE a gauge\na 1\n# TYPE b gauge\nb 1\na 2\n# EOF\n",
        "# TYPE a gauge\na 1\n# TYPE a gauge\n# EOF\n",
        "# TYPE a gauge\na{x=\"1\"} 1\na{x=\"1\"} 2\n# EOF\n",
        "# TYPE a gauge\na{x=\"1\",x=\"2\"} 1\n# EOF\n",
        "# TYPE a gauge\na{x=\"\\q\"} 1\n# EOF\n",
        "# TYPE a gauge\na{x=\"1\",} 1\n# EOF\n",
        "# TYPE a_seconds gauge\n# UNIT a_seconds bytes\na_seconds 1\n# EOF\n",
        "a 1\n# EOF\n",
        "# TYPE a info\na_info 2\n# EOF\n",
        "# TYPE a gauge\na 1 2 3\n# EOF\n",
    ] {
        assert!(Exposition::parse(bad).is_err(), "accepted {bad:?}");
    }
}

#[test]
fn every_catalogued_family_is_exported_with_its_type_unit_and_labels() {
    let exposition = render(&snapshots::full());
    let families: Vec<&str> = exposition
        .families
        .iter()
        .map(|f| f.name.as_str())
        .collect();
    let catalogued: Vec<&str> = catalog::METRICS.iter().map(|d| d.family).collect();
    assert_eq!(
        families, catalogued,
        "a fully populated snapshot writes every family, in catalog order"
    );
    assert_eq!(exposition.sample_names(), exported_names());
    for def in catalog::METRICS {
        let family = exposition.family(def.family).unwrap();
        let kind = match def.kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Info => "info",
            Kind::Histogram => "histogram",
        };
        assert_eq!(family.kind, kind, "{}", def.family);
        assert_eq!(family.unit.as_deref(), def.unit, "{}", def.family);
        assert_eq!(family.help.as_deref(), Some(def.help), "{}", def.family);
        for sample in &family.samples {
            let names: BTreeSet<&str> = sample.labels.keys().map(String::as_str).collect();
            let mut expected: BTreeSet<&str> = def.labels.names().iter().copied().collect();
            if sample.name.ends_with("_bucket") && def.kind == Kind::Histogram {
                expected.insert("le");
            }
            assert_eq!(names, expected, "labels of {sample:?}");
        }
    }
}

#[test]
fn values_are_the_snapshots() {
    let snapshot = snapshots::full();
    let e = render(&snapshot);
    assert_eq!(
        e.value(
            "marginal_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );
    assert_eq!(e.value("marginal_uptime_seconds", &[]), 4321.25);
    assert_eq!(
        e.value("marginal_actuator_info", &[("actuator", "dm-message")]),
        1.0
    );
    assert_eq!(
        e.value(
            "marginal_signal_live",
            &[("signal", "block:block_rq_error")]
        ),
        1.0
    );
    assert_eq!(
        e.value(
            "marginal_signal_live",
            &[("signal", "dm_mod:dm_path_uevent")]
        ),
        0.0
    );
    for p in &snapshot.programs {
        let l = [("program", p.name.as_str())];
        assert_eq!(
            e.value("marginal_ebpf_program_runs_total", &l),
            p.run_count as f64
        );
        assert_eq!(
            e.value("marginal_ebpf_program_run_seconds_total", &l),
            p.run_time_ns as f64 / 1e9
        );
    }
    for map in &snapshot.maps {
        let m = [("map", map.name.as_str())];
        assert_eq!(e.value("marginal_map_paths", &m), map.paths.len() as f64);
        assert_eq!(
            e.value("marginal_map_active_paths", &m),
            map.active_paths as f64
        );
        for state in PATH_STATES {
            assert_eq!(
                e.value("marginal_map_paths_in_state", &[m[0], ("state", state)]),
                map.paths.iter().filter(|p| p.state == *state).count() as f64,
                "{} {state}",
                map.name
            );
        }
        assert_eq!(
            e.value("marginal_map_checking", &m),
            f64::from(u8::from(map.checking))
        );
        assert_eq!(
            e.value("marginal_map_double_failed_time_seconds", &m),
            map.double_failed_time_seconds as f64
        );
        assert_eq!(
            e.value("marginal_map_err_sample_time_seconds", &m),
            map.err_sample_time_seconds as f64
        );
        assert_eq!(
            e.value("marginal_map_err_rate_threshold_permille", &m),
            map.err_rate_threshold_permille as f64
        );
        assert_eq!(
            e.value("marginal_map_err_recheck_gap_time_seconds", &m),
            map.err_recheck_gap_time_seconds as f64
        );
        for p in &map.paths {
            let l = [
                ("map", map.name.as_str()),
                ("path", p.name.as_str()),
                ("device", p.device.as_str()),
            ];
            let v = |name: &str| e.value(name, &l);
            // One series each, always 1, labelled with the path's state and verdict.
            let state = e.find("marginal_path_state", &l);
            assert_eq!(state.len(), 1, "{}: {state:?}", p.name);
            assert_eq!(state[0].labels["state"], p.state, "{}", p.name);
            assert_eq!(state[0].value, 1.0, "{}", p.name);
            let verdict = e.find("marginal_path_last_verdict", &l);
            assert_eq!(verdict.len(), 1, "{}: {verdict:?}", p.name);
            assert_eq!(verdict[0].labels["verdict"], p.last_verdict, "{}", p.name);
            assert!(VERDICTS.contains(&p.last_verdict.as_str()));
            assert_eq!(verdict[0].value, 1.0, "{}", p.name);
            assert_eq!(v("marginal_path_active"), f64::from(u8::from(p.active)));
            assert_eq!(
                v("marginal_path_failed_by_marginal"),
                f64::from(u8::from(p.failed_by_marginal))
            );
            assert_eq!(v("marginal_path_failures_total"), p.kernel_failures as f64);
            assert_eq!(
                v("marginal_path_io_errors_total"),
                p.kernel_io_errors as f64
            );
            assert_eq!(
                v("marginal_path_double_failures_total"),
                p.kernel_double_failures as f64
            );
            assert_eq!(
                v("marginal_path_sampling_runs_total"),
                p.sampling_runs as f64
            );
            assert_eq!(
                v("marginal_path_sampling_reads_total"),
                p.sampling_reads as f64
            );
            assert_eq!(
                v("marginal_path_sampling_errors_total"),
                p.sampling_errors as f64
            );
            assert_eq!(
                v("marginal_path_sampling_timeouts_total"),
                p.sampling_timeouts as f64
            );
            assert_eq!(
                v("marginal_path_sampling_run_reads"),
                p.current_run_reads as f64
            );
            assert_eq!(
                v("marginal_path_sampling_run_errors"),
                p.current_run_errors as f64
            );
            assert_eq!(
                v("marginal_path_error_rate_permille"),
                p.last_rate_permille.unwrap() as f64
            );
            assert_eq!(
                v("marginal_path_failed_by_daemon_total"),
                p.failed_by_daemon_total as f64
            );
            assert_eq!(
                v("marginal_path_returned_by_daemon_total"),
                p.returned_by_daemon_total as f64
            );
            // Optional series: present exactly when the status has the value.
            for (name, expected) in [
                (
                    "marginal_path_last_reaction_seconds",
                    p.last_reaction_seconds,
                ),
                ("marginal_path_next_recheck_seconds", p.next_recheck_seconds),
            ] {
                let found = e.find(name, &l).first().map(|s| s.value);
                assert_eq!(found, expected, "{}: {name}", p.name);
            }
        }
    }
}

#[test]
fn a_path_without_a_finished_run_has_verdict_none_and_no_rate() {
    let mut snapshot = snapshots::full();
    let p = &mut snapshot.maps[0].paths[0];
    p.last_rate_permille = None;
    p.last_verdict = "none".into();
    let e = render(&snapshot);
    let l = [("path", "sdb")];
    assert!(e.find("marginal_path_error_rate_permille", &l).is_empty());
    assert_eq!(
        e.value(
            "marginal_path_last_verdict",
            &[("path", "sdb"), ("verdict", "none")]
        ),
        1.0
    );
    assert!(
        e.find(
            "marginal_path_last_verdict",
            &[("path", "sdb"), ("verdict", "healthy")]
        )
        .is_empty()
    );
}

#[test]
fn run_gauges_exist_only_while_a_run_is_in_progress() {
    let mut snapshot = snapshots::full();
    let p = &mut snapshot.maps[0].paths[0];
    assert_eq!(p.state, "healthy");
    p.current_run_reads = 0;
    p.current_run_errors = 0;
    let e = render(&snapshot);
    let idle = [("path", "sdb")];
    assert!(e.find("marginal_path_sampling_run_reads", &idle).is_empty());
    assert!(
        e.find("marginal_path_sampling_run_errors", &idle)
            .is_empty()
    );
    // sdd is sampling (out of service), sdf sampling in service.
    for path in ["sdd", "sdf"] {
        let l = [("path", path)];
        assert_eq!(e.find("marginal_path_sampling_run_reads", &l).len(), 1);
        assert_eq!(e.find("marginal_path_sampling_run_errors", &l).len(), 1);
    }
}

#[test]
fn series_of_removed_paths_and_maps_disappear() {
    let mut snapshot = snapshots::full();
    let before = render(&snapshot);
    assert!(
        before
            .samples()
            .any(|s| s.labels.get("path").map(String::as_str) == Some("sdc"))
    );
    assert!(
        before
            .samples()
            .any(|s| s.labels.get("map").map(String::as_str) == Some("mpathb"))
    );
    snapshot.maps[0].paths.retain(|p| p.name != "sdc");
    snapshot.maps.retain(|m| m.name != "mpathb");
    snapshot.programs.truncate(1);
    let after = render(&snapshot);
    let stale: Vec<_> = after
        .samples()
        .filter(|s| {
            s.labels.get("path").map(String::as_str) == Some("sdc")
                || s.labels.get("map").map(String::as_str) == Some("mpathb")
                || s.labels.get("program").map(String::as_str) == Some("block_rq_complete")
        })
        .collect();
    assert!(stale.is_empty(), "stale series: {stale:?}");
    // The others are still there.
    assert_eq!(
        after.value("marginal_path_failures_total", &[("path", "sdb")]),
        101.0
    );
    assert_eq!(after.value("marginal_map_paths", &[("map", "mpatha")]), 4.0);
}

#[test]
fn label_values_are_escaped() {
    let mut snapshot = snapshots::full();
    snapshot.maps[0].name = "odd \"name\" \\ with\nnewline".into();
    let e = render(&snapshot);
    assert_eq!(
        e.value(
            "marginal_map_paths",
            &[("map", "odd \"name\" \\ with\nnewline")]
        ),
        5.0
    );
}

#[test]
fn the_http_endpoint_serves_metrics_status_and_an_index() {
    let exporter = Exporter::start(snapshots::full());
    let metrics = exporter.get_accepting("/metrics", metrics_common::OPENMETRICS_ACCEPT);
    assert_eq!(metrics.status, 200);
    assert_eq!(
        metrics.header("content-type"),
        Some(marginal::metrics::OPENMETRICS_CONTENT_TYPE)
    );
    let e = Exposition::parse(&metrics.body).unwrap();
    assert_eq!(e.sample_names(), exported_names());

    let status = exporter.get("/status");
    assert_eq!(status.status, 200);
    assert_eq!(status.header("content-type"), Some("application/json"));
    let decoded: Snapshot = serde_json::from_str(&status.body).unwrap();
    assert_eq!(decoded, snapshots::full());

    // Every request reads the source afresh.
    let mut changed = snapshots::full();
    changed.maps.clear();
    exporter.set(changed.clone());
    let e = Exposition::parse(
        &exporter
            .get_accepting("/metrics", metrics_common::OPENMETRICS_ACCEPT)
            .body,
    )
    .unwrap();
    assert!(e.find("marginal_map_paths", &[]).is_empty());
    let decoded: Snapshot = serde_json::from_str(&exporter.get("/status").body).unwrap();
    assert_eq!(decoded, changed);

    let index = exporter.get("/");
    assert_eq!(index.status, 200);
    assert!(index.body.contains("/metrics") && index.body.contains("/status"));
    assert_eq!(exporter.get("/nothing-here").status, 404);
}

#[test]
fn a_busy_address_is_named_in_the_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let err = runtime.block_on(marginal::http::bind(addr)).unwrap_err();
    assert!(format!("{err:#}").contains(&addr.to_string()), "{err:#}");
}

#[test]
fn marginal_status_renders_what_the_daemon_serves() {
    let exporter = Exporter::start(snapshots::full());
    let body =
        marginal::cli::status::fetch(exporter.addr, std::time::Duration::from_secs(5)).unwrap();
    let snapshot: Snapshot = serde_json::from_str(&body).unwrap();
    let text = marginal::cli::status::render(&snapshot);
    assert!(text.contains("actuator: dm-message"), "{text}");
    assert!(
        text.contains("dm_mod:dm_path_uevent NOT LIVE (kprobes are not available)"),
        "{text}"
    );
    assert!(
        text.contains("map mpatha: 2 active of 5 paths, checking on"),
        "{text}"
    );
    assert!(text.contains(
        "map mpathb: 1 active of 1 path, checking off (marginal_path_err_sample_time is not set)"
    ));
    for p in ["sdb", "sdc", "sdd", "sde", "sdf"] {
        assert!(text.contains(&format!("reason of {p}")), "{text}");
    }
    assert!(
        text.contains(" 412s "),
        "next recheck of sde, rounded up: {text}"
    );
}

/// What is served is written directly (marginal::metrics::direct); prometheus-client's
/// encoder, through the same collector, is the reference it must equal byte for byte, in both
/// formats.
#[test]
fn the_served_exposition_is_prometheus_clients_byte_for_byte() {
    use marginal::metrics::{Format, render_as, render_reference, render_reference_as};
    let snapshot = snapshots::full();
    assert_eq!(
        marginal::metrics::render(&snapshot),
        render_reference(snapshot.clone())
    );
    assert_eq!(
        render_as(&snapshot, Format::Text),
        render_reference_as(snapshot.clone(), Format::Text).unwrap()
    );
}
