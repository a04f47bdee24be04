//! The `marginal` command: the daemon and the admin's tools around it.
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use marginal::{config, sampler};

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
    /// Sample one block device now and print its error rate and verdict.
    Sample(sampler::cli::SampleArgs),
    /// Inspect the multipath.conf settings marginal uses.
    #[command(subcommand)]
    Config(config::cli::ConfigCommand),
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cli = Cli::parse();
    let result = match cli.command {
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
