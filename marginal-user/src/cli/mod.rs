//! The `marginal` command line, defined once: `main.rs` parses it, and the Debian package's
//! man pages and shell completions are generated from it (`examples/marginal-docs.rs`).
//!
//! The admin's commands have their front ends here, one file each; what they show comes from
//! the library's modules:
//! * `marginal run`: [`crate::daemon`] (its options are [`crate::daemon::RunArgs`]);
//! * [`status`]: `marginal status`, the daemon's maps and paths in a terminal (from `/status`);
//! * [`sample`]: `marginal sample`, one device sampled now ([`crate::sampler`]);
//! * [`config`]: `marginal config show|check|import` ([`crate::config`]).
use clap::{CommandFactory, Parser, Subcommand};

use crate::daemon;

pub mod config;
pub mod sample;
pub mod status;

#[derive(Debug, Parser)]
#[command(
    name = "marginal",
    version,
    about = "Find and isolate marginal dm-multipath paths",
    long_about = "marginal counts dm-multipath path failures in the kernel (eBPF), takes a path \
        that fails twice within marginal_path_double_failed_time out of service, measures its \
        error rate with direct reads, and keeps it out until it proves healthy: multipathd's \
        marginal path checking, with settings in /etc/marginal/marginal.conf."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: count path failures in the kernel, sample suspects, fail marginal paths.
    Run(Box<daemon::RunArgs>),
    /// Show the running daemon's maps and paths.
    Status(status::StatusArgs),
    /// Sample one block device now and print its error rate and verdict.
    Sample(sample::SampleArgs),
    /// Inspect, check and import marginal's configuration (/etc/marginal/marginal.conf).
    #[command(subcommand)]
    Config(config::ConfigCommand),
}

/// The command's definition, for generators (man pages, completions).
pub fn command() -> clap::Command {
    Cli::command()
}
