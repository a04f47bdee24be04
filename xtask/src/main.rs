//! Project tasks: `cargo xtask <setup|demo|test|vm-test|bench>`.
mod vm;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "xtask")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Boot QEMU VMs with real dm-multipath and run the VM scenarios.
    VmTest(vm::VmTestArgs),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::VmTest(args) => vm::run(args),
    }
}
