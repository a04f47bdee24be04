//! `marginal-bench`: the in-process measurements behind `cargo xtask bench` (issue 7).
//!
//! Each subcommand measures one thing and prints one JSON object on stdout; `cargo xtask
//! bench` runs them, prints the tables with their targets and writes BENCHMARKS.md. Run as
//! root (eBPF, loop devices). Timing lives here, never in tests.
//!
//! * `ebpf-cost`: nanoseconds per run of the block error program, from bpf_stats.
//! * `reaction`: second failed read -> engine decision, over many trials.
//! * `sampler-cost`: CPU per sampled read, and paths per core at the full rate.
//! * `scale-daemon` / `scale-library`: memory and idle CPU with thousands of paths.
//! * `loops-create` / `loops-cleanup`: the loop devices over /dev/shm the last two need.
mod calibrate;
mod ebpf_cost;
mod flaky;
mod latency_cost;
mod loops;
mod measure;
mod paired;
mod reaction;
mod sampler_cost;
mod scale;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "marginal-bench")]
struct Cli {
    #[command(subcommand)]
    command: Part,
}

#[derive(Debug, Subcommand)]
enum Part {
    EbpfCost(ebpf_cost::Args),
    LatencyCost(latency_cost::Args),
    Reaction(reaction::Args),
    SamplerCost(sampler_cost::Args),
    ScaleDaemon(scale::DaemonArgs),
    ScaleLibrary(scale::LibraryArgs),
    /// Attach COUNT loop devices over sparse /dev/shm files; their nodes go to --out.
    LoopsCreate {
        #[arg(long)]
        count: usize,
        #[arg(long, default_value_t = 64)]
        size_mib: u64,
        #[arg(long)]
        out: PathBuf,
    },
    /// Detach and remove every loop device a benchmark left (recognised by backing file).
    LoopsCleanup,
    /// The machine's description (CPU, cores, kernel, memory, load).
    Machine,
}

fn main() -> Result<()> {
    let value = match Cli::parse().command {
        Part::EbpfCost(args) => ebpf_cost::run(args)?,
        Part::LatencyCost(args) => latency_cost::run(args)?,
        Part::Reaction(args) => reaction::run(args)?,
        Part::SamplerCost(args) => sampler_cost::run(args)?,
        Part::ScaleDaemon(args) => scale::run_daemon(args)?,
        Part::ScaleLibrary(args) => scale::run_library(args)?,
        Part::LoopsCreate {
            count,
            size_mib,
            out,
        } => {
            let started = std::time::Instant::now();
            let nodes = loops::create(count, size_mib << 20)?;
            let text: String = nodes.iter().map(|n| format!("{}\n", n.display())).collect();
            std::fs::write(&out, text)?;
            serde_json::json!({ "created": nodes.len(), "seconds": started.elapsed().as_secs_f64() })
        }
        Part::LoopsCleanup => serde_json::json!({ "detached": loops::cleanup()? }),
        Part::Machine => measure::machine(),
    };
    println!("{value}");
    Ok(())
}
