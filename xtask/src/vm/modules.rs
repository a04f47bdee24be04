//! The kernel of an unpacked Debian `linux-image-*` package and the modules the guest loads.
//!
//! The packages ship no `modules.dep` (depmod runs at install time) and the guest has no modprobe
//! setup, so dependencies are read from each module's `.modinfo` section (`depends=`) and the guest
//! `insmod`s them in the order written to `/etc/marginal-vm/modules`. 6.12's modules are `.ko.xz`;
//! busybox's insmod cannot unpack them, so they are unpacked here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use object::{Object, ObjectSection};

use super::initramfs::Tree;

/// Where the guest finds the module load order (one module path a line).
pub const LOAD_ORDER_FILE: &str = "etc/marginal-vm/modules";

pub struct KernelImage {
    /// `uname -r` of the kernel.
    pub release: String,
    pub vmlinuz: PathBuf,
    modules_dir: PathBuf,
}

/// Module names use `_` and `-` interchangeably (file `dm-mod.ko` is module `dm_mod`).
fn module_name(s: &str) -> String {
    s.replace('-', "_")
}

impl KernelImage {
    /// The kernel in unpacked packages: an image package alone, or (Debian 14) with the packages
    /// that hold its vmlinuz and its modules.
    pub fn from_unpacked(roots: &[PathBuf]) -> Result<Self> {
        let in_boot = roots
            .iter()
            .filter_map(|r| std::fs::read_dir(r.join("boot")).ok())
            .flatten()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find_map(|p| {
                let name = p.file_name()?.to_string_lossy().into_owned();
                let release = name.strip_prefix("vmlinuz-")?.to_string();
                Some((p, release))
            });
        // Debian 14 keeps it beside the modules: usr/lib/modules/<release>/vmlinuz.
        let beside_modules = || {
            roots
                .iter()
                .filter_map(|r| std::fs::read_dir(r.join("usr/lib/modules")).ok())
                .flatten()
                .filter_map(|e| e.ok().map(|e| e.path()))
                .find_map(|d| {
                    let p = d.join("vmlinuz");
                    let release = d.file_name()?.to_string_lossy().into_owned();
                    p.is_file().then_some((p, release))
                })
        };
        let (vmlinuz, release) = in_boot
            .or_else(beside_modules)
            .with_context(|| format!("no vmlinuz in {roots:?}"))?;
        let modules_dir = roots
            .iter()
            .flat_map(|r| ["lib/modules", "usr/lib/modules"].map(|d| r.join(d).join(&release)))
            .find(|d| d.join("kernel").is_dir())
            .with_context(|| format!("no modules for {release} in {roots:?}"))?;
        Ok(Self {
            release,
            vmlinuz,
            modules_dir,
        })
    }

    /// Every module file of the package by module name.
    fn index(&self) -> Result<BTreeMap<String, PathBuf>> {
        let mut found = BTreeMap::new();
        let mut stack = vec![self.modules_dir.join("kernel")];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir)? {
                let path = entry?.path();
                if path.is_dir() {
                    stack.push(path);
                    continue;
                }
                let file = path
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned();
                if let Some(stem) = file
                    .strip_suffix(".ko")
                    .or_else(|| file.strip_suffix(".ko.xz"))
                {
                    found.insert(module_name(stem), path);
                }
            }
        }
        Ok(found)
    }

    /// Modules compiled into the kernel (nothing to load for them).
    fn builtin(&self) -> BTreeSet<String> {
        std::fs::read_to_string(self.modules_dir.join("modules.builtin"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.rsplit('/').next()?.strip_suffix(".ko"))
            .map(module_name)
            .collect()
    }

    /// Adds `wanted` and their dependencies to the tree and writes their load order (the guest
    /// loads them at boot); adds `on_demand` (those the package has) with their dependencies for
    /// `modprobe`, with a `modules.dep` that covers every module added. Returns the boot modules
    /// in load order and the `on_demand` modules the package lacks.
    pub fn add_modules(
        &self,
        tree: &mut Tree,
        wanted: &[&str],
        on_demand: &[&str],
    ) -> Result<(Vec<String>, Vec<String>)> {
        let index = self.index()?;
        let builtin = self.builtin();
        let mut order: Vec<Module> = Vec::new();
        let mut visiting = BTreeSet::new();
        for w in wanted {
            visit(&module_name(w), &index, &builtin, &mut visiting, &mut order)?;
        }
        let at_boot = order.len();
        let mut missing = Vec::new();
        for w in on_demand {
            let mut more = order.clone();
            match visit(&module_name(w), &index, &builtin, &mut visiting, &mut more) {
                Ok(()) => order = more,
                Err(_) => missing.push(w.to_string()),
            }
            visiting.clear();
        }
        let mut list = String::new();
        for m in &order[..at_boot] {
            list.push_str(&format!("/lib/modules/{}/{}.ko\n", self.release, m.name));
        }
        tree.add_data(LOAD_ORDER_FILE, list.into_bytes(), 0o644);
        // depmod's format: every module, then all it needs, the ones to load last first.
        let mut dep = String::new();
        for (i, m) in order.iter().enumerate() {
            let guest = format!("lib/modules/{}/{}.ko", self.release, m.name);
            tree.add_data(&guest, m.image.clone(), 0o644);
            let needs = closure(&order[..i], &m.depends);
            let needs: Vec<String> = needs
                .iter()
                .rev()
                .map(|j| format!("{}.ko", order[*j].name))
                .collect();
            dep.push_str(&format!("{}.ko: {}\n", m.name, needs.join(" ")));
        }
        tree.add_data(
            &format!("lib/modules/{}/modules.dep", self.release),
            dep.into_bytes(),
            0o644,
        );
        Ok((
            order[..at_boot].iter().map(|m| m.name.clone()).collect(),
            missing,
        ))
    }
}

#[derive(Clone)]
struct Module {
    name: String,
    image: Vec<u8>,
    /// Direct dependencies that are modules (built-in ones left out).
    depends: Vec<String>,
}

/// Indexes (into `before`, ascending: load order) of everything `depends` needs, transitively.
fn closure(before: &[Module], depends: &[String]) -> BTreeSet<usize> {
    let mut found = BTreeSet::new();
    let mut todo: Vec<String> = depends.to_vec();
    while let Some(name) = todo.pop() {
        if let Some(j) = before.iter().position(|m| m.name == name)
            && found.insert(j)
        {
            todo.extend(before[j].depends.iter().cloned());
        }
    }
    found
}

/// Depth-first: a module goes into `order` after everything it depends on.
fn visit(
    name: &str,
    index: &BTreeMap<String, PathBuf>,
    builtin: &BTreeSet<String>,
    visiting: &mut BTreeSet<String>,
    order: &mut Vec<Module>,
) -> Result<()> {
    if builtin.contains(name) || order.iter().any(|m| m.name == name) {
        return Ok(());
    }
    if !visiting.insert(name.to_string()) {
        bail!("module dependency cycle through {name}");
    }
    let path = index
        .get(name)
        .with_context(|| format!("kernel package has no module {name}"))?;
    let image = read_module(path)?;
    let mut module_deps = Vec::new();
    for dep in depends(&image).with_context(|| format!("reading .modinfo of {}", path.display()))? {
        let dep = module_name(&dep);
        visit(&dep, index, builtin, visiting, order)?;
        if !builtin.contains(&dep) {
            module_deps.push(dep);
        }
    }
    order.push(Module {
        name: name.to_string(),
        image,
        depends: module_deps,
    });
    Ok(())
}

fn read_module(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if path.extension().is_some_and(|e| e == "xz") {
        let mut out = Vec::new();
        lzma_rs::xz_decompress(&mut raw.as_slice(), &mut out)
            .map_err(|e| anyhow::anyhow!("unpacking {}: {e:?}", path.display()))?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// The `depends=` list of a module's `.modinfo` section (NUL-separated `key=value` strings).
fn depends(image: &[u8]) -> Result<Vec<String>> {
    let elf = object::File::parse(image)?;
    let section = elf
        .section_by_name(".modinfo")
        .context("no .modinfo section")?;
    let data = section.data()?;
    for entry in data.split(|b| *b == 0) {
        if let Some(list) = entry.strip_prefix(b"depends=") {
            let list = String::from_utf8_lossy(list);
            return Ok(list
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect());
        }
    }
    Ok(Vec::new())
}
