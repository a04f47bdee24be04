//! `cargo xtask vm-test` (being written).
#[derive(Debug, clap::Args)]
pub struct VmTestArgs {}

pub fn run(_args: VmTestArgs) -> anyhow::Result<()> {
    anyhow::bail!("vm-test: not implemented yet")
}
