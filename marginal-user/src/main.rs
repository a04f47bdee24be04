//! The `marginal` command: the daemon and the admin's tools around it.
use std::process::ExitCode;

use clap::Parser;
use marginal::cli::{Cli, Command};
use marginal::{config, daemon, sampler, status_cli};

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
