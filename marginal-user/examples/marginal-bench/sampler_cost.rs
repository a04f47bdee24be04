//! Part 3: the sampler's CPU cost per read, and how many paths one core can sample at the
//! full rate (32 slots refilled every 100 ms: at most 320 reads per second per path).
//!
//! One process per measurement (xtask runs this once per path count), so getrusage covers the
//! sampler alone: its io_uring thread, the short-lived threads that open devices, and this
//! thread waiting for reports. The devices are loop devices over sparse files in /dev/shm
//! (direct I/O on), so the device itself costs almost nothing; the loop driver's own work runs
//! in kernel worker threads, outside this process, and is reported separately as the change
//! in the whole machine's busy time (which also holds anything else the host was doing).
use std::{path::PathBuf, time::Duration};

use anyhow::{Context, Result, bail};
use marginal::sampler::{SampleOutcome, Sampler, SamplerOptions};
use serde_json::{Value, json};

use crate::measure;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// File with one block device node per line (from `loops-create`).
    #[arg(long)]
    devices_file: PathBuf,
    /// How many of them to sample at once.
    #[arg(long)]
    paths: usize,
    /// Seconds during which reads are issued.
    #[arg(long, default_value_t = 5)]
    read_seconds: u64,
}

/// The spec's full rate per path: 32 slots every 100 ms.
const FULL_RATE_PER_PATH: f64 = 320.0;

pub fn run(args: Args) -> Result<Value> {
    let text = std::fs::read_to_string(&args.devices_file)?;
    let devices: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
    if devices.len() < args.paths {
        bail!(
            "{} devices in {}, {} asked for",
            devices.len(),
            args.devices_file.display(),
            args.paths
        );
    }
    // Production slots and refill interval. The read timeout is 1 s instead of 60 s only so
    // that a short run issues reads at all (no read starts once elapsed + timeout >= sample
    // time); every read here completes in microseconds, so no timeout ever fires.
    let options = SamplerOptions {
        read_timeout: Duration::from_secs(1),
        ..SamplerOptions::default()
    };
    let sample_time = Duration::from_secs(args.read_seconds) + options.read_timeout;
    let (sampler, mut reports) = Sampler::spawn(options)?;

    let (user_before, system_before_self) = measure::rusage_self_split_ns();
    let system_before = measure::system_busy_ns()?;
    let started = std::time::Instant::now();
    for (i, node) in devices.iter().take(args.paths).enumerate() {
        sampler.start(format!("path{i}"), *node, sample_time)?;
    }
    let mut reads = 0;
    let mut errors = 0;
    let mut failed = Vec::new();
    for _ in 0..args.paths {
        let report = reports
            .blocking_recv()
            .context("the sampler stopped without a report")?;
        reads += report.reads;
        errors += report.errors;
        if let SampleOutcome::Failed(why) = report.outcome {
            failed.push(why);
        }
    }
    let wall = started.elapsed();
    let (user_after, system_after_self) = measure::rusage_self_split_ns();
    let user_ns = user_after - user_before;
    let kernel_ns = system_after_self - system_before_self;
    let process_ns = user_ns + kernel_ns;
    let system_ns = measure::system_busy_ns()? - system_before;
    let sampler_thread_ns: u64 = measure::thread_cpu_ns(std::process::id())?
        .iter()
        // Thread names are cut to 15 bytes in comm: "marginal-sampler" reads "marginal-sample".
        .filter(|(name, _)| "marginal-sampler".starts_with(name.as_str()) && name.len() >= 15)
        .map(|(_, ns)| ns)
        .sum();
    drop(sampler);
    if !failed.is_empty() {
        bail!("{} runs failed, e.g. {}", failed.len(), failed[0]);
    }
    if reads == 0 {
        bail!("no reads were made");
    }

    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per_read = |ns: u64| ns as f64 / reads as f64;
    let paths_per_core = |ns_per_read: f64| 1e9 / (ns_per_read * FULL_RATE_PER_PATH);
    Ok(json!({
        "paths": args.paths,
        "read_seconds": args.read_seconds,
        "wall_s": wall.as_secs_f64(),
        "reads": reads,
        "errors": errors,
        "reads_per_s_per_path": reads as f64 / args.paths as f64 / args.read_seconds as f64,
        "full_rate_per_path": FULL_RATE_PER_PATH,
        "process_cpu_ns_per_read": per_read(process_ns),
        "process_user_ns_per_read": per_read(user_ns),
        "process_kernel_ns_per_read": per_read(kernel_ns),
        "sampler_thread_cpu_ns_per_read": per_read(sampler_thread_ns),
        "system_cpu_ns_per_read": per_read(system_ns),
        // How busy the whole machine was (all CPUs): near 100% means the rate was limited by
        // the machine, not by the sampler thread.
        "cpus": cpus,
        "machine_busy_share": system_ns as f64 / (wall.as_nanos() as f64 * cpus as f64),
        "process_cpu_share_of_a_core": process_ns as f64 / wall.as_nanos() as f64,
        "sampler_thread_share_of_a_core": sampler_thread_ns as f64 / wall.as_nanos() as f64,
        "paths_per_core_process": paths_per_core(per_read(process_ns)),
        "paths_per_core_system": paths_per_core(per_read(system_ns)),
    }))
}
