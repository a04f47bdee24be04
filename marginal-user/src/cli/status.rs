//! `marginal status`: asks the running daemon for its `/status` and prints it for a terminal.
//!
//! The daemon serves its [`Snapshot`] as JSON on `/status` ([`crate::http`]); this reads it with
//! the small client of [`crate::http::client`] and renders a header (actuator, signals) and one
//! table of paths per map. `--json` prints the document as received, for scripts.
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::http::{self, DEFAULT_ADDRESS};
use crate::status::{MapStatus, PathStatus, Snapshot};

/// Arguments of `marginal status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Address of the daemon's HTTP endpoint (`marginal run`'s metrics address).
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_ADDRESS)]
    pub address: SocketAddr,
    /// Print the daemon's JSON status as is.
    #[arg(long)]
    pub json: bool,
    /// Seconds to wait for the daemon's answer.
    #[arg(long, value_name = "SECONDS", default_value_t = 5)]
    pub timeout: u64,
}

pub fn run(args: StatusArgs) -> Result<ExitCode> {
    let body = fetch(args.address, Duration::from_secs(args.timeout.max(1)))?;
    if args.json {
        print!("{body}");
        if !body.ends_with('\n') {
            println!();
        }
        return Ok(ExitCode::SUCCESS);
    }
    let snapshot: Snapshot = serde_json::from_str(&body)
        .with_context(|| format!("the answer of {} is not a marginal status", args.address))?;
    print!("{}", render(&snapshot));
    Ok(ExitCode::SUCCESS)
}

/// The `/status` document of the daemon at `addr`.
pub fn fetch(addr: SocketAddr, timeout: Duration) -> Result<String> {
    let response = http::get(addr, "/status", timeout).map_err(|err| {
        // The usual case is a daemon that is not running: say so first, details after.
        if err.downcast_ref::<std::io::Error>().is_some() {
            anyhow::anyhow!("no answer at {addr}: is `marginal run` running? ({err})")
        } else {
            err
        }
    })?;
    if response.status != 200 {
        bail!(
            "{addr}/status answered HTTP {}: {}",
            response.status,
            response.body.trim()
        );
    }
    Ok(response.body)
}

/// The human-readable report of one snapshot.
pub fn render(s: &Snapshot) -> String {
    let mut out = String::new();
    let actuator = if s.actuator.is_empty() {
        "unknown"
    } else {
        &s.actuator
    };
    let _ = writeln!(out, "actuator: {actuator}");
    let signals: Vec<String> = s
        .signals
        .iter()
        .map(|sig| match (sig.live, sig.detail.is_empty()) {
            (true, _) => format!("{} live", sig.name),
            (false, true) => format!("{} NOT LIVE", sig.name),
            (false, false) => format!("{} NOT LIVE ({})", sig.name, sig.detail),
        })
        .collect();
    let signals = if signals.is_empty() {
        "none".to_string()
    } else {
        signals.join("; ")
    };
    let _ = writeln!(out, "signals:  {signals}");
    let _ = writeln!(out, "uptime:   {}", duration(s.uptime_seconds));
    if !s.programs.is_empty() {
        let runs: u64 = s.programs.iter().map(|p| p.run_count).sum();
        let ns: u64 = s.programs.iter().map(|p| p.run_time_ns).sum();
        let n = s.programs.len();
        let programs = if n == 1 { "program" } else { "programs" };
        let _ = writeln!(
            out,
            "eBPF:     {n} {programs}, {runs} runs, {:.3} ms",
            ns as f64 / 1e6
        );
    }
    if s.maps.is_empty() {
        let _ = writeln!(out, "\nno multipath maps");
    }
    for map in &s.maps {
        out.push('\n');
        out.push_str(&render_map(map));
    }
    out
}

const COLUMNS: [&str; 14] = [
    "PATH", "DEVICE", "STATE", "ACTIVE", "FAILS", "IO_ERRS", "RUNS", "READS", "ERRS", "RUN",
    "RATE", "VERDICT", "RECHECK", "REASON",
];

fn render_map(map: &MapStatus) -> String {
    let mut out = String::new();
    let plural = if map.paths.len() == 1 {
        "path"
    } else {
        "paths"
    };
    let _ = write!(
        out,
        "map {}: {} active of {} {plural}, ",
        map.name,
        map.active_paths,
        map.paths.len()
    );
    if map.checking {
        let _ = writeln!(
            out,
            "checking on (double failed {}s, sample {}s, threshold {}‰, recheck gap {}s)",
            map.double_failed_time_seconds,
            map.err_sample_time_seconds,
            map.err_rate_threshold_permille,
            map.err_recheck_gap_time_seconds
        );
        if !map.action_detail.is_empty() {
            let _ = writeln!(out, "  marginal paths: {}", map.action_detail);
        }
    } else if map.checking_detail.is_empty() {
        let _ = writeln!(out, "checking off");
    } else {
        // The daemon's detail starts "off: " for the JSON reader; the table says "off" once.
        let detail = map.checking_detail.as_str();
        let detail = detail.strip_prefix("off: ").unwrap_or(detail);
        let _ = writeln!(out, "checking off ({detail})");
    }
    if map.paths.is_empty() {
        return out;
    }
    let mut rows = vec![COLUMNS.map(String::from).to_vec()];
    rows.extend(map.paths.iter().map(path_row));
    out.push_str(&table(&rows, "  "));
    for line in map.paths.iter().filter_map(transport_line) {
        let _ = writeln!(out, "  {line}");
    }
    out
}

/// `sdb: fc via host3 0x1000… -> 0x500a… (0x500a…)`: where the path goes, for paths whose
/// transport sysfs placed (none for loop devices and the like).
fn transport_line(p: &PathStatus) -> Option<String> {
    let t = &p.transport;
    if t.host.is_empty() && t.target_port.is_empty() {
        return None;
    }
    let kind = if t.kind.is_empty() { "other" } else { &t.kind };
    let mut line = format!("{}: {kind} via {}", p.name, or_dash(&t.host));
    if !t.host_port.is_empty() {
        let _ = write!(line, " {}", t.host_port);
    }
    let _ = write!(line, " -> {}", or_dash(&t.target_port));
    if !t.target_node.is_empty() {
        let _ = write!(line, " ({})", t.target_node);
    }
    Some(line)
}

fn or_dash(s: &str) -> &str {
    if s.is_empty() { "-" } else { s }
}

fn path_row(p: &PathStatus) -> Vec<String> {
    // "held out": not active because marginal failed it (and will return it).
    let active = match (p.active, p.failed_by_marginal) {
        // Set marginal in multipathd: active in dm, a last resort in a group of its own.
        (true, true) if p.held_as == "setmarginal" => "marginal",
        (true, _) => "yes",
        (false, true) => "held out",
        (false, false) => "no",
    };
    // The run in progress, as errors/reads so far.
    let run = if p.run_in_progress() {
        format!("{}/{}", p.current_run_errors, p.current_run_reads)
    } else {
        "-".into()
    };
    let errors = match p.sampling_timeouts {
        0 => p.sampling_errors.to_string(),
        t => format!("{} ({t} t/o)", p.sampling_errors),
    };
    vec![
        p.name.clone(),
        p.device.clone(),
        p.state.clone(),
        active.into(),
        p.kernel_failures.to_string(),
        p.kernel_io_errors.to_string(),
        p.sampling_runs.to_string(),
        p.sampling_reads.to_string(),
        errors,
        run,
        p.last_rate_permille.map_or("-".into(), |r| format!("{r}‰")),
        if p.last_verdict.is_empty() {
            "none".into()
        } else {
            p.last_verdict.clone()
        },
        p.next_recheck_seconds
            .map_or("-".into(), |s| format!("{}s", s.max(0.0).ceil())),
        if p.reason.is_empty() {
            "-".into()
        } else {
            p.reason.clone()
        },
    ]
}

/// Left-aligned columns; the last one is not padded (it holds free text).
fn table(rows: &[Vec<String>], indent: &str) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|v| v.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = indent.to_string();
        for (c, value) in row.iter().enumerate() {
            if c + 1 == row.len() {
                line.push_str(value);
            } else {
                let pad = widths[c] - value.chars().count();
                let _ = write!(line, "{value}{}  ", " ".repeat(pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `3725.2` -> `1h02m05s`.
fn duration(seconds: f64) -> String {
    let total = seconds.max(0.0) as u64;
    let (h, m, s) = (total / 3600, total / 60 % 60, total % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s:02}s"),
        _ => format!("{h}h{m:02}m{s:02}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::SignalStatus;

    #[test]
    fn renders_header_maps_and_aligned_paths() {
        let snapshot = Snapshot {
            uptime_seconds: 3725.0,
            signals: vec![
                SignalStatus {
                    name: "block:block_rq_error".into(),
                    live: true,
                    detail: String::new(),
                },
                SignalStatus {
                    name: "dm_path_uevent".into(),
                    live: false,
                    detail: "no kprobes".into(),
                },
            ],
            actuator: "observe".into(),
            maps: vec![MapStatus {
                name: "mpatha".into(),
                active_paths: 1,
                checking: true,
                err_rate_threshold_permille: 5,
                paths: vec![
                    PathStatus {
                        name: "sdb".into(),
                        device: "8:16".into(),
                        state: "marginal".into(),
                        failed_by_marginal: true,
                        last_rate_permille: Some(35),
                        last_verdict: "marginal".into(),
                        next_recheck_seconds: Some(250.4),
                        reason: "rate 35‰ above 5‰".into(),
                        ..Default::default()
                    },
                    PathStatus {
                        name: "sdc".into(),
                        device: "8:32".into(),
                        state: "healthy".into(),
                        active: true,
                        ..Default::default()
                    },
                ],
                ..Default::default()
            }],
            programs: vec![],
            ..Default::default()
        };
        let text = render(&snapshot);
        assert!(text.contains("actuator: observe\n"), "{text}");
        assert!(
            text.contains("block:block_rq_error live; dm_path_uevent NOT LIVE (no kprobes)"),
            "{text}"
        );
        assert!(text.contains("uptime:   1h02m05s"), "{text}");
        assert!(
            text.contains("map mpatha: 1 active of 2 paths, checking on"),
            "{text}"
        );
        let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("  ")).collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(
            lines[1].contains("held out") && lines[1].contains("251s"),
            "{text}"
        );
        assert!(lines[1].ends_with("rate 35‰ above 5‰"), "{text}");
        // Columns line up: DEVICE starts at the same place on every line.
        let col = lines[0].find("DEVICE").unwrap();
        assert_eq!(lines[1].find("8:16"), Some(col));
        assert_eq!(lines[2].find("8:32"), Some(col));
    }

    #[test]
    fn each_placed_path_gets_a_transport_line_after_the_table() {
        let map = MapStatus {
            name: "mpatha".into(),
            paths: vec![
                PathStatus {
                    name: "sdd".into(),
                    transport: crate::status::TransportStatus {
                        kind: "iscsi".into(),
                        host: "host2".into(),
                        target_port: "192.168.122.1:3260".into(),
                        target_node: "iqn.2003-01.org.linux-iscsi.t:sn.1".into(),
                        host_port: "192.168.122.10".into(),
                    },
                    ..Default::default()
                },
                PathStatus {
                    name: "loop0".into(),
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let text = render_map(&map);
        let last: Vec<&str> = text.lines().skip(4).collect();
        assert_eq!(
            last,
            [
                "  sdd: iscsi via host2 192.168.122.10 -> 192.168.122.1:3260 \
              (iqn.2003-01.org.linux-iscsi.t:sn.1)"
            ],
            "{text}"
        );
    }

    #[test]
    fn a_daemon_that_does_not_answer_is_named() {
        // A port just released: nothing listens there.
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let err = fetch(addr, Duration::from_secs(2)).unwrap_err().to_string();
        assert!(err.contains(&format!("no answer at {addr}")), "{err}");
        assert!(err.contains("marginal run"), "{err}");
    }
}
