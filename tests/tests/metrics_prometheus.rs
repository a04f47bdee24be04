//! A real Prometheus server (Debian's `prometheus`) scrapes the exporter's HTTP endpoint and
//! evaluates dashboards/marginal-rules.yml; queries through its HTTP API must return the
//! snapshot's values, every dashboard query and recording rule must return data, the alerts
//! a snapshot calls for must go pending, and the series of a removed path must go away.
//!
//! The snapshot is hand-built here (every field set, counters advancing), so this checks the
//! exporter, the HTTP server, the dashboard and the rules against Prometheus independently of
//! the daemon; metrics_daemon.rs does the same with the real daemon on a flaky device.
mod metrics_common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use metrics_common::prometheus::Prometheus;
use metrics_common::{
    Exporter, dashboard_exprs, dashboard_file, exported_names, grafana_to_promql, rules_file,
};
use metrics_common::{snapshots, yaml_values};

const WAIT: Duration = Duration::from_secs(30);

/// Advances every counter of the exporter's snapshot a little every 200 ms, as a busy daemon
/// would, so that rate() and increase() queries have something to show.
fn keep_counting(exporter: &Exporter, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    let snapshot = Arc::clone(&exporter.snapshot);
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            {
                let mut s = snapshot.lock().unwrap();
                s.uptime_seconds += 0.2;
                for p in s.maps.iter_mut().flat_map(|m| m.paths.iter_mut()) {
                    p.kernel_failures += 1;
                    p.kernel_io_errors += 3;
                    p.kernel_double_failures += 1;
                    p.sampling_runs += 1;
                    p.sampling_reads += 100;
                    p.sampling_errors += 2;
                    p.sampling_timeouts += 1;
                    p.failed_by_daemon_total += 1;
                    p.returned_by_daemon_total += 1;
                    if let Some(latency) = &mut p.latency {
                        latency.read.buckets[4] += 10;
                        latency.read.sum_seconds += 10.0 * 20e-6;
                    }
                }
                for prog in &mut s.programs {
                    prog.run_count += 1000;
                    // A whole second per 200 ms: rate(...[5m]) over the few seconds this test has data
                    // for must still cross MarginalEbpfCostHigh's 5% of a CPU.
                    prog.run_time_ns += 1_000_000_000;
                }
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    })
}

#[test]
fn prometheus_scrapes_the_exporter_and_evaluates_dashboards_and_rules() {
    let exporter = Exporter::start(snapshots::full());
    let rules = rules_file();
    let prom = Prometheus::start(exporter.addr, &[rules.as_path()]);
    let stop = Arc::new(AtomicBool::new(false));
    let counting = keep_counting(&exporter, Arc::clone(&stop));

    prom.wait_for(r#"up{job="marginal"}"#, WAIT, |r| {
        r.len() == 1 && r[0].1 == 1.0
    });

    // Every exported name arrives, with the labels Prometheus adds.
    for name in exported_names() {
        let r = prom.wait_for(&format!(r#"{{__name__="{name}"}}"#), WAIT, |r| {
            !r.is_empty()
        });
        assert_eq!(
            r[0].0.get("job").map(String::as_str),
            Some("marginal"),
            "{name}"
        );
        assert_eq!(
            r[0].0.get("instance"),
            Some(&exporter.addr.to_string()),
            "{name}"
        );
    }

    // Values that do not change are exactly the snapshot's.
    let q = |expr: &str| {
        prom.scalar(expr)
            .unwrap_or_else(|| panic!("{expr} returned nothing"))
    };
    assert_eq!(
        q(r#"marginal_path_state{map="mpatha",path="sde",device="8:64",state="marginal"}"#),
        1.0
    );
    assert!(
        prom.query(r#"marginal_path_state{map="mpatha",path="sde",state!="marginal"}"#)
            .unwrap()
            .is_empty(),
        "one state series per path"
    );
    assert_eq!(
        q(r#"marginal_map_paths_in_state{map="mpatha",state="marginal"}"#),
        1.0
    );
    assert_eq!(
        q(r#"marginal_map_paths_in_state{map="mpathb",state="marginal"}"#),
        0.0
    );
    assert_eq!(q(r#"marginal_path_error_rate_permille{path="sde"}"#), 410.0);
    assert_eq!(
        q(r#"marginal_path_next_recheck_seconds{path="sde"}"#),
        411.5
    );
    assert_eq!(
        q(r#"marginal_path_last_verdict{path="sde",verdict="marginal"}"#),
        1.0
    );
    assert_eq!(
        q(r#"marginal_map_err_rate_threshold_permille{map="mpathb"}"#),
        10.0
    );
    assert_eq!(q(r#"marginal_map_active_paths{map="mpatha"}"#), 2.0);
    assert_eq!(
        q(r#"marginal_signal_live{signal="dm_mod:dm_path_uevent"}"#),
        0.0
    );
    assert_eq!(
        q(&format!(
            r#"marginal_build_info{{version="{}"}}"#,
            env!("CARGO_PKG_VERSION")
        )),
        1.0
    );
    assert_eq!(q(r#"marginal_actuator_info{actuator="dm-message"}"#), 1.0);
    assert_eq!(q(r#"sum(marginal_path_state)"#), 6.0, "one state per path");
    // The latency histogram is a histogram to Prometheus: sdb's reads, by quantile.
    let median = q(
        r#"histogram_quantile(0.5, marginal_path_io_latency_seconds_bucket{path="sdb",direction="read"})"#,
    );
    assert!(
        median > 0.0 && median < 1e-3,
        "median read latency of sdb: {median}"
    );
    // Counters count: the kernel failures of sdb only go up from the snapshot's 101.
    assert!(q(r#"marginal_path_failures_total{path="sdb"}"#) >= 101.0);
    prom.wait_for(
        r#"rate(marginal_path_sampling_reads_total{path="sdb"}[1m]) > 0"#,
        WAIT,
        |r| r.len() == 1,
    );

    // The OpenMetrics types reach Prometheus's metadata.
    let meta = prom.api("/api/v1/metadata").unwrap();
    for (family, kind) in [
        ("marginal_path_failures", "counter"),
        ("marginal_path_state", "gauge"),
        ("marginal_build", "info"),
        ("marginal_path_io_latency_seconds", "histogram"),
    ] {
        assert_eq!(
            meta[family][0]["type"], kind,
            "metadata of {family}: {meta}"
        );
    }

    // Every dashboard query returns data (Grafana variables set to "All").
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dashboard_file()).unwrap()).unwrap();
    for (title, expr) in dashboard_exprs(&dashboard) {
        let expr = grafana_to_promql(&expr);
        eprintln!("dashboard panel {title:?}: {expr}");
        prom.wait_for(&expr, WAIT, |r| !r.is_empty());
    }

    // Every recording rule records something.
    let yaml = std::fs::read_to_string(&rules).unwrap();
    for record in yaml_values(&yaml, "record") {
        prom.wait_for(&record, WAIT, |r| !r.is_empty());
    }
    assert_eq!(
        prom.scalar(r#"instance_state:marginal_paths:sum{state="marginal"}"#),
        Some(1.0)
    );

    // The snapshot calls for these alerts (pending: their `for` is longer than this test).
    for (alert, path) in [
        ("MarginalPathMarginal", Some("sde")),
        ("MarginalPathKeptAsLastPath", Some("sdf")),
        ("MarginalSampledErrorRateAboveThreshold", Some("sde")),
        ("MarginalPathHeldOutLong", Some("sdd")),
        ("MarginalSignalNotLive", None),
        ("MarginalPathFailingRepeatedly", Some("sdb")),
        ("MarginalEbpfCostHigh", None),
    ] {
        let selector = match path {
            Some(p) => format!(r#"ALERTS{{alertname="{alert}",path="{p}"}}"#),
            None => format!(r#"ALERTS{{alertname="{alert}"}}"#),
        };
        prom.wait_for(&selector, WAIT, |r| !r.is_empty());
    }
    // And not these.
    for alert in [
        "MarginalDaemonDown",
        "MarginalNoSignalLive",
        "MarginalMapNoActivePath",
        "MarginalMapOneActivePath",
    ] {
        assert!(
            prom.query(&format!(r#"ALERTS{{alertname="{alert}"}}"#))
                .unwrap()
                .is_empty(),
            "{alert} fired"
        );
    }

    // A path and a map that go away take their series with them at the next scrape.
    {
        let mut s = exporter.snapshot.lock().unwrap();
        s.maps[0].paths.retain(|p| p.name != "sdc");
        s.maps.retain(|m| m.name != "mpathb");
    }
    // (Recordings and alerts over [1h] ranges keep the old samples in their window, as they should.)
    prom.wait_for(
        r#"{__name__=~"marginal_.*", path="sdc"} or {__name__=~"marginal_.*", map="mpathb"}"#,
        WAIT,
        |r| r.is_empty(),
    );
    prom.wait_for(r#"count(marginal_path_active)"#, WAIT, |r| {
        r.len() == 1 && r[0].1 == 4.0
    });

    stop.store(true, Ordering::Relaxed);
    counting.join().unwrap();
}
