//! The real daemon's metrics after a real scenario: `marginal run --observe` watches a flaky
//! loop device (every 10th read fails) and a healthy one; a double failure makes it sample
//! the flaky one and judge it marginal. Then:
//!
//! * its `/metrics` parses strictly, holds every documented metric, and the values are the
//!   scenario's (and the same as `/status`);
//! * a real Prometheus server scraping it returns those values through its HTTP API, the
//!   recording rules record them and the alerts they call for go pending;
//! * `marginal status` prints them;
//! * when the daemon stops, its series go stale in Prometheus.
//!
//! Needs root (eBPF, loop devices, FUSE) and `prometheus` (Debian package).
mod metrics_common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use marginal::status::Snapshot;
use marginal_tests::{
    FlakyDevice, FlakyOptions, RunningDaemon, Schedule, free_local_addr, marginal_binary,
    observe_args, read_direct, require_root,
};
use metrics_common::exposition::Exposition;
use metrics_common::prometheus::{Prometheus, TempDir};
use metrics_common::{exported_names, rules_file};

const WAIT: Duration = Duration::from_secs(30);

fn daemon_args(devices: &[&FlakyDevice], state_dir: &TempDir) -> Vec<String> {
    observe_args(
        devices,
        &state_dir.0.join("held-out.json"),
        &["--double-failed-time", "60", "--episode-gap-ms", "500"],
    )
}

fn scrape(daemon: &RunningDaemon) -> Exposition {
    let r = marginal::http::get_accepting(
        daemon.listen,
        "/metrics",
        metrics_common::OPENMETRICS_ACCEPT,
        Duration::from_secs(5),
    )
    .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some(marginal::metrics::OPENMETRICS_CONTENT_TYPE)
    );
    Exposition::parse(&r.body).unwrap_or_else(|e| panic!("{e}\n{}", r.body))
}

fn status(daemon: &RunningDaemon) -> Snapshot {
    let r = marginal::http::get(daemon.listen, "/status", Duration::from_secs(5)).unwrap();
    serde_json::from_str(&r.body).unwrap()
}

#[test]
fn a_marginal_verdict_on_a_flaky_device_reaches_metrics_prometheus_and_marginal_status() {
    require_root().expect("this test needs root");
    let flaky = FlakyDevice::create(FlakyOptions::default()).unwrap();
    let healthy = FlakyDevice::create(FlakyOptions::default()).unwrap();
    flaky.set_schedule(Schedule::EveryNth(10));
    let state_dir = TempDir::new("metrics-daemon");
    let daemon = RunningDaemon::start(&daemon_args(&[&flaky, &healthy], &state_dir)).unwrap();
    let rules = rules_file();
    let prom = Prometheus::start(daemon.listen, &[rules.as_path()]);
    let (bad, good) = (flaky.loop_name(), healthy.loop_name());

    // Two failure episodes 1 s apart: a double failure, then a 3 s sampling run.
    assert_eq!(read_direct(&flaky, 10), (9, 1));
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(read_direct(&flaky, 10), (9, 1));

    let deadline = Instant::now() + WAIT;
    // Sample names over every scrape: the gauges of a run in progress exist only during it.
    let mut names_seen = std::collections::BTreeSet::new();
    let mut run_seen = false;
    let metrics = loop {
        let e = scrape(&daemon);
        names_seen.extend(e.sample_names());
        let bad_state = e.find("marginal_path_state", &[("path", bad)]);
        let sampling = bad_state[0].labels["state"].starts_with("sampling");
        if sampling {
            let reads = e.find("marginal_path_sampling_run_reads", &[("path", bad)]);
            assert_eq!(reads.len(), 1, "run gauges while sampling: {reads:?}");
            run_seen = true;
        }
        if e.find(
            "marginal_path_last_verdict",
            &[("path", bad), ("verdict", "marginal")],
        )
        .first()
        .map(|s| s.value)
            == Some(1.0)
        {
            break e;
        }
        assert!(
            Instant::now() < deadline,
            "no marginal verdict:\n{}",
            daemon.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let snapshot = status(&daemon);

    // Every documented metric was there, the run's gauges while it ran and not after.
    assert!(run_seen, "no scrape saw the sampling run");
    let mut expected = exported_names();
    let has_fc = std::fs::read_dir("/sys/class/fc_host").is_ok_and(|mut d| d.next().is_some());
    if !has_fc {
        // No FC HBA here: its per-port statistics have no series (unit-tested on a recorded
        // sysfs tree instead).
        expected.retain(|name| !name.starts_with("marginal_fc_"));
    }
    // Latency is measured only for maps with slow-path checking (marginal.conf), which these
    // --watch devices do not have: kernel_latency and metrics_exposition cover those families.
    expected.retain(|name| {
        !name.starts_with("marginal_path_io_latency_seconds")
            && name != "marginal_path_latency_ratio"
    });
    assert_eq!(names_seen, expected, "log:\n{}", daemon.log_text());
    for path in [bad, good] {
        for gauge in [
            "marginal_path_sampling_run_reads",
            "marginal_path_sampling_run_errors",
        ] {
            assert!(metrics.find(gauge, &[("path", path)]).is_empty(), "{gauge}");
        }
    }

    // The values are the scenario's.
    let v = |name: &str, labels: &[(&str, &str)]| metrics.value(name, labels);
    let bad_path = [("path", bad)];
    assert_eq!(
        v(
            "marginal_path_state",
            &[("path", bad), ("state", "marginal")]
        ),
        1.0
    );
    assert!(
        metrics
            .find(
                "marginal_path_state",
                &[("path", bad), ("state", "healthy")]
            )
            .is_empty()
    );
    assert_eq!(v("marginal_path_failed_by_marginal", &bad_path), 1.0);
    assert_eq!(v("marginal_path_sampling_runs_total", &bad_path), 1.0);
    let rate = v("marginal_path_error_rate_permille", &bad_path);
    assert!(
        (95.0..=105.0).contains(&rate),
        "every 10th read fails: rate {rate}"
    );
    assert!(v("marginal_path_failures_total", &bad_path) >= 2.0);
    assert!(v("marginal_path_double_failures_total", &bad_path) >= 1.0);
    let (reads, errors) = (
        v("marginal_path_sampling_reads_total", &bad_path),
        v("marginal_path_sampling_errors_total", &bad_path),
    );
    assert!(reads > 0.0 && errors > 0.0);
    assert_eq!(
        v("marginal_path_io_errors_total", &bad_path),
        2.0 + errors,
        "the kernel counted every failed read: the test's two and the sampler's"
    );
    let recheck = v("marginal_path_next_recheck_seconds", &bad_path);
    assert!(
        recheck > 500.0 && recheck <= 600.0,
        "recheck gap 600 s: {recheck}"
    );
    assert_eq!(
        v(
            "marginal_path_state",
            &[("path", good), ("state", "healthy")]
        ),
        1.0
    );
    assert_eq!(v("marginal_path_io_errors_total", &[("path", good)]), 0.0);
    assert_eq!(
        v(
            "marginal_path_last_verdict",
            &[("path", good), ("verdict", "none")]
        ),
        1.0
    );
    let device = format!("{}:{}", flaky.major_minor().0, flaky.major_minor().1);
    assert_eq!(
        metrics
            .find("marginal_path_state", &[("path", bad), ("device", &device)])
            .len(),
        1
    );
    let map = snapshot.maps[0].name.as_str();
    for (state, paths) in [("marginal", 1.0), ("healthy", 1.0), ("sampling", 0.0)] {
        let l = [("map", map), ("state", state)];
        assert_eq!(v("marginal_map_paths_in_state", &l), paths, "{state}");
    }
    assert_eq!(
        v("marginal_map_err_rate_threshold_permille", &[("map", map)]),
        50.0
    );
    assert_eq!(
        v("marginal_map_double_failed_time_seconds", &[("map", map)]),
        60.0
    );
    assert_eq!(
        v("marginal_map_err_recheck_gap_time_seconds", &[("map", map)]),
        600.0
    );
    assert_eq!(v("marginal_map_checking", &[("map", map)]), 1.0);
    assert_eq!(v("marginal_map_paths", &[("map", map)]), 2.0);
    assert_eq!(v("marginal_actuator_info", &[("actuator", "observe")]), 1.0);
    assert_eq!(
        v(
            "marginal_signal_live",
            &[("signal", "block:block_rq_error")]
        ),
        1.0
    );
    let runs: f64 = metrics
        .find("marginal_ebpf_program_runs_total", &[])
        .iter()
        .map(|s| s.value)
        .sum();
    let secs: f64 = metrics
        .find("marginal_ebpf_program_run_seconds_total", &[])
        .iter()
        .map(|s| s.value)
        .sum();
    assert!(
        runs >= 20.0 && secs > 0.0,
        "bpf_stats: {runs} runs, {secs} s"
    );

    // /metrics and /status say the same about paths and maps (nothing changes after the verdict
    // in observe mode).
    for m in &snapshot.maps {
        assert_eq!(
            v("marginal_map_active_paths", &[("map", &m.name)]),
            f64::from(m.active_paths)
        );
        for p in &m.paths {
            let l = [("path", p.name.as_str())];
            assert_eq!(
                v("marginal_path_failures_total", &l),
                p.kernel_failures as f64,
                "{}",
                p.name
            );
            assert_eq!(
                v("marginal_path_io_errors_total", &l),
                p.kernel_io_errors as f64,
                "{}",
                p.name
            );
            assert_eq!(
                v("marginal_path_sampling_reads_total", &l),
                p.sampling_reads as f64,
                "{}",
                p.name
            );
            assert_eq!(
                v("marginal_path_active", &l),
                f64::from(u8::from(p.active)),
                "{}",
                p.name
            );
        }
    }

    // Prometheus has scraped the same values, and the rules see them.
    let q = |expr: &str| prom.wait_for(expr, WAIT, |r| r.len() == 1)[0].1;
    prom.wait_for(
        &format!(r#"marginal_path_state{{path="{bad}",state="marginal"}} == 1"#),
        WAIT,
        |r| r.len() == 1,
    );
    assert_eq!(
        q(&format!(
            r#"marginal_path_error_rate_permille{{path="{bad}"}}"#
        )),
        rate
    );
    assert_eq!(
        q(&format!(
            r#"marginal_path_io_errors_total{{path="{bad}",device="{device}"}}"#
        )),
        2.0 + errors
    );
    assert_eq!(
        q(&format!(
            r#"marginal_map_err_rate_threshold_permille{{map="{map}"}}"#
        )),
        50.0
    );
    assert_eq!(
        q(r#"instance_state:marginal_paths:sum{state="marginal"}"#),
        1.0
    );
    assert_eq!(
        q(r#"instance_state:marginal_paths:sum{state="healthy"}"#),
        1.0
    );
    for alert in [
        "MarginalPathMarginal",
        "MarginalSampledErrorRateAboveThreshold",
    ] {
        let r = prom.wait_for(&format!(r#"ALERTS{{alertname="{alert}"}}"#), WAIT, |r| {
            !r.is_empty()
        });
        assert_eq!(
            r[0].0.get("path").map(String::as_str),
            Some(bad),
            "{alert}: {r:?}"
        );
    }
    assert!(
        prom.query(r#"ALERTS{alertname="MarginalDaemonDown"}"#)
            .unwrap()
            .is_empty()
    );

    // `marginal status` shows it, in a table and as JSON.
    let out = Command::new(marginal_binary())
        .args(["status", "--address", &daemon.listen.to_string()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("actuator: observe"), "{text}");
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with(bad))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        line.contains("marginal") && line.contains(&format!("{}‰", rate as u32)),
        "{line}"
    );
    let out = Command::new(marginal_binary())
        .args(["status", "--json", "--address", &daemon.listen.to_string()])
        .output()
        .unwrap();
    let json: Snapshot = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json.maps.len(), snapshot.maps.len());

    // A stopped daemon: Prometheus marks its target down and its series stale.
    let listen = daemon.listen;
    daemon.stop().unwrap();
    prom.wait_for(r#"up{job="marginal"} == 0"#, WAIT, |r| r.len() == 1);
    prom.wait_for(r#"{__name__=~"marginal_.+", job="marginal"}"#, WAIT, |r| {
        r.is_empty()
    });
    let out = Command::new(marginal_binary())
        .args(["status", "--address", &listen.to_string()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains(&format!("no answer at {listen}")),
        "{err}"
    );
}

/// Under systemd (JOURNAL_STREAM names stderr), log lines carry a syslog priority and no
/// timestamp; elsewhere they keep env_logger's format.
#[test]
fn log_lines_carry_syslog_priorities_when_stderr_is_the_journal() {
    require_root().expect("this test needs root");
    let device = FlakyDevice::create(FlakyOptions::default()).unwrap();
    let dir = TempDir::new("metrics-journal");
    let run = |journal: bool| -> String {
        let log_path = dir.0.join(format!("log-{journal}"));
        let log = std::fs::File::create(&log_path).unwrap();
        let mut cmd = Command::new(marginal_binary());
        cmd.args([
            "run",
            "--observe",
            "--config",
            "/dev/null",
            "--duration",
            "1",
            "--watch",
        ])
        .arg(device.loop_path())
        .args(["--listen", &free_local_addr().to_string(), "--state-file"])
        .arg(dir.0.join("held-out.json"))
        .env("RUST_LOG", "info")
        .env_remove("JOURNAL_STREAM")
        .stdout(Stdio::null());
        if journal {
            use std::os::unix::fs::MetadataExt;
            let meta = log.metadata().unwrap();
            cmd.env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()));
        }
        let status = cmd.stderr(log).status().unwrap();
        let text = std::fs::read_to_string(&log_path).unwrap();
        assert!(status.success(), "{text}");
        text
    };
    let journal = run(true);
    assert!(!journal.is_empty());
    for line in journal.lines() {
        let priority = line
            .strip_prefix('<')
            .and_then(|l| l.split_once('>'))
            .map(|(p, _)| p);
        assert!(
            matches!(priority, Some("3" | "4" | "6" | "7")),
            "no priority prefix: {line:?}"
        );
        assert!(
            !line.contains(" INFO ") && !line.contains("Z "),
            "a timestamp or level word: {line:?}"
        );
    }
    assert!(journal.lines().any(|l| l.starts_with("<6>")), "{journal}");

    let plain = run(false);
    assert!(
        plain
            .lines()
            .any(|l| l.starts_with('[') && l.contains(" INFO ")),
        "{plain}"
    );
    assert!(!plain.lines().any(|l| l.starts_with("<6>")), "{plain}");
}
