//! `cargo xtask package`: the Debian package, at a stable path
//! (`target/debian/marginal_<version>_<arch>.deb`) for the tests and the VM test bed.
//!
//! cargo-deb builds it: it runs the release build, strips the binary, computes the shared
//! library dependencies with dpkg-shlibdeps, compresses the man pages and the changelog, marks
//! /etc files as conffiles and writes the systemd unit's maintainer scripts, all from
//! `[package.metadata.deb]` in marginal-user/Cargo.toml. A staged tree for dpkg-deb would redo
//! each of those steps by hand. What cargo-deb cannot know, the man pages and completions
//! generated from the code, is written first by marginal-user's `marginal-docs` example.
use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};

/// The version every workspace crate shares.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Where the package is written.
pub fn deb_path() -> Result<PathBuf> {
    let arch = Command::new("dpkg")
        .arg("--print-architecture")
        .output()
        .context("running dpkg --print-architecture (is this Debian?)")?;
    let arch = String::from_utf8(arch.stdout)?.trim().to_string();
    if arch.is_empty() {
        bail!("dpkg --print-architecture printed nothing");
    }
    Ok(crate::demo::target_dir()?
        .join("debian")
        .join(format!("marginal_{VERSION}_{arch}.deb")))
}

pub fn run() -> Result<PathBuf> {
    let cargo_deb = Command::new("cargo").args(["deb", "--version"]).output();
    if !cargo_deb.is_ok_and(|o| o.status.success()) {
        bail!("cargo-deb is missing: `cargo xtask setup` installs it (cargo install cargo-deb)");
    }
    // Where marginal-user/Cargo.toml's assets list looks, whatever CARGO_TARGET_DIR says.
    let assets = std::env::current_dir()?.join("target/debian-assets");
    println!("package: man pages and completions from the CLI and keyword definitions");
    let assets_arg = assets.to_str().context("target directory is not UTF-8")?;
    crate::cargo(&[
        "run",
        "-q",
        "--release",
        "-p",
        "marginal-user",
        "--example",
        "marginal-docs",
        "--",
        assets_arg,
    ])?;
    let deb = deb_path()?;
    println!("package: release build and {}", deb.display());
    let deb_arg = deb.to_str().context("target directory is not UTF-8")?;
    crate::cargo(&["deb", "-p", "marginal-user", "--output", deb_arg])?;
    println!("package: {}", deb.display());
    Ok(deb)
}
