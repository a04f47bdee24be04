//! The kernels the scenarios boot: Debian's stock `cloud-amd64` images, each line followed through
//! its meta package so the test bed keeps up with Debian's updates without versions to maintain.

/// The kernels `--kernel` picks from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KernelChoice {
    /// Debian bullseye's 5.10: no block:block_rq_error tracepoint (block_rq_complete instead).
    #[value(name = "5.10")]
    V5_10,
    /// Debian bookworm's own kernel.
    #[value(name = "6.1")]
    V6_1,
    /// bookworm's 6.12 (from bookworm-security): the only one with the whole fault matrix
    /// (scsi_debug's per-device error injection).
    #[value(name = "6.12")]
    V6_12,
    /// Debian unstable's kernel (7.2 in 2026-12).
    #[value(name = "sid", alias = "7.x")]
    Sid,
    /// The kernels `cargo xtask test` boots: see [`Kernel::default_run`].
    Default,
    /// Every kernel above.
    All,
}

#[derive(Debug, Clone, Copy)]
pub struct Kernel {
    pub label: &'static str,
    /// Debian's meta package: its current version depends on the newest kernel image of the line.
    pub meta_package: &'static str,
    /// The Debian suite that has it (None: the host's own bookworm sources).
    pub suite: Option<&'static str>,
    /// Whether `--kernel default` (and so `cargo xtask test`) boots it. Each boot costs about a
    /// minute of one core before the first scenario runs, and the machines have two cores: the
    /// default run is 6.12 (the whole matrix), 6.1 (bookworm's own) and 5.10 (the oldest kernel,
    /// the block_rq_complete path); sid is run on demand (`--kernel sid` or `all`) because it
    /// changes under the test every few days.
    pub default_run: bool,
}

pub const KERNELS: &[Kernel] = &[
    Kernel {
        label: "5.10",
        meta_package: "linux-image-cloud-amd64",
        suite: Some("bullseye"),
        default_run: true,
    },
    Kernel {
        label: "6.1",
        meta_package: "linux-image-cloud-amd64",
        suite: None,
        default_run: true,
    },
    Kernel {
        label: "6.12",
        meta_package: "linux-image-6.12-cloud-amd64",
        suite: None,
        default_run: true,
    },
    Kernel {
        label: "sid",
        meta_package: "linux-image-cloud-amd64",
        suite: Some("sid"),
        default_run: false,
    },
];

impl KernelChoice {
    pub fn selects(self, k: &Kernel) -> bool {
        match self {
            KernelChoice::All => true,
            KernelChoice::Default => k.default_run,
            KernelChoice::V5_10 => k.label == "5.10",
            KernelChoice::V6_1 => k.label == "6.1",
            KernelChoice::V6_12 => k.label == "6.12",
            KernelChoice::Sid => k.label == "sid",
        }
    }
}
