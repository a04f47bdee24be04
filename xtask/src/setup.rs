//! `cargo xtask setup`: everything marginal needs on a bare Debian 12 machine, installed only
//! where missing (apt packages, rust-src, bpf-linker, cargo-deb, Grafana's SDK in a venv). Every step says what it does; a step that cannot work stops with the reason.
use std::{
    path::Path,
    process::{Command, Stdio},
};

use anyhow::{Context, Result, bail};

/// Debian packages the build, the tests, the demo and the VM stage use.
const APT_PACKAGES: &[(&str, &str)] = &[
    (
        "llvm-22-dev",
        "bpf-linker links eBPF objects with LLVM 22, rustc nightly's LLVM",
    ),
    (
        "libpolly-22-dev",
        "needed to link bpf-linker against LLVM 22",
    ),
    ("zlib1g-dev", "needed to link bpf-linker"),
    ("libzstd-dev", "needed to link bpf-linker"),
    ("pkg-config", "finds system libraries for -sys crates"),
    ("util-linux", "losetup for loop devices"),
    (
        "libdevmapper-dev",
        "the devicemapper crate links libdevmapper",
    ),
    (
        "libclang-dev",
        "bindgen (devicemapper-sys) reads dm-ioctl.h with libclang",
    ),
    (
        "prometheus",
        "a real Prometheus server and promtool for the exporter tests",
    ),
    ("curl", "the demo reads /status and /metrics"),
    ("lintian", "checks the Debian package (cargo xtask package)"),
    (
        "dpkg-dev",
        "cargo-deb computes the package's library dependencies with dpkg-shlibdeps",
    ),
    (
        "systemd",
        "systemd-analyze verify and security check the packaged unit",
    ),
    ("man-db", "the tests render the packaged man pages"),
    (
        "python3-venv",
        "a private Python environment for Grafana's foundation SDK (the dashboard)",
    ),
];

/// Grafana's foundation SDK builds dashboards/marginal-grafana.json. Pinned: its versions are
/// `<build>!<Grafana version>`, and pip would otherwise take the newest build for the oldest
/// Grafana.
pub const GRAFANA_SDK: &str = "grafana-foundation-sdk==1769699379!11.6.0";

/// The Python environment that holds it (under target/, so `cargo clean` takes it too).
pub const GRAFANA_SDK_VENV: &str = "target/grafana-sdk-venv";

/// Run every set-up step.
pub fn run() -> Result<()> {
    require_root()?;
    install_apt_packages(APT_PACKAGES)?;
    install_rust_src()?;
    install_bpf_linker()?;
    install_cargo_deb()?;
    install_grafana_sdk()?;
    mount_tracefs()?;
    check_kernel_features()?;
    println!("setup: done");
    Ok(())
}

fn require_root() -> Result<()> {
    let uid = String::from_utf8(Command::new("id").arg("-u").output()?.stdout)?;
    if uid.trim() != "0" {
        bail!("setup must run as root: it installs packages, loads eBPF and makes loop devices");
    }
    Ok(())
}

fn package_installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        .unwrap_or(false)
}

/// Install the packages of `wanted` that are missing (one `apt-get update` first, if any).
pub fn install_apt_packages(wanted: &[(&str, &str)]) -> Result<()> {
    let missing: Vec<_> = wanted
        .iter()
        .filter(|(package, _)| !package_installed(package))
        .collect();
    if missing.is_empty() {
        println!("setup: apt packages present ({} checked)", wanted.len());
        return Ok(());
    }
    for (package, why) in &missing {
        println!("setup: installing {package}: {why}");
    }
    run_quiet(Command::new("apt-get").arg("update"), "apt-get update")?;
    let mut install = Command::new("apt-get");
    install
        .args(["install", "-y", "--no-install-recommends"])
        .args(missing.iter().map(|(package, _)| *package))
        .env("DEBIAN_FRONTEND", "noninteractive");
    run_quiet(&mut install, "apt-get install")
}

fn install_rust_src() -> Result<()> {
    let installed = Command::new("rustup")
        .args(["component", "list", "--toolchain", "nightly", "--installed"])
        .output()
        .context("running rustup (is Rust installed with rustup?)")?;
    if !installed.status.success() {
        bail!(
            "the nightly Rust toolchain is missing; the eBPF crate builds with it \
             (`rustup toolchain install nightly`)"
        );
    }
    if String::from_utf8_lossy(&installed.stdout)
        .lines()
        .any(|l| l.starts_with("rust-src"))
    {
        println!("setup: nightly rust-src present");
        return Ok(());
    }
    println!(
        "setup: adding rust-src to the nightly toolchain (the eBPF target builds core from source)"
    );
    run_quiet(
        Command::new("rustup").args(["component", "add", "rust-src", "--toolchain", "nightly"]),
        "rustup component add rust-src",
    )
}

fn install_bpf_linker() -> Result<()> {
    if Command::new("bpf-linker")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
    {
        println!("setup: bpf-linker present");
        return Ok(());
    }
    println!("setup: building bpf-linker against LLVM 22 (about a minute)");
    let path = format!(
        "/usr/lib/llvm-22/bin:{}",
        std::env::var("PATH").unwrap_or_default()
    );
    run_quiet(
        Command::new("cargo")
            .args([
                "install",
                "--locked",
                "bpf-linker",
                "--no-default-features",
                "--features",
                "llvm-22",
            ])
            .env("PATH", path),
        "cargo install bpf-linker",
    )
}

fn install_cargo_deb() -> Result<()> {
    if Command::new("cargo")
        .args(["deb", "--version"])
        .output()
        .is_ok_and(|o| o.status.success())
    {
        println!("setup: cargo-deb present");
        return Ok(());
    }
    println!("setup: installing cargo-deb (builds the Debian package; a few minutes)");
    run_quiet(
        Command::new("cargo").args(["install", "--locked", "cargo-deb"]),
        "cargo install cargo-deb",
    )
}

/// A venv with the pinned SDK; rebuilt only when the pin changes (the venv records it).
fn install_grafana_sdk() -> Result<()> {
    let venv = Path::new(GRAFANA_SDK_VENV);
    let stamp = venv.join("marginal-pin");
    if std::fs::read_to_string(&stamp).is_ok_and(|pin| pin == GRAFANA_SDK) {
        println!("setup: {GRAFANA_SDK} present in {GRAFANA_SDK_VENV}");
        return Ok(());
    }
    println!("setup: installing {GRAFANA_SDK} into {GRAFANA_SDK_VENV} (pip)");
    run_quiet(
        Command::new("python3").args(["-m", "venv", "--clear", GRAFANA_SDK_VENV]),
        "python3 -m venv",
    )?;
    run_quiet(
        Command::new(venv.join("bin/pip")).args(["install", "--quiet", GRAFANA_SDK]),
        "pip install grafana-foundation-sdk",
    )?;
    std::fs::write(&stamp, GRAFANA_SDK).context("recording the SDK pin")
}

fn mount_tracefs() -> Result<()> {
    let tracefs = Path::new("/sys/kernel/tracing");
    if tracefs.join("events").is_dir() {
        println!("setup: tracefs mounted");
        return Ok(());
    }
    println!("setup: mounting tracefs at /sys/kernel/tracing");
    run_quiet(
        Command::new("mount").args(["-t", "tracefs", "nodev", "/sys/kernel/tracing"]),
        "mount tracefs",
    )
}

/// What the tests need from the kernel; said plainly instead of failing later in obscure ways.
fn check_kernel_features() -> Result<()> {
    for (path, what) in [
        ("/dev/loop-control", "loop devices"),
        ("/dev/fuse", "FUSE"),
        ("/sys/kernel/tracing/events/block", "block tracepoints"),
    ] {
        if !Path::new(path).exists() {
            bail!("this kernel lacks {what} ({path} is missing)");
        }
    }
    if !Path::new("/sys/kernel/btf/vmlinux").exists() {
        println!("setup: note: no kernel BTF; marginal's programs do not need it");
    }
    println!("setup: kernel has loop devices, FUSE and block tracepoints");
    Ok(())
}

/// Run a command, showing its output only when it fails.
pub fn run_quiet(command: &mut Command, what: &str) -> Result<()> {
    let output = command
        .output()
        .with_context(|| format!("{what}: could not start"))?;
    if !output.status.success() {
        bail!(
            "{what} failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}
