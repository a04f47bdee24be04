//! Part 1b: the cost of measuring path latency (slow paths), on a fast device.
//!
//! A loop device over a file in tmpfs (/dev/shm) gives as many IOPS as one thread of O_DIRECT
//! 4 KiB reads can: the worst case for a per-I/O cost. In rounds, taking turns:
//! * `off`: no latency program attached (the default: no map has slow-path checking);
//! * `on`: the latency program attached and the device measured.
//!
//! Reported: reads per second of each (the throughput difference), and from the kernel's
//! accounting (bpf_stats) the latency program's ns per run, beside an empty raw tracepoint
//! program on the same tracepoint (the accounting's floor). Also `on_unmeasured`: attached,
//! the device not measured, which is what every other device of the host pays while some map
//! has slow-path checking on.
use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use anyhow::{Context, Result, bail};
use marginal::kernel::{KernelProbes, stats::RunStatsGuard};
use marginal_common::LATENCY_PROGRAM;
use serde_json::{Value, json};

use crate::{calibrate::EmptyProgram, flaky::DirectReader};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Reads per phase and round.
    #[arg(long, default_value_t = 100_000)]
    reads: usize,
    /// Rounds.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Size of the tmpfs file behind the loop device, MiB.
    #[arg(long, default_value_t = 256)]
    size_mib: u64,
}

/// A loop device over a tmpfs file; detached and removed on drop.
struct TmpfsLoop {
    file: PathBuf,
    node: PathBuf,
}

impl TmpfsLoop {
    fn create(size_mib: u64) -> Result<Self> {
        let file = PathBuf::from(format!(
            "/dev/shm/marginal-bench-{}.img",
            std::process::id()
        ));
        let f = std::fs::File::create(&file).context("creating the tmpfs file")?;
        // Written, not sparse: reads of holes would not touch pages.
        let chunk = vec![0x5au8; 1 << 20];
        for _ in 0..size_mib {
            std::io::Write::write_all(&mut &f, &chunk)?;
        }
        drop(f);
        let out = Command::new("losetup")
            .args(["--find", "--show"])
            .arg(&file)
            .output()
            .context("running losetup")?;
        if !out.status.success() {
            let _ = std::fs::remove_file(&file);
            bail!("losetup: {}", String::from_utf8_lossy(&out.stderr));
        }
        let node = PathBuf::from(String::from_utf8(out.stdout)?.trim());
        Ok(Self { file, node })
    }

    fn kernel_dev(&self) -> Result<u32> {
        let name = self
            .node
            .file_name()
            .context("loop node")?
            .to_string_lossy();
        let text = std::fs::read_to_string(format!("/sys/block/{name}/dev"))?;
        let (major, minor) = text.trim().split_once(':').context("major:minor")?;
        Ok(marginal_common::kernel_dev(major.parse()?, minor.parse()?))
    }
}

impl Drop for TmpfsLoop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.node).status();
        let _ = std::fs::remove_file(&self.file);
    }
}

#[derive(Default, Clone)]
struct Phase {
    reads: u64,
    seconds: f64,
    runs: u64,
    run_ns: u64,
    empty_runs: u64,
    empty_ns: u64,
    rounds_iops: Vec<f64>,
    /// Reads the latency map counted (measured phase).
    counted: u64,
}

impl Phase {
    fn json(&self, name: &str, what: &str) -> Value {
        let ns = |runs: u64, total: u64| {
            if runs > 0 {
                json!(total as f64 / runs as f64)
            } else {
                Value::Null
            }
        };
        json!({
            "name": name,
            "what": what,
            "reads": self.reads,
            "reads_per_second": self.reads as f64 / self.seconds,
            "round_reads_per_second": self.rounds_iops,
            "runs": self.runs,
            "reads_counted_in_histogram": self.counted,
            "ns_per_run": ns(self.runs, self.run_ns),
            "empty_program_ns_per_run": ns(self.empty_runs, self.empty_ns),
        })
    }
}

fn latency_stats(probes: &KernelProbes) -> (u64, u64) {
    probes
        .program_stats()
        .into_iter()
        .find(|p| p.name == LATENCY_PROGRAM)
        .map_or((0, 0), |p| (p.run_count, p.run_time.as_nanos() as u64))
}

fn timed_reads(node: &Path, n: usize) -> Result<f64> {
    let mut reader = DirectReader::open(node)?;
    let started = Instant::now();
    for _ in 0..n {
        if !reader.read()? {
            bail!("a read of the tmpfs loop device failed");
        }
    }
    Ok(started.elapsed().as_secs_f64())
}

pub fn run(args: Args) -> Result<Value> {
    let _stats = RunStatsGuard::enable()?;
    let device = TmpfsLoop::create(args.size_mib)?;
    let dev = device.kernel_dev()?;
    let empty = EmptyProgram::attach_raw("block_rq_complete")
        .map_err(|e| eprintln!("marginal-bench: no empty raw tracepoint program: {e:#}"))
        .ok();
    let empty_stats = || empty.as_ref().and_then(|p| p.stats().ok());
    // Warm the page cache and the device once.
    timed_reads(&device.node, args.reads.min(10_000))?;

    let mut off = Phase::default();
    let mut on = Phase::default();
    let mut unmeasured = Phase::default();
    for _ in 0..args.rounds.max(1) {
        let seconds = timed_reads(&device.node, args.reads)?;
        off.reads += args.reads as u64;
        off.seconds += seconds;
        off.rounds_iops.push(args.reads as f64 / seconds);

        // Attached for this round only: dropping the probes detaches it.
        let mut probes = KernelProbes::load()?;
        // `on` first: turning the device on attaches the program; off again, it stays attached.
        for (phase, measured) in [(&mut on, true), (&mut unmeasured, false)] {
            probes.measure_latency(dev, measured)?;
            let (runs0, ns0) = latency_stats(&probes);
            let empty0 = empty_stats();
            let seconds = timed_reads(&device.node, args.reads)?;
            let (runs1, ns1) = latency_stats(&probes);
            if let (Some(a), Some(b)) = (empty0, empty_stats()) {
                phase.empty_runs += b.0 - a.0;
                phase.empty_ns += b.1 - a.1;
            }
            phase.reads += args.reads as u64;
            phase.seconds += seconds;
            phase.runs += runs1 - runs0;
            phase.run_ns += ns1 - ns0;
            phase.rounds_iops.push(args.reads as f64 / seconds);
            if measured {
                // Cumulative over the round's probes: this round's reads only. A run the kernel
                // skips (the CPU was already in a BPF program) is a read not counted; more
                // than a few would mean the program is not doing its job.
                let counted = probes.latency(dev).map_or(0, |l| l.read.count());
                phase.counted += counted;
                if counted < args.reads as u64 * 99 / 100 {
                    bail!("the latency map counted {counted} of {} reads", args.reads);
                }
            }
        }
    }
    let off_iops = off.reads as f64 / off.seconds;
    let on_iops = on.reads as f64 / on.seconds;
    Ok(json!({
        "device": "loop over a tmpfs file, O_DIRECT 4 KiB reads, one thread",
        "rounds": args.rounds.max(1),
        "throughput_change_percent": (on_iops - off_iops) / off_iops * 100.0,
        "phases": [
            off.json("off", "no latency program attached (no map with slow-path checking)"),
            on.json("on", "latency program attached, the device measured"),
            unmeasured.json("on_unmeasured", "latency program attached, the device not measured (every other device while a map has slow-path checking)"),
        ],
    }))
}
