//! The `marginal` command: the daemon and the admin's tools around it.
use std::process::ExitCode;

use clap::Parser;
use marginal::cli::{Cli, Command};
use marginal::{cli, daemon};

fn main() -> ExitCode {
    marginal::logging::init_logging();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => daemon::run(*args),
        Command::Status(args) => cli::status::run(args),
        Command::Sample(args) => cli::sample::run(args),
        Command::Config(command) => cli::config::run(command),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("marginal: {err:#}");
            ExitCode::from(2)
        }
    }
}
