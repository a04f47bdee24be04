//! Project tasks, run as `cargo xtask <task>` (root needed for all but builds):
//!
//! * `setup`: install what the project needs on a bare Debian 12 machine, only where missing.
//! * `package`: the Debian package, `target/debian/marginal_<version>_<arch>.deb`.
//! * `demo`: the main job: marginal watching a real flaky block device (no multipath needed).
//! * `test`: every test: formatting and lints are .ci/run's; this runs unit, kernel integration
//!   and VM tests.
//! * `vm-test`: the dm-multipath scenarios in QEMU VMs with stock Debian kernels.
//! * `bench`: the performance figures and their targets (BENCHMARKS.md).
mod bench;
mod demo;
mod package;
mod setup;
mod vm;

use std::process::Command;

use anyhow::{Result, bail};
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "xtask")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Install apt packages, nightly rust-src and bpf-linker where missing; mount tracefs.
    Setup,
    /// Build the Debian package (target/debian/marginal_<version>_<arch>.deb) with cargo-deb.
    Package,
    /// The main job: marginal detecting a real flaky block device (no multipath map needed).
    Demo,
    /// Set up, then run every test: unit, kernel integration (root) and VM tests.
    Test {
        /// Skip the VM stage (dm-multipath scenarios under QEMU).
        #[arg(long)]
        no_vm: bool,
    },
    /// Boot QEMU VMs with real dm-multipath and run the VM scenarios.
    VmTest(vm::VmTestArgs),
    /// Measure eBPF cost, reaction time, sampler cost and scale; print them with their targets.
    Bench(bench::BenchArgs),
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Task::Setup => setup::run(),
        Task::Package => package::run().map(|_| ()),
        Task::Demo => demo::run(),
        Task::Test { no_vm } => test(no_vm),
        Task::VmTest(args) => vm::run(args),
        Task::Bench(args) => bench::run(args),
    }
}

fn test(no_vm: bool) -> Result<()> {
    let started = std::time::Instant::now();
    setup::run()?;
    println!("test: building the workspace");
    // Default members only: marginal-ebpf is built by marginal-user/build.rs for bpfel.
    cargo(&["build", "--all-targets"])?;
    // Before the tests: tests/tests/package_deb.rs checks this package (lintian, its unit).
    package::run()?;
    println!("test: unit and integration tests (integration tests use the real kernel: root)");
    cargo(&["test", "--no-fail-fast"])?;
    if !no_vm {
        println!("test: VM scenarios");
        cargo(&["xtask", "vm-test"])?;
    }
    println!("test: all passed in {:.0?}", started.elapsed());
    Ok(())
}

fn cargo(args: &[&str]) -> Result<()> {
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(args)
        .status()?;
    if !status.success() {
        bail!("cargo {} failed ({status})", args.join(" "));
    }
    Ok(())
}
