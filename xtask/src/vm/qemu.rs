//! Boots a kernel and initramfs under QEMU (TCG: the build machine's /dev/kvm cannot run stock
//! kernels) and captures the serial console until the guest powers off, panics or runs out of time.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc::{RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

/// Time for booting, module loading and powering off, on top of the scenarios' own time limits.
/// A boot takes about 3 s under TCG; the margin is for a loaded machine.
pub const BOOT_BUDGET: Duration = Duration::from_secs(60);

/// What the kernel prints when it panics (with `panic=-1` and `-no-reboot` QEMU then exits).
pub const PANIC_LINE: &str = "Kernel panic - not syncing";

pub struct BootSpec<'a> {
    pub label: &'a str,
    pub kernel: &'a Path,
    pub initrd: &'a Path,
    pub keep_going: bool,
    /// Extra kernel parameters (a scenario's `vm-cmdline`).
    pub cmdline: &'a str,
    /// Which scenario list the guest runs (tests/vm/init.sh reads `marginal.group`).
    pub group: usize,
    pub timeout: Duration,
    pub console_log: &'a Path,
}

pub struct Boot {
    /// Console lines, `\r` removed.
    pub lines: Vec<String>,
    pub panicked: bool,
    pub timed_out: bool,
    pub timeout: Duration,
    /// QEMU's exit status (None when it had to be killed).
    pub status: Option<ExitStatus>,
    /// What QEMU itself printed on stderr.
    pub qemu_stderr: String,
    pub elapsed: Duration,
}

pub fn boot(spec: &BootSpec) -> Result<Boot> {
    let started = Instant::now();
    let append = format!(
        // loglevel=4 keeps dm's routine messages off the console (scenarios read dmesg); panics
        // and oopses still show. marginal.keep_going and marginal.group are read by
        // tests/vm/init.sh. no_timer_check: on a loaded host 5.10's boot-time check of the
        // IO-APIC timer can miss its ticks under TCG and panic ("IO-APIC + timer doesn't work").
        "console=ttyS0 panic=-1 loglevel=4 no_timer_check rdinit=/init marginal.keep_going={} \
         marginal.group={} {}",
        u8::from(spec.keep_going),
        spec.group,
        spec.cmdline
    );
    let mut child = Command::new("qemu-system-x86_64")
        .args([
            "-accel",
            "tcg",
            "-cpu",
            "qemu64,-cx16",
            "-smp",
            "2",
            "-m",
            "1024",
        ])
        // No display, no network (a NIC would need the iPXE ROMs), the serial port on stdout.
        .args([
            "-display",
            "none",
            "-monitor",
            "none",
            "-serial",
            "stdio",
            "-nic",
            "none",
            "-no-reboot",
        ])
        .arg("-kernel")
        .arg(spec.kernel)
        .arg("-initrd")
        .arg(spec.initrd)
        .args(["-append", &append])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting qemu-system-x86_64")?;

    let (tx, rx) = channel::<String>();
    let stdout = child.stdout.take().context("no qemu stdout")?;
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buf)
                        .trim_end_matches(['\n', '\r'])
                        .replace('\r', "");
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            }
        }
    });
    let mut stderr = child.stderr.take().context("no qemu stderr")?;
    let stderr_thread = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut s);
        s
    });

    let mut log = File::create(spec.console_log)
        .with_context(|| format!("creating {}", spec.console_log.display()))?;
    let mut lines = Vec::new();
    let mut panicked = false;
    let mut timed_out = false;
    let mut deadline = started + spec.timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                writeln!(log, "{line}")?;
                progress(spec.label, &line, started);
                if line.contains(PANIC_LINE) && !panicked {
                    panicked = true;
                    // QEMU exits by itself after a panic; only wait for the rest of the trace.
                    deadline = deadline.min(Instant::now() + Duration::from_secs(10));
                }
                lines.push(line);
            }
            Err(RecvTimeoutError::Timeout) => {
                timed_out = !panicked;
                let _ = child.kill();
                break;
            }
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    let status = child.wait().context("waiting for qemu")?;
    let status = if timed_out { None } else { Some(status) };
    let qemu_stderr = stderr_thread.join().unwrap_or_default();
    Ok(Boot {
        lines,
        panicked,
        timed_out,
        timeout: spec.timeout,
        status,
        qemu_stderr,
        elapsed: started.elapsed(),
    })
}

/// Shows each scenario's result as it arrives, so a long run is not silent.
fn progress(label: &str, line: &str, started: Instant) {
    if let Some(m) = super::report::Marker::parse(line) {
        let t = started.elapsed().as_secs_f32();
        match m {
            super::report::Marker::Ready => println!("vm-test: [{label}] {t:5.1}s guest ready"),
            super::report::Marker::Result { name, verdict } => {
                println!("vm-test: [{label}] {t:5.1}s {name}: {verdict}")
            }
            _ => {}
        }
    }
    if line.contains(PANIC_LINE) {
        println!("vm-test: [{label}] guest kernel panic: {line}");
    }
}
