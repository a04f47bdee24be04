//! `cargo xtask demo`: marginal detecting a real flaky path on this machine, no multipath map
//! needed. Two real block devices (loop devices over FUSE files, see tests/src) form one
//! group: one fails every 4th read, one is healthy. marginal watches both in observe mode;
//! the demo reads the flaky one a few times, the kernel (eBPF) counts the failures, the second
//! failure within the window starts a sampling run, and the verdict comes out marginal.
use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, ChildStdin, Command, Stdio},
    thread::sleep,
    time::Duration,
};

use anyhow::{Context, Result, bail};

/// A flaky-device process; closing its stdin (drop) tears the device down.
struct DemoDevice {
    child: Child,
    stdin: Option<ChildStdin>,
    node: String,
}

impl DemoDevice {
    fn start(binary: &Path, schedule: &[&str]) -> Result<Self> {
        let mut child = Command::new(binary)
            .args(schedule)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let stdin = child.stdin.take();
        let mut line = String::new();
        BufReader::new(child.stdout.take().context("flaky-device stdout")?).read_line(&mut line)?;
        let node = line.trim().to_string();
        if !node.starts_with("/dev/loop") {
            bail!("flaky-device did not give a loop device (got {node:?})");
        }
        Ok(Self { child, stdin, node })
    }
}

impl Drop for DemoDevice {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

pub fn run() -> Result<()> {
    crate::setup::run()?;
    println!("demo: building marginal and the flaky-device fixture");
    crate::cargo(&[
        "build",
        "-q",
        "-p",
        "marginal-user",
        "-p",
        "marginal-tests",
        "--bins",
    ])?;
    let bin = target_dir()?.join("debug");

    let flaky = DemoDevice::start(&bin.join("flaky-device"), &["--every-nth", "4"])?;
    let healthy = DemoDevice::start(&bin.join("flaky-device"), &["--healthy"])?;
    println!(
        "demo: {} fails every 4th read, {} is healthy; marginal watches both as one group",
        flaky.node, healthy.node
    );
    let state = std::env::temp_dir().join(format!("marginal-demo-{}.json", std::process::id()));
    let listen = "127.0.0.1:9750";
    let mut daemon = Command::new(bin.join("marginal"))
        .args([
            "run",
            "--observe",
            "--watch",
            &flaky.node,
            "--watch",
            &healthy.node,
        ])
        .args(["--double-failed-time", "60", "--err-sample-time", "120"])
        .args(["--err-rate-threshold", "50", "--err-recheck-gap-time", "10"])
        // Demo pace: 5 s sampling runs instead of 120 s (the floor for real use).
        .args([
            "--sample-time-for-testing",
            "5",
            "--read-timeout-for-testing",
            "2",
        ])
        .args(["--duration", "24", "--listen", listen])
        .arg("--state-file")
        .arg(&state)
        .spawn()
        .context("starting marginal")?;
    sleep(Duration::from_secs(2));

    println!(
        "demo: reading {} 8 times with O_DIRECT, 300 ms apart",
        flaky.node
    );
    let mut failed = 0;
    for i in 0..8 {
        let ok = Command::new("dd")
            .arg(format!("if={}", flaky.node))
            .args(["of=/dev/null", "bs=4096", "count=1", "iflag=direct"])
            .arg(format!("skip={}", 16 * (i + 1)))
            .stderr(Stdio::null())
            .status()?
            .success();
        if !ok {
            failed += 1;
        }
        sleep(Duration::from_millis(300));
    }
    println!("demo: {failed} of 8 reads failed with EIO");
    sleep(Duration::from_secs(8));
    println!("demo: `marginal status` while the daemon runs:");
    Command::new(bin.join("marginal"))
        .args(["status", "--address", listen])
        .status()?;
    let status = daemon.wait()?;
    let _ = std::fs::remove_file(&state);
    if !status.success() {
        bail!("marginal exited with {status}");
    }
    println!("demo: done; devices are torn down");
    Ok(())
}

pub(crate) fn target_dir() -> Result<PathBuf> {
    if let Ok(dir) = std::env::var("CARGO_TARGET_DIR") {
        return Ok(PathBuf::from(dir));
    }
    // xtask runs from the workspace root (cargo alias).
    Ok(std::env::current_dir()?.join("target"))
}
