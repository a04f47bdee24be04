//! Part 1: the eBPF program's cost per event, from the kernel's own accounting (bpf_stats).
//!
//! The kernel counts every run of a program and the time spent in it (only the program: the
//! tracepoint's own overhead is not in `run_time`). We read both before and after a burst of
//! O_DIRECT reads of a flaky loop device in five situations, taking turns in rounds on the
//! same device: watched with errors (daemon settings, and the worst case where every error is
//! a new failure and sends a ring-buffer event), watched without errors, unwatched with errors
//! and unwatched without errors.
//!
//! The program is attached to a tracepoint, so it also runs for other processes' I/O errors
//! on this host during a phase: `runs` beside `expected_runs` shows any such extra.
use std::{
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use marginal::kernel::{KernelProbes, stats::RunStatsGuard};
use marginal_common::{BLOCK_ERROR_PROGRAM, WatchSettings, kernel_dev};
use serde_json::{Value, json};

use crate::{calibrate::EmptyProgram, flaky::FlakyDevice};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The flaky-device binary (tests/src/bin/flaky-device.rs).
    #[arg(long)]
    flaky_device: PathBuf,
    /// Reads per situation, over all rounds.
    #[arg(long, default_value_t = 20_000)]
    reads: usize,
    /// Rounds the reads are split into.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Other (made-up) devices in the watch map, so lookups hit a populated map.
    #[arg(long, default_value_t = 4095)]
    other_watched: u32,
}

const SECOND: u64 = 1_000_000_000;

pub fn run(args: Args) -> Result<Value> {
    let mut probes = KernelProbes::load()?;
    let _stats = RunStatsGuard::enable()?;
    let tracepoint = probes.signals().block_tracepoint.name().to_string();
    // Keep the ring buffer drained, as the daemon does, so the worst case really sends.
    let drained = drain_events(&mut probes)?;
    // The accounting's own floor, measured beside marginal's program (see calibrate.rs).
    let empty = match EmptyProgram::attach("block", &tracepoint) {
        Ok(program) => Some(program),
        Err(e) => {
            eprintln!("marginal-bench: no empty reference program: {e:#}");
            None
        }
    };
    let empty_stats = || empty.as_ref().and_then(|p| p.stats().ok());

    let quiet = WatchSettings {
        window_ns: 60 * SECOND,
        episode_gap_ns: SECOND,
        // A --watch device: block errors are grouped into failures (the costlier path; a dm
        // path's errors are only counted).
        flags: 0,
    };
    // Made-up devices (major 4000 is never allocated) fill the map like a big host's paths.
    for minor in 0..args.other_watched {
        probes.watch(kernel_dev(4000, minor), quiet)?;
    }

    let mut device = FlakyDevice::start(&args.flaky_device, "--healthy")?;
    let dev = device.kernel_dev;
    let mut reader = device.open_direct()?;
    let worst = WatchSettings {
        window_ns: 60 * SECOND,
        episode_gap_ns: 0,
        flags: 0,
    };
    let situations = [
        Situation {
            name: "watched_errors",
            what: "watched device, every read fails (daemon settings: 1 s episode gap, so a burst is one failure)",
            watch: Some(quiet),
            fail: true,
        },
        Situation {
            name: "watched_errors_worst",
            what: "watched device, every read fails and is a new failure and a double failure (episode gap 0: a ring-buffer event per error)",
            watch: Some(worst),
            fail: true,
        },
        Situation {
            name: "watched_healthy",
            what: "watched device, every read succeeds",
            watch: Some(quiet),
            fail: false,
        },
        Situation {
            name: "unwatched_errors",
            what: "unwatched device, every read fails (one map lookup, then return)",
            watch: None,
            fail: true,
        },
        Situation {
            name: "unwatched_healthy",
            what: "unwatched device, every read succeeds",
            watch: None,
            fail: false,
        },
    ];
    // The situations take turns, round after round, so that a burst of load from elsewhere
    // on the host spreads over all of them instead of skewing one.
    let per_round = args.reads.div_ceil(args.rounds.max(1));
    let mut totals = vec![Totals::default(); situations.len()];
    for _ in 0..args.rounds.max(1) {
        for (situation, total) in situations.iter().zip(&mut totals) {
            unwatch(&mut probes, dev)?;
            if let Some(settings) = situation.watch {
                probes.watch(dev, settings)?;
            }
            device.set(if situation.fail {
                "fail-all"
            } else {
                "healthy"
            })?;
            let events_before = drained.load(Ordering::Relaxed);
            let before = stats(&probes)?;
            let empty_before = empty_stats();
            let started = Instant::now();
            let matching = reader.read_n(per_round, !situation.fail)?;
            let wall = started.elapsed();
            let after = stats(&probes)?;
            let empty_after = empty_stats();
            if matching != per_round {
                bail!(
                    "{}: {matching} of {per_round} reads ended as expected",
                    situation.name
                );
            }
            // Events are read by another thread: give it a moment to catch up.
            std::thread::sleep(Duration::from_millis(20));
            total.reads += per_round as u64;
            total.runs += after.0 - before.0;
            total.run_ns += after.1 - before.1;
            if after.0 > before.0 {
                total
                    .round_ns_per_run
                    .push((after.1 - before.1) as f64 / (after.0 - before.0) as f64);
            }
            if let (Some(b), Some(a)) = (empty_before, empty_after) {
                total.empty_runs += a.0 - b.0;
                total.empty_ns += a.1 - b.1;
            }
            total.io_errors += probes.record(dev).map_or(0, |r| r.io_errors);
            total.events += drained.load(Ordering::Relaxed) - events_before;
            total.wall += wall;
        }
    }
    drop(reader);
    drop(device);

    let phases: Vec<Value> = situations
        .iter()
        .zip(&mut totals)
        .map(|(situation, t)| {
            t.round_ns_per_run.sort_by(f64::total_cmp);
            json!({
                "name": situation.name,
                "what": situation.what,
                "reads": t.reads,
                "failed_reads": if situation.fail { t.reads } else { 0 },
                "expected_runs": if situation.fail { t.reads } else { 0 },
                "runs": t.runs,
                "run_time_ns": t.run_ns,
                "ns_per_run": if t.runs > 0 { t.run_ns as f64 / t.runs as f64 } else { 0.0 },
                "round_ns_per_run": t.round_ns_per_run,
                "empty_program_ns_per_run": if t.empty_runs > 0 {
                    json!(t.empty_ns as f64 / t.empty_runs as f64)
                } else {
                    Value::Null
                },
                "kernel_io_errors_counted": t.io_errors,
                "ring_events": t.events,
                "wall_us_per_read": t.wall.as_secs_f64() * 1e6 / t.reads as f64,
            })
        })
        .collect();
    Ok(json!({
        "tracepoint": format!("block:{tracepoint}"),
        "program": BLOCK_ERROR_PROGRAM,
        "program_variant": probes.signals().block_program.describe(),
        "watch_map_entries": args.other_watched + 1,
        "rounds": args.rounds.max(1),
        "phases": phases,
    }))
}

/// One situation measured.
struct Situation {
    name: &'static str,
    what: &'static str,
    /// Watched with these settings, or not watched.
    watch: Option<WatchSettings>,
    /// Every read fails, or every read succeeds.
    fail: bool,
}

/// A situation's sums over the rounds.
#[derive(Clone, Default)]
struct Totals {
    reads: u64,
    runs: u64,
    run_ns: u64,
    round_ns_per_run: Vec<f64>,
    empty_runs: u64,
    empty_ns: u64,
    io_errors: u64,
    events: u64,
    wall: Duration,
}

/// Unwatch `dev` if it is watched. (`KernelProbes::unwatch` of a device that is not in the
/// map fails on this kernel: the delete reports ENOENT as a syscall error, not KeyNotFound.)
pub fn unwatch(probes: &mut KernelProbes, dev: u32) -> Result<()> {
    if probes.record(dev).is_some() {
        probes.unwatch(dev)?;
    }
    Ok(())
}

/// (run_count, run_time ns) of the block error program.
fn stats(probes: &KernelProbes) -> Result<(u64, u64)> {
    let program = probes
        .program_stats()
        .into_iter()
        .find(|p| p.name == BLOCK_ERROR_PROGRAM)
        .context("no block error program in the stats")?;
    Ok((program.run_count, program.run_time.as_nanos() as u64))
}

/// A thread that empties the event ring buffer; returns the count of records read.
fn drain_events(probes: &mut KernelProbes) -> Result<Arc<AtomicU64>> {
    let mut ring = probes.take_events()?;
    let count = Arc::new(AtomicU64::new(0));
    let seen = Arc::clone(&count);
    // Lives until the process exits, like the daemon's reader.
    std::thread::Builder::new()
        .name("bench-drain".into())
        .spawn(move || {
            loop {
                while ring.next().is_some() {
                    seen.fetch_add(1, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        })?;
    Ok(count)
}
