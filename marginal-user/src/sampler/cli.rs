//! `marginal sample DEVICE` (being written).
use std::process::ExitCode;

/// Arguments of `marginal sample`.
#[derive(Debug, clap::Args)]
pub struct SampleArgs {
    /// The block device to sample (name, /dev path or MAJ:MIN).
    pub device: String,
}

pub fn run(_args: SampleArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("marginal sample: not implemented yet")
}
