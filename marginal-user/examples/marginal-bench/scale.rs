//! Part 4: memory and idle CPU with thousands of watched paths, measured two ways.
//!
//! * `daemon`: the real `marginal run` binary watching N real block devices (loop devices over
//!   /dev/shm, `--watch`, one group, observe mode), with its HTTP endpoint, measured from the
//!   outside through /proc after it has settled: first idle and unscraped, then the CPU time
//!   one `/metrics` scrape costs (the daemon builds its snapshot on demand).
//! * `library`: this process builds the daemon's own [`Daemon`] with a device-mapper-like
//!   topology (N paths as N/4 maps of 4 paths, made-up device numbers in the kernel's watch
//!   map) and runs the daemon's event loop: kernel events, sampler reports, the engine
//!   deadline, and every `--resync-seconds` what the daemon's re-discovery does with an
//!   unchanged answer from dm (compare, apply nothing; the dm query itself needs dm and is not
//!   included). Then it times one re-apply of a changed topology (one path failed in dm), which
//!   the daemon does after any change.
//!
//! CPU time is the process's CPU-time clock (exited threads included), RSS is VmRSS; BPF map
//! memory is kernel memory, not RSS, so it is reported beside it (`memlock` of the map fds).
use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    path::PathBuf,
    process::{Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use marginal::{
    actuator::{Fixed, Observe},
    config::{Config, MapIdentity},
    daemon::{
        core::{Daemon, DaemonParts, DaemonSettings, monotonic_now},
        held_out::HeldOutFile,
        topology::{Topology, WatchedMap, WatchedPath},
    },
    device::BlockDevice,
    engine::PathKey,
    kernel::{EventStream, KernelProbes, stats::RunStatsGuard},
    sampler::{Sampler, SamplerOptions},
};
use serde_json::{Value, json};

use crate::measure;

#[derive(Debug, clap::Args)]
pub struct DaemonArgs {
    /// The marginal binary.
    #[arg(long)]
    marginal: PathBuf,
    #[arg(long)]
    devices_file: PathBuf,
    #[arg(long)]
    paths: usize,
    /// Seconds to let it settle after it answers /status.
    #[arg(long, default_value_t = 5)]
    settle: u64,
    /// Seconds of idle measured.
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    /// /metrics scrapes timed after the idle window.
    #[arg(long, default_value_t = 10)]
    scrapes: u32,
}

#[derive(Debug, clap::Args)]
pub struct LibraryArgs {
    #[arg(long, default_value_t = 4096)]
    paths: usize,
    #[arg(long, default_value_t = 5)]
    settle: u64,
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    /// Re-discover this often, as the daemon does with dm (every 15 s besides uevents).
    #[arg(long, default_value_t = 15)]
    resync_seconds: u64,
    /// Snapshots and renderings timed at the end.
    #[arg(long, default_value_t = 10)]
    scrapes: u32,
}

/// The four marginal_path_* settings, so checking is on for every map.
const CHECKING_ON: [&str; 8] = [
    "--double-failed-time",
    "60",
    "--err-sample-time",
    "120",
    "--err-rate-threshold",
    "10",
    "--err-recheck-gap-time",
    "300",
];

pub fn run_daemon(args: DaemonArgs) -> Result<Value> {
    let text = std::fs::read_to_string(&args.devices_file)?;
    let devices: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
    if devices.len() < args.paths {
        bail!("{} devices, {} asked for", devices.len(), args.paths);
    }
    let listen = free_local_addr()?;
    let state =
        std::env::temp_dir().join(format!("marginal-bench-held-{}.json", std::process::id()));
    let log =
        std::env::temp_dir().join(format!("marginal-bench-daemon-{}.log", std::process::id()));
    let mut command = Command::new(&args.marginal);
    command.args(["run", "--observe", "--config", "/dev/null"]);
    command.args(CHECKING_ON);
    command.arg("--state-file").arg(&state);
    command.arg("--listen").arg(listen.to_string());
    for node in devices.iter().take(args.paths) {
        command.args(["--watch", node]);
    }
    let log_file = std::fs::File::create(&log)?;
    let started = Instant::now();
    let mut child = command
        .env("RUST_LOG", "info")
        .stdout(Stdio::from(log_file.try_clone()?))
        .stderr(Stdio::from(log_file))
        .spawn()
        .with_context(|| format!("starting {}", args.marginal.display()))?;
    let pid = child.id();

    let result = (|| -> Result<Value> {
        let watched = wait_ready(listen, &mut child, Duration::from_secs(120))
            .with_context(|| format!("daemon log: {}", log.display()))?;
        let ready = started.elapsed();
        if watched != args.paths {
            bail!(
                "the daemon reports {watched} paths, {} were given",
                args.paths
            );
        }
        std::thread::sleep(Duration::from_secs(args.settle));
        let idle = idle_cpu(pid, Duration::from_secs(args.seconds))?;
        let rss = measure::status_kib(pid, "VmRSS")?;
        let peak_before_scrapes = measure::status_kib(pid, "VmHWM")?;
        // What a scraper costs: the snapshot is built per request.
        let before = measure::process_cpu_ns(pid)?;
        let mut metrics_bytes = 0;
        for _ in 0..args.scrapes {
            metrics_bytes = http_get(listen, "/metrics")?.len();
        }
        let per_scrape = (measure::process_cpu_ns(pid)? - before) / u64::from(args.scrapes.max(1));
        Ok(json!({
            "how": "marginal run --observe --watch <N loop devices>, measured through /proc",
            "paths": watched,
            "startup_s": ready.as_secs_f64(),
            "idle_seconds": args.seconds,
            "idle_cpu_share": idle,
            "scrapes": args.scrapes,
            "scrape_cpu_ns": per_scrape,
            "metrics_bytes": metrics_bytes,
            "rss_after_scrapes_kib": measure::status_kib(pid, "VmRSS")?,
            "rss_kib": rss,
            "rss_peak_kib": peak_before_scrapes,
            "rss_peak_after_scrapes_kib": measure::status_kib(pid, "VmHWM")?,
            "bpf_map_kib": measure::bpf_map_memlock_bytes(pid) / 1024,
            "max_watched_paths": marginal_common::MAX_WATCHED_PATHS,
            "threads": measure::thread_cpu_ns(pid)?.len(),
        }))
    })();

    // SAFETY: plain kill(2) of our own child.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait()?.is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = std::fs::remove_file(&state);
    if result.is_ok() {
        let _ = std::fs::remove_file(&log);
    }
    result
}

fn free_local_addr() -> Result<SocketAddr> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

/// Poll /status until it answers; returns the number of paths it reports.
fn wait_ready(
    listen: SocketAddr,
    child: &mut std::process::Child,
    timeout: Duration,
) -> Result<usize> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            bail!("the daemon exited during start-up ({status})");
        }
        if let Ok(body) = http_get(listen, "/status") {
            let status: Value = serde_json::from_str(&body).context("parsing /status")?;
            let paths = status["maps"].as_array().map_or(0, |maps| {
                maps.iter()
                    .map(|m| m["paths"].as_array().map_or(0, Vec::len))
                    .sum()
            });
            return Ok(paths);
        }
        if Instant::now() > deadline {
            bail!("the daemon did not answer /status within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn http_get(addr: SocketAddr, path: &str) -> Result<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .context("no HTTP header end")?;
    if !head.starts_with("HTTP/1.") || !head.contains(" 200 ") {
        bail!("{path}: {}", head.lines().next().unwrap_or(""));
    }
    Ok(body.to_string())
}

/// Share of one core `pid` used over `window`, from its CPU-time clock.
fn idle_cpu(pid: u32, window: Duration) -> Result<f64> {
    let before = measure::process_cpu_ns(pid)?;
    let started = Instant::now();
    std::thread::sleep(window);
    let used = measure::process_cpu_ns(pid)? - before;
    Ok(used as f64 / started.elapsed().as_nanos() as f64)
}

pub fn run_library(args: LibraryArgs) -> Result<Value> {
    let pid = std::process::id();
    let rss_empty = measure::status_kib(pid, "VmRSS")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let mut probes = KernelProbes::load()?;
        // Loading parses the object and the kernel's BTF: the peak comes from here.
        let peak_after_load = measure::status_kib(pid, "VmHWM")?;
        let _stats = RunStatsGuard::enable()?;
        let mut events = EventStream::new(probes.take_events()?)?;
        let (sampler, mut reports) = Sampler::spawn(SamplerOptions::default())?;
        let config = Config::parse_str(
            "bench.conf",
            "defaults {\n\
             marginal_path_double_failed_time 60\n\
             marginal_path_err_sample_time 120\n\
             marginal_path_err_rate_threshold 10\n\
             marginal_path_err_recheck_gap_time 300\n\
             }\n",
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        let state = std::env::temp_dir().join(format!("marginal-bench-lib-held-{pid}.json"));
        let signals = probes.signals().clone();
        let mut daemon = Daemon::new(DaemonParts {
            kernel: Box::new(probes),
            signals,
            sampler: Box::new(sampler),
            actuators: Box::new(Fixed::new(Arc::new(Observe::new()), "benchmark")),
            runner: Box::new(marginal::daemon::actuation::Inline),
            // dm-like maps without device-mapper: nothing reads dm in this benchmark.
            dm: None,
            config,
            settings: DaemonSettings {
                episode_gap: Duration::from_secs(1),
                sample_time_for_testing: None,
            },
            held_out: HeldOutFile::open(&state)?,
            observe: true,
        });
        let setup_started = Instant::now();
        daemon.apply_topology(synthetic_topology(args.paths), monotonic_now())?;
        let setup = setup_started.elapsed();
        let watched = daemon.kernel.watched_count();
        let checked = daemon.engine.maps().iter().filter(|m| m.params.is_some()).count();

        let started = Instant::now();
        let measure_from = started + Duration::from_secs(args.settle);
        let measure_until = measure_from + Duration::from_secs(args.seconds);
        let mut cpu_at_start = None;
        let resync_every = Duration::from_secs(args.resync_seconds.max(1));
        let mut resync = tokio::time::interval(resync_every);
        let mut mark = tokio::time::interval_at(measure_from.into(), Duration::from_secs(3600));
        let mut resyncs = 0u32;
        // As the daemon's loop (daemon/mod.rs), minus HTTP and uevents.
        loop {
            let timer = next_engine_timer(&daemon);
            tokio::select! {
                batch = events.next_batch() => daemon.on_kernel_events(batch?, monotonic_now()),
                Some(report) = reports.recv() => daemon.on_sample_report(report, monotonic_now()),
                _ = tokio::time::sleep_until(timer) => daemon.on_timer(monotonic_now()),
                _ = resync.tick() => {
                    // dm answered with the same maps: the daemon compares and applies nothing.
                    let discovered = synthetic_topology(args.paths);
                    if discovered != daemon.topology {
                        daemon.apply_topology(discovered, monotonic_now())?;
                    }
                    resyncs += 1;
                }
                _ = mark.tick() => cpu_at_start = Some(measure::process_cpu_ns(pid)?),
                _ = tokio::time::sleep_until(measure_until.into()) => break,
            }
        }
        let used = measure::process_cpu_ns(pid)? - cpu_at_start.context("no measurement start")?;
        let rss = measure::status_kib(pid, "VmRSS")?;

        // One change in dm (a path failed) makes the daemon re-apply the whole topology.
        let mut changed = synthetic_topology(args.paths);
        changed.maps[0].paths[0].active = false;
        let cpu_before = measure::process_cpu_ns(pid)?;
        let reapply_started = Instant::now();
        daemon.apply_topology(changed, monotonic_now())?;
        let reapply_wall = reapply_started.elapsed();
        let reapply_cpu = measure::process_cpu_ns(pid)? - cpu_before;
        // And what a scrape costs in this topology: the status snapshot, then the exposition
        // as a scraper without an Accept header gets it (the classic text), each on this
        // thread's CPU clock, best and median of several.
        let (mut snapshot_ns, mut render_ns) = (Vec::new(), Vec::new());
        let mut text_bytes = 0;
        let mut snapshot_paths = 0;
        for _ in 0..args.scrapes.max(1) {
            let t0 = thread_cpu_ns();
            let snapshot = daemon.snapshot(started.elapsed().as_secs_f64());
            let t1 = thread_cpu_ns();
            let text = marginal::metrics::render_as(&snapshot, marginal::metrics::Format::Text);
            text_bytes = text.len();
            drop(text);
            let t2 = thread_cpu_ns();
            snapshot_paths = snapshot.maps.iter().map(|m| m.paths.len()).sum::<usize>();
            drop(snapshot);
            snapshot_ns.push(t1 - t0);
            render_ns.push(t2 - t1);
        }
        snapshot_ns.sort_unstable();
        render_ns.sort_unstable();
        let _ = std::fs::remove_file(&state);
        Ok(json!({
            "how": "the daemon's Daemon and event loop in-process; dm-like topology of made-up devices; no HTTP server, no dm query",
            "paths": args.paths,
            "maps": args.paths.div_ceil(4),
            "maps_checked": checked,
            "resync_seconds": args.resync_seconds,
            "watch_map_entries": watched,
            "snapshot_paths": snapshot_paths,
            "setup_s": setup.as_secs_f64(),
            "idle_seconds": args.seconds,
            "resyncs": resyncs,
            "idle_cpu_share": used as f64 / Duration::from_secs(args.seconds).as_nanos() as f64,
            "reapply_after_change_cpu_ns": reapply_cpu,
            "reapply_after_change_wall_s": reapply_wall.as_secs_f64(),
            "snapshot_cpu_ns_min": snapshot_ns[0],
            "snapshot_cpu_ns_median": measure::quantile(&snapshot_ns, 0.5),
            "render_text_cpu_ns_min": render_ns[0],
            "render_text_cpu_ns_median": measure::quantile(&render_ns, 0.5),
            "render_text_bytes": text_bytes,
            "rss_kib": rss,
            "rss_before_load_kib": rss_empty,
            "rss_peak_kib": measure::status_kib(pid, "VmHWM")?,
            "rss_peak_after_load_kib": peak_after_load,
            "bpf_map_kib": measure::bpf_map_memlock_bytes(pid) / 1024,
        }))
    })
}

/// CPU time of the calling thread.
fn thread_cpu_ns() -> u64 {
    let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID)
        .expect("the thread CPU clock is always readable");
    now.tv_sec() as u64 * 1_000_000_000 + now.tv_nsec() as u64
}

/// N paths as maps of 4 (a typical SAN LUN: two HBAs times two target ports), on made-up
/// device numbers (major 4000, never allocated).
fn synthetic_topology(paths: usize) -> Topology {
    let maps = (0..paths.div_ceil(4))
        .map(|m| {
            let name = format!("mpath{m}");
            WatchedMap {
                name: name.clone(),
                identity: MapIdentity {
                    wwid: format!("36000bench{m:08}"),
                    alias: Some(name),
                    ..Default::default()
                },
                paths: (m * 4..((m + 1) * 4).min(paths))
                    .map(|p| WatchedPath {
                        key: PathKey::new(format!("sdbench{p}")),
                        device: BlockDevice {
                            name: format!("sdbench{p}"),
                            major: 4000,
                            minor: p as u32,
                        },
                        active: true,
                        identity: Default::default(),
                    })
                    .collect(),
                dev: None,
            }
        })
        .collect();
    Topology {
        maps,
        device_mapper: true,
    }
}

/// As the daemon's own (private) `next_engine_timer`.
fn next_engine_timer(daemon: &Daemon) -> tokio::time::Instant {
    let far = tokio::time::Instant::now() + Duration::from_secs(3600);
    match daemon.next_deadline() {
        None => far,
        Some(at) => tokio::time::Instant::now() + at.saturating_since(monotonic_now()),
    }
}
