//! `cargo xtask vm-test`: the VM test bed for everything the build machine's kernel lacks
//! (device-mapper, dm-multipath, kprobes, loadable modules; see shared/ENVIRONMENT.md).
//!
//! For each selected kernel (Debian's `cloud-amd64` 5.10, 6.1, 6.12 and sid's; see kernels.rs) it
//! 1. makes sure the host has QEMU (apt-get install, only when missing),
//! 2. fetches the kernel, busybox-static and dmsetup packages with `apt-get download` into
//!    `.vm-cache/debs` (kept between runs; the kernel is the newest one Debian's meta package
//!    points at; bullseye's, trixie's and sid's through a private apt setup in
//!    `.vm-cache/apt/<suite>`) and unpacks them with `dpkg-deb -x`,
//! 3. builds marginal's Debian package (`cargo xtask package`: the release build) and unpacks it
//!    with `dpkg-deb -x` into the guest's root, so the scenarios run the packaged layout and defaults,
//!    any other workspace binaries asked for (debug), and an uncompressed initramfs: busybox,
//!    dmsetup, the package, those binaries (debug info stripped) with the
//!    shared libraries `ldd` lists for them, the dm and loop modules (dependency order read from
//!    `.modinfo`, `.ko.xz` unpacked; the SAN modules for `modprobe`), `tests/vm/init.sh` as
//!    `/init`, `tests/vm/lib.sh`, `tests/vm/lib/*.sh` and the scenarios,
//! 4. boots each kernel once (more often for scenarios with their own `vm-cmdline`) under
//!    QEMU/TCG, as many side by side as the host has cores (`--jobs`), longest first; the guest runs
//!    every scenario in file-name order, prints each one's output between marker lines on the
//!    serial console, then powers off,
//! 5. parses the console and prints each scenario's output and a result table; the run fails when
//!    a scenario fails or times out, the guest panics, or the boot exceeds its time limit
//!    (1 minute plus the scenarios' limits).
//!
//! Without `--keep-going` a guest stops at its first failed scenario (the rest are NOT RUN).
//! `--scenario NAME` (repeatable) picks scenarios, `--kernel 5.10|6.1|6.12|sid|default|all`
//! kernels (default: 5.10, 6.1 and 6.12). Console logs are kept in
//! `.vm-cache/console-<kernel>[-<group>].log`.
//!
//! # Adding a scenario
//! Drop `tests/vm/scenarios/NAME.sh` (busybox `sh`; see tests/vm/README.md). It passes when it exits
//! 0. Comment lines tell the test bed what it needs:
//! - `# vm-bins: other-bin` workspace binaries to build with cargo; they land in `/usr/local/bin`
//!   (marginal is installed from its package; `vm-bins: marginal` would put a debug build ahead
//!   of it on PATH);
//! - `# vm-debs: pkg1 pkg2` extra Debian packages unpacked into the guest root (list their library
//!   packages too: apt-get download does not follow dependencies; libraries the host has are taken
//!   from the host);
//! - `# vm-timeout: 90` seconds before the guest kills it (default 60);
//! - `# vm-kernels: 6.12 sid` only on these kernels (default: all);
//! - `# vm-cmdline: nvme_core.multipath=N` kernel parameters (a boot of its own);
//! - `# vm-prefix-debs: trixie multipath-tools libc6` another suite's packages, under /opt/trixie.
//!
//! Binaries from elsewhere go in with `--bin PATH` (to `/usr/local/bin/<file name>`), more workspace
//! binaries with `--cargo-bin NAME`; `--no-build` takes workspace binaries as the last build left
//! them. In the guest a scenario runs as root in its own session with `$SCRATCH` (a fresh tmpfs),
//! `$VM_LIB` (the helpers in `tests/vm/lib.sh`), `DM_DISABLE_UDEV=1` and `$KERNEL_RELEASE`; whatever
//! it leaves behind (processes, kprobes, dm and loop devices) is removed before the next one.
//!
//! Other tasks can call [`run`] with a [`VmTestArgs`] (its `Default` is the command line without
//! options: all kernels, all scenarios, debug build); it returns an error when anything failed.

mod bins;
mod initramfs;
mod kernels;
mod modules;
mod packages;
mod qemu;
mod report;
mod scenario;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
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

/// Workspace binaries every guest has in /usr/local/bin. marginal is not one: it comes from its
/// Debian package (see `package_for_guest`).
const BASE_CARGO_BINS: &[&str] = &[];

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
    /// How many guests boot at once (default: the host's cores; 1 boots one after another).
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
    let bins = bins::binaries(args, &root, &scenarios)?;
    let package = package_for_guest(args, &cache)?;
    let base = base_tree(&apt, &root, &cache, &scenarios, &debs, &bins, &package)?;
    println!(
        "vm-test: guest files gathered ({:.1} s in)",
        started.elapsed().as_secs_f32()
    );

    // Every boot's initramfs first (quick), then the boots, `jobs` at a time: each guest keeps
    // about one host core busy, so as many boots side by side as cores take little longer than
    // one.
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
    // The longest boots first, and each freed slot takes the next: the whole run then takes
    // about as long as the longest boot (the 6.12 matrix) when the rest fit beside it.
    prepared.sort_by_key(|p| std::cmp::Reverse(boot_budget(p)));
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let jobs = args.jobs.unwrap_or(cores).clamp(1, prepared.len().max(1));
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let done: Mutex<Vec<(usize, BootResults)>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| -> Result<()> {
        let workers: Vec<_> =
            (0..jobs)
                .map(|_| {
                    scope.spawn(|| -> Result<()> {
                    loop {
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        let Some(p) = prepared.get(i) else {
                            return Ok(());
                        };
                        if !args.keep_going && failed.load(Ordering::SeqCst) {
                            println!(
                                "vm-test: [{}] not booted after a failure (--keep-going boots it)",
                                p.label
                            );
                            continue;
                        }
                        let boot = qemu::boot(&qemu::BootSpec {
                            label: &p.label,
                            kernel: &p.vmlinuz,
                            initrd: &p.initrd,
                            keep_going: args.keep_going,
                            cmdline: &p.cmdline,
                            group: p.group,
                            timeout: boot_budget(p),
                            console_log: &p.console_log,
                        })?;
                        let results = report::collect(&boot, &p.scenarios);
                        report::print_boot(&p.label, &boot, &results, &p.console_log);
                        let row = BootResults {
                            label: p.label.clone(),
                            results,
                            elapsed: boot.elapsed,
                        };
                        if !row.passed() {
                            failed.store(true, Ordering::SeqCst);
                        }
                        done.lock().unwrap_or_else(|e| e.into_inner()).push((i, row));
                    }
                })
                })
                .collect();
        for w in workers {
            w.join()
                .unwrap_or_else(|_| Err(anyhow::anyhow!("boot thread panicked")))?;
        }
        Ok(())
    })?;
    let mut done = done.into_inner().unwrap_or_else(|e| e.into_inner());
    done.sort_by_key(|(i, _)| *i);
    let rows: Vec<BootResults> = done.into_iter().map(|(_, row)| row).collect();
    let booted_all = rows.len() == prepared.len();
    Ok((rows, booted_all))
}

/// How long a boot may take: booting and powering off, and its scenarios' own limits.
fn boot_budget(p: &Prepared) -> Duration {
    qemu::BOOT_BUDGET + p.scenarios.iter().map(|s| s.timeout).sum::<Duration>()
}

/// The guest's files that do not depend on the kernel: packages, binaries with their libraries,
/// busybox's applet links, /init, the helpers and the scenarios with their list.
/// marginal's Debian package, as `cargo xtask package` builds it, unpacked by dpkg-deb into
/// `<cache>/marginal-package`: every guest has its files where dpkg puts them, so the packaged
/// layout (/usr/bin/marginal, /etc/marginal/marginal.conf with checking off) and the release
/// build in it are what the scenarios prove. (Unpacked on the host: busybox's tar, the guest's,
/// refuses the v7 tar headers cargo-deb writes, which dpkg reads.) `--cargo-bin marginal` or
/// `--bin PATH/marginal` put another build in /usr/local/bin, ahead of it on the guest's PATH.
fn package_for_guest(args: &VmTestArgs, cache: &Path) -> Result<PathBuf> {
    let deb = if args.no_build {
        let deb = crate::package::deb_path()?;
        if !deb.is_file() {
            bail!(
                "--no-build: {} is not built (`cargo xtask package` builds it)",
                deb.display()
            );
        }
        deb
    } else {
        crate::package::run()?
    };
    let dir = cache.join("marginal-package");
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    let status = std::process::Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(&dir)
        .status()
        .context("running dpkg-deb")?;
    if !status.success() {
        bail!("dpkg-deb -x {} failed ({status})", deb.display());
    }
    Ok(dir)
}

fn base_tree(
    apt: &packages::Apt,
    root: &Path,
    cache: &Path,
    scenarios: &[scenario::Scenario],
    debs: &[&str],
    bins: &[PathBuf],
    marginal_package: &Path,
) -> Result<initramfs::Tree> {
    let mut tree = initramfs::Tree::default();
    for deb in debs {
        let unpacked = apt.fetch_and_unpack(deb)?;
        tree.add_unpacked_deb(&unpacked)?;
    }
    tree.add_unpacked_deb(marginal_package)?;
    // Other releases' packages, one apt setup and one look-up a suite.
    let mut by_suite: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (suite, deb) in scenarios.iter().flat_map(|s| &s.prefix_debs) {
        let list = by_suite.entry(suite).or_default();
        if !list.contains(&deb.as_str()) {
            list.push(deb);
        }
    }
    for (suite, list) in by_suite {
        let suite_apt = packages::Apt::for_suite(cache, suite)?;
        suite_apt.look_up(&list)?;
        for deb in list {
            let unpacked = suite_apt.fetch_and_unpack(deb)?;
            tree.add_unpacked_deb_under(&unpacked, &format!("opt/{suite}"))?;
        }
    }
    for b in bins {
        let name = b
            .file_name()
            .context("binary without a file name")?
            .to_string_lossy();
        let b = bins::strip_debug(cache, b)?;
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
    // multipath.conf fixtures, for the scenarios that compare marginal with multipath-tools.
    let fixtures = root.join("tests/fixtures/multipath");
    for dir in ["", "conf.d"] {
        for entry in std::fs::read_dir(fixtures.join(dir))? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "conf") {
                let name = path.file_name().unwrap_or_default().to_string_lossy();
                let guest = format!("usr/share/marginal-vm/fixtures/multipath/{dir}/{name}");
                tree.add_host_file(&guest.replace("//", "/"), &path, 0o644)?;
            }
        }
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
    let unpacked = apt
        .kernel_parts(&pkg, &version)?
        .iter()
        .map(|(p, v)| apt.fetch_and_unpack_exact(p, v))
        .collect::<Result<Vec<_>>>()?;
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
    let mut group = 0;
    for cmdline in &cmdlines {
        let same_cmdline: Vec<scenario::Scenario> = mine
            .iter()
            .filter(|s| s.cmdline == *cmdline)
            .map(|s| (*s).clone())
            .collect();
        // Long lists are split over several boots, so the pool can run them side by side
        // instead of one kernel's list running alone long after the others are done.
        let chunks = same_cmdline.len().div_ceil(MAX_SCENARIOS_PER_BOOT).max(1);
        let per_chunk = same_cmdline.len().div_ceil(chunks).max(1);
        for (chunk, group_scenarios) in same_cmdline.chunks(per_chunk).enumerate() {
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
            let part = if chunks > 1 {
                format!(" part {}/{chunks}", chunk + 1)
            } else {
                String::new()
            };
            let (label, log) = if cmdline.is_empty() && chunks == 1 {
                (kernel.label.to_string(), kernel.label.to_string())
            } else {
                (
                    format!("{}{part} {cmdline}", kernel.label)
                        .trim_end()
                        .to_string(),
                    format!("{}-{group}", kernel.label),
                )
            };
            boots.push(Prepared {
                label,
                vmlinuz: kimage.vmlinuz.clone(),
                initrd: cache.join(format!("initramfs-{}.cpio", kernel.label)),
                cmdline: cmdline.to_string(),
                group,
                scenarios: group_scenarios.to_vec(),
                console_log: cache.join(format!("console-{log}.log")),
            });
            group += 1;
        }
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

/// Most scenarios one boot runs; a kernel with more gets several boots (see `prepare_kernel`).
const MAX_SCENARIOS_PER_BOOT: usize = 12;

/// The workspace root: xtask's manifest is in `<root>/xtask`.
fn workspace_root() -> Result<PathBuf> {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    Ok(manifest
        .parent()
        .context("xtask has no parent dir")?
        .to_path_buf())
}
