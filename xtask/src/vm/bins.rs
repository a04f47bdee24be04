//! The workspace binaries and `--bin` files that go into the guest's /usr/local/bin.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use super::{BASE_CARGO_BINS, VmTestArgs, packages, scenario};

/// The host binaries for /usr/local/bin: `--bin` paths, then the workspace binaries that every
/// guest has, that `--cargo-bin` names and that the scenarios' `vm-bins` lines name (built unless
/// `--no-build`; a `--bin` with the same file name replaces one).
pub(super) fn binaries(
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

/// A copy of `bin` without debug info, when binutils' `strip` is there: a debug build of
/// `marginal` shrinks from about 55 to 9 MB, and the guest copies the whole initramfs at boot in
/// emulated code. Symbols stay, so backtraces still name functions.
pub(super) fn strip_debug(cache: &Path, bin: &Path) -> Result<PathBuf> {
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
