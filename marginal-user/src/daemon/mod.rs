//! `marginal run`: the daemon.
//!
//! Start-up loads the eBPF programs, reads marginal.conf (and multipathd's configuration, to
//! leave it the maps it checks itself), picks an actuator, finds the paths to watch
//! (device-mapper's multipath maps, or `--watch` devices as one group), takes up any path the state
//! file says marginal failed, then loops:
//!
//! ```text
//!   kernel ring buffer ──> Daemon::on_kernel_events ─┐
//!   path uevents (no kprobe) ─> Daemon::on_path_uevent ┤
//!   sampler reports   ──> Daemon::on_sample_report ──┼─> engine ─> actions ─> actuator
//!   deadlines, retries ─> Daemon::on_timer ──────────┘                  └──> sampler
//!   uevents, resync   ──> Daemon::rediscover ─> topology, adoption, reconcile with dm
//!   resync            ──> Daemon::refresh_actuators (multipathd started/stopped/restarted)
//! ```
//!
//! [`core`] holds the event handlers, [`actions`] carries out decisions against dm's truth
//! (retrying what fails) with the actuators' calls made off the loop ([`actuation`],
//! finished in [`in_flight`]), [`reconcile`] keeps engine, watch map and state file in line with
//! dm, [`edges`] are the traits the core is tested through, [`topology`] what is watched,
//! [`held_out`] the state file under /run, [`report`] the snapshot for /metrics and /status,
//! [`systemd`] readiness, status and watchdog for systemd.
pub mod actions;
pub mod actuation;
pub mod core;
pub mod edges;
pub mod held_out;
pub mod in_flight;
pub mod latency;
pub mod outage;
pub mod reconcile;
pub mod report;
pub mod systemd;
pub mod topology;

#[cfg(test)]
mod tests;

use std::{
    net::SocketAddr,
    path::PathBuf,
    process::ExitCode,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use tokio::signal::unix::{SignalKind, signal};

use self::{
    actuation::{Inline, WorkerThread},
    core::{Daemon, DaemonParts, DaemonSettings, monotonic_now},
    held_out::HeldOutFile,
    systemd::Supervisor,
    topology::Topology,
};
use crate::{
    actuator::{
        Actuator, Actuators, DmMessage, Fixed, FollowMultipathd, MultipathdSocket, Observe,
    },
    config::{Config, ConfigArgs},
    dm::{DmDiscovery, MapSource},
    kernel::{
        EventStream, KernelProbes,
        stats::RunStatsGuard,
        uevent::{DeviceChange, MultipathEvent, UeventListener},
    },
    sampler::{Sampler, SamplerOptions},
    status::Snapshot,
};

/// Options of `marginal run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Watch these block devices as the paths of one group instead of device-mapper's
    /// multipath maps (for hosts without dm-multipath, and demos); implies nothing is acted on
    /// unless a map exists, so combine with --observe.
    #[arg(long, value_name = "DEVICE")]
    pub watch: Vec<String>,
    /// Decide and report, but fail and reinstate nothing.
    #[arg(long)]
    pub observe: bool,
    /// Address for /metrics and /status.
    #[arg(long, default_value = "127.0.0.1:9750", value_name = "ADDR:PORT")]
    pub listen: SocketAddr,
    /// Block-layer errors closer together than this many milliseconds are one path failure.
    #[arg(long, default_value_t = 1000, value_name = "MS")]
    pub episode_gap_ms: u64,
    /// Where the daemon keeps the paths it failed, so a restart takes them up again.
    #[arg(
        long,
        default_value = "/run/marginal/held-out.json",
        value_name = "PATH"
    )]
    pub state_file: PathBuf,
    /// On SIGTERM, leave the paths marginal failed out of service (the next start takes them
    /// up); by default they are returned.
    #[arg(long)]
    pub keep_failed_on_exit: bool,
    /// Stop after this many seconds (demos and tests).
    #[arg(long, value_name = "SECONDS")]
    pub duration: Option<u64>,
    /// Testing and demos only: sampling runs last this many seconds, below the 120 s floor.
    #[arg(long, value_name = "SECONDS", hide = true)]
    pub sample_time_for_testing: Option<u64>,
    /// Testing only: a sampling read pending this many seconds counts as an error (default 60).
    #[arg(long, value_name = "SECONDS", hide = true)]
    pub read_timeout_for_testing: Option<u64>,
    #[command(flatten)]
    pub config: ConfigArgs,
}

pub fn run(args: RunArgs) -> Result<ExitCode> {
    limit_allocator_retention();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    runtime.block_on(run_async(args))
}

/// A scrape of a large host renders megabytes of text; by default glibc keeps such memory
/// (in one arena per thread) after it is freed. Large blocks are mapped and unmapped instead,
/// and fewer arenas are kept, so RSS returns to its idle size after each scrape.
fn limit_allocator_retention() {
    // SAFETY: mallopt only tunes glibc's allocator; called before any other thread starts.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1024 * 1024);
    }
}

async fn run_async(args: RunArgs) -> Result<ExitCode> {
    let started = Instant::now();
    let config = load_config(&args.config, !args.watch.is_empty())
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("refusing to start on a broken configuration")?;
    config.log_warnings();

    let mut probes = KernelProbes::load()?;
    log::info!("signals: {}", probes.signals());
    let stats_guard = RunStatsGuard::enable()
        .inspect_err(|e| log::warn!("eBPF cost will read 0: {e:#}"))
        .ok();
    let mut events = EventStream::new(probes.take_events()?)?;

    let mut options = SamplerOptions::default();
    if let Some(secs) = args.read_timeout_for_testing {
        options.read_timeout = Duration::from_secs(secs);
    }
    let (sampler, mut reports) = Sampler::spawn(options)?;

    let dm: Option<Arc<dyn MapSource>> = if args.watch.is_empty() {
        Some(Arc::new(DmDiscovery::open().context(
            "no device-mapper here; use --watch DEVICE... --observe to watch devices directly",
        )?))
    } else {
        None
    };
    let topology = match &dm {
        Some(dm) => Topology::discover(dm.as_ref())?,
        None => Topology::from_watch_list(&args.watch)?,
    };
    let observe = args.observe || dm.is_none();
    let actuators: Box<dyn Actuators> = if dm.is_none() {
        if !args.observe {
            log::warn!("--watch devices are not dm paths: nothing will be failed (observe mode)");
        }
        Box::new(Fixed::new(
            Arc::new(Observe::new()),
            "observe: --watch devices are watched, never acted on",
        ))
    } else if args.observe {
        Box::new(Fixed::new(
            Arc::new(Observe::new()),
            "observe mode: decisions are logged, no path is failed or reinstated",
        ))
    } else {
        let dm_messages = DmMessage::open()
            .map(|dm| Arc::new(dm) as Arc<dyn Actuator>)
            .ok();
        Box::new(FollowMultipathd::start(
            MultipathdSocket::new(),
            dm_messages,
        )?)
    };
    // Actuator calls (a round trip to multipathd each) are made off the event loop.
    let (actuator_worker, mut actions_done) = WorkerThread::spawn()?;
    log::info!(
        "actuator: {} ({})",
        actuators.current().name(),
        actuators.reason()
    );

    let held_out = if observe {
        HeldOutFile::open_read_only(&args.state_file)?
    } else {
        HeldOutFile::open(&args.state_file)?
    };
    if let Some(problem) = held_out.problem() {
        log::error!("state file: {problem}");
    }
    let signals = probes.signals().clone();
    let mut daemon = Daemon::new(DaemonParts {
        kernel: Box::new(probes),
        signals,
        sampler: Box::new(sampler),
        actuators,
        runner: Box::new(actuator_worker),
        dm: dm.clone(),
        config,
        settings: DaemonSettings {
            episode_gap: Duration::from_millis(args.episode_gap_ms),
            sample_time_for_testing: args.sample_time_for_testing.map(Duration::from_secs),
        },
        held_out,
        observe,
    });
    if daemon.settings.sample_time_for_testing.is_some() {
        log::warn!("sampling runs shortened for testing; not for production");
    }
    daemon.apply_topology(topology, monotonic_now())?;
    daemon.adopt_held_out(&Default::default(), monotonic_now());
    daemon.reconcile(monotonic_now());
    for map in &daemon.topology.maps {
        let paths: Vec<_> = map.paths.iter().map(|p| p.device.to_string()).collect();
        log::info!("watching map {}: {}", map.name, paths.join(", "));
    }
    if observe {
        for (name, entry) in daemon.held_out.held_out() {
            log::warn!(
                "{name} ({}) of map {} is held out by a previous run; observe mode leaves it so",
                entry.device,
                entry.map
            );
        }
    }
    log_left_to_multipathd(&daemon);

    let uevents = match &dm {
        Some(_) => Some(UeventListener::open().context("listening to uevents")?),
        None => None,
    };
    if dm.is_some() {
        log::info!(
            "path failures from: {} (block-layer errors are counted, never failures)",
            if daemon.wants_path_uevents() {
                "dm-mpath's PATH_FAILED uevents"
            } else {
                "dm-mpath's PATH_FAILED via the dm_path_uevent kprobe"
            }
        );
    }

    // A scrape asks the event loop for a snapshot: built on demand, so an idle daemon that
    // nobody scrapes does no work, and a scrape always sees the kernel's latest counters.
    let (snapshot_requests, mut snapshot_queue) =
        tokio::sync::mpsc::channel::<tokio::sync::oneshot::Sender<Snapshot>>(16);
    let (stop_http, http_stopped) = tokio::sync::oneshot::channel::<()>();
    let listener = crate::http::server::bind(args.listen).await?;
    let source = move || -> Snapshot {
        let (reply, answer) = tokio::sync::oneshot::channel();
        if snapshot_requests.blocking_send(reply).is_err() {
            return Snapshot::default(); // shutting down
        }
        let mut snapshot = answer.blocking_recv().unwrap_or_default();
        // FC statistics cost the HBA driver a query each: read here, on the scrape's thread,
        // never on the event loop.
        let sysfs = crate::dm::Sysfs::default();
        snapshot.fc_host_ports = crate::dm::fc::host_ports(&sysfs);
        snapshot.fc_remote_ports = crate::dm::fc::remote_ports(&sysfs);
        snapshot
    };
    let http = tokio::spawn(crate::http::server::serve_on(listener, source, async {
        let _ = http_stopped.await;
    }));

    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sighup = signal(SignalKind::hangup())?;
    // dm-mpath's own view (paths its checker reinstated, maps that came and went) is read
    // again this often even without a uevent, in case one was missed.
    let mut resync = tokio::time::interval(RESYNC_INTERVAL);
    let (probe_answers, mut probe_answered) = tokio::sync::mpsc::unbounded_channel();
    let mut probing = false;
    let deadline = args
        .duration
        .map(|secs| tokio::time::Instant::now() + Duration::from_secs(secs));
    // Uevents come in bursts (a reload is several, a fabric event hundreds): they are gathered
    // for REDISCOVERY_DEBOUNCE and answered with one rediscovery.
    let mut rediscovery: Option<(tokio::time::Instant, std::collections::BTreeSet<String>)> = None;
    // Latency windows (slow paths) end on this tick; it reads only the measured paths' maps.
    let mut latency_tick = tokio::time::interval(LATENCY_TICK);
    let mut systemd = Supervisor::from_env();
    let mut supervise = tokio::time::interval(systemd.tick_interval());
    systemd.ready(&daemon);
    loop {
        let timer = next_timer(&daemon);
        let rediscover_at = rediscovery.as_ref().map(|(at, _)| *at);
        tokio::select! {
            batch = events.next_batch() => daemon.on_kernel_events(batch?, monotonic_now()),
            Some(report) = reports.recv() => daemon.on_sample_report(report, monotonic_now()),
            Some(done) = actions_done.recv() => daemon.on_action_done(done, monotonic_now()),
            _ = tokio::time::sleep_until(timer) => daemon.on_timer(monotonic_now()),
            Some(reply) = snapshot_queue.recv() => {
                let _ = reply.send(daemon.snapshot(started.elapsed().as_secs_f64()));
            }
            _ = resync.tick(), if dm.is_some() => {
                // Whether multipathd answers is asked off the loop too (it may hang).
                if !probing && let Some(probe) = daemon.actuators.probe() {
                    probing = true;
                    let answers = probe_answers.clone();
                    tokio::task::spawn_blocking(move || {
                        let _ = answers.send(probe());
                    });
                }
                if !daemon.check_events_lost(monotonic_now()) {
                    daemon.resync(monotonic_now());
                }
            }
            _ = sleep_until_option(rediscover_at) => {
                if let Some((_, removed)) = rediscovery.take() {
                    daemon.rediscover(&removed, monotonic_now());
                }
            }
            Some(answer) = probe_answered.recv() => {
                probing = false;
                daemon.refresh_actuators_from(answer, monotonic_now());
            }
            event = next_uevent(uevents.as_ref()) => match event {
                Ok(MultipathEvent::DevicesChanged(change)) => {
                    log::debug!("devices changed ({change:?}): re-discovering maps shortly");
                    let (_, removed) = rediscovery.get_or_insert_with(|| {
                        (tokio::time::Instant::now() + REDISCOVERY_DEBOUNCE, Default::default())
                    });
                    if let DeviceChange::Removed(name) = &change {
                        removed.insert(name.clone());
                    }
                }
                Ok(MultipathEvent::PathFailed(path)) if daemon.wants_path_uevents() => {
                    daemon.on_path_uevent(true, path.path, monotonic_now());
                }
                Ok(MultipathEvent::PathReinstated(path)) if daemon.wants_path_uevents() => {
                    daemon.on_path_uevent(false, path.path, monotonic_now());
                }
                Ok(_) => {}
                Err(e) => log::warn!("uevent listener: {e:#}"),
            },
            _ = supervise.tick() => systemd.tick(&daemon),
            _ = latency_tick.tick() => daemon.on_latency_tick(monotonic_now()),
            _ = sighup.recv() => reload(&mut daemon, &args.config, !args.watch.is_empty()),
            _ = sigterm.recv() => { log::info!("SIGTERM: shutting down"); break; }
            _ = sigint.recv() => { log::info!("SIGINT: shutting down"); break; }
            _ = sleep_until_option(deadline) => { log::info!("--duration reached"); break; }
        }
    }
    systemd.stopping();
    // Paths are given back with the calls made in place, once the jobs under way are done.
    finish_in_flight(&mut daemon, &mut actions_done).await;
    daemon.runner = Box::new(Inline);
    daemon.shutdown(args.keep_failed_on_exit);
    print_summary(&daemon.snapshot(started.elapsed().as_secs_f64()));
    let _ = stop_http.send(());
    let _ = http.await;
    drop(stats_guard);
    Ok(ExitCode::SUCCESS)
}

/// Waits for the actuator jobs under way (and what waited behind them), each no longer than
/// twice multipathd's socket timeout.
async fn finish_in_flight(
    daemon: &mut Daemon,
    done: &mut tokio::sync::mpsc::UnboundedReceiver<actuation::Done>,
) {
    let patience = 2 * crate::actuator::multipathd::DEFAULT_TIMEOUT;
    while !daemon.in_flight.is_empty() {
        match tokio::time::timeout(patience, done.recv()).await {
            Ok(Some(outcome)) => daemon.on_action_done(outcome, monotonic_now()),
            _ => {
                log::error!(
                    "{} actuator call(s) did not finish: {:?}",
                    daemon.in_flight.len(),
                    daemon.in_flight.keys().collect::<Vec<_>>()
                );
                break;
            }
        }
    }
}

/// marginal's configuration, with multipathd's unless the paths are `--watch` devices (no
/// multipathd map has them).
fn load_config(config: &ConfigArgs, watch: bool) -> Result<Config, crate::config::ConfigError> {
    let loaded = config.load()?;
    Ok(if watch {
        loaded.without_multipathd()
    } else {
        loaded
    })
}

/// Says which maps marginal leaves to multipathd (start-up and reload): it acts on nothing
/// there, and the admin should know why.
fn log_left_to_multipathd(daemon: &Daemon) {
    if let Some(multipathd) = daemon.config().multipathd() {
        let files: Vec<_> = multipathd
            .files()
            .iter()
            .map(|f| f.display().to_string())
            .collect();
        let running = if multipathd.has_running() {
            " and its running configuration"
        } else {
            ""
        };
        log::info!(
            "multipathd's configuration read to leave it the maps it checks itself: [{}]{running}",
            files.join(", ")
        );
    }
    if let Some(missing) = daemon.config().missing_main_file()
        && daemon.config().files().is_empty()
    {
        log::warn!("no {}: checking is off for every map", missing.display());
    }
    for map in &daemon.topology.maps {
        if let Some(reason) = daemon.config().multipathd_checks(&map.identity) {
            log::warn!(
                "map {}: acting on nothing, left to multipathd: {reason}",
                map.name
            );
            continue;
        }
        let resolved = daemon.resolved(&map.identity);
        if resolved.checking.is_err() {
            continue;
        }
        if resolved.action.fallback.is_some() {
            log::warn!("map {}: marginal paths: {}", map.name, resolved.action);
        } else if resolved.action.effective == crate::engine::PathAction::SetMarginal {
            log::info!(
                "map {}: marginal paths are set marginal through multipathd (a last resort in \
                 a lowest-priority group), not failed",
                map.name
            );
        }
    }
}

/// SIGHUP: read marginal's and multipathd's configuration again. A broken file leaves the
/// running settings as they were.
fn reload(daemon: &mut Daemon, config: &ConfigArgs, watch: bool) {
    match load_config(config, watch) {
        Ok(new) => {
            new.log_warnings();
            daemon.set_config(new);
            match daemon.reapply_all(monotonic_now()) {
                Ok(()) => log::info!("SIGHUP: configuration reloaded"),
                Err(e) => log::error!("SIGHUP: applying the reloaded configuration: {e:#}"),
            }
            log_left_to_multipathd(daemon);
        }
        Err(e) => log::error!("SIGHUP: keeping the running configuration: {e}"),
    }
}

/// dm-mpath's own view (paths its checker reinstated, maps that came and went, a table
/// reload that put a held path back) is read again this often even without a uevent, and
/// multipathd is looked for; a missed event costs at most this long.
const RESYNC_INTERVAL: Duration = Duration::from_secs(5);
/// How often latency windows are looked at: a window ends at most this late.
const LATENCY_TICK: Duration = Duration::from_secs(1);

/// How long uevents are gathered before one rediscovery answers them all.
const REDISCOVERY_DEBOUNCE: Duration = Duration::from_millis(100);

async fn next_uevent(listener: Option<&UeventListener>) -> Result<MultipathEvent> {
    match listener {
        Some(listener) => listener.next_event().await,
        None => std::future::pending().await,
    }
}

fn next_timer(daemon: &Daemon) -> tokio::time::Instant {
    let far = tokio::time::Instant::now() + Duration::from_secs(3600);
    match daemon.next_deadline() {
        None => far,
        Some(at) => {
            let wait = at.saturating_since(monotonic_now());
            tokio::time::Instant::now() + wait
        }
    }
}

async fn sleep_until_option(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// What the kernel counted and what the daemon decided, printed on exit.
fn print_summary(snapshot: &Snapshot) {
    println!(
        "marginal: final state after {:.0} s",
        snapshot.uptime_seconds
    );
    for map in &snapshot.maps {
        println!("map {} ({} active paths)", map.name, map.active_paths);
        for path in &map.paths {
            println!(
                "  {} [{}]: state {}, kernel: {} I/O errors in {} failures ({} double), \
                 sampling: {} reads {} errors, last rate {}, verdict {}",
                path.name,
                path.device,
                path.state,
                path.kernel_io_errors,
                path.kernel_failures,
                path.kernel_double_failures,
                path.sampling_reads,
                path.sampling_errors,
                path.last_rate_permille
                    .map_or("-".to_string(), |r| format!("{r} permille")),
                path.last_verdict
            );
        }
    }
}
