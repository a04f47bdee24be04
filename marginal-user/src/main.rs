//! The `marginal` command: the daemon and the admin's tools around it.
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use marginal::{config, daemon, sampler, status_cli};

#[derive(Debug, Parser)]
#[command(
    name = "marginal",
    version,
    about = "Find and isolate marginal dm-multipath paths"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the daemon: count path failures in the kernel, sample suspects, fail marginal paths.
    Run(Box<daemon::RunArgs>),
    /// Show the running daemon's maps and paths.
    Status(status_cli::StatusArgs),
    /// Sample one block device now and print its error rate and verdict.
    Sample(sampler::cli::SampleArgs),
    /// Inspect, check and import marginal's configuration (/etc/marginal/marginal.conf).
    #[command(subcommand)]
    Config(config::cli::ConfigCommand),
}

fn main() -> ExitCode {
    marginal::logging::init_logging();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => daemon::run(*args),
        Command::Status(args) => status_cli::run(args),
        Command::Sample(args) => sampler::cli::run(args),
        Command::Config(command) => config::cli::run(command),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("marginal: {err:#}");
            ExitCode::from(2)
        }
    }
}
