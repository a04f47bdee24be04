//! `cargo xtask vm-test`: the VM test bed for everything the build machine's kernel lacks
//! (device-mapper, dm-multipath, kprobes, loadable modules; see shared/ENVIRONMENT.md).
//!
//! For each selected kernel (Debian bookworm's 6.1 and the 6.12 backport, both `cloud-amd64`) it
//! 1. makes sure the host has QEMU (apt-get install, only when missing),
//! 2. fetches the kernel, busybox-static and dmsetup packages with `apt-get download` into
//!    `.vm-cache/debs` (kept between runs; the kernel is the newest one Debian's meta package
//!    points at) and unpacks them with `dpkg-deb -x`,
//! 3. builds the project's binaries with cargo (debug, as `cargo xtask test` already built them)
//!    and an uncompressed initramfs: busybox, dmsetup, those binaries (debug info stripped) with the
//!    shared libraries `ldd` lists for them, the dm and loop modules (dependency order read from
//!    `.modinfo`, `.ko.xz` unpacked), `tests/vm/init.sh` as `/init`, `tests/vm/lib.sh` and the
//!    scenarios,
//! 4. boots each kernel once under QEMU/TCG, the kernels side by side (`--jobs`); the guest runs
//!    every scenario in file-name order, prints each one's output between marker lines on the
//!    serial console, then powers off,
//! 5. parses the console and prints each scenario's output and a result table; the run fails when
//!    a scenario fails or times out, the guest panics, or the boot exceeds its time limit
//!    (1 minute plus the scenarios' limits).
//!
//! Without `--keep-going` a guest stops at its first failed scenario (the rest are NOT RUN).
//! `--scenario NAME` (repeatable) picks scenarios, `--kernel 6.1|6.12|all` kernels. Console logs
//! are kept in `.vm-cache/console-<kernel>.log`.
//!
//! # Adding a scenario
//! Drop `tests/vm/scenarios/NAME.sh` (busybox `sh`; see tests/vm/README.md). It passes when it exits
//! 0. Comment lines tell the test bed what it needs:
//! - `# vm-bins: marginal other-bin` workspace binaries to build with cargo; they land in
//!   `/usr/local/bin` (the `marginal` binary is always there);
//! - `# vm-debs: pkg1 pkg2` extra Debian packages unpacked into the guest root (list their library
//!   packages too: apt-get download does not follow dependencies; libraries the host has are taken
//!   from the host);
//! - `# vm-timeout: 90` seconds before the guest kills it (default 60).
//!
//! Binaries from elsewhere go in with `--bin PATH` (to `/usr/local/bin/<file name>`), more workspace
//! binaries with `--cargo-bin NAME`; `--no-build` takes workspace binaries as the last build left
//! them. In the guest a scenario runs as root in its own session with `$SCRATCH` (a fresh tmpfs),
//! `$VM_LIB` (the helpers in `tests/vm/lib.sh`), `DM_DISABLE_UDEV=1` and `$KERNEL_RELEASE`; whatever
//! it leaves behind (processes, kprobes, dm and loop devices) is removed before the next one.
//!
//! Other tasks can call [`run`] with a [`VmTestArgs`] (its `Default` is the command line without
//! options: all kernels, all scenarios, debug build); it returns an error when anything failed.

mod initramfs;
mod kernels;
mod modules;
mod packages;
mod qemu;
mod report;
mod scenario;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

pub use kernels::KernelChoice;
use kernels::{KERNELS, Kernel};
pub use report::{Outcome, ScenarioResult};

/// Modules every guest loads (their dependencies are added from `.modinfo`): dm core (it holds the
/// `error` and `linear` targets), multipath with its path selectors, the targets that make paths
/// misbehave, and loop for the backing devices.
const GUEST_MODULES: &[&str] = &[
    "dm-mod",
    "dm-multipath",
    "dm-round-robin",
    "dm-service-time",
    "dm-queue-length",
    "dm-flakey",
    "dm-delay",
    "loop",
];

/// Modules a scenario loads itself with `modprobe` (busybox's, from the modules.dep written
/// here), with its own parameters: the real SAN paths (tests/vm/lib/). A kernel that lacks one
/// boots anyway; the scenario that needs it fails there.
const ON_DEMAND_MODULES: &[&str] = &[
    // scsi_debug's LUNs, as sdX disks.
    "scsi_debug",
    "sd_mod",
    // iSCSI: LIO's target with an iblock backstore, open-iscsi's initiator, netem on lo.
    "crc32c_generic",
    "target_core_iblock",
    "iscsi_target_mod",
    "iscsi_tcp",
    "sch_prio",
    "sch_netem",
    "cls_u32",
    // NVMe/TCP: nvmet's target and the host side.
    "nvmet_tcp",
    "nvme_tcp",
];

/// Debian packages every guest has. busybox-static gives the shell and every other tool; dmsetup's
/// own libraries come with it so the guest does not depend on what the host happens to have.
const BASE_DEBS: &[&str] = &[
    "busybox-static",
    "dmsetup",
    "libdevmapper1.02.1",
    "libselinux1",
    "libudev1",
    "libpcre2-8-0",
];

/// Workspace binaries every guest has.
const BASE_CARGO_BINS: &[&str] = &["marginal"];

#[derive(Debug, clap::Args)]
pub struct VmTestArgs {
    /// Kernel(s) to boot.
    #[arg(long, value_enum, default_value = "default")]
    pub kernel: KernelChoice,
    /// Run only these scenarios (file names in tests/vm/scenarios without `.sh`; repeatable).
    #[arg(long = "scenario", value_name = "NAME")]
    pub scenarios: Vec<String>,
    /// Boot every kernel and run every scenario even after a failure.
    #[arg(long)]
    pub keep_going: bool,
    /// Build the workspace binaries with `--release`.
    #[arg(long)]
    pub release: bool,
    /// More workspace binaries to build and include (repeatable).
    #[arg(long = "cargo-bin", value_name = "NAME")]
    pub cargo_bins: Vec<String>,
    /// Host binaries to include as /usr/local/bin/<file name> (repeatable).
    #[arg(long = "bin", value_name = "PATH")]
    pub bins: Vec<PathBuf>,
    /// Do not run cargo: take the workspace binaries from the target directory as they are
    /// (a `--bin` of the same file name replaces one).
    #[arg(long)]
    pub no_build: bool,
    /// How many guests boot at once (default: all selected kernels; 1 boots one after another).
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
    /// Where downloads and built images are kept (default: <workspace>/.vm-cache).
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Where the scenarios are (default: <workspace>/tests/vm/scenarios; `cargo xtask bench`
    /// runs tests/vm/bench).
    #[arg(long, value_name = "DIR")]
    pub scenario_dir: Option<PathBuf>,
}

impl Default for VmTestArgs {
    fn default() -> Self {
        Self {
            kernel: KernelChoice::Default,
            scenarios: Vec::new(),
            keep_going: false,
            release: false,
            cargo_bins: Vec::new(),
            bins: Vec::new(),
            no_build: false,
            jobs: None,
            cache_dir: None,
            scenario_dir: None,
        }
    }
}

pub fn run(args: VmTestArgs) -> Result<()> {
    let started = Instant::now();
    let (rows, booted_all) = run_boots(&args)?;
    report::print_table(&rows, started.elapsed());
    if !booted_all || rows.iter().any(|b| !b.passed()) {
        bail!("vm-test failed");
    }
    Ok(())
}

/// One guest's run: its kernel's label, each scenario's result (with its output), how long the
/// boot took.
pub struct BootResults {
    pub label: String,
    pub results: Vec<ScenarioResult>,
    pub elapsed: Duration,
}

impl BootResults {
    pub fn passed(&self) -> bool {
        self.results.iter().all(|r| r.outcome == Outcome::Pass)
    }
}

/// Boots the selected kernels and runs the scenarios, printing each boot's report as it ends.
/// Returns every boot's results, and whether every selected kernel was booted (without
/// `--keep-going` the boots after a failure are skipped).
pub fn run_boots(args: &VmTestArgs) -> Result<(Vec<BootResults>, bool)> {
    let started = Instant::now();
    let root = workspace_root()?;
    let cache = args
        .cache_dir
        .clone()
        .unwrap_or_else(|| root.join(".vm-cache"));
    std::fs::create_dir_all(&cache).with_context(|| format!("creating {}", cache.display()))?;

    let scenario_dir = args
        .scenario_dir
        .clone()
        .unwrap_or_else(|| root.join("tests/vm/scenarios"));
    let scenarios = scenario::discover(&scenario_dir, &args.scenarios)?;
    let kernels: Vec<Kernel> = KERNELS
        .iter()
        .copied()
        .filter(|k| args.kernel.selects(k))
        .collect();

    packages::ensure_host_tools()?;
    let apt = packages::Apt::new(&cache)?;

    // Everything but the kernel's modules is the same for every boot: gather it once.
    let mut debs: Vec<&str> = BASE_DEBS.to_vec();
    for d in scenarios.iter().flat_map(|s| &s.debs) {
        if !debs.contains(&d.as_str()) {
            debs.push(d);
        }
    }
    let metas = kernels
        .iter()
        .filter(|k| k.suite.is_none())
        .map(|k| k.meta_package);
    apt.look_up(&debs.iter().copied().chain(metas).collect::<Vec<_>>())?;
    let bins = binaries(args, &root, &scenarios)?;
    let base = base_tree(&apt, &root, &cache, &scenarios, &debs, &bins)?;
    println!(
        "vm-test: guest files gathered ({:.1} s in)",
        started.elapsed().as_secs_f32()
    );

    // Every boot's initramfs first (quick), then the boots, `jobs` at a time: each guest keeps
    // about one host core busy, so two boots side by side take little longer than one.
    let mut prepared = Vec::new();
    for kernel in &kernels {
        let kernel_apt;
        let kapt = match kernel.suite {
            None => &apt,
            Some(suite) => {
                kernel_apt = packages::Apt::for_suite(&cache, suite)?;
                &kernel_apt
            }
        };
        prepared.extend(prepare_kernel(kapt, &cache, kernel, &base, &scenarios)?);
    }
    let jobs = args.jobs.unwrap_or(prepared.len()).max(1);
    let mut rows: Vec<BootResults> = Vec::new();
    for batch in prepared.chunks(jobs) {
        if !args.keep_going && rows.iter().any(|b| !b.passed()) {
            for p in batch {
                println!(
                    "vm-test: [{}] not booted after a failure (--keep-going boots it)",
                    p.label
                );
            }
            break;
        }
        let boots: Vec<Result<qemu::Boot>> = std::thread::scope(|scope| {
            let handles: Vec<_> = batch
                .iter()
                .map(|p| {
                    scope.spawn(move || {
                        qemu::boot(&qemu::BootSpec {
                            label: &p.label,
                            kernel: &p.vmlinuz,
                            initrd: &p.initrd,
                            keep_going: args.keep_going,
                            cmdline: &p.cmdline,
                            group: p.group,
                            timeout: qemu::BOOT_BUDGET
                                + p.scenarios.iter().map(|s| s.timeout).sum::<Duration>(),
                            console_log: &p.console_log,
                        })
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(anyhow::anyhow!("boot thread panicked")))
                })
                .collect()
        });
        for (p, boot) in batch.iter().zip(boots) {
            let boot = boot?;
            let results = report::collect(&boot, &p.scenarios);
            report::print_boot(&p.label, &boot, &results, &p.console_log);
            rows.push(BootResults {
                label: p.label.clone(),
                results,
                elapsed: boot.elapsed,
            });
        }
    }
    let booted_all = rows.len() == prepared.len();
    Ok((rows, booted_all))
}

/// The host binaries for /usr/local/bin: `--bin` paths, then the workspace binaries that every
/// guest has, that `--cargo-bin` names and that the scenarios' `vm-bins` lines name (built unless
/// `--no-build`; a `--bin` with the same file name replaces one).
fn binaries(
    args: &VmTestArgs,
    root: &Path,
    scenarios: &[scenario::Scenario],
) -> Result<Vec<PathBuf>> {
    let mut cargo_bins: BTreeSet<String> = BASE_CARGO_BINS.iter().map(|s| s.to_string()).collect();
    cargo_bins.extend(args.cargo_bins.iter().cloned());
    for s in scenarios {
        cargo_bins.extend(s.cargo_bins.iter().cloned());
    }
    let mut bins = Vec::new();
    for b in &args.bins {
        let path = b
            .canonicalize()
            .with_context(|| format!("--bin {}", b.display()))?;
        if let Some(name) = path.file_name() {
            cargo_bins.remove(name.to_string_lossy().as_ref());
        }
        bins.push(path);
    }
    if args.no_build {
        bins.extend(built_cargo_bins(root, &cargo_bins, args.release)?);
    } else {
        bins.extend(build_cargo_bins(root, &cargo_bins, args.release)?);
    }
    Ok(bins)
}

/// The guest's files that do not depend on the kernel: packages, binaries with their libraries,
/// busybox's applet links, /init, the helpers and the scenarios with their list.
fn base_tree(
    apt: &packages::Apt,
    root: &Path,
    cache: &Path,
    scenarios: &[scenario::Scenario],
    debs: &[&str],
    bins: &[PathBuf],
) -> Result<initramfs::Tree> {
    let mut tree = initramfs::Tree::default();
    for deb in debs {
        let unpacked = apt.fetch_and_unpack(deb)?;
        tree.add_unpacked_deb(&unpacked)?;
    }
    for b in bins {
        let name = b
            .file_name()
            .context("binary without a file name")?
            .to_string_lossy();
        let b = strip_debug(cache, b)?;
        tree.add_host_file(&format!("usr/local/bin/{name}"), &b, 0o755)?;
    }
    tree.add_busybox_links()?;
    tree.add_host_file("init", &root.join("tests/vm/init.sh"), 0o755)?;
    tree.add_host_file(
        "usr/share/marginal-vm/lib.sh",
        &root.join("tests/vm/lib.sh"),
        0o644,
    )?;
    for s in scenarios {
        let guest = format!("usr/share/marginal-vm/scenarios/{}.sh", s.name);
        tree.add_host_file(&guest, &s.path, 0o755)?;
    }
    let helpers = root.join("tests/vm/lib");
    if helpers.is_dir() {
        for entry in std::fs::read_dir(&helpers)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "sh") {
                let name = path.file_name().unwrap_or_default().to_string_lossy();
                tree.add_host_file(&format!("usr/share/marginal-vm/lib/{name}"), &path, 0o644)?;
            }
        }
    }
    tree.resolve_shared_libs()?;
    Ok(tree)
}

/// One boot: a kernel image, an initramfs with its modules, and the scenarios it runs (those
/// for this kernel with one and the same extra command line).
struct Prepared {
    label: String,
    vmlinuz: PathBuf,
    initrd: PathBuf,
    cmdline: String,
    /// Which list in the initramfs the guest runs (`marginal.group=N`).
    group: usize,
    scenarios: Vec<scenario::Scenario>,
    console_log: PathBuf,
}

/// The boots of one kernel: one initramfs with a scenario list per distinct `vm-cmdline`.
fn prepare_kernel(
    apt: &packages::Apt,
    cache: &Path,
    kernel: &Kernel,
    base: &initramfs::Tree,
    scenarios: &[scenario::Scenario],
) -> Result<Vec<Prepared>> {
    let started = Instant::now();
    let mine: Vec<&scenario::Scenario> = scenarios
        .iter()
        .filter(|s| s.runs_on(kernel.label))
        .collect();
    if mine.is_empty() {
        println!("vm-test: [{}] no scenario runs on it", kernel.label);
        return Ok(Vec::new());
    }
    apt.look_up(&[kernel.meta_package])?;
    let (pkg, version) = apt.resolve_meta(kernel.meta_package)?;
    let unpacked = apt.fetch_and_unpack_exact(&pkg, &version)?;
    let kimage = modules::KernelImage::from_unpacked(&unpacked)?;
    println!(
        "vm-test: [{}] {pkg} {version} (release {})",
        kernel.label, kimage.release
    );
    let mut tree = base.clone();
    let (order, missing) = kimage.add_modules(&mut tree, GUEST_MODULES, ON_DEMAND_MODULES)?;
    println!(
        "vm-test: [{}] modules in load order: {}",
        kernel.label,
        order.join(" ")
    );
    if !missing.is_empty() {
        println!(
            "vm-test: [{}] not in this kernel (scenarios that modprobe them fail): {}",
            kernel.label,
            missing.join(" ")
        );
    }
    let mut cmdlines: Vec<&str> = Vec::new();
    for s in &mine {
        if !cmdlines.contains(&s.cmdline.as_str()) {
            cmdlines.push(&s.cmdline);
        }
    }
    let mut boots = Vec::new();
    for (group, cmdline) in cmdlines.iter().enumerate() {
        let group_scenarios: Vec<scenario::Scenario> = mine
            .iter()
            .filter(|s| s.cmdline == *cmdline)
            .map(|s| (*s).clone())
            .collect();
        // The guest runs the scenarios listed here, in this order, each with its time limit.
        let list: String = group_scenarios
            .iter()
            .map(|s| format!("{} {}\n", s.name, s.timeout.as_secs()))
            .collect();
        tree.add_data(
            &format!("etc/marginal-vm/scenarios.{group}"),
            list.into_bytes(),
            0o644,
        );
        let (label, log) = if cmdline.is_empty() {
            (kernel.label.to_string(), kernel.label.to_string())
        } else {
            (
                format!("{} {cmdline}", kernel.label),
                format!("{}-{group}", kernel.label),
            )
        };
        boots.push(Prepared {
            label,
            vmlinuz: kimage.vmlinuz.clone(),
            initrd: cache.join(format!("initramfs-{}.cpio", kernel.label)),
            cmdline: cmdline.to_string(),
            group,
            scenarios: group_scenarios,
            console_log: cache.join(format!("console-{log}.log")),
        });
    }
    let initrd = cache.join(format!("initramfs-{}.cpio", kernel.label));
    let size = tree.write_cpio(&initrd)?;
    println!(
        "vm-test: [{}] initramfs {} ({} MiB, {:.1} s)",
        kernel.label,
        initrd.display(),
        size >> 20,
        started.elapsed().as_secs_f32()
    );
    Ok(boots)
}

/// The workspace root: xtask's manifest is in `<root>/xtask`.
fn workspace_root() -> Result<PathBuf> {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    Ok(manifest
        .parent()
        .context("xtask has no parent dir")?
        .to_path_buf())
}

/// A copy of `bin` without debug info, when binutils' `strip` is there: a debug build of
/// `marginal` shrinks from about 55 to 9 MB, and the guest copies the whole initramfs at boot in
/// emulated code. Symbols stay, so backtraces still name functions.
fn strip_debug(cache: &Path, bin: &Path) -> Result<PathBuf> {
    if !packages::on_path("strip") {
        return Ok(bin.to_path_buf());
    }
    let dir = cache.join("bin");
    std::fs::create_dir_all(&dir)?;
    let out = dir.join(bin.file_name().context("binary without a file name")?);
    let ok = Command::new("strip")
        .arg("--strip-debug")
        .arg("-o")
        .arg(&out)
        .arg(bin)
        .status()?
        .success();
    Ok(if ok { out } else { bin.to_path_buf() })
}

/// The named workspace binaries as the last build left them (for `--no-build`).
fn built_cargo_bins(root: &Path, names: &BTreeSet<String>, release: bool) -> Result<Vec<PathBuf>> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let dir = target.join(if release { "release" } else { "debug" });
    names
        .iter()
        .map(|n| {
            let p = dir.join(n);
            if p.is_file() {
                Ok(p)
            } else {
                bail!("--no-build: {} is not built", p.display())
            }
        })
        .collect()
}

/// Builds the named workspace binaries and returns their paths, read from cargo's JSON messages so
/// that `CARGO_TARGET_DIR` and profiles need no guessing.
fn build_cargo_bins(root: &Path, names: &BTreeSet<String>, release: bool) -> Result<Vec<PathBuf>> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root)
        .args(["build", "--message-format=json-render-diagnostics"]);
    if release {
        cmd.arg("--release");
    }
    for n in names {
        cmd.args(["--bin", n]);
    }
    println!(
        "vm-test: cargo build {}{}",
        if release { "--release " } else { "" },
        names
            .iter()
            .map(|n| format!("--bin {n}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let out = cmd
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("running cargo build")?;
    if !out.status.success() {
        bail!("cargo build of the VM binaries failed");
    }
    let mut found = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if msg["reason"] != "compiler-artifact" {
            continue;
        }
        if let Some(exe) = msg["executable"].as_str()
            && msg["target"]["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|v| v == "bin"))
            && names.contains(msg["target"]["name"].as_str().unwrap_or_default())
        {
            found.push(PathBuf::from(exe));
        }
    }
    if found.len() != names.len() {
        bail!(
            "cargo built {} of the {} binaries asked for ({:?})",
            found.len(),
            names.len(),
            names
        );
    }
    Ok(found)
}
