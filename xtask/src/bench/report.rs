//! Tables for the terminal and BENCHMARKS.md, and the document around them.
use serde_json::Value;

/// One part of the benchmark as reported: what was measured how, the tables, and what the
/// numbers of this run say about the targets.
pub struct Part {
    pub title: &'static str,
    /// How it was measured (markdown paragraphs).
    pub method: String,
    pub tables: Vec<Table>,
    /// Observations drawn from this run's numbers (markdown list items).
    pub findings: Vec<String>,
}

pub struct Table {
    pub headers: Vec<&'static str>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&'static str]) -> Self {
        Self {
            headers: headers.to_vec(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        debug_assert_eq!(cells.len(), self.headers.len());
        self.rows.push(cells);
    }

    /// A markdown table with padded columns, readable as is in a terminal.
    pub fn render(&self) -> String {
        let width = |i: usize| {
            self.rows
                .iter()
                .map(|r| r[i].chars().count())
                .chain([self.headers[i].chars().count(), 3])
                .max()
                .unwrap_or(3)
        };
        let widths: Vec<usize> = (0..self.headers.len()).map(width).collect();
        let line = |cells: Vec<&str>| {
            let padded: Vec<String> = cells
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c}{}", " ".repeat(w - c.chars().count())))
                .collect();
            format!("| {} |\n", padded.join(" | "))
        };
        let mut out = line(self.headers.clone());
        let dashes: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        out += &format!("| {} |\n", dashes.join(" | "));
        for row in &self.rows {
            out += &line(row.iter().map(String::as_str).collect());
        }
        out
    }
}

/// "pass" or "MISS" (upper case so a miss stands out in a terminal).
pub fn verdict(pass: bool) -> String {
    if pass { "pass".into() } else { "MISS".into() }
}

pub fn f(value: &Value) -> f64 {
    value.as_f64().unwrap_or(f64::NAN)
}

pub fn u(value: &Value) -> u64 {
    value.as_u64().unwrap_or(0)
}

/// Nanoseconds, as "123 ns", "12.3 µs", "1.23 ms" or "1.23 s".
pub fn duration_ns(ns: f64) -> String {
    let a = ns.abs();
    if a < 1_000.0 {
        format!("{ns:.0} ns")
    } else if a < 1_000_000.0 {
        format!("{:.1} µs", ns / 1e3)
    } else if a < 1_000_000_000.0 {
        format!("{:.2} ms", ns / 1e6)
    } else {
        format!("{:.2} s", ns / 1e9)
    }
}

pub fn percent(share: f64) -> String {
    format!("{:.2}%", share * 100.0)
}

pub fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// The tables of every part, for the terminal.
pub fn terminal(parts: &[Part]) -> String {
    let mut out = String::new();
    for part in parts {
        out += &format!("\n== {} ==\n", part.title);
        for table in &part.tables {
            out += &table.render();
            out.push('\n');
        }
        for finding in &part.findings {
            out += &format!("* {finding}\n");
        }
    }
    out
}

/// BENCHMARKS.md: the machine, the command, then each part's method, tables and findings.
pub fn document(results: &Value, parts: &[Part]) -> String {
    let m = &results["machine"];
    let mut out = String::from("# Benchmarks\n\n");
    out += "Every number below comes from one run of `cargo xtask bench` (as root) on the \
            machine named here, on the date given; ratios compare numbers of that same run. \
            Re-run the command to reproduce them: it builds what it needs (release profile), \
            runs the six parts (the fifth and sixth, and the device-mapper rows of parts 2 and 4, in one VM boot), prints these tables and, with `--write`, rewrites this file. \
            No test asserts on timing; this is the only place numbers are checked against \
            targets. The raw figures of a run are in `target/bench/results.json`.\n\n";
    out += &format!(
        "* Date: {} (UTC)\n* Machine: {} x {}, {:.0} GiB RAM, Linux {}{}; load \
         average at the start: {}, at the end: {}\n* Commit: {}\n* Command: `{}` (measuring \
         took {} s after the build)\n\n",
        results["date"].as_str().unwrap_or("?"),
        m["cpus"],
        m["cpu"].as_str().unwrap_or("?"),
        f(&m["mem_gib"]),
        m["kernel"].as_str().unwrap_or("?"),
        if m["virtual_machine"] == true {
            " (a virtual machine)"
        } else {
            ""
        },
        m["loadavg"].as_str().unwrap_or("?"),
        results["loadavg_end"].as_str().unwrap_or("not recorded"),
        results["commit"].as_str().unwrap_or("?"),
        results["command"].as_str().unwrap_or("cargo xtask bench"),
        u(&results["measuring_seconds"]),
    );
    out += "A load average well above 0 means other jobs (builds, tests) shared the cores \
            during the run: wall-clock figures then carry their noise, and figures near a \
            target can land on either side of it from one run to the next. The CPU figures \
            are each process's or program's own accounted time, which such noise disturbs \
            much less.\n\n";
    out += "Options: `--write` (rewrite this file), `--no-setup` (skip `cargo xtask setup`), \
            `--reads`, `--trials`, `--sampler-paths 16,64,...`, `--sampler-seconds`, \
            `--scale-paths`, `--idle-seconds`, `--no-vm`, `--report-only` (write the tables of the last run again from its raw results). Each part can also be run on its own with the \
            harness: `target/release/examples/marginal-bench --help` (source in \
            `marginal-user/examples/marginal-bench/`, one JSON object per run).\n\n";
    out += "## Summary\n\n";
    let mut summary = Table::new(&["part", "measure", "result", "target", "verdict"]);
    for (part, rows) in summary_rows(results) {
        for (measure, result, target, pass) in rows {
            summary.row(vec![
                part.into(),
                measure,
                result,
                target.into(),
                pass.map_or("-".into(), verdict),
            ]);
        }
    }
    out += &summary.render();
    out.push('\n');
    for part in parts {
        out += &format!("## {}\n\n{}\n\n", part.title, part.method.trim());
        for table in &part.tables {
            out += &table.render();
            out.push('\n');
        }
        if !part.findings.is_empty() {
            out += "What this run shows:\n\n";
            for finding in &part.findings {
                out += &format!("* {finding}\n");
            }
            out.push('\n');
        }
    }
    out
}

type SummaryRow = (String, String, &'static str, Option<bool>);

/// One line per target, gathered from the parts.
fn summary_rows(results: &Value) -> Vec<(&'static str, Vec<SummaryRow>)> {
    vec![
        (
            "1. eBPF cost",
            super::ebpf_cost::summary(&results["ebpf_cost"]),
        ),
        (
            "2. reaction",
            super::reaction::summary(&results["reaction"], &results["vm"]),
        ),
        (
            "3. sampler",
            super::sampler_cost::summary(&results["sampler"]),
        ),
        ("4. scale", super::scale::summary(&results["scale"])),
        ("5. vs multipathd", super::vm::summary(&results["vm"])),
        (
            "6. storms",
            super::storm::summary(&super::vm::sub(&results["vm"], "storm")),
        ),
    ]
}
