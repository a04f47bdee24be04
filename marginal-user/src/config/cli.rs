//! `marginal config ...` (being written).
use std::process::ExitCode;

/// `marginal config` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum ConfigCommand {
    /// Show the effective marginal_path_* settings.
    Show,
}

pub fn run(_command: ConfigCommand) -> anyhow::Result<ExitCode> {
    anyhow::bail!("marginal config: not implemented yet")
}
