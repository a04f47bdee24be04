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

fn apt_get_update() -> Result<()> {
    println!("vm-test: apt-get update");
    let ok = Command::new("apt-get")
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

/// Downloads and unpacks Debian packages into a cache directory.
pub struct Apt {
    debs: PathBuf,
    unpacked: PathBuf,
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
            updated: Cell::new(false),
            records: RefCell::new(HashMap::new()),
        })
    }

    /// Looks up the candidates of all these packages in one `apt-cache show` (each call reads the
    /// whole package cache: about a second), after one apt-get update if apt does not know one.
    pub fn look_up(&self, packages: &[&str]) -> Result<()> {
        loop {
            let out = Command::new("apt-cache")
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
            if self.updated.replace(true) || !is_root() {
                bail!(
                    "apt does not know {} (run apt-get update?)",
                    missing.join(" ")
                );
            }
            drop(known);
            apt_get_update()?;
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
        let depends = field(&text, "Depends").with_context(|| format!("{meta} has no Depends"))?;
        for dep in depends.split(',') {
            // e.g. "linux-image-6.1.0-56-cloud-amd64 (= 6.1.192-2)"
            let dep = dep.trim();
            if let Some((name, rest)) = dep.split_once(" (= ")
                && name.starts_with("linux-image-")
            {
                return Ok((name.to_string(), rest.trim_end_matches(')').to_string()));
            }
        }
        bail!("{meta}: no exact linux-image dependency in {depends:?}")
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
        println!("vm-test: apt-get download {package}={version}");
        let mut cmd = Command::new("apt-get");
        cmd.current_dir(&self.debs).arg("download").arg("-q");
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

/// The value of a `Name: value` field of apt-cache output.
fn field(text: &str, name: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(|v| v.trim().to_string())
}
