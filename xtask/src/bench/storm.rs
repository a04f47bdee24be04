//! Part 6: fabric storms in the VM (tests/vm/bench/storm.sh), marginal against multipathd's
//! own marginal-path checking, and the device-mapper re-discovery cost at 1,024 maps
//! (tests/vm/bench/dm-rediscovery.sh, reported with part 4). Issue 15.
use serde_json::{Map, Value, json};

use super::{
    report::{Part, Table, f, verdict},
    vm::{ratio, seconds, stats},
};

/// Settled within this long after the storm's last kernel event (issue 15).
const TARGET_SETTLE_S: f64 = 1.0;

type Line = Map<String, Value>;

/// The daemon's resync period (marginal-user/src/daemon/mod.rs, RESYNC_INTERVAL).
const RESYNC_S: f64 = 5.0;

fn of<'a>(lines: &'a [Line], scenario: &str) -> Vec<&'a Line> {
    lines.iter().filter(|l| l["scenario"] == scenario).collect()
}

/// `{"multipathd": {"outage": {...}, "flap": {...}}, "marginal": {...}, "emulation": {...}}`
/// from the storm scenario's BENCH lines, in seconds.
pub fn from_lines(lines: &[Line]) -> Value {
    let mut tools = Map::new();
    for l in of(lines, "storm") {
        let Some(tool) = l.get("tool").and_then(Value::as_str) else {
            continue;
        };
        let tck = f(&l["clk_tck"]);
        let storm = f(&l["storm"]);
        let round = match l["kind"].as_str() {
            Some("outage") => json!({
                "paths": l["paths"],
                "injection_s": f(&l["injected"]) - storm,
                "storm_to_last_failed_s": f(&l["last_failed"]) - storm,
                "failed": l["failed"],
                "settled_after_last_event_s": f(&l["settled"]) - f(&l["last_failed"]),
                "storm_to_settled_s": f(&l["settled"]) - storm,
                // `polls` counts the checks that failed; the one that passed is one more.
                "poll_s": (f(&l["settled"]) - f(&l["injected"])) / (f(&l["polls"]) + 1.0),
                "recovery_s": f(&l["last_reinstated"]) - f(&l["back"]),
                "reinstated": l["reinstated"],
                "a_failed": l["a_failed"],
                "cpu_settle_s": f(&l["cpu_settle"]) / tck,
                "cpu_round_s": f(&l["cpu_round"]) / tck,
                "lost": l["lost"],
                "wrong": l["wrong"],
            }),
            Some("flap") => json!({
                "paths": l["paths"],
                "injection_s": f(&l["injected"]) - storm,
                "storm_to_all_out_s": f(&l["all_out"]) - storm,
                "out": l["out"],
                "failures": l["failures"],
                "reinstatements": l["reinstatements"],
                "held": l["held"],
                "a_failed": l["a_failed"],
                "cpu_settle_s": f(&l["cpu_settle"]) / tck,
                "lost": l["lost"],
                "wrong": l["wrong"],
            }),
            _ => continue,
        };
        let entry = tools.entry(tool.to_string()).or_insert_with(|| json!({}));
        entry[l["kind"].as_str().unwrap_or("?")] = round;
    }
    if let Some(c) = of(lines, "storm-calibration").first() {
        tools.insert("calibration_s".into(), c["seconds"].clone());
    }
    Value::Object(tools)
}

/// `{"maps", "paths", "create_s", "startup_s", "rounds", "round_s": stats, "ioctls",
/// "cpu_per_round_s", "rss_kib"}` from the re-discovery scenario's BENCH lines.
pub fn rediscovery_from_lines(lines: &[Line]) -> Value {
    let all = of(lines, "dm-rediscovery");
    let head = all.iter().find(|l| l.contains_key("maps"));
    let tail = all.iter().find(|l| l.contains_key("rounds"));
    let (Some(head), Some(tail)) = (head, tail) else {
        return json!({ "error": "the dm-rediscovery scenario printed no figures" });
    };
    let rounds: Vec<&&Line> = all.iter().filter(|l| l.contains_key("round")).collect();
    let round_s: Vec<f64> = rounds
        .iter()
        .map(|l| f(&l["end"]) - f(&l["start"]))
        .collect();
    let ioctls: Vec<f64> = rounds.iter().map(|l| f(&l["ioctls"])).collect();
    // Resync rounds come in two kinds: most compare dm's event numbers from its listing (a
    // few ioctls), every third asks each map's status (an ioctl a map).
    let maps = f(&head["maps"]);
    let kind = |status: bool| -> (Vec<f64>, Vec<f64>) {
        round_s
            .iter()
            .zip(&ioctls)
            .filter(|(_, n)| (**n >= maps / 2.0) == status)
            .map(|(s, n)| (*s, *n))
            .unzip()
    };
    let (status_s, status_ioctls) = kind(true);
    let (event_s, event_ioctls) = kind(false);
    // The daemon re-reads dm every RESYNC_S when nothing changes; its CPU over the watch is
    // that work plus an idle loop that costs next to nothing (part 4's host figures).
    let watch = f(&tail["watch_s"]).max(1.0);
    let cpu = f(&tail["cpu_ticks"]) / f(&tail["clk_tck"]);
    json!({
        "maps": head["maps"],
        "paths": head["paths"],
        "create_s": head["create_s"],
        "startup_s": head["startup_s"],
        "rounds": rounds.len(),
        "round_s": stats(&round_s),
        "ioctls": stats(&ioctls),
        "status_rounds": status_s.len(),
        "status_round_s": stats(&status_s),
        "status_ioctls": stats(&status_ioctls),
        "event_rounds": event_s.len(),
        "event_round_s": stats(&event_s),
        "event_ioctls": stats(&event_ioctls),
        "cpu_per_round_s": cpu / (watch / RESYNC_S),
        "idle_cpu_share": cpu / watch,
        "watch_s": tail["watch_s"],
        "rss_kib": tail["rss_kib"],
    })
}

fn count(v: &Value) -> String {
    match v {
        Value::Number(n) => format!("{:.0}", n.as_f64().unwrap_or(f64::NAN)),
        Value::String(s) => s.clone(),
        _ => "-".into(),
    }
}

fn zero(v: &Value) -> bool {
    v.as_f64() == Some(0.0)
}

/// Whether a round is right: nothing lost (marginal counts it; multipathd has no such
/// counter, "-"), nothing wrong.
fn clean(r: &Value) -> bool {
    zero(&r["wrong"]) && (zero(&r["lost"]) || r["lost"] == "-")
}

pub fn summary(storm: &Value) -> Vec<(String, String, &'static str, Option<bool>)> {
    if let Some(e) = storm["error"].as_str() {
        return vec![(
            "fabric storms (VM)".into(),
            format!("VM run failed: {e}"),
            "-",
            Some(false),
        )];
    }
    let (g, m) = (&storm["marginal"], &storm["multipathd"]);
    let (go, gf) = (&g["outage"], &g["flap"]);
    let settle = f(&go["settled_after_last_event_s"]);
    vec![
        (
            "storm: events lost / wrong decisions (marginal; outage, flap)".into(),
            format!(
                "{} / {}, {} / {}",
                count(&go["lost"]),
                count(&go["wrong"]),
                count(&gf["lost"]),
                count(&gf["wrong"])
            ),
            "0 lost, 0 wrong",
            Some(clean(go) && clean(gf)),
        ),
        (
            "outage: last PATH_FAILED -> marginal settled (emulated CPU)".into(),
            format!(
                "{} (~{} on the host's CPU; multipathd {}; poll period {})",
                seconds(settle),
                storm["host_calibration_s"]
                    .as_f64()
                    .map_or("?".into(), |h| seconds(
                        settle * h / f(&storm["calibration_s"])
                    )),
                seconds(f(&m["outage"]["settled_after_last_event_s"])),
                seconds(f(&go["poll_s"]))
            ),
            "< 1 s",
            Some(settle < TARGET_SETTLE_S),
        ),
        (
            "flap: storm -> every flapping path out of service: multipathd / marginal (paths out)"
                .into(),
            format!("{} / {}", all_out(&m["flap"]), all_out(gf)),
            "-",
            None,
        ),
    ]
}

pub fn part(storm: &Value) -> Part {
    let method = "`cargo xtask bench` runs tests/vm/bench/storm.sh in the same VM boot as part 5 \
        (Debian's 6.12 kernel, QEMU software emulation, 2 vCPUs): scsi_debug with 16 LUNs over \
        two SCSI hosts, each host a fabric, multipathd 0.9.4 making the 16 maps (tur checker \
        every second, multibus, udevd running), one 4 KiB direct read through each map in turn \
        all along (what makes dm-mpath notice a failing path). Four rounds, each tool started \
        afresh: multipathd with `marginal_path_*` set (30 s window, 120 s runs, 100‰, 20 s \
        recheck gap) and marginal not running, then marginal with the same settings and \
        multipathd without them (marginal acts through multipathd's socket; its runs are \
        shortened to 3 s by its testing flag, which changes nothing before a path is out). \
        Outage: every host B path offline at once (sysfs state), held down 5 s after the tool \
        settled, then back. Flap: every host B path fails its READs (DID_NO_CONNECT) while \
        TUR passes, so dm-mpath fails them, the checker reinstates them and I/O fails them \
        again. Times are the kernel's CLOCK_MONOTONIC (trace_clock mono): the storm's start \
        and end of injection are trace_marker lines, dm-mpath's PATH_FAILED and \
        PATH_REINSTATED a kprobe on dm_path_uevent. Outage \"settled\": when the tool's own \
        state first shows every host B path down (marginal: /status kernel_failures on each; \
        multipathd: `show paths` dm state failed, checker not ready), polled back to back and \
        marked through trace_marker; its resolution is the poll period shown. Flap \"out of \
        service\": a flapping path's last PATH_FAILED, with no PATH_REINSTATED after it until \
        dm had kept every one failed for 5 s. Wrong decisions: outage, any check started or \
        path failed by the tool (marginal: /status failed_by_daemon_total and sampling_runs; \
        multipathd: its `enqueue path` lines), any host A path failed (a map's last), any \
        path not back; flap, any flapping path not out at the end, any host A path failed. \
        Events lost: marginal's kernel_events_lost_total (multipathd has no such counter). \
        CPU: each daemon's user + system time (/proc/PID/stat, 10 ms ticks), from the storm \
        to settled."
        .to_string();
    if let Some(e) = storm["error"].as_str() {
        return Part {
            title: "6. Fabric storms (VM)",
            method,
            tables: vec![],
            findings: vec![format!("The VM run failed: {e}")],
        };
    }
    let (g, m) = (&storm["marginal"], &storm["multipathd"]);
    let mut outage = Table::new(&[
        "outage (16 paths down at once)",
        "injection",
        "storm -> last PATH_FAILED",
        "last PATH_FAILED -> settled",
        "poll period",
        "fabric back -> last reinstated",
        "CPU to settled",
        "CPU whole round",
        "lost",
        "wrong",
        "settled < 1 s",
    ]);
    for (tool, r) in [
        ("multipathd 0.9.4", &m["outage"]),
        ("marginal", &g["outage"]),
    ] {
        let settle = f(&r["settled_after_last_event_s"]);
        outage.row(vec![
            tool.into(),
            seconds(f(&r["injection_s"])),
            seconds(f(&r["storm_to_last_failed_s"])),
            seconds(settle),
            seconds(f(&r["poll_s"])),
            seconds(f(&r["recovery_s"])),
            format!("{:.2} s", f(&r["cpu_settle_s"])),
            format!("{:.2} s", f(&r["cpu_round_s"])),
            count(&r["lost"]),
            count(&r["wrong"]),
            verdict(settle < TARGET_SETTLE_S),
        ]);
    }
    let mut flap = Table::new(&[
        "flap (16 paths flapping)",
        "storm -> every path out of service",
        "paths out",
        "PATH_FAILED events",
        "reinstatements after a failure",
        "held by the tool",
        "CPU to settled",
        "lost",
        "wrong (not out, host A failed)",
    ]);
    for (tool, r) in [("multipathd 0.9.4", &m["flap"]), ("marginal", &g["flap"])] {
        flap.row(vec![
            tool.into(),
            all_out(r),
            format!("{} of {}", count(&r["out"]), count(&r["paths"])),
            count(&r["failures"]),
            count(&r["reinstatements"]),
            count(&r["held"]),
            format!("{:.2} s", f(&r["cpu_settle_s"])),
            count(&r["lost"]),
            count(&r["wrong"]),
        ]);
    }
    let (go, gf, mf) = (&g["outage"], &g["flap"], &m["flap"]);
    let calibration = f(&storm["calibration_s"]);
    let host_cpu = storm["host_calibration_s"].as_f64();
    let slowdown = host_cpu.map(|h| calibration / h);
    let settle = f(&go["settled_after_last_event_s"]);
    let mut findings = vec![
        format!(
            "Outage: marginal's state showed all {} host B paths down {} after dm's last \
             PATH_FAILED ({} after the storm began), with {} of CPU, no check started and no \
             path failed ({} wrong decision(s), {} event(s) lost); multipathd's {} after it \
             (its checker's pass, every second). The figure is bounded below by the poll of \
             the tool's state ({} a poll under emulation).",
            count(&go["paths"]),
            seconds(settle),
            seconds(f(&go["storm_to_settled_s"])),
            format!("{:.2} s", f(&go["cpu_settle_s"])),
            count(&go["wrong"]),
            count(&go["lost"]),
            seconds(f(&m["outage"]["settled_after_last_event_s"])),
            seconds(f(&go["poll_s"])),
        ),
        format!(
            "Flap: {} dm raised {} PATH_FAILED events for marginal and {} for multipathd, and \
             reinstated flapping paths {} and {} times after their first failure (each \
             reinstatement puts a flaky path back under I/O). A path is taken out on its \
             second failure within the window, so most of marginal's time is the flap itself \
             (dm fails a path on a read, multipathd's checker reinstates it a second or two \
             later, the next read fails it again) and the injection ({} for 16 sysfs writes \
             under emulation). CPU from the storm to settled: marginal {:.2} s, multipathd \
             {:.2} s.",
            out_sentence(gf, mf),
            count(&gf["failures"]),
            count(&mf["failures"]),
            count(&gf["reinstatements"]),
            count(&mf["reinstatements"]),
            seconds(f(&gf["injection_s"])),
            f(&gf["cpu_settle_s"]),
            f(&mf["cpu_settle_s"]),
        ),
    ];
    if let Some(x) = slowdown {
        findings.push(format!(
            "Host-CPU equivalent: the same busybox awk loop took {calibration:.2} s in the \
             guest and {:.3} s of CPU on this host, so the emulated CPU is about {x:.0}x slower; \
             marginal's settle time of {} would be about {} on the host's CPU (the poll of its \
             state is emulated too, so this scales the whole figure).",
            host_cpu.unwrap_or(f64::NAN),
            seconds(settle),
            seconds(settle / x),
        ));
    }
    Part {
        title: "6. Fabric storms (VM)",
        method,
        tables: vec![outage, flap],
        findings,
    }
}

/// The time to every flapping path out, or how many were out when the round ended.
fn all_out(r: &Value) -> String {
    if f(&r["out"]) >= f(&r["paths"]) {
        seconds(f(&r["storm_to_all_out_s"]))
    } else {
        format!(
            "not all: {} of {} out",
            count(&r["out"]),
            count(&r["paths"])
        )
    }
}

/// How far each tool got with the flapping fabric.
fn out_sentence(g: &Value, m: &Value) -> String {
    let all = |r: &Value| f(&r["out"]) >= f(&r["paths"]);
    let one = |tool: &str, r: &Value| {
        if all(r) {
            format!(
                "{tool} had every flapping path out of service {} after the storm began",
                seconds(f(&r["storm_to_all_out_s"]))
            )
        } else {
            format!(
                "{tool} had only {} of the {} flapping paths out of service when the round \
                 ended (dm did not keep every one failed for 5 s within 150 s; {} of them held \
                 by the tool), so {} flapping path(s) kept being put back under I/O",
                count(&r["out"]),
                count(&r["paths"]),
                count(&r["held"]),
                f(&r["paths"]) - f(&r["out"]),
            )
        }
    };
    let mut text = format!("{}; {}", one("marginal", g), one("multipathd", m));
    if all(g) && all(m) {
        text += &format!(
            " ({} the time).",
            ratio(f(&m["storm_to_all_out_s"]), f(&g["storm_to_all_out_s"]))
        );
    } else {
        text.push('.');
    }
    text
}

/// A count that went through a JSON number (BENCH lines' numbers are floats).
fn n(v: &Value) -> u64 {
    f(v) as u64
}

/// Rows for part 4's one-off costs table: dm re-discovery at 1,024 maps.
pub fn rediscovery_rows(r: &Value) -> Vec<Vec<String>> {
    if let Some(e) = r["error"].as_str() {
        return vec![vec![
            "dm re-discovery round (VM)".into(),
            "-".into(),
            format!("VM run failed: {e}"),
        ]];
    }
    let how = format!(
        "VM (emulated CPU): {} maps x 2 dm-linear paths, {} rounds timed by a kprobe on \
         dm_ctl_ioctl",
        n(&r["maps"]),
        n(&r["rounds"])
    );
    let kind = |label: &str, which: &str| {
        let rounds = n(&r[format!("{which}_rounds")]);
        vec![
            format!(
                "dm resync round, {} maps, {label} (wall, kernel clock)",
                n(&r["maps"])
            ),
            if rounds == 0 {
                "- (none in the watch)".into()
            } else {
                format!(
                    "median {} (max {}) over {rounds}, {:.0} dm ioctls",
                    seconds(f(&r[format!("{which}_round_s")]["median"])),
                    seconds(f(&r[format!("{which}_round_s")]["max"])),
                    f(&r[format!("{which}_ioctls")]["median"])
                )
            },
            how.clone(),
        ]
    };
    vec![
        kind("event numbers compared (most rounds)", "event"),
        kind("every map's status compared (every 3rd)", "status"),
        vec![
            "dm re-discovery round, CPU".into(),
            format!("{:.0} ms", f(&r["cpu_per_round_s"]) * 1e3),
            "VM: the daemon's CPU over the watch / resyncs (every 5 s, idle loop included)".into(),
        ],
        vec![
            format!("idle CPU at {} maps (resync every 5 s)", n(&r["maps"])),
            format!(
                "{:.1}% of an emulated core",
                f(&r["idle_cpu_share"]) * 100.0
            ),
            "VM: the daemon's CPU over the watch".into(),
        ],
        vec![
            format!("start-up at {} maps, to serving /status", n(&r["maps"])),
            format!(
                "{:.2} s (RSS {})",
                f(&r["startup_s"]),
                super::report::mib(n(&r["rss_kib"]))
            ),
            "VM, includes loading the eBPF programs".into(),
        ],
    ]
}

/// The loop storm.sh times in the guest (`BENCH storm-calibration`, 100,000 rounds), with the
/// same busybox; on the host it runs ten times as long so that 10 ms CPU ticks resolve it.
const HOST_CALIBRATION_AWK: &str = "BEGIN { for (i = 0; i < 1000000; i++) s += i % 7; print s }";

/// CPU seconds the guest's calibration loop takes on this host (its user + system time, best
/// of three, so that other jobs on the host do not count), with the busybox unpacked for the
/// guest: the emulated CPU's slowdown is the guest's figure over this one.
pub fn host_calibration(cache: &std::path::Path) -> Option<f64> {
    let unpacked = std::fs::read_dir(cache.join("unpacked")).ok()?;
    let busybox = unpacked
        .filter_map(|e| e.ok())
        .find(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("busybox-static_")
        })?
        .path()
        .join("bin/busybox");
    (0..3)
        .filter_map(|_| {
            let before = children_cpu_ticks()?;
            let ok = std::process::Command::new(&busybox)
                .args(["awk", HOST_CALIBRATION_AWK])
                .output()
                .ok()?
                .status
                .success();
            let ticks = children_cpu_ticks()? - before;
            // USER_HZ is 100 on Linux; a tenth of the run is the guest's loop.
            ok.then_some(ticks as f64 / 100.0 / 10.0)
        })
        .min_by(f64::total_cmp)
}

/// cutime + cstime of this process (its waited-for children), from /proc/self/stat.
fn children_cpu_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let fields: Vec<&str> = stat[stat.rfind(')')? + 2..].split_whitespace().collect();
    // Fields 16 and 17 of stat(5), counted from 3 after the command name.
    Some(fields.get(13)?.parse::<u64>().ok()? + fields.get(14)?.parse::<u64>().ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::vm::parse_bench_line;

    fn lines(text: &str) -> Vec<Line> {
        text.lines().filter_map(parse_bench_line).collect()
    }

    #[test]
    fn storm_rounds_become_intervals_per_tool_and_kind() {
        let l = lines(
            "BENCH storm tool=marginal kind=outage paths=16 storm=10 injected=10.1 last_failed=10.5 failed=16 settled=10.75 back=20 last_reinstated=22 reinstated=16 a_failed=0 polls=5 cpu_settle=12 cpu_round=40 clk_tck=100 lost=0 wrong=0\n\
             BENCH storm tool=multipathd kind=flap paths=16 storm=100 injected=100.1 all_out=112 out=16 failures=40 reinstatements=24 a_failed=0 held=16 cpu_settle=300 clk_tck=100 lost=- wrong=0",
        );
        let s = from_lines(&l);
        let o = &s["marginal"]["outage"];
        assert!((f(&o["settled_after_last_event_s"]) - 0.25).abs() < 1e-9);
        assert!((f(&o["poll_s"]) - 0.65 / 6.0).abs() < 1e-9);
        assert!((f(&o["cpu_settle_s"]) - 0.12).abs() < 1e-9);
        assert!(clean(o));
        let fl = &s["multipathd"]["flap"];
        assert!((f(&fl["storm_to_all_out_s"]) - 12.0).abs() < 1e-9);
        assert_eq!(fl["lost"], "-");
        assert!(clean(fl));
    }

    #[test]
    fn rediscovery_rounds_are_gathered_and_cpu_split_over_every_burst() {
        let l = lines(
            "BENCH dm-rediscovery maps=1024 paths=2048 create_s=20 startup_s=9\n\
             BENCH dm-rediscovery round=1 start=5 end=5.4 ioctls=1100\n\
             BENCH dm-rediscovery round=2 start=10 end=10.6 ioctls=1100\n\
             BENCH dm-rediscovery round=3 start=15 end=15.02 ioctls=4\n\
             BENCH dm-rediscovery rounds=3 watch_s=20 cpu_ticks=200 clk_tck=100 rss_kib=30000 bursts=5",
        );
        let r = rediscovery_from_lines(&l);
        assert_eq!(r["rounds"], 3);
        assert_eq!(r["status_rounds"], 2);
        assert_eq!(r["event_rounds"], 1);
        assert!((f(&r["event_ioctls"]["median"]) - 4.0).abs() < 1e-9);
        assert!((f(&r["status_round_s"]["min"]) - 0.4).abs() < 1e-9);
        assert!((f(&r["round_s"]["max"]) - 0.6).abs() < 1e-9);
        assert!((f(&r["cpu_per_round_s"]) - 0.5).abs() < 1e-9);
        assert!((f(&r["idle_cpu_share"]) - 0.1).abs() < 1e-9);
        assert!(rediscovery_from_lines(&[])["error"].is_string());
    }
}
