//! Part 3: the sampler's CPU per read, and how many paths one core samples at the full rate.
use std::path::Path;

use anyhow::Result;
use serde_json::{Value, json};

use super::{
    BenchArgs, Harness,
    report::{Part, Table, duration_ns, f, percent, u, verdict},
};

const TARGET_PATHS: f64 = 1_000.0;
/// A measurement counts as "at the full rate" from this share of 320 reads/s per path up.
const FULL_RATE_SHARE: f64 = 0.99;

pub fn run(harness: &Harness, args: &BenchArgs, devices: &Path) -> Result<Value> {
    let mut runs = Vec::new();
    for &paths in &args.sampler_paths {
        println!(
            "bench:   sampling {paths} paths for {} s",
            args.sampler_seconds
        );
        runs.push(harness.run(&[
            "sampler-cost".into(),
            "--devices-file".into(),
            Harness::path_arg(devices),
            "--paths".into(),
            paths.to_string(),
            "--read-seconds".into(),
            args.sampler_seconds.to_string(),
        ])?);
    }
    Ok(json!({ "runs": runs }))
}

fn runs(results: &Value) -> &[Value] {
    results["runs"].as_array().map_or(&[], Vec::as_slice)
}

fn rate_share(run: &Value) -> f64 {
    f(&run["reads_per_s_per_path"]) / f(&run["full_rate_per_path"])
}

/// Paths' worth of reads at the full rate that one sampler (one thread) really made.
fn full_rate_paths(run: &Value) -> f64 {
    u(&run["paths"]) as f64 * rate_share(run).min(1.0)
}

/// The largest measurement that kept every path at the full rate: the basis of the
/// extrapolation (beyond it the sampler thread is saturated and the rate drops).
fn extrapolation_basis(results: &Value) -> Option<&Value> {
    runs(results)
        .iter()
        .filter(|r| rate_share(r) >= FULL_RATE_SHARE)
        .max_by_key(|r| u(&r["paths"]))
}

fn best_direct(results: &Value) -> Option<&Value> {
    runs(results)
        .iter()
        .max_by(|a, b| full_rate_paths(a).total_cmp(&full_rate_paths(b)))
}

pub fn summary(results: &Value) -> Vec<(String, String, &'static str, Option<bool>)> {
    let mut rows = Vec::new();
    if let Some(basis) = extrapolation_basis(results) {
        let per_core = f(&basis["paths_per_core_process"]);
        rows.push((
            "paths per core at the full rate, extrapolated".into(),
            format!(
                "{per_core:.0} ({} per read, at {} paths)",
                duration_ns(f(&basis["process_cpu_ns_per_read"])),
                u(&basis["paths"])
            ),
            ">= 1,000",
            Some(per_core >= TARGET_PATHS),
        ));
    }
    if let Some(best) = best_direct(results) {
        let direct = full_rate_paths(best);
        rows.push((
            "paths sampled at the full rate, measured directly".into(),
            format!(
                "{direct:.0} ({} paths at {} of the full rate, sampler thread {} of a core)",
                u(&best["paths"]),
                percent(rate_share(best)),
                percent(f(&best["sampler_thread_share_of_a_core"]))
            ),
            ">= 1,000",
            Some(direct >= TARGET_PATHS),
        ));
    }
    rows
}

pub fn part(results: &Value) -> Part {
    let mut table = Table::new(&[
        "paths",
        "reads",
        "errors",
        "reads/s per path (full: 320)",
        "CPU per read (user + kernel)",
        "sampler thread, share of a core",
        "machine busy (cores)",
        "paths per core (extrapolated)",
    ]);
    for run in runs(results) {
        table.row(vec![
            u(&run["paths"]).to_string(),
            u(&run["reads"]).to_string(),
            u(&run["errors"]).to_string(),
            format!(
                "{:.1} ({})",
                f(&run["reads_per_s_per_path"]),
                percent(rate_share(run))
            ),
            format!(
                "{} ({} + {})",
                duration_ns(f(&run["process_cpu_ns_per_read"])),
                duration_ns(f(&run["process_user_ns_per_read"])),
                duration_ns(f(&run["process_kernel_ns_per_read"]))
            ),
            percent(f(&run["sampler_thread_share_of_a_core"])),
            format!(
                "{:.2} of {}",
                f(&run["machine_busy_share"]) * u(&run["cpus"]) as f64,
                u(&run["cpus"])
            ),
            format!("{:.0}", f(&run["paths_per_core_process"])),
        ]);
    }
    let mut targets = Table::new(&["measure", "result", "target", "verdict"]);
    for (measure, result, target, pass) in summary(results) {
        targets.row(vec![
            measure,
            result,
            target.into(),
            pass.map_or("-".into(), verdict),
        ]);
    }

    let mut findings = Vec::new();
    let all = runs(results);
    // getrusage splits user and kernel time by ticks: compare runs with enough CPU time, the
    // largest one at the full rate against the largest of all.
    if let (Some(small), Some(large)) = (
        extrapolation_basis(results),
        all.iter().max_by_key(|r| u(&r["paths"])),
    ) && u(&large["paths"]) > u(&small["paths"])
    {
        findings.push(format!(
            "From {} to {} paths the kernel's part of a read (io_uring submission, block \
             layer, loop queueing, completion) goes from {} to {}, the sampler's own \
             user-space part from {} to {}. The sampler thread keeps its runs in a timer \
             queue: a wake-up services only the runs whose refill or deadline is due and the \
             runs whose reads completed, so its own work per read stays nearly flat as runs \
             are added; reads use buffers registered with io_uring once per run, so the kernel \
             does not pin a page per read.",
            u(&small["paths"]),
            u(&large["paths"]),
            duration_ns(f(&small["process_kernel_ns_per_read"])),
            duration_ns(f(&large["process_kernel_ns_per_read"])),
            duration_ns(f(&small["process_user_ns_per_read"])),
            duration_ns(f(&large["process_user_ns_per_read"])),
        ));
    }
    for run in all {
        let share = rate_share(run);
        if share >= FULL_RATE_SHARE {
            continue;
        }
        let thread = f(&run["sampler_thread_share_of_a_core"]);
        let machine = f(&run["machine_busy_share"]);
        findings.push(format!(
            "At {} paths the sampler delivered {} of the full rate with its thread at {} of a \
             core while {:.2} of the machine's {} cores were busy: {}",
            u(&run["paths"]),
            percent(share),
            percent(thread),
            machine * u(&run["cpus"]) as f64,
            u(&run["cpus"]),
            if thread >= 0.85 {
                "the one sampler thread is (nearly) saturated: it is the limit."
            } else if machine >= 0.9 {
                "the limit was the machine (its cores also run the loop driver's workers, \
                 which do the actual reads, and the other jobs on this host), not the sampler \
                 thread."
            } else {
                "neither was saturated: reads spent the time waiting in the loop driver's \
                 queues."
            }
        ));
        if u(&run["errors"]) > 0 {
            findings.push(format!(
                "The {} errors at {} paths are reads that waited longer than the 1 s read \
                 timeout used here, on a machine this overloaded (every device is healthy): an \
                 artefact of the shortened timeout, not device errors.",
                u(&run["errors"]),
                u(&run["paths"]),
            ));
        }
    }
    findings.push(
        "The loop driver's own work (reading the tmpfs file in its worker threads) is not in \
         these figures: it is the storage stack's cost, paid by any sampler. On a SAN host \
         that part is the HBA driver's."
            .into(),
    );

    Part {
        title: "3. Sampler cost",
        method: "`marginal-bench sampler-cost` runs marginal's `Sampler` (one io_uring thread) \
             on N loop devices at once, each over a sparse file in /dev/shm with direct I/O on \
             (tmpfs accepts O_DIRECT since Linux 6.6, so the loop devices run in direct-I/O \
             mode), with the production slots (32 per path) and refill interval (100 ms): at \
             most 320 reads per second per path. Only the read timeout is shortened (1 s \
             instead of 60 s) so that a 5 s run issues reads at all; no read comes near it unless \
             the machine is overloaded (`errors` above 0: reads that waited over 1 s). \
             Each N runs in a fresh process, and its CPU time (getrusage: the sampler thread, \
             the threads that open devices, the waiting main thread) is divided by the reads \
             made. Paths per core extrapolates that to the full rate: 1 s / (CPU per read x \
             320). The direct measure counts what one sampler really delivered: reads per \
             second / 320. getrusage splits user and kernel time by clock ticks, so that split \
             is rough for the small runs; \"machine busy\" is /proc/stat over all CPUs, in \
             cores."
            .into(),
        tables: vec![table, targets],
        findings,
    }
}
