//! The `marginal` binary for integration tests, and a running daemon that is stopped (SIGTERM,
//! then SIGKILL) when the test ends, however it ends.
use std::{
    io::Read,
    net::{SocketAddr, TcpListener},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::OnceLock,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

/// target/<profile>/marginal, built once per test process. The binary belongs to another
/// package, so cargo does not build it for these tests; this runs `cargo build` into the same
/// target directory and profile as the test executable.
pub fn marginal_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        // The test executable is target/<profile>/deps/<name>-<hash>.
        let exe = std::env::current_exe().expect("test executable path");
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("target/<profile>/deps")
            .to_path_buf();
        let target_dir = profile_dir.parent().expect("target dir");
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("workspace root");
        let mut build = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        build
            .args(["build", "-q", "-p", "marginal-user", "--bin", "marginal"])
            .arg("--manifest-path")
            .arg(workspace.join("Cargo.toml"))
            .env("CARGO_TARGET_DIR", target_dir);
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            build.arg("--release");
        }
        let status = build.status().expect("running cargo build");
        assert!(
            status.success(),
            "cargo build of the marginal binary failed"
        );
        profile_dir.join("marginal")
    })
}

/// `marginal ARGS...` as an admin runs it (logging off), to completion.
pub fn run_marginal(args: &[&str]) -> std::process::Output {
    std::process::Command::new(marginal_binary())
        .args(args)
        .env("RUST_LOG", "off")
        .output()
        .expect("running marginal")
}

/// The command's standard output, as text.
pub fn stdout_text(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The command's standard error, as text.
pub fn stderr_text(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// `marginal run` options for tests: `devices` watched as one group in observe mode, no
/// multipath.conf, threshold 50 permille, 600 s recheck gap, and short sampling runs (3 s,
/// 1 s read timeout) instead of the 120 s floor; `extra` options follow.
pub fn observe_args(
    devices: &[&crate::FlakyDevice],
    state_file: &Path,
    extra: &[&str],
) -> Vec<String> {
    let mut args: Vec<String> = vec!["--observe".into()];
    for device in devices {
        args.push("--watch".into());
        args.push(device.loop_path().display().to_string());
    }
    args.extend(
        [
            "--config",
            "/dev/null",
            "--state-file",
            &state_file.display().to_string(),
            "--err-sample-time",
            "120",
            "--err-rate-threshold",
            "50",
            "--err-recheck-gap-time",
            "600",
            "--sample-time-for-testing",
            "3",
            "--read-timeout-for-testing",
            "1",
        ]
        .map(String::from),
    );
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

/// A free TCP port on 127.0.0.1 (bound and released; good enough for tests).
pub fn free_local_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free local port")
}

/// `marginal run` as a child process, its output captured to a file.
pub struct RunningDaemon {
    child: Option<Child>,
    pub listen: SocketAddr,
    pub log: PathBuf,
}

impl RunningDaemon {
    /// Start `marginal run ARGS --listen <free port>` and wait until it answers /status.
    pub fn start(args: &[String]) -> Result<Self> {
        Self::start_with_env(args, &[])
    }

    /// [`RunningDaemon::start`] with these environment variables set (systemd's, say).
    pub fn start_with_env(args: &[String], env: &[(&str, &str)]) -> Result<Self> {
        let listen = free_local_addr();
        let log = std::env::temp_dir().join(format!(
            "marginal-test-daemon-{}-{}.log",
            std::process::id(),
            listen.port()
        ));
        let log_file = std::fs::File::create(&log)?;
        let child = Command::new(marginal_binary())
            .arg("run")
            .args(args)
            .arg("--listen")
            .arg(listen.to_string())
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::from(log_file.try_clone()?))
            .stderr(Stdio::from(log_file))
            .spawn()
            .context("starting marginal run")?;
        let mut daemon = Self {
            child: Some(child),
            listen,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(listen).is_ok() {
                return Ok(daemon);
            }
            if let Some(status) = daemon.child.as_mut().unwrap().try_wait()? {
                bail!(
                    "marginal run exited early ({status}):\n{}",
                    daemon.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!(
            "marginal run did not listen within 20 s:\n{}",
            daemon.log_text()
        )
    }

    pub fn log_text(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut text);
        }
        text
    }

    /// Send `signal` to the daemon.
    pub fn signal(&self, signal: nix::sys::signal::Signal) -> Result<()> {
        let child = self.child.as_ref().expect("running");
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal)?;
        Ok(())
    }

    /// SIGTERM, and wait (up to 30 s) for a clean exit; returns the log.
    pub fn stop(mut self) -> Result<String> {
        self.signal(nix::sys::signal::Signal::SIGTERM)?;
        let mut child = self.child.take().expect("running");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait()? {
                let log = self.log_text();
                if !status.success() {
                    bail!("marginal run exited with {status}:\n{log}");
                }
                return Ok(log);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                bail!(
                    "marginal run ignored SIGTERM for 30 s:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for RunningDaemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_file(&self.log);
    }
}
