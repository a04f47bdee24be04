//! Host tools and Debian packages: installs what the host lacks with apt-get, downloads guest
//! packages with `apt-get download` into the cache and unpacks them with `dpkg-deb -x`.
//!
//! Packages are never installed on the host for the guest's sake: the guest gets files unpacked
//! from the `.deb`s, so the host's own dmsetup, busybox or kernel do not matter.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

/// Debian packages the host needs to boot the VMs, and why.
const HOST_PACKAGES: &[(&str, &str)] = &[
    ("qemu-system-x86", "QEMU runs the VMs (TCG)"),
    (
        "dpkg",
        "dpkg-deb unpacks the guest's kernel and tool packages",
    ),
    ("apt", "apt-get download fetches the guest's packages"),
    (
        "libc-bin",
        "ldd finds the libraries of the guest's binaries",
    ),
];

fn is_root() -> bool {
    // /proc/self belongs to the effective uid of whoever looks at it.
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
        .unwrap_or(false)
}

/// Installs the host packages that are missing (the same way as `cargo xtask setup`).
pub fn ensure_host_tools() -> Result<()> {
    crate::setup::install_apt_packages(HOST_PACKAGES)
}

fn apt_get_update(opts: &[String], what: &str) -> Result<()> {
    println!("vm-test: apt-get update{what}");
    let mut cmd = Command::new("apt-get");
    cmd.args(opts);
    if is_root() && !opts.is_empty() {
        // The _apt sandbox user cannot write the private lists in a root-owned cache.
        cmd.args(["-o", "APT::Sandbox::User=root"]);
    }
    let ok = cmd
        .args(["update", "-q"])
        .stdout(Stdio::null())
        .status()
        .context("running apt-get update")?
        .success();
    if !ok {
        bail!("apt-get update failed");
    }
    Ok(())
}

/// Debian suites besides the host's own that guest packages come from, with their sources lines
/// (the archive keyring of the host's Debian 12 verifies all of them).
const SUITES: &[(&str, &[&str])] = &[
    (
        "bullseye",
        &[
            "http://deb.debian.org/debian bullseye main",
            "http://deb.debian.org/debian-security bullseye-security main",
        ],
    ),
    ("trixie", &["http://deb.debian.org/debian trixie main"]),
    ("sid", &["http://deb.debian.org/debian sid main"]),
];

/// Downloads and unpacks Debian packages into a cache directory.
///
/// Packages of another suite come through a private apt setup under the cache (its own sources
/// list, package lists, package cache and an empty dpkg status): adding bullseye or sid to the
/// host's own sources would change what `apt-get install` picks for the host itself.
pub struct Apt {
    debs: PathBuf,
    unpacked: PathBuf,
    /// `-o` options that point apt at a private suite's setup (empty: the host's apt).
    opts: Vec<String>,
    /// For messages: "" for the host's apt, " (sid)" for a private suite.
    what: String,
    /// apt-get update runs at most once a run, and only when a package is unknown.
    updated: Cell<bool>,
    /// `apt-cache show` records by package name.
    records: RefCell<HashMap<String, String>>,
}

impl Apt {
    pub fn new(cache: &Path) -> Result<Self> {
        let debs = cache.join("debs");
        let unpacked = cache.join("unpacked");
        std::fs::create_dir_all(&debs)?;
        std::fs::create_dir_all(&unpacked)?;
        Ok(Self {
            debs,
            unpacked,
            opts: Vec::new(),
            what: String::new(),
            updated: Cell::new(false),
            records: RefCell::new(HashMap::new()),
        })
    }

    /// An apt for packages of `suite` (one of [`SUITES`]), set up idempotently under
    /// `<cache>/apt/<suite>`; its package lists are fetched on first use.
    pub fn for_suite(cache: &Path, suite: &str) -> Result<Self> {
        let (_, lines) = SUITES
            .iter()
            .find(|(name, _)| *name == suite)
            .with_context(|| format!("no sources for Debian suite {suite}"))?;
        let dir = cache.join("apt").join(suite);
        for sub in ["lists/partial", "cache/archives/partial", "parts"] {
            std::fs::create_dir_all(dir.join(sub))?;
        }
        let sources: String = lines
            .iter()
            .map(|l| {
                format!("deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] {l}\n")
            })
            .collect();
        let list = dir.join("sources.list");
        if std::fs::read_to_string(&list).ok().as_deref() != Some(sources.as_str()) {
            std::fs::write(&list, sources)?;
        }
        let status = dir.join("status");
        if !status.exists() {
            std::fs::write(&status, b"")?;
        }
        let d = |p: &str| dir.join(p).to_string_lossy().into_owned();
        let opts = [
            ("Dir::Etc::SourceList", d("sources.list")),
            ("Dir::Etc::SourceParts", d("parts")),
            ("Dir::Etc::Preferences", d("parts/none")),
            ("Dir::Etc::PreferencesParts", d("parts")),
            ("Dir::State::Lists", d("lists")),
            ("Dir::State::status", d("status")),
            ("Dir::Cache", d("cache")),
        ]
        .into_iter()
        .flat_map(|(k, v)| ["-o".to_string(), format!("{k}={v}")])
        .collect();
        let mut apt = Self::new(cache)?;
        apt.opts = opts;
        apt.what = format!(" ({suite})");
        // sid's kernels move on within days and the archive drops the old ones: lists older than a
        // day are fetched again rather than trusted.
        if !fresh_lists(&dir.join("lists"))? {
            apt.updated.set(true);
            apt_get_update(&apt.opts, &apt.what)?;
        }
        Ok(apt)
    }

    /// Looks up the candidates of all these packages in one `apt-cache show` (each call reads the
    /// whole package cache: about a second), after one apt-get update if apt does not know one.
    pub fn look_up(&self, packages: &[&str]) -> Result<()> {
        loop {
            let out = Command::new("apt-cache")
                .args(&self.opts)
                .args(["show", "--no-all-versions"])
                .args(packages)
                .stderr(Stdio::null())
                .output()
                .context("running apt-cache")?;
            let text = String::from_utf8_lossy(&out.stdout);
            let mut known = self.records.borrow_mut();
            for record in text.split("\n\n") {
                if let Some(name) = field(record, "Package") {
                    known.insert(name, record.to_string());
                }
            }
            let missing: Vec<&str> = packages
                .iter()
                .copied()
                .filter(|p| !known.contains_key(*p))
                .collect();
            if missing.is_empty() {
                return Ok(());
            }
            if self.updated.replace(true) || (!is_root() && self.opts.is_empty()) {
                bail!(
                    "apt{} does not know {} (run apt-get update?)",
                    self.what,
                    missing.join(" ")
                );
            }
            drop(known);
            apt_get_update(&self.opts, &self.what)?;
        }
    }

    /// The `apt-cache show` record of the candidate version of `package`.
    fn show(&self, package: &str) -> Result<String> {
        if !self.records.borrow().contains_key(package) {
            self.look_up(&[package])?;
        }
        Ok(self.records.borrow()[package].clone())
    }

    fn candidate(&self, package: &str) -> Result<String> {
        let text = self.show(package)?;
        field(&text, "Version").with_context(|| format!("no Version for {package}"))
    }

    /// The kernel image package and version a kernel meta package's candidate depends on.
    pub fn resolve_meta(&self, meta: &str) -> Result<(String, String)> {
        let text = self.show(meta)?;
        exact_deps(&text, "linux-image-")
            .into_iter()
            .next()
            .with_context(|| format!("{meta}: no exact linux-image dependency"))
    }

    /// The packages (name, version) that hold a kernel image package's files: itself, and since
    /// Debian 14 (sid) the `linux-binary-*` (vmlinuz) and `linux-modules-*` it depends on.
    pub fn kernel_parts(&self, image: &str, version: &str) -> Result<Vec<(String, String)>> {
        let mut parts = vec![(image.to_string(), version.to_string())];
        let text = self.show(image)?;
        let deps: Vec<(String, String)> = ["linux-binary-", "linux-modules-"]
            .iter()
            .flat_map(|prefix| exact_deps(&text, prefix))
            .collect();
        if !deps.is_empty() {
            let names: Vec<&str> = deps.iter().map(|(n, _)| n.as_str()).collect();
            self.look_up(&names)?;
        }
        parts.extend(deps);
        Ok(parts)
    }

    /// Downloads (unless cached) and unpacks (unless already unpacked) the candidate of `package`.
    pub fn fetch_and_unpack(&self, package: &str) -> Result<PathBuf> {
        let version = self.candidate(package)?;
        self.fetch_and_unpack_exact(package, &version)
    }

    pub fn fetch_and_unpack_exact(&self, package: &str, version: &str) -> Result<PathBuf> {
        let deb = self.fetch(package, version)?;
        self.unpack(&deb)
    }

    fn cached_deb(&self, package: &str, version: &str) -> Result<Option<PathBuf>> {
        // apt-get download names files <name>_<version, ':' as %3a>_<arch>.deb.
        let prefix = format!("{package}_{}_", version.replace(':', "%3a"));
        for entry in std::fs::read_dir(&self.debs)? {
            let name = entry?.file_name().to_string_lossy().into_owned();
            if name.starts_with(&prefix) && name.ends_with(".deb") {
                return Ok(Some(self.debs.join(name)));
            }
        }
        Ok(None)
    }

    fn fetch(&self, package: &str, version: &str) -> Result<PathBuf> {
        if let Some(deb) = self.cached_deb(package, version)? {
            return Ok(deb);
        }
        println!("vm-test: apt-get download {package}={version}{}", self.what);
        let mut cmd = Command::new("apt-get");
        cmd.current_dir(&self.debs)
            .args(&self.opts)
            .arg("download")
            .arg("-q");
        if is_root() {
            // apt's _apt sandbox user cannot write into a root-owned project directory.
            cmd.args(["-o", "APT::Sandbox::User=root"]);
        }
        let ok = cmd
            .arg(format!("{package}={version}"))
            .stdout(Stdio::null())
            .status()
            .context("running apt-get download")?
            .success();
        if !ok {
            bail!("apt-get download {package}={version} failed");
        }
        self.cached_deb(package, version)?
            .with_context(|| format!("apt-get download {package}={version} left no .deb"))
    }

    /// Unpacks a .deb into `unpacked/<file stem>`; a marker file says the unpacking finished, so an
    /// interrupted run is redone rather than trusted.
    fn unpack(&self, deb: &Path) -> Result<PathBuf> {
        let stem = deb.file_stem().context("deb without a name")?;
        let dir = self.unpacked.join(stem);
        let marker = dir.join(".unpacked");
        if marker.exists() {
            return Ok(dir);
        }
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        let ok = Command::new("dpkg-deb")
            .arg("-x")
            .arg(deb)
            .arg(&dir)
            .status()
            .context("running dpkg-deb")?
            .success();
        if !ok {
            bail!("dpkg-deb -x {} failed", deb.display());
        }
        std::fs::write(&marker, b"")?;
        Ok(dir)
    }
}

/// Whether `lists` has package lists fetched within the last day.
fn fresh_lists(lists: &Path) -> Result<bool> {
    for entry in std::fs::read_dir(lists)? {
        let entry = entry?;
        if !entry.file_name().to_string_lossy().contains("_Packages") {
            continue;
        }
        let age = entry.metadata()?.modified()?.elapsed().unwrap_or_default();
        if age < std::time::Duration::from_secs(24 * 3600) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The `name (= version)` dependencies of a package record whose names start with `prefix`, e.g.
/// "linux-image-6.1.0-56-cloud-amd64 (= 6.1.192-2)".
fn exact_deps(record: &str, prefix: &str) -> Vec<(String, String)> {
    let depends = field(record, "Depends").unwrap_or_default();
    depends
        .split(',')
        .filter_map(|dep| {
            let (name, rest) = dep.trim().split_once(" (= ")?;
            name.starts_with(prefix)
                .then(|| (name.to_string(), rest.trim_end_matches(')').to_string()))
        })
        .collect()
}

/// The value of a `Name: value` field of apt-cache output.
fn field(text: &str, name: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(|v| v.trim().to_string())
}
