//! Clocks and the kernel's own accounting of CPU time and memory.
//!
//! CPU time comes from the process CPU-time clock (`clock_getcpuclockid`) and, per thread,
//! `/proc/<pid>/task/*/schedstat` (nanoseconds on the CPU) rather than `/proc/<pid>/stat`
//! (10 ms ticks): an idle daemon uses a few milliseconds in 30 s, below the tick resolution.
use std::fs;

use anyhow::{Context, Result};

/// CLOCK_MONOTONIC in nanoseconds: the clock `bpf_ktime_get_ns()` stamps kernel events with,
/// so kernel and user-space times compare directly.
pub fn mono_ns() -> u64 {
    let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .expect("CLOCK_MONOTONIC is always readable");
    now.tv_sec() as u64 * 1_000_000_000 + now.tv_nsec() as u64
}

/// (user, system) CPU time of this process, exited threads included (getrusage).
pub fn rusage_self_split_ns() -> (u64, u64) {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) };
    // SAFETY: zero-initialised and filled by the kernel.
    let usage = unsafe { usage.assume_init() };
    let ns = |tv: libc::timeval| tv.tv_sec as u64 * 1_000_000_000 + tv.tv_usec as u64 * 1_000;
    (ns(usage.ru_utime), ns(usage.ru_stime))
}

/// (thread name, CPU nanoseconds) of every live thread of `pid`.
pub fn thread_cpu_ns(pid: u32) -> Result<Vec<(String, u64)>> {
    let dir = format!("/proc/{pid}/task");
    let mut threads = Vec::new();
    for entry in fs::read_dir(&dir).with_context(|| format!("reading {dir}"))? {
        let task = entry?.path();
        // A thread can exit between read_dir and the reads: skip it.
        let (Ok(comm), Ok(stat)) = (
            fs::read_to_string(task.join("comm")),
            fs::read_to_string(task.join("schedstat")),
        ) else {
            continue;
        };
        let on_cpu = stat
            .split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        threads.push((comm.trim().to_string(), on_cpu));
    }
    Ok(threads)
}

/// CPU nanoseconds `pid` has used, its exited threads included: the process CPU-time clock.
/// A sum over live threads would drop, or wrap below zero, when a thread that worked in the
/// window exits in it (tokio lets an idle blocking-pool thread go after 10 s).
pub fn process_cpu_ns(pid: u32) -> Result<u64> {
    let clock = nix::time::clock_getcpuclockid(nix::unistd::Pid::from_raw(pid as i32))
        .with_context(|| format!("CPU-time clock of process {pid}"))?;
    let now = nix::time::clock_gettime(clock)
        .with_context(|| format!("reading the CPU-time clock of process {pid}"))?;
    Ok(now.tv_sec() as u64 * 1_000_000_000 + now.tv_nsec() as u64)
}

/// A `Vm*` line of `/proc/<pid>/status`, in KiB.
pub fn status_kib(pid: u32, key: &str) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let text = fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    text.lines()
        .find_map(|line| {
            let rest = line.strip_prefix(key)?.strip_prefix(':')?;
            rest.split_whitespace().next()?.parse().ok()
        })
        .with_context(|| format!("no {key} in {path}"))
}

/// Kernel memory charged to the BPF maps `pid` holds open (`memlock` in their fdinfo): this is
/// not in the process's RSS, so it is reported beside it.
pub fn bpf_map_memlock_bytes(pid: u32) -> u64 {
    let Ok(entries) = fs::read_dir(format!("/proc/{pid}/fdinfo")) else {
        return 0;
    };
    let mut total = 0;
    for entry in entries.flatten() {
        let Ok(info) = fs::read_to_string(entry.path()) else {
            continue;
        };
        if !info.contains("map_type:") {
            continue;
        }
        total += info
            .lines()
            .find_map(|l| l.strip_prefix("memlock:"))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
    }
    total
}

/// Busy CPU time of the whole machine (all CPUs, everything but idle and iowait), from
/// /proc/stat. Includes work done for us by kernel threads (loop workers), and anything else
/// running on the host.
pub fn system_busy_ns() -> Result<u64> {
    let text = fs::read_to_string("/proc/stat")?;
    let line = text.lines().next().context("empty /proc/stat")?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal ...
    let busy: u64 = fields
        .iter()
        .enumerate()
        .filter(|(i, _)| matches!(i, 0 | 1 | 2 | 5 | 6 | 7))
        .map(|(_, v)| v)
        .sum();
    // SAFETY: sysconf is always safe to call.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Ok(busy * 1_000_000_000 / hz)
}

/// The value at quantile `q` (0..=1) of `sorted` (nearest rank).
pub fn quantile<T: Copy>(sorted: &[T], q: f64) -> T {
    assert!(!sorted.is_empty(), "quantile of no samples");
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// The machine the numbers come from, for the report.
pub fn machine() -> serde_json::Value {
    let cpu = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let mem_kib = fs::read_to_string("/proc/meminfo").ok().and_then(|t| {
        t.lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
    });
    // The `hypervisor` CPU flag: timings in a guest include the hypervisor's costs.
    let guest = fs::read_to_string("/proc/cpuinfo").is_ok_and(|t| {
        t.lines()
            .any(|l| l.starts_with("flags") && l.split_whitespace().any(|f| f == "hypervisor"))
    });
    serde_json::json!({
        "cpu": cpu,
        "virtual_machine": guest,
        "cpus": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "kernel": fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_default(),
        "mem_gib": mem_kib.map_or(0.0, |k| k as f64 / 1024.0 / 1024.0),
        "loadavg": fs::read_to_string("/proc/loadavg")
            .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_default(),
    })
}
