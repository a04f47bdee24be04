//! `marginal run --watch ... --observe` end to end on the real kernel: a double failure caught
//! by eBPF on a real flaky loop device leads to a sampling run and a verdict, read back through
//! `/status`. Needs root (eBPF, loop devices, FUSE).
use std::time::{Duration, Instant};

use marginal::status::{PathStatus, Snapshot};
use marginal_tests::{
    FlakyDevice, FlakyOptions, RunningDaemon, Schedule, marginal_binary, observe_args, read_direct,
    require_root,
};

fn status(daemon: &RunningDaemon) -> Snapshot {
    let response =
        marginal::http::client::get(daemon.listen, "/status", Duration::from_secs(5)).unwrap();
    assert_eq!(response.status, 200);
    serde_json::from_str(&response.body).expect("/status is a Snapshot")
}

fn path<'a>(snapshot: &'a Snapshot, name: &str) -> &'a PathStatus {
    snapshot
        .maps
        .iter()
        .flat_map(|m| &m.paths)
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("{name} not in /status: {snapshot:#?}"))
}

/// Poll /status until `done` holds for path `name`, or fail with the daemon's log.
fn wait_for(
    daemon: &RunningDaemon,
    name: &str,
    wait: Duration,
    done: impl Fn(&PathStatus) -> bool,
) -> PathStatus {
    let deadline = Instant::now() + wait;
    loop {
        let snapshot = status(daemon);
        let path = path(&snapshot, name);
        if done(path) {
            return path.clone();
        }
        if Instant::now() > deadline {
            panic!(
                "{name} never reached the expected state: {path:#?}\nlog:\n{}",
                daemon.log_text()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn daemon_args(devices: &[&FlakyDevice], extra: &[&str]) -> Vec<String> {
    let state = std::env::temp_dir().join(format!(
        "marginal-test-held-{}-{}.json",
        std::process::id(),
        devices[0].loop_name()
    ));
    observe_args(devices, &state, extra)
}

#[test]
fn double_failure_leads_to_sampling_and_a_marginal_verdict() {
    require_root().expect("this test needs root");
    let flaky = FlakyDevice::create(FlakyOptions::default()).unwrap();
    let healthy = FlakyDevice::create(FlakyOptions::default()).unwrap();
    flaky.set_schedule(Schedule::EveryNth(10));
    let daemon = RunningDaemon::start(&daemon_args(
        &[&flaky, &healthy],
        &["--double-failed-time", "60", "--episode-gap-ms", "500"],
    ))
    .unwrap();

    // Two failure episodes 1 s apart, one failed read in each batch of ten.
    assert_eq!(read_direct(&flaky, 10), (9, 1));
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(read_direct(&flaky, 10), (9, 1));

    let running = wait_for(&daemon, flaky.loop_name(), Duration::from_secs(10), |p| {
        p.current_run_reads > 0 || p.last_verdict != "none"
    });
    assert_eq!(
        running.state, "sampling",
        "progress is visible while the run lasts"
    );
    assert!(running.current_run_errors <= running.current_run_reads);

    let verdict = wait_for(&daemon, flaky.loop_name(), Duration::from_secs(30), |p| {
        p.last_verdict != "none"
    });
    assert_eq!(verdict.last_verdict, "marginal", "{verdict:#?}");
    assert_eq!(verdict.state, "marginal");
    assert!(verdict.failed_by_marginal, "the engine holds it out");
    assert_eq!(verdict.sampling_runs, 1);
    let rate = verdict.last_rate_permille.unwrap();
    assert!(
        (95..=105).contains(&rate),
        "every 10th read fails, rate {rate}"
    );
    assert!(verdict.kernel_failures >= 2 && verdict.kernel_double_failures >= 1);
    assert!(verdict.sampling_reads > 0 && verdict.sampling_errors > 0);
    assert_eq!(
        verdict.kernel_io_errors,
        2 + verdict.sampling_errors,
        "the kernel counted every failed read: ours and the sampler's"
    );

    let snapshot = status(&daemon);
    let other = path(&snapshot, healthy.loop_name());
    assert_eq!(
        (other.state.as_str(), other.kernel_io_errors),
        ("healthy", 0)
    );
    assert_eq!(snapshot.actuator, "observe");
    assert!(
        snapshot
            .signals
            .iter()
            .any(|s| s.name == "block:block_rq_error" && s.live)
    );

    let log = daemon.stop().unwrap();
    assert!(
        log.contains("would fail path"),
        "observe mode reports the action:\n{log}"
    );
    assert!(
        log.contains("would reinstate path"),
        "on SIGTERM the held-out path is returned:\n{log}"
    );
}

#[test]
fn failures_outside_the_window_are_left_alone() {
    require_root().expect("this test needs root");
    let flaky = FlakyDevice::create(FlakyOptions::default()).unwrap();
    let healthy = FlakyDevice::create(FlakyOptions::default()).unwrap();
    flaky.set_schedule(Schedule::FailAll);
    let daemon = RunningDaemon::start(&daemon_args(
        &[&flaky, &healthy],
        &["--double-failed-time", "1", "--episode-gap-ms", "200"],
    ))
    .unwrap();
    read_direct(&flaky, 1);
    std::thread::sleep(Duration::from_millis(1800));
    read_direct(&flaky, 1);

    let counted = wait_for(&daemon, flaky.loop_name(), Duration::from_secs(10), |p| {
        p.kernel_failures == 2
    });
    std::thread::sleep(Duration::from_secs(1));
    let later = path(&status(&daemon), flaky.loop_name()).clone();
    assert_eq!(counted.kernel_double_failures, 0);
    assert_eq!(later.sampling_runs, 0, "no check started: {later:#?}");
    assert!(!later.failed_by_marginal);
    let log = daemon.stop().unwrap();
    assert!(!log.contains("would fail path"), "{log}");
}

#[test]
fn a_broken_configuration_stops_the_start_with_file_and_line() {
    let dir = std::env::temp_dir().join(format!("marginal-badconf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("multipath.conf");
    std::fs::write(
        &conf,
        "defaults {\n    marginal_path_double_failed_time 60\n    marginal_path_err_rate_threshold ten\n}\n",
    )
    .unwrap();
    let output = std::process::Command::new(marginal_binary())
        .args(["run", "--observe", "--watch", "/dev/null", "--config"])
        .arg(&conf)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("{}:3", conf.display())),
        "the error names file:line: {stderr}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn sighup_reloads_the_configuration_and_keeps_it_when_broken() {
    require_root().expect("this test needs root");
    let device = FlakyDevice::create(FlakyOptions::default()).unwrap();
    let dir = std::env::temp_dir().join(format!("marginal-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("multipath.conf");
    let write = |threshold: &str| {
        std::fs::write(
            &conf,
            format!(
                "defaults {{\n    marginal_path_double_failed_time 60\n    \
                 marginal_path_err_sample_time 120\n    \
                 marginal_path_err_rate_threshold {threshold}\n    \
                 marginal_path_err_recheck_gap_time 300\n}}\n"
            ),
        )
        .unwrap()
    };
    let threshold = |daemon: &RunningDaemon| status(daemon).maps[0].err_rate_threshold_permille;
    write("50");
    let args: Vec<String> = [
        "--observe",
        "--watch",
        &device.loop_path().display().to_string(),
        "--config",
        &conf.display().to_string(),
        "--config-dir",
        &dir.display().to_string(),
        "--state-file",
        &dir.join("held.json").display().to_string(),
    ]
    .map(String::from)
    .to_vec();
    let daemon = RunningDaemon::start(&args).unwrap();
    assert_eq!(threshold(&daemon), 50);
    let hangup = || daemon.signal(nix::sys::signal::Signal::SIGHUP).unwrap();

    write("ten");
    hangup();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        threshold(&daemon),
        50,
        "a broken file keeps the old settings"
    );
    assert!(
        daemon
            .log_text()
            .contains("keeping the running configuration")
    );

    write("70");
    hangup();
    let deadline = Instant::now() + Duration::from_secs(5);
    while threshold(&daemon) != 70 {
        assert!(
            Instant::now() < deadline,
            "reload not applied:\n{}",
            daemon.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    daemon.stop().unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}
