//! Part 2: reaction time, from the second failed read of a path to the daemon's decision.
//!
//! Wired like `marginal run` (daemon/mod.rs and daemon/core.rs): the eBPF programs, the ring
//! buffer read by an [`EventStream`] on a 2-worker tokio runtime, and an [`Engine`] fed the
//! same `DoubleFailure` event `Daemon::on_kernel_event` builds, with the same clock. The map
//! has a second, active path, so the decision is `FailPath` then `StartSampling`; nothing is
//! acted on (no dm on this host), the decision is the end point.
//!
//! Each trial: watch the flaky device afresh (new kernel record), fail one read (the first
//! failure), fail a second read (the double failure), and wait for the decision; then the
//! engine forgets the path and the next trial starts. Three clocks, all CLOCK_MONOTONIC:
//! * `kernel`: the event's own stamp (`bpf_ktime_get_ns()` in the tracepoint, when the block
//!   layer completed the failed request) to the decision;
//! * `user`: the reader's `pread` returning EIO to the decision (negative when the daemon
//!   decided before the reading thread was even scheduled again);
//! * the event's arrival in user space (before the engine runs).
use std::{
    path::PathBuf,
    sync::mpsc,
    time::{Duration, Instant},
};

use anyhow::{Result, bail};
use marginal::{
    daemon::core::monotonic_now,
    engine::{Decision, Engine, Event, MapName, Params, PathKey, Timestamp},
    kernel::{EventStream, KernelEvent, KernelProbes},
};
use marginal_common::WatchSettings;
use serde_json::{Value, json};

use crate::{ebpf_cost::unwatch, flaky::FlakyDevice, measure};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(long)]
    flaky_device: PathBuf,
    #[arg(long, default_value_t = 2000)]
    trials: usize,
}

/// What the event loop saw for one trial.
struct Seen {
    second_ns: u64,
    arrived_ns: u64,
    decided_ns: u64,
    decisions: Vec<&'static str>,
}

pub fn run(args: Args) -> Result<Value> {
    let mut probes = KernelProbes::load()?;
    let mut device = FlakyDevice::start(&args.flaky_device, "--fail-all")?;
    let dev = device.kernel_dev;
    let mut reader = device.open_direct()?;

    // The daemon's runtime: multi-threaded, two workers.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let ring = probes.take_events()?;
    let events = runtime.block_on(async { EventStream::new(ring) })?;
    let (seen_tx, seen_rx) = mpsc::channel::<Seen>();
    runtime.spawn(event_loop(events, dev, seen_tx));

    let settings = WatchSettings {
        window_ns: 60_000_000_000,
        // Every failed read is a failure of its own: two reads make a double failure. (With
        // the daemon's 1 s episode gap the two would have to be a second apart; what happens
        // after the second failure is the same.)
        episode_gap_ns: 0,
        flags: 0,
    };
    let mut user = Vec::with_capacity(args.trials);
    let mut kernel = Vec::with_capacity(args.trials);
    let mut delivery = Vec::with_capacity(args.trials);
    let mut engine_ns = Vec::with_capacity(args.trials);
    let mut missed_by_kernel = 0;
    let started = Instant::now();
    for trial in 0..args.trials {
        unwatch(&mut probes, dev)?;
        probes.watch(dev, settings)?;
        if reader.read()? {
            bail!("trial {trial}: the first read did not fail");
        }
        if reader.read()? {
            bail!("trial {trial}: the second read did not fail");
        }
        let read_returned = measure::mono_ns();
        let seen = match seen_rx.recv_timeout(Duration::from_secs(5)) {
            Ok(seen) => seen,
            Err(e) => {
                // The kernel skips a tracing program when the CPU is already inside BPF (a
                // recursion miss); such a trial has no second failure to react to. Counted and
                // reported, within reason; anything else is a failure of the benchmark.
                let counted = probes.record(dev).map_or(0, |r| r.io_errors);
                if counted < 2 && missed_by_kernel < args.trials / 100 + 1 {
                    missed_by_kernel += 1;
                    continue;
                }
                bail!(
                    "trial {trial}: no decision within 5 s ({e}); the kernel counted \
                     {counted} of the 2 failed reads"
                );
            }
        };
        if seen.decisions != ["FailPath", "StartSampling"] {
            bail!("trial {trial}: unexpected decisions {:?}", seen.decisions);
        }
        user.push(seen.decided_ns as i64 - read_returned as i64);
        kernel.push(seen.decided_ns - seen.second_ns);
        delivery.push(seen.arrived_ns - seen.second_ns);
        engine_ns.push(seen.decided_ns - seen.arrived_ns);
    }
    let wall = started.elapsed();
    unwatch(&mut probes, dev)?;
    drop(reader);
    device.set("healthy")?;
    drop(device);
    runtime.shutdown_background();

    Ok(json!({
        "trials": kernel.len(),
        "trials_missed_by_kernel": missed_by_kernel,
        "wall_s": wall.as_secs_f64(),
        "kernel_to_decision_ns": summary(&mut kernel),
        "read_return_to_decision_ns": summary(&mut user),
        "kernel_to_event_loop_ns": summary(&mut delivery),
        "event_loop_to_decision_ns": summary(&mut engine_ns),
        "decided_before_read_returned": user.iter().filter(|&&v| v < 0).count(),
    }))
}

/// Min, median, p99 and max of `values` (sorted in place).
fn summary<T: Copy + Ord + serde::Serialize>(values: &mut [T]) -> Value {
    values.sort_unstable();
    json!({
        "min": values[0],
        "median": measure::quantile(values, 0.5),
        "p99": measure::quantile(values, 0.99),
        "max": values[values.len() - 1],
    })
}

/// The daemon's event handling for one watched path, reduced to the engine: what
/// `Daemon::on_kernel_event` does for a DoubleFailure of a dm path.
async fn event_loop(mut events: EventStream, dev: u32, seen: mpsc::Sender<Seen>) {
    let map = MapName::new("bench");
    let path = PathKey::new("flaky");
    let peer = PathKey::new("peer");
    let params = Params {
        double_failed_time: Duration::from_secs(60),
        sample_time: Duration::from_secs(120),
        err_rate_threshold: 10,
        recheck_gap_time: Duration::from_secs(300),
        slow: None,
        action: Default::default(),
    };
    let mut engine = Engine::new();
    let now = monotonic_now();
    engine.upsert_map(map.clone(), Some(params), now);
    for key in [&path, &peer] {
        engine
            .add_path(&map, key.clone(), true, now)
            .expect("the map exists");
    }
    loop {
        let Ok(batch) = events.next_batch().await else {
            return;
        };
        for event in batch {
            let now = monotonic_now();
            let KernelEvent::DoubleFailure {
                dev: event_dev,
                first_ns,
                second_ns,
                ..
            } = event
            else {
                continue;
            };
            if event_dev != dev {
                continue;
            }
            let decisions = engine.handle(
                now,
                Event::DoubleFailure {
                    path: path.clone(),
                    first_at: Timestamp::from_nanos(first_ns),
                    second_at: Timestamp::from_nanos(second_ns),
                },
            );
            let decided = measure::mono_ns();
            let names = decisions
                .iter()
                .filter_map(|d| match d {
                    Decision::FailPath { .. } => Some("FailPath"),
                    Decision::StartSampling { .. } => Some("StartSampling"),
                    Decision::KeepInService { .. } => Some("KeepInService"),
                    _ => None,
                })
                .collect();
            // Reset for the next trial (not timed): the path is new to the engine again.
            engine.remove_path(&path, now);
            engine
                .add_path(&map, path.clone(), true, now)
                .expect("the map exists");
            let _ = seen.send(Seen {
                second_ns,
                arrived_ns: now.as_nanos(),
                decided_ns: decided,
                decisions: names,
            });
        }
    }
}
