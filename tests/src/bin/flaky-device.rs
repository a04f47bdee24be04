//! `flaky-device`: a loop device whose reads fail on a schedule, for demos and the VM harness.
//!
//! Prints the loop device's path as one line on stdout, then keeps the device until SIGTERM,
//! SIGINT or SIGHUP, or until stdin reaches end of file. While it runs, each line on stdin
//! is a command, answered with one line on stdout:
//!
//! * a schedule in words (`healthy`, `every-nth N`, `fraction-permille P [SEED]`,
//!   `burst K [AFTER]`, `fail-all`, `hang`): switch to it; answers `ok`;
//! * `release` / `fail-hung`: answer hung reads with data / EIO; answers `ok N`;
//! * `stats`: answers `reads=.. ok=.. failed=.. hung=.. hung_now=.. writes=..`;
//! * `quit`: tear down and exit.
//!
//! stdin is only watched when it is a pipe, a socket or a terminal: a shell runs background
//! jobs (`flaky-device ... &`) with stdin from /dev/null, whose immediate end of file must not
//! tear the device down.

use std::io::{BufRead, Write};
use std::sync::mpsc;

use anyhow::{Context, Result};
use clap::{ArgGroup, Parser};
use marginal_tests::{FlakyDevice, FlakyOptions, Schedule, Stats, cleanup_stale};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, pthread_sigmask};

#[derive(Parser, Debug)]
#[command(about = "A loop device whose O_DIRECT reads fail with EIO on a schedule")]
#[command(group(ArgGroup::new("schedule").multiple(false)))]
struct Args {
    /// Size of the device in MiB.
    #[arg(long, default_value_t = 64)]
    size_mib: u64,
    /// No read fails (the default).
    #[arg(long, group = "schedule")]
    healthy: bool,
    /// Reads N, 2N, 3N, ... fail.
    #[arg(long, value_name = "N", group = "schedule")]
    every_nth: Option<u64>,
    /// Each read fails with probability P/1000, reproducibly for a given --seed.
    #[arg(long, value_name = "P", group = "schedule", value_parser = clap::value_parser!(u32).range(0..=1000))]
    fraction_permille: Option<u32>,
    /// Seed for --fraction-permille.
    #[arg(long, default_value_t = 0, requires = "fraction_permille")]
    seed: u64,
    /// K reads fail (after --burst-after good ones), then all succeed.
    #[arg(long, value_name = "K", group = "schedule")]
    burst: Option<u64>,
    /// Good reads before the burst.
    #[arg(long, value_name = "M", default_value_t = 0, requires = "burst")]
    burst_after: u64,
    /// Every read fails.
    #[arg(long, group = "schedule")]
    fail_all: bool,
    /// Every read hangs until a `release` or `fail-hung` command (or the end).
    #[arg(long, group = "schedule")]
    hang: bool,
    /// Value for /sys/block/loopN/queue/nomerges (2: never merge reads).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(0..=2))]
    nomerges: u8,
    /// Ignore stdin: stop only on a signal.
    #[arg(long)]
    no_stdin: bool,
    /// Remove loop devices and mounts left by crashed fixture processes, then exit.
    #[arg(long, exclusive = true)]
    cleanup_stale: bool,
}

impl Args {
    fn schedule(&self) -> Schedule {
        if let Some(n) = self.every_nth {
            Schedule::EveryNth(n)
        } else if let Some(permille) = self.fraction_permille {
            Schedule::FractionPermille {
                permille,
                seed: self.seed,
            }
        } else if let Some(fail) = self.burst {
            Schedule::Burst {
                after: self.burst_after,
                fail,
            }
        } else if self.fail_all {
            Schedule::FailAll
        } else if self.hang {
            Schedule::Hang
        } else {
            Schedule::Healthy
        }
    }
}

enum Event {
    Line(String),
    Stop(&'static str),
}

fn stdin_is_a_stream() -> bool {
    let stdin = std::io::stdin();
    if nix::unistd::isatty(&stdin).unwrap_or(false) {
        return true;
    }
    nix::sys::stat::fstat(&stdin).is_ok_and(|st| {
        let kind = st.st_mode & libc::S_IFMT;
        kind == libc::S_IFIFO || kind == libc::S_IFSOCK
    })
}

fn stats_line(s: &Stats) -> String {
    format!(
        "reads={} ok={} failed={} hung={} hung_now={} writes={}",
        s.reads, s.reads_ok, s.reads_failed, s.reads_hung, s.hung_now, s.writes
    )
}

/// Runs one stdin command; `None` means quit.
fn command(dev: &FlakyDevice, line: &str) -> Option<String> {
    Some(match line.trim() {
        "quit" => return None,
        "stats" => stats_line(&dev.stats()),
        "release" => format!("ok {}", dev.release_hung()),
        "fail-hung" => format!("ok {}", dev.fail_hung()),
        words => match words.parse::<Schedule>() {
            Ok(schedule) => {
                dev.set_schedule(schedule);
                "ok".to_string()
            }
            Err(e) => format!("error: {e}"),
        },
    })
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.cleanup_stale {
        for line in cleanup_stale()? {
            println!("{line}");
        }
        return Ok(());
    }

    // Blocked before any thread exists, so every thread inherits the mask and the signals
    // wait for sigwait below instead of killing the process before cleanup.
    let mut signals = SigSet::empty();
    for s in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        signals.add(s);
    }
    pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&signals), None).context("blocking signals")?;

    let dev = FlakyDevice::create(FlakyOptions {
        size_bytes: args.size_mib << 20,
        schedule: args.schedule(),
        nomerges: args.nomerges,
    })?;

    let (tx, events) = mpsc::channel();
    {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let stop = match signals.wait() {
                Ok(Signal::SIGINT) => "SIGINT",
                Ok(Signal::SIGHUP) => "SIGHUP",
                _ => "SIGTERM",
            };
            let _ = tx.send(Event::Stop(stop));
        });
    }
    if !args.no_stdin && stdin_is_a_stream() {
        std::thread::spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                if tx.send(Event::Line(line)).is_err() {
                    return;
                }
            }
            let _ = tx.send(Event::Stop("end of stdin"));
        });
    }

    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", dev.loop_path().display())?;
    out.flush()?;
    let reason = loop {
        match events.recv() {
            Ok(Event::Line(line)) if line.trim().is_empty() => {}
            Ok(Event::Line(line)) => match command(&dev, &line) {
                Some(answer) => {
                    writeln!(out, "{answer}")?;
                    out.flush()?;
                }
                None => break "quit",
            },
            Ok(Event::Stop(reason)) => break reason,
            Err(_) => break "no event source left",
        }
    };
    eprintln!(
        "flaky-device: {reason}; removing {} ({})",
        dev.loop_path().display(),
        stats_line(&dev.stats())
    );
    dev.close()
}
