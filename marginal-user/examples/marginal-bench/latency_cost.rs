//! Part 1b: the cost of measuring path latency (slow paths), on a fast device.
//!
//! A loop device over a file in tmpfs (/dev/shm) gives as many IOPS as one thread of O_DIRECT
//! 4 KiB reads can: the worst case for a per-I/O cost.
//!
//! Cost per I/O, from the kernel's accounting (bpf_stats), beside an empty raw tracepoint
//! program on `block_rq_complete` (the accounting's floor), for each way of measuring
//! ([`LatencyProgram`]): the daemon's (`tp_btf`, the request's own start time, direct loads),
//! the same through `bpf_probe_read_kernel` (its fallback), and a per-request map (a start
//! time stored at issue, looked up and deleted at completion). Each in two situations: the
//! device measured (`on`), and attached but the device not measured (`on_unmeasured`: what
//! every other device of the host pays while some map has slow-path checking on). The
//! variants take turns in rounds, each round with freshly loaded programs.
//!
//! Throughput, on and off: the daemon's program attached and detached for many short rounds
//! in alternating order (on, off; off, on; ...); the median of the per-pair ratios of reads
//! per second, and of the reader thread's CPU time per read, with a 95% interval; without the
//! kernel's accounting and the empty program, as on a host. The loop worker completes the
//! reads, so the program runs there: the reader's CPU time does not include it.
use std::{path::PathBuf, process::Command, time::Instant};

use anyhow::{Context, Result, bail};
use marginal::kernel::{KernelProbes, LatencyProgram, stats::RunStatsGuard};
use serde_json::{Value, json};

use crate::{calibrate::EmptyProgram, flaky::DirectReader, measure, paired::PairedChange};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Reads per variant, situation and round of the cost measurement.
    #[arg(long, default_value_t = 50_000)]
    reads: usize,
    /// Rounds of the cost measurement.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Pairs of rounds (on and off) of the throughput measurement.
    #[arg(long, default_value_t = 400)]
    pairs: usize,
    /// Reads per round of the throughput measurement.
    #[arg(long, default_value_t = 2_500)]
    pair_reads: usize,
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

/// A device number no disk has (major 7 is loop's; its minors stop far below this), measured
/// so that the program stays attached while the bench's device is not.
const OTHER_DEVICE: u32 = marginal_common::kernel_dev(7, 999_999);

/// The cost of one variant in one situation, summed over rounds.
#[derive(Default, Clone)]
struct Cost {
    reads: u64,
    runs: u64,
    run_ns: u64,
    empty_runs: u64,
    empty_ns: u64,
    /// Reads the latency map counted (measured situation).
    counted: u64,
}

impl Cost {
    fn json(&self, name: &str, what: &str, programs: usize) -> Value {
        let per_run = |runs: u64, total: u64| (runs > 0).then(|| total as f64 / runs as f64);
        let ns = per_run(self.runs, self.run_ns);
        let floor = per_run(self.empty_runs, self.empty_ns);
        json!({
            "name": name,
            "what": what,
            "reads": self.reads,
            "runs": self.runs,
            "programs_per_io": programs,
            "reads_counted_in_histogram": self.counted,
            "ns_per_run": ns,
            "empty_program_ns_per_run": floor,
            // Each program run pays the accounting's floor once.
            "ns_per_io_above_empty": ns.zip(floor).map(|(ns, floor)| (ns - floor) * programs as f64),
        })
    }
}

struct Variant {
    program: LatencyProgram,
    name: &'static str,
    what: &'static str,
    on: Cost,
    unmeasured: Cost,
}

fn program_stats(probes: &KernelProbes, program: LatencyProgram) -> (u64, u64) {
    probes
        .program_stats()
        .into_iter()
        .filter(|p| program.stats_names().contains(&p.name.as_str()))
        .fold((0, 0), |(runs, ns), p| {
            (runs + p.run_count, ns + p.run_time.as_nanos() as u64)
        })
}

fn thread_cpu_ns() -> u64 {
    let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID)
        .expect("the thread CPU clock is always readable");
    now.tv_sec() as u64 * 1_000_000_000 + now.tv_nsec() as u64
}

/// `n` reads: (seconds, this thread's CPU nanoseconds).
fn timed_reads(reader: &mut DirectReader, n: usize) -> Result<(f64, u64)> {
    let cpu = thread_cpu_ns();
    let started = Instant::now();
    for _ in 0..n {
        if !reader.read()? {
            bail!("a read of the tmpfs loop device failed");
        }
    }
    Ok((started.elapsed().as_secs_f64(), thread_cpu_ns() - cpu))
}

pub fn run(args: Args) -> Result<Value> {
    let device = TmpfsLoop::create(args.size_mib)?;
    let dev = device.kernel_dev()?;
    let mut reader = DirectReader::open(&device.node)?;
    // Warm the page cache and the device once.
    timed_reads(&mut reader, args.reads.min(10_000))?;
    let variants = cost(&args, dev, &mut reader)?;
    // Without the accounting and the empty program: what the daemon's program costs a host.
    let throughput = throughput(&args, dev, &mut reader)?;
    Ok(json!({
        "device": "loop over a tmpfs file, O_DIRECT 4 KiB reads, one thread",
        "rounds": args.rounds.max(1),
        "reads": args.reads,
        "variants": variants,
        "throughput": throughput,
    }))
}

/// Each way of measuring, measured and not, from the kernel's accounting.
fn cost(args: &Args, dev: u32, reader: &mut DirectReader) -> Result<Value> {
    let _stats = RunStatsGuard::enable()?;
    let empty = EmptyProgram::attach_raw("block_rq_complete")
        .map_err(|e| eprintln!("marginal-bench: no empty raw tracepoint program: {e:#}"))
        .ok();
    let empty_stats = || empty.as_ref().and_then(|p| p.stats().ok());
    let mut variants = [
        Variant {
            program: LatencyProgram::KernelStartTime,
            name: "kernel_start_time",
            what: "request's own start time, tp_btf, direct loads (the daemon's)",
            on: Cost::default(),
            unmeasured: Cost::default(),
        },
        Variant {
            program: LatencyProgram::KernelStartTimeProbeRead,
            name: "kernel_start_time_probe_read",
            what: "request's own start time, raw tracepoint, probe reads (fallback)",
            on: Cost::default(),
            unmeasured: Cost::default(),
        },
        Variant {
            program: LatencyProgram::PerRequestMap,
            name: "per_request_map",
            what: "per-request map: stored at issue, taken at completion",
            on: Cost::default(),
            unmeasured: Cost::default(),
        },
    ];
    for _ in 0..args.rounds.max(1) {
        for variant in &mut variants {
            // Fresh programs and maps for each: dropping the probes detaches them.
            let mut probes = KernelProbes::load()?;
            probes.choose_latency_program(variant.program)?;
            // `on` first: turning the device on attaches the program. For `on_unmeasured` a
            // made-up device is measured (as another map's paths would be), keeping it attached.
            for (cost, measured) in [(&mut variant.on, true), (&mut variant.unmeasured, false)] {
                if !measured {
                    probes.measure_latency(OTHER_DEVICE, true)?;
                }
                probes.measure_latency(dev, measured)?;
                let (runs0, ns0) = program_stats(&probes, variant.program);
                let empty0 = empty_stats();
                timed_reads(reader, args.reads)?;
                let (runs1, ns1) = program_stats(&probes, variant.program);
                if let (Some(a), Some(b)) = (empty0, empty_stats()) {
                    cost.empty_runs += b.0 - a.0;
                    cost.empty_ns += b.1 - a.1;
                }
                cost.reads += args.reads as u64;
                cost.runs += runs1 - runs0;
                cost.run_ns += ns1 - ns0;
                if measured {
                    // A run the kernel skips (the CPU was already in a BPF program) is a read
                    // not counted; more than a few would mean the program is not doing its job.
                    let counted = probes.latency(dev).map_or(0, |l| l.read.count());
                    cost.counted += counted;
                    if counted < args.reads as u64 * 99 / 100 {
                        bail!(
                            "{}: the latency map counted {counted} of {} reads",
                            variant.name,
                            args.reads
                        );
                    }
                }
            }
        }
    }

    Ok(Value::Array(
        variants
            .iter()
            .map(|v| {
                let programs = v.program.stats_names().len();
                json!({
                    "name": v.name,
                    "what": v.what,
                    "program": v.program.describe(),
                    "situations": [
                        v.on.json("on", "device measured", programs),
                        v.unmeasured.json(
                            "on_unmeasured",
                            "attached, device not measured (any other)",
                            programs,
                        ),
                    ],
                })
            })
            .collect(),
    ))
}

/// The daemon's program on and off in many short alternating rounds; then the same with
/// the empty program, which tells what attaching anything to `block_rq_complete` costs.
fn throughput(args: &Args, dev: u32, reader: &mut DirectReader) -> Result<Value> {
    let mut probes = KernelProbes::load()?;
    probes.measure_latency(dev, true)?;
    let program = probes.signals().latency_program;
    let mut daemon = paired_rounds(args, reader, |on| {
        if on {
            probes.measure_latency(dev, true)
        } else {
            probes.detach_latency()
        }
    })?;
    probes.detach_latency()?;
    daemon["program"] = json!(program.map(|p| p.describe()));
    daemon["reads_counted_in_histogram"] = json!(probes.latency(dev).map_or(0, |l| l.read.count()));
    drop(probes);

    let mut empty = None;
    let mut floor = paired_rounds(args, reader, |on| {
        empty = if on {
            Some(EmptyProgram::attach_raw("block_rq_complete")?)
        } else {
            None
        };
        Ok(())
    })?;
    floor["program"] = json!("an empty raw tracepoint program on block_rq_complete");
    daemon["empty_program"] = floor;
    Ok(daemon)
}

/// Pairs of rounds, `switch(true)` before each `on` round and `switch(false)` before each
/// `off` one, in alternating order.
fn paired_rounds(
    args: &Args,
    reader: &mut DirectReader,
    mut switch: impl FnMut(bool) -> Result<()>,
) -> Result<Value> {
    let mut iops_pairs = Vec::new();
    let mut cpu_pairs = Vec::new();
    // (reads, seconds, thread CPU ns, machine busy ns) of the on and off rounds.
    let mut totals = [(0u64, 0f64, 0u64, 0u64); 2];
    for pair in 0..args.pairs.max(1) {
        let order = if pair % 2 == 0 {
            [true, false]
        } else {
            [false, true]
        };
        let mut figures = [(0f64, 0f64); 2];
        for on in order {
            switch(on)?;
            let busy = measure::system_busy_ns()?;
            let (seconds, cpu) = timed_reads(reader, args.pair_reads)?;
            let busy = measure::system_busy_ns()? - busy;
            let reads = args.pair_reads as f64;
            let i = usize::from(!on);
            figures[i] = (reads / seconds, cpu as f64 / reads);
            let total = &mut totals[i];
            total.0 += args.pair_reads as u64;
            total.1 += seconds;
            total.2 += cpu;
            total.3 += busy;
        }
        iops_pairs.push((figures[0].0, figures[1].0));
        cpu_pairs.push((figures[0].1, figures[1].1));
    }
    switch(false)?;
    let rounds = |(reads, seconds, cpu, busy): (u64, f64, u64, u64)| {
        json!({
            "reads": reads,
            "reads_per_second": reads as f64 / seconds,
            "thread_cpu_ns_per_read": cpu as f64 / reads as f64,
            "machine_busy_ns_per_read": busy as f64 / reads as f64,
        })
    };
    Ok(json!({
        "pairs": args.pairs.max(1),
        "reads_per_round": args.pair_reads,
        "on": rounds(totals[0]),
        "off": rounds(totals[1]),
        "reads_per_second_change": PairedChange::of(&iops_pairs).map(|c| c.json()),
        "resolves_1_percent": PairedChange::of(&iops_pairs).map(|c| c.resolves(1.0)),
        "thread_cpu_per_read_change": PairedChange::of(&cpu_pairs).map(|c| c.json()),
    }))
}
