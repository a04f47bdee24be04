//! Reads the guest's marker lines (written by tests/vm/init.sh) out of the console and reports.
//!
//! ```text
//! === MARGINAL-VM-READY <uname -r> ===
//! === MARGINAL-VM-BEGIN <name> ===
//! ...the scenario's output (stdout and stderr)...
//! === MARGINAL-VM-END <name> ===
//! === MARGINAL-VM-RESULT <name> PASS|FAIL|TIMEOUT <secs> [detail] ===
//! === MARGINAL-VM-SETUP-FAILED ===
//! === MARGINAL-VM-DONE ===
//! ```
//! Markers are searched anywhere in a line: a kernel message can land in front of one.

use std::path::Path;
use std::time::Duration;

use super::qemu::{Boot, PANIC_LINE};
use super::scenario::Scenario;

const PREFIX: &str = "=== MARGINAL-VM-";
const SUFFIX: &str = " ===";

#[derive(Debug, PartialEq, Eq)]
pub enum Marker<'a> {
    Ready,
    SetupFailed,
    Begin(&'a str),
    End(&'a str),
    Result { name: &'a str, verdict: &'a str },
    Done,
}

impl<'a> Marker<'a> {
    pub fn parse(line: &'a str) -> Option<Self> {
        let start = line.find(PREFIX)? + PREFIX.len();
        let body = &line[start..];
        let body = &body[..body.find(SUFFIX)?];
        let (kind, rest) = body.split_once(' ').unwrap_or((body, ""));
        Some(match kind {
            "READY" => Marker::Ready,
            "SETUP-FAILED" => Marker::SetupFailed,
            "DONE" => Marker::Done,
            "BEGIN" => Marker::Begin(rest),
            "END" => Marker::End(rest),
            "RESULT" => {
                let (name, verdict) = rest.split_once(' ')?;
                Marker::Result { name, verdict }
            }
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    Fail,
    Timeout,
    /// Started but never reported: the guest panicked, hung or powered off under it.
    Aborted,
    NotRun,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Pass => "PASS",
            Outcome::Fail => "FAIL",
            Outcome::Timeout => "TIMEOUT",
            Outcome::Aborted => "ABORTED",
            Outcome::NotRun => "NOT RUN",
        }
    }
}

#[derive(Debug)]
pub struct ScenarioResult {
    pub name: String,
    pub outcome: Outcome,
    /// The rest of the RESULT marker (time in the guest, reason), or why there is none.
    pub detail: String,
    pub output: Vec<String>,
}

/// The result of every scenario of a boot, plus a `(boot)` row when the boot itself went wrong
/// (panic, timeout, failed setup, no DONE marker).
pub fn collect(boot: &Boot, scenarios: &[Scenario]) -> Vec<ScenarioResult> {
    let markers: Vec<(usize, Marker)> = boot
        .lines
        .iter()
        .enumerate()
        .filter_map(|(i, l)| Marker::parse(l).map(|m| (i, m)))
        .collect();
    let has = |want: &Marker| markers.iter().any(|(_, m)| m == want);
    let boot_problem = if boot.panicked {
        Some("guest kernel panic".to_string())
    } else if boot.timed_out {
        Some(format!(
            "guest timed out after {} s",
            boot.timeout.as_secs()
        ))
    } else if has(&Marker::SetupFailed) {
        Some("guest setup failed (modules?)".to_string())
    } else if !has(&Marker::Done) {
        Some(format!(
            "guest stopped without finishing (qemu {:?})",
            boot.status
        ))
    } else {
        None
    };

    let mut results = Vec::new();
    for s in scenarios {
        let name = s.name.as_str();
        let begin = markers
            .iter()
            .find(|(_, m)| *m == Marker::Begin(name))
            .map(|(i, _)| *i);
        let end = markers
            .iter()
            .find(|(_, m)| *m == Marker::End(name))
            .map(|(i, _)| *i);
        let verdict = markers.iter().find_map(|(_, m)| match m {
            Marker::Result { name: n, verdict } if *n == name => Some(*verdict),
            _ => None,
        });
        let output = match begin {
            Some(b) => boot.lines[b + 1..end.unwrap_or(boot.lines.len())].to_vec(),
            None => Vec::new(),
        };
        let (outcome, detail) = match (begin, verdict) {
            (_, Some(v)) => {
                let (word, detail) = v.split_once(' ').unwrap_or((v, ""));
                let outcome = match word {
                    "PASS" => Outcome::Pass,
                    "TIMEOUT" => Outcome::Timeout,
                    _ => Outcome::Fail,
                };
                (outcome, detail.to_string())
            }
            (Some(_), None) => (Outcome::Aborted, boot_problem.clone().unwrap_or_default()),
            (None, None) => {
                let why = boot_problem
                    .clone()
                    .unwrap_or_else(|| "skipped after a failure".into());
                (Outcome::NotRun, why)
            }
        };
        results.push(ScenarioResult {
            name: name.to_string(),
            outcome,
            detail,
            output,
        });
    }
    if let Some(problem) = boot_problem {
        // The console outside the scenarios' frames: the panic trace or the setup error is there.
        let mut inside = false;
        let mut rest = Vec::new();
        for line in &boot.lines {
            match Marker::parse(line) {
                Some(Marker::Begin(_)) => inside = true,
                Some(Marker::End(_)) => inside = false,
                Some(_) => {}
                None if !inside => rest.push(line.clone()),
                None => {}
            }
        }
        let keep = rest.len().saturating_sub(60);
        let mut output = rest.split_off(keep);
        if !boot.qemu_stderr.trim().is_empty() {
            output.push(format!("qemu stderr: {}", boot.qemu_stderr.trim()));
        }
        results.push(ScenarioResult {
            name: "(boot)".into(),
            outcome: Outcome::Fail,
            detail: problem,
            output,
        });
    }
    results
}

/// Prints each scenario's output under a header line.
pub fn print_boot(label: &str, boot: &Boot, results: &[ScenarioResult], log: &Path) {
    for r in results {
        println!(
            "---- [{label}] {} {} {}",
            r.name,
            r.outcome.as_str(),
            r.detail
        );
        for line in &r.output {
            println!("  | {line}");
        }
    }
    let panics = boot.lines.iter().filter(|l| l.contains(PANIC_LINE)).count();
    println!(
        "vm-test: [{label}] boot took {:.1} s{}; console log: {}",
        boot.elapsed.as_secs_f32(),
        if panics > 0 { " (kernel panic)" } else { "" },
        log.display()
    );
}

/// The final per-kernel, per-scenario table.
pub fn print_table(rows: &[super::BootResults], total: Duration) {
    let width = rows
        .iter()
        .flat_map(|b| b.results.iter().map(|r| r.name.len()))
        .max()
        .unwrap_or(8)
        .max(8);
    println!();
    println!(
        "{:<7} {:<width$} {:<8} time (guest), detail",
        "kernel", "scenario", "result"
    );
    let (mut passed, mut failed) = (0, 0);
    for boot in rows {
        for r in &boot.results {
            println!(
                "{:<7} {:<width$} {:<8} {}",
                boot.label,
                r.name,
                r.outcome.as_str(),
                r.detail
            );
            if r.outcome == Outcome::Pass {
                passed += 1
            } else {
                failed += 1
            }
        }
    }
    let per_kernel: Vec<String> = rows
        .iter()
        .map(|b| format!("{}: {:.1} s", b.label, b.elapsed.as_secs_f32()))
        .collect();
    println!(
        "vm-test: {} (total {:.1} s)",
        per_kernel.join(", "),
        total.as_secs_f32()
    );
    println!("vm-test: {passed} passed, {failed} failed");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_found_behind_kernel_noise() {
        assert_eq!(
            Marker::parse("[  1.2] foo=== MARGINAL-VM-BEGIN a-b ==="),
            Some(Marker::Begin("a-b"))
        );
        assert_eq!(
            Marker::parse("=== MARGINAL-VM-RESULT x FAIL 1.20s rc=1 ==="),
            Some(Marker::Result {
                name: "x",
                verdict: "FAIL 1.20s rc=1"
            })
        );
        assert_eq!(
            Marker::parse("=== MARGINAL-VM-DONE ==="),
            Some(Marker::Done)
        );
        assert_eq!(
            Marker::parse("=== MARGINAL-VM-READY 6.1.0 ==="),
            Some(Marker::Ready)
        );
        assert_eq!(Marker::parse("plain output"), None);
    }
}
