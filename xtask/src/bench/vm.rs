//! The benchmark's VM runs (this host has no device-mapper): the scenarios in tests/vm/bench,
//! booted once on Debian's 6.12 kernel by the VM test bed (`crate::vm`), release build. Each
//! scenario prints `BENCH <scenario> key=value ...` lines; this module gathers them:
//!
//! * `dm-reaction`: per trial, the kernel's timestamps of dm-mpath's second failure of a path and
//!   of the daemon's first sampling read of it, acting through dm messages (part 2's VM row);
//! * `vs-multipathd`: per tool, one round on the same flaky path (part 5).
use anyhow::{Result, bail};
use serde_json::{Map, Value, json};

use super::report::{Part, Table, duration_ns, f, u};
use crate::vm::{KernelChoice, VmTestArgs};

/// The VM results as JSON: `{"kernel", "dm_reaction": {...}, "vs_multipathd": {...}}`, or
/// `{"error": ...}` when the VM run failed (the other parts are still reported).
pub fn run() -> Value {
    match run_scenarios() {
        Ok(v) => v,
        Err(e) => json!({ "error": format!("{e:#}") }),
    }
}

fn run_scenarios() -> Result<Value> {
    let root = super::workspace_root();
    let args = VmTestArgs {
        kernel: KernelChoice::V6_12,
        release: true,
        keep_going: true,
        scenario_dir: Some(root.join("tests/vm/bench")),
        ..VmTestArgs::default()
    };
    let (boots, _) = crate::vm::run_boots(&args)?;
    let Some(boot) = boots.first() else {
        bail!("the VM did not boot");
    };
    let failed: Vec<&str> = boot
        .results
        .iter()
        .filter(|r| r.outcome != crate::vm::Outcome::Pass)
        .map(|r| r.name.as_str())
        .collect();
    let failure = |names: &[&str]| -> Option<String> {
        let hit: Vec<&str> = failed
            .iter()
            .copied()
            .filter(|f| names.contains(f))
            .collect();
        (!hit.is_empty()).then(|| {
            format!(
                "VM scenario(s) {} failed (their output is above)",
                hit.join(", ")
            )
        })
    };
    let lines: Vec<Map<String, Value>> = boot
        .results
        .iter()
        .flat_map(|r| r.output.iter())
        .filter_map(|line| parse_bench_line(line))
        .collect();
    // Each scenario's figures stand on their own: the others are reported when one fails.
    let storm = match failure(&["storm"]) {
        Some(e) => json!({ "error": e }),
        None => {
            let mut storm = super::storm::from_lines(&lines);
            storm["host_calibration_s"] =
                json!(super::storm::host_calibration(&root.join(".vm-cache")));
            storm
        }
    };
    let rediscovery = match failure(&["dm-rediscovery"]) {
        Some(e) => json!({ "error": e }),
        None => super::storm::rediscovery_from_lines(&lines),
    };

    let of = |scenario: &str| -> Vec<&Map<String, Value>> {
        lines.iter().filter(|l| l["scenario"] == scenario).collect()
    };
    let trials = of("dm-reaction");
    let kernel_ns: Vec<f64> = trials
        .iter()
        .map(|t| (f(&t["sampling"]) - f(&t["failure2"])) * 1e9)
        .collect();
    let daemon_ns: Vec<f64> = trials.iter().map(|t| f(&t["daemon"]) * 1e9).collect();
    let mut rounds = Map::new();
    for round in of("vs-multipathd") {
        let tool = round["tool"].as_str().unwrap_or("?").to_string();
        let failure2 = f(&round["failure2"]);
        let ticks = f(&round["cpu_ticks"]) / f(&round["clk_tck"]);
        let to_verdict = f(&round["verdict"]) - failure2;
        rounds.insert(
            tool,
            json!({
                "to_held_s": f(&round["held"]) - failure2,
                "to_sampling_s": f(&round["sampling"]) - failure2,
                "to_verdict_s": to_verdict,
                "reinstated": round["reinstated"],
                "reads": round["reads"],
                "cpu_s": ticks,
                "cpu_per_read_s": ticks / f(&round["reads"]),
                "cpu_share": ticks / to_verdict,
                "rate_permille": round["rate"],
                "verdict": round["verdict_says"],
                "poll_s": round["poll"],
                "daemon_reaction_s": round["daemon_reaction"],
            }),
        );
    }
    let dm_reaction = match failure(&["dm-reaction"]) {
        Some(e) => json!({ "error": e }),
        None => json!({
            "trials": kernel_ns.len(),
            "kernel_ns": stats(&kernel_ns),
            "daemon_ns": stats(&daemon_ns),
        }),
    };
    let vs_multipathd = match failure(&["vs-multipathd"]) {
        Some(e) => json!({ "error": e }),
        None => Value::Object(rounds),
    };
    Ok(json!({
        "kernel": boot.label,
        "dm_reaction": dm_reaction,
        "vs_multipathd": vs_multipathd,
        "storm": storm,
        "dm_rediscovery": rediscovery,
    }))
}

/// `BENCH <scenario> key=value ...` (anywhere in the line: the console prefixes output) as a
/// map with "scenario"; numbers become numbers.
pub(super) fn parse_bench_line(line: &str) -> Option<Map<String, Value>> {
    let rest = &line[line.find("BENCH ")? + "BENCH ".len()..];
    let mut words = rest.split_whitespace();
    let mut map = Map::new();
    map.insert("scenario".into(), words.next()?.into());
    for word in words {
        let (k, v) = word.split_once('=')?;
        let value = v
            .parse::<f64>()
            .ok()
            .and_then(|n| serde_json::Number::from_f64(n).map(Value::Number))
            .unwrap_or_else(|| v.into());
        map.insert(k.into(), value);
    }
    Some(map)
}

pub(super) fn stats(values: &[f64]) -> Value {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return json!({});
    }
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    json!({ "min": v[0], "median": at(0.5), "p99": at(0.99), "max": v[v.len() - 1] })
}

/// Why `vm[key]` has no figures: the VM did not boot, or that scenario failed.
pub fn error_of<'a>(vm: &'a Value, key: &str) -> Option<&'a str> {
    vm["error"].as_str().or(vm[key]["error"].as_str())
}

/// `vm[key]`, or an error saying why the VM part gave nothing for it.
pub fn sub(vm: &Value, key: &str) -> Value {
    match error_of(vm, key) {
        Some(e) => json!({ "error": e }),
        None if vm[key].is_null() => json!({ "error": "not run" }),
        None => vm[key].clone(),
    }
}

/// Part 2's VM row: dm-mpath's second failure of a path -> the daemon's first sampling read.
pub fn reaction_row(vm: &Value) -> Vec<String> {
    let label = "2nd PATH_FAILED -> first sampling read (VM)".to_string();
    if let Some(e) = error_of(vm, "dm_reaction") {
        return vec![
            label,
            "-".into(),
            "-".into(),
            "-".into(),
            "-".into(),
            "-".into(),
            format!("VM run failed: {e}"),
        ];
    }
    let k = &vm["dm_reaction"]["kernel_ns"];
    vec![
        label,
        duration_ns(f(&k["min"])),
        duration_ns(f(&k["median"])),
        duration_ns(f(&k["p99"])),
        duration_ns(f(&k["max"])),
        "-".into(),
        "-".into(),
    ]
}

pub fn reaction_summary(vm: &Value) -> (String, String, &'static str, Option<bool>) {
    let label = "2nd PATH_FAILED -> first sampling read (VM, dm messages)".to_string();
    if let Some(e) = error_of(vm, "dm_reaction") {
        return (label, format!("VM run failed: {e}"), "-", Some(false));
    }
    let r = &vm["dm_reaction"];
    (
        label,
        format!(
            "p99 {} (median {}, {} trials, emulated CPU)",
            duration_ns(f(&r["kernel_ns"]["p99"])),
            duration_ns(f(&r["kernel_ns"]["median"])),
            u(&r["trials"])
        ),
        "-",
        None,
    )
}

/// A count that went through a JSON number.
fn count(v: &Value) -> String {
    format!("{:.0}", f(v))
}

pub(super) fn seconds(s: f64) -> String {
    if s < 1.0 {
        duration_ns(s * 1e9)
    } else {
        format!("{s:.2} s")
    }
}

/// "12x faster" when `a` took less time than `b`, "2x slower" otherwise.
fn faster(a: f64, b: f64) -> String {
    if a < b {
        format!("{} faster", ratio(b, a))
    } else {
        format!("{} slower", ratio(a, b))
    }
}

pub(super) fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 && a.is_finite() && b.is_finite() {
        let r = a / b;
        if r < 10.0 {
            format!("{r:.1}x")
        } else {
            format!("{r:.0}x")
        }
    } else {
        "-".into()
    }
}

/// marginal's reaction to a double failure against multipathd's own checking (issue 15).
const TARGET_REACTION_RATIO: f64 = 100.0;

pub fn summary(vm: &Value) -> Vec<(String, String, &'static str, Option<bool>)> {
    if let Some(e) = error_of(vm, "vs_multipathd") {
        return vec![(
            "against multipathd (VM)".into(),
            format!("VM run failed: {e}"),
            "-",
            Some(false),
        )];
    }
    let m = &vm["vs_multipathd"]["multipathd"];
    let g = &vm["vs_multipathd"]["marginal"];
    let (sm, sg) = (f(&m["to_sampling_s"]), f(&g["to_sampling_s"]));
    vec![
        (
            "2nd failure -> first sampling read (kernel clock): multipathd / marginal".into(),
            format!(
                "{} / {} (marginal {})",
                seconds(sm),
                seconds(sg),
                faster(sg, sm)
            ),
            ">= 100x faster",
            Some(sg > 0.0 && sm / sg >= TARGET_REACTION_RATIO),
        ),
        (
            "verdict and rate: multipathd / marginal (dm-flakey, down 1 s in 4)".into(),
            format!(
                "{} at {}‰ / {} at {}‰",
                m["verdict"].as_str().unwrap_or("?"),
                m["rate_permille"],
                g["verdict"].as_str().unwrap_or("?"),
                g["rate_permille"]
            ),
            "both marginal",
            Some(m["verdict"] == "marginal" && g["verdict"] == "marginal"),
        ),
        (
            "CPU, 2nd failure -> verdict: multipathd / marginal".into(),
            format!(
                "{:.2} s / {:.2} s (ratio {:.1})",
                f(&m["cpu_s"]),
                f(&g["cpu_s"]),
                f(&m["cpu_s"]) / f(&g["cpu_s"])
            ),
            "-",
            None,
        ),
    ]
}

pub fn part(vm: &Value) -> Part {
    let method = "`cargo xtask bench` boots Debian's 6.12 kernel under QEMU (software emulation, \
        2 vCPUs) with the VM test bed and runs tests/vm/bench/vs-multipathd.sh: one map (mpvm) \
        over two loop devices in direct-I/O mode over dm devices of one LUN, managed by Debian's \
        multipathd (multipath-tools 0.9.4, directio checker every second, udevd running). Both \
        tools get the same parameters: two failures within 60 s start the check, sampling runs \
        last 120 s (multipathd's floor), a rate above 100 permille is marginal, and a marginal \
        path is rechecked after 10 s (short on purpose: multipathd 0.9.4 starts its first \
        sampling of a path only once the monotonic clock has passed the recheck gap, so with a \
        gap of minutes it does not sample at all in the first minutes after boot). In each round \
        the path fails once through the map (dm-mpath fails it, the checker reinstates it), \
        then a second time; then its dm device turns flaky (dm-flakey: up 3 s, down 1 s), which \
        is what the sampling measures. Round one is multipathd with `marginal_path_*` set; round \
        two is `marginal run` with the same settings, acting through multipathd's socket \
        (multipathd restarted without them). The second failure is dm-mpath's PATH_FAILED \
        (a kprobe on dm_path_uevent); the tool's reaction is its first sampling read of the path, \
        the block_bio_queue tracepoint on the path device from the tool's sampler (for \
        multipathd: from a thread of it that had not read the path before the double failure, \
        its io_err_stat thread, not its checker), both on the kernel's CLOCK_MONOTONIC \
        (trace_clock mono). As a cross-check, \"hold logged\" is when a grep of the tool's log \
        every 0.05 s first sees the hold (multipathd logs `enqueue path ... to check`, marginal \
        `sampling <path> for 120s`), marked through trace_marker. CPU is each daemon's user + system time from the \
        second failure to the verdict."
        .to_string();
    if let Some(e) = error_of(vm, "vs_multipathd") {
        return Part {
            title: "5. Against multipathd (VM)",
            method,
            tables: vec![],
            findings: vec![format!("The VM run failed: {e}")],
        };
    }
    let rounds = &vm["vs_multipathd"];
    let m = &rounds["multipathd"];
    let g = &rounds["marginal"];
    let mut table = Table::new(&[
        "tool",
        "2nd failure -> 1st sampling read (kernel)",
        "2nd failure -> hold logged (0.05 s log poll)",
        "2nd failure -> verdict",
        "reinstated meanwhile",
        "verdict",
        "rate",
        "reads",
        "CPU (share of a core)",
        "CPU per read",
        "poll period",
    ]);
    for (tool, r) in [("multipathd 0.9.4", m), ("marginal", g)] {
        table.row(vec![
            tool.into(),
            seconds(f(&r["to_sampling_s"])),
            seconds(f(&r["to_held_s"])),
            seconds(f(&r["to_verdict_s"])),
            count(&r["reinstated"]),
            r["verdict"].as_str().unwrap_or("?").into(),
            format!("{}‰", r["rate_permille"]),
            count(&r["reads"]),
            format!(
                "{:.2} s ({:.2}%)",
                f(&r["cpu_s"]),
                f(&r["cpu_share"]) * 100.0
            ),
            duration_ns(f(&r["cpu_per_read_s"]) * 1e9),
            seconds(f(&r["poll_s"])),
        ]);
    }
    table.row(vec![
        "ratio multipathd / marginal".into(),
        ratio(f(&m["to_sampling_s"]), f(&g["to_sampling_s"])),
        ratio(f(&m["to_held_s"]), f(&g["to_held_s"])),
        format!("{:.2}", f(&m["to_verdict_s"]) / f(&g["to_verdict_s"])),
        "-".into(),
        "-".into(),
        "-".into(),
        "-".into(),
        format!("{:.2}", f(&m["cpu_s"]) / f(&g["cpu_s"])),
        format!("{:.2}", f(&m["cpu_per_read_s"]) / f(&g["cpu_per_read_s"])),
        "-".into(),
    ]);
    let (held_m, held_g) = (f(&m["to_held_s"]), f(&g["to_held_s"]));
    let (sam_m, sam_g) = (f(&m["to_sampling_s"]), f(&g["to_sampling_s"]));
    let findings = vec![
        format!(
            "On the kernel's clock, from dm-mpath's PATH_FAILED of the second failure to the \
             tool's first sampling read queued on the path: marginal {}, multipathd {}: \
             marginal was {} (target: 100x; {}). marginal acts on the kernel's event (the \
             dm_path_uevent probe): it starts the path's run (the device opened on a helper \
             thread, then the first reads) and, meanwhile, its actuator thread sends `fail \
             path` to multipathd; that call was answered {} after the second failure. The log \
             poll below sees the decision (the `sampling` line); from it to the first read is \
             the open and the run's start, on two emulated CPUs that multipathd's handling of \
             the fail shares. multipathd's io_err_stat learns of the failure from dm's event \
             and starts sampling from its own thread's next pass (enqueue, open, first batch \
             of reads). By the 0.05 s log poll the figures were {} and {} ({}): the poll's \
             period caps that ratio.",
            seconds(sam_g),
            seconds(sam_m),
            faster(sam_g, sam_m),
            if sam_g > 0.0 && sam_m / sam_g >= TARGET_REACTION_RATIO {
                "met"
            } else {
                "missed"
            },
            seconds(f(&g["daemon_reaction_s"])),
            seconds(held_g),
            seconds(held_m),
            faster(held_g, held_m),
        ),
        format!(
            "Verdicts: multipathd said {} at {}‰, marginal said {} at {}‰, for a path down a \
             quarter of \
             the time; {} after the second failure for multipathd, {} for marginal. Both stop \
             issuing reads 60 s (the read timeout) before the end of the 120 s run; multipathd \
             then waits out the run, marginal gives its verdict as soon as its last read has \
             ended (waiting out the run would add no read to its count).",
            m["verdict"].as_str().unwrap_or("?"),
            m["rate_permille"],
            g["verdict"].as_str().unwrap_or("?"),
            g["rate_permille"],
            seconds(f(&m["to_verdict_s"])),
            seconds(f(&g["to_verdict_s"])),
        ),
        format!(
            "CPU from the second failure to the verdict: multipathd {:.2} s for {} reads on \
             the path, marginal {:.2} s for {} reads ({} against {} per read, under emulation: the guest's \
             CPU is emulated, so only the ratio carries over).",
            f(&m["cpu_s"]),
            count(&m["reads"]),
            f(&g["cpu_s"]),
            count(&g["reads"]),
            duration_ns(f(&m["cpu_per_read_s"]) * 1e9),
            duration_ns(f(&g["cpu_per_read_s"]) * 1e9),
        ),
        format!(
            "Reinstatements of the path between the second failure and the verdict: \
             multipathd {}, marginal {} (a reinstatement would put the flaky path back under \
             I/O).",
            count(&m["reinstated"]),
            count(&g["reinstated"])
        ),
    ];
    Part {
        title: "5. Against multipathd (VM)",
        method,
        tables: vec![table],
        findings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bench_lines_are_found_behind_the_console_prefix() {
        let line = "  | BENCH dm-reaction trial=3 failure2=10.5 sampling=10.502 daemon=0.0023";
        let m = parse_bench_line(line).unwrap();
        assert_eq!(m["scenario"], "dm-reaction");
        assert_eq!(f(&m["trial"]), 3.0);
        assert!((f(&m["sampling"]) - f(&m["failure2"]) - 0.002).abs() < 1e-9);
        let words =
            parse_bench_line("BENCH vs-multipathd tool=multipathd daemon_reaction=-").unwrap();
        assert_eq!(words["tool"], "multipathd");
        assert_eq!(words["daemon_reaction"], "-");
        assert!(parse_bench_line("no bench here").is_none());
    }

    #[test]
    fn stats_sort_and_pick_quantiles() {
        let s = stats(&[5.0, 1.0, 3.0, f64::NAN]);
        assert_eq!(f(&s["min"]), 1.0);
        assert_eq!(f(&s["median"]), 3.0);
        assert_eq!(f(&s["max"]), 5.0);
        assert_eq!(stats(&[]), json!({}));
    }
}
