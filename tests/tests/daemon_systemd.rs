//! `marginal run` under systemd's notification protocol (sd_notify(3)), spoken to a real
//! datagram socket as systemd's would be: READY=1 with a STATUS= line once it watches its
//! devices, WATCHDOG=1 at half of WATCHDOG_USEC from the event loop, STOPPING=1 on SIGTERM.
//! The unit file itself is checked with systemd-analyze in package_deb.rs. Needs root (eBPF,
//! loop devices, FUSE).
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use marginal_tests::{FlakyDevice, FlakyOptions, RunningDaemon, observe_args, require_root};

/// The notifications that arrive within `wait`, one datagram each.
fn receive(socket: &UnixDatagram, wait: Duration) -> Vec<String> {
    let deadline = Instant::now() + wait;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        socket
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        match socket.recv(&mut buf) {
            Ok(n) => out.push(String::from_utf8_lossy(&buf[..n]).into_owned()),
            Err(_) => break,
        }
    }
    out
}

#[test]
fn the_daemon_tells_systemd_it_is_ready_what_it_does_and_that_its_loop_turns() {
    require_root().unwrap();
    let device = FlakyDevice::create(FlakyOptions::default()).unwrap();
    let dir = std::env::temp_dir().join(format!("marginal-notify-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let socket_path = dir.join("notify");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    let state = dir.join("held-out.json");
    let daemon = RunningDaemon::start_with_env(
        &observe_args(&[&device], &state, &[]),
        &[
            ("NOTIFY_SOCKET", socket_path.to_str().unwrap()),
            // 1 s: fed every 500 ms.
            ("WATCHDOG_USEC", "1000000"),
        ],
    )
    .unwrap();

    let messages = receive(&socket, Duration::from_secs(3));
    let log = daemon.log_text();
    let first = messages
        .first()
        .unwrap_or_else(|| panic!("nothing sent:\n{log}"));
    assert_eq!(
        first, "READY=1\nSTATUS=watching 1 device, observe mode (acting on nothing)\n",
        "{log}"
    );
    let feeds = messages
        .iter()
        .filter(|m| m.contains("WATCHDOG=1\n"))
        .count();
    // 3 s at one feed every 500 ms, with room for a loaded machine.
    assert!(
        (3..=8).contains(&feeds),
        "{feeds} feeds: {messages:?}\n{log}"
    );
    assert!(log.contains("systemd watchdog: fed every 500ms"), "{log}");

    daemon.stop().unwrap();
    let last = receive(&socket, Duration::from_millis(500));
    assert!(
        last.iter().any(|m| m.starts_with("STOPPING=1\n")),
        "{last:?}"
    );
    device.close().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn without_systemd_the_daemon_runs_as_before() {
    require_root().unwrap();
    let device = FlakyDevice::create(FlakyOptions::default()).unwrap();
    let state =
        std::env::temp_dir().join(format!("marginal-no-notify-{}.json", std::process::id()));
    let daemon = RunningDaemon::start(&observe_args(&[&device], &state, &[])).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let log = daemon.stop().unwrap();
    assert!(!log.contains("systemd"), "{log}");
    assert!(!log.contains("NOTIFY_SOCKET"), "{log}");
    device.close().unwrap();
    let _ = std::fs::remove_file(&state);
}
