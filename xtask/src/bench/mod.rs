//! `cargo xtask bench`: the numbers behind "faster and cheaper" (issue 7), reproducible with
//! one command, printed as tables with their targets and recorded in BENCHMARKS.md.
//!
//! The measuring happens in `marginal-bench` (marginal-user/examples/marginal-bench), which
//! links marginal's library and prints one JSON object per measurement; this module builds
//! it, runs it part by part, and turns the results into tables:
//!
//! 1. [`ebpf_cost`]: ns per run of the block error program (bpf_stats);
//! 2. [`reaction`]: second failed read -> the engine's decision;
//! 3. [`sampler_cost`]: CPU per sampled read, paths per core at the full rate;
//! 4. [`scale`]: RSS, idle CPU and scrape CPU with 16,384 watched paths (the kernel map's
//!    size), and in the VM the cost of a dm re-discovery round at 1,024 maps;
//! 5. [`vm`]: in the VM, the reaction down to device-mapper and the comparison with multipathd
//!    (tests/vm/bench, run by the VM test bed);
//! 6. [`storm`]: in the same VM boot, fabric storms (outage, flap) for marginal and
//!    multipathd's own marginal-path checking side by side.
//!
//! Raw results go to `<target>/bench/results.json`; `--write` rewrites BENCHMARKS.md.
mod ebpf_cost;
mod latency_cost;
mod reaction;
mod report;
mod sampler_cost;
mod scale;
mod storm;
mod vm;

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Rewrite BENCHMARKS.md at the workspace root with this run's results.
    #[arg(long)]
    write: bool,
    /// Skip `cargo xtask setup` (everything is installed already).
    #[arg(long)]
    no_setup: bool,
    /// Part 1: O_DIRECT reads per situation.
    #[arg(long, default_value_t = 20_000)]
    reads: usize,
    /// Part 2: double failures timed.
    #[arg(long, default_value_t = 10_000)]
    trials: usize,
    /// Part 3: numbers of paths sampled at once, one measurement each.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "16,64,256,1024,2048,4096"
    )]
    sampler_paths: Vec<usize>,
    /// Part 3: seconds of reading per measurement.
    #[arg(long, default_value_t = 5)]
    sampler_seconds: u64,
    /// Part 4: watched paths (16,384: the kernel map's size).
    #[arg(long, default_value_t = 16_384)]
    scale_paths: usize,
    /// Part 4: seconds of idle measured per configuration.
    #[arg(long, default_value_t = 30)]
    idle_seconds: u64,
    /// Skip the VM runs (part 2's device-mapper row, part 4's re-discovery rows, parts 5
    /// and 6): most of the measuring time.
    #[arg(long)]
    no_vm: bool,
    /// Measure nothing: print (and with --write, write) the tables of the last run again, from
    /// its raw results in <target>/bench/results.json (after a change to the report's text).
    #[arg(long)]
    report_only: bool,
}

/// The built binaries.
pub struct Harness {
    bench: PathBuf,
    marginal: PathBuf,
    flaky_device: PathBuf,
}

impl Harness {
    /// Run one `marginal-bench` subcommand; its stdout is one JSON object.
    pub fn run(&self, args: &[String]) -> Result<Value> {
        let output = Command::new(&self.bench)
            .args(args)
            .stderr(Stdio::inherit())
            .output()
            .with_context(|| format!("running {}", self.bench.display()))?;
        if !output.status.success() {
            bail!(
                "marginal-bench {} failed ({})",
                args.join(" "),
                output.status
            );
        }
        let text = String::from_utf8_lossy(&output.stdout);
        let last = text.lines().last().unwrap_or("");
        serde_json::from_str(last)
            .with_context(|| format!("marginal-bench {}: not JSON: {last:?}", args.join(" ")))
    }

    fn path_arg(path: &Path) -> String {
        path.display().to_string()
    }
}

/// Detaches the benchmark's loop devices however the run ends.
struct LoopDevices<'a>(&'a Harness);

impl Drop for LoopDevices<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.0.run(&["loops-cleanup".into()]) {
            eprintln!("bench: cleaning up loop devices: {e:#}");
        }
    }
}

pub fn run(args: BenchArgs) -> Result<()> {
    if args.report_only {
        let path = target_dir(&workspace_root()).join("bench/results.json");
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!("reading {} (run `cargo xtask bench` first)", path.display())
        })?;
        let results: Value = serde_json::from_str(&text)
            .with_context(|| format!("{}: not the JSON a bench run writes", path.display()))?;
        return report(&args, &results, &path);
    }
    let started = std::time::Instant::now();
    if !args.no_setup {
        crate::setup::run()?;
    }
    let workspace = workspace_root();
    let target = target_dir(&workspace);
    println!("bench: building marginal, marginal-bench and flaky-device (release)");
    crate::cargo(&[
        "build",
        "-q",
        "--release",
        "-p",
        "marginal-user",
        "--bin",
        "marginal",
        "--example",
        "marginal-bench",
    ])?;
    crate::cargo(&[
        "build",
        "-q",
        "--release",
        "-p",
        "marginal-tests",
        "--bin",
        "flaky-device",
    ])?;
    println!("bench: built in {:.0?}", started.elapsed());
    let release = target.join("release");
    let harness = Harness {
        bench: release.join("examples/marginal-bench"),
        marginal: release.join("marginal"),
        flaky_device: release.join("flaky-device"),
    };
    // Leftovers of an interrupted run would take loop device numbers and memory.
    harness.run(&["loops-cleanup".into()])?;
    let machine = harness.run(&["machine".into()])?;
    let out_dir = target.join("bench");
    std::fs::create_dir_all(&out_dir)?;

    let measuring = std::time::Instant::now();
    let timed = std::time::Instant::now();
    println!("bench: part 1, eBPF cost per event");
    let ebpf = ebpf_cost::run(&harness, &args)?;
    println!("bench: part 2, reaction time ({} trials)", args.trials);
    let reaction = reaction::run(&harness, &args)?;
    println!("bench: parts 1 and 2 took {:.0?}", timed.elapsed());

    let wanted = args
        .sampler_paths
        .iter()
        .copied()
        .chain([args.scale_paths])
        .max()
        .unwrap_or(0);
    let devices = out_dir.join("devices.txt");
    println!("bench: attaching {wanted} loop devices over /dev/shm");
    let loops = LoopDevices(&harness);
    let created = harness.run(&[
        "loops-create".into(),
        "--count".into(),
        wanted.to_string(),
        "--out".into(),
        Harness::path_arg(&devices),
    ])?;
    let timed = std::time::Instant::now();
    println!("bench: part 3, sampler cost");
    let sampler = sampler_cost::run(&harness, &args, &devices)?;
    println!("bench: part 3 took {:.0?}; part 4, scale", timed.elapsed());
    let timed = std::time::Instant::now();
    let scale = scale::run(&harness, &args, &devices)?;
    println!("bench: part 4 took {:.0?}", timed.elapsed());
    drop(loops);
    let vm = if args.no_vm {
        json!({ "error": "not run (--no-vm)" })
    } else {
        let timed = std::time::Instant::now();
        println!("bench: parts 5 and 6 and the VM rows of parts 2 and 4, in the VM");
        let vm = vm::run();
        println!("bench: the VM runs took {:.0?}", timed.elapsed());
        vm
    };

    let results = json!({
        "date": command_output("date", &["-u", "+%Y-%m-%d %H:%M"]),
        "commit": command_output("git", &["-C", &Harness::path_arg(&workspace), "describe", "--always", "--dirty"]),
        "command": command_line(&args),
        "measuring_seconds": measuring.elapsed().as_secs(),
        // The machine is shared: how busy it was by the end, beside the start's figure.
        "loadavg_end": std::fs::read_to_string("/proc/loadavg")
            .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_default(),
        "machine": machine,
        "loop_devices": created,
        "ebpf_cost": ebpf,
        "reaction": reaction,
        "sampler": sampler,
        "scale": scale,
        "vm": vm,
    });
    let json_path = out_dir.join("results.json");
    std::fs::write(&json_path, serde_json::to_string_pretty(&results)?)?;
    report(&args, &results, &json_path)?;
    println!("bench: done in {:.0?}", started.elapsed());
    Ok(())
}

/// Prints the tables of `results` and, with --write, writes BENCHMARKS.md; fails when the VM
/// part did not run (after printing the rest).
fn report(args: &BenchArgs, results: &Value, json_path: &Path) -> Result<()> {
    let parts = vec![
        ebpf_cost::part(&results["ebpf_cost"]),
        reaction::part(&results["reaction"], &results["vm"]),
        sampler_cost::part(&results["sampler"]),
        scale::part(&results["scale"], &results["vm"]),
        vm::part(&results["vm"]),
        storm::part(&vm::sub(&results["vm"], "storm")),
    ];
    print!("{}", report::terminal(&parts));
    println!("\nbench: raw results in {}", json_path.display());
    if args.write {
        let path = workspace_root().join("BENCHMARKS.md");
        std::fs::write(&path, report::document(results, &parts))?;
        println!("bench: wrote {}", path.display());
    }
    let failed: Vec<String> = ["dm_reaction", "vs_multipathd", "storm", "dm_rediscovery"]
        .iter()
        .filter_map(|key| vm::error_of(&results["vm"], key).map(|e| format!("{key}: {e}")))
        .collect();
    if !failed.is_empty() {
        bail!("VM parts without figures: {}", failed.join("; "));
    }
    Ok(())
}

pub(super) fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

fn target_dir(workspace: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"))
}

fn command_output(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// The command that reproduces this run (options that differ from the defaults included).
fn command_line(args: &BenchArgs) -> String {
    let mut line = String::from("cargo xtask bench");
    let defaults = [
        (args.reads != 20_000, format!(" --reads {}", args.reads)),
        (args.trials != 10_000, format!(" --trials {}", args.trials)),
        (
            args.sampler_paths != [16, 64, 256, 1024, 2048, 4096],
            format!(
                " --sampler-paths {}",
                args.sampler_paths
                    .iter()
                    .map(usize::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        ),
        (
            args.sampler_seconds != 5,
            format!(" --sampler-seconds {}", args.sampler_seconds),
        ),
        (
            args.scale_paths != 16_384,
            format!(" --scale-paths {}", args.scale_paths),
        ),
        (
            args.idle_seconds != 30,
            format!(" --idle-seconds {}", args.idle_seconds),
        ),
        (args.no_vm, " --no-vm".to_string()),
    ];
    for (differs, option) in defaults {
        if differs {
            line += &option;
        }
    }
    line
}
