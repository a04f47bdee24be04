//! The guest's root file system, gathered in memory as a list of nodes and written as one `newc`
//! cpio archive (uncompressed: the kernel copies it as is, which is faster under TCG than
//! decompressing it in emulated code).
//!
//! The layout is merged-/usr like Debian 12's (`/bin`, `/sbin`, `/lib`, `/lib64` are links into
//! `/usr`), so files from packages that still ship `/lib/...` paths and libraries that `ldd` finds
//! under either name land in one place.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use anyhow::{Context, Result, bail};

/// Top-level links into /usr, as in Debian 12.
const MERGED_USR: &[&str] = &["bin", "sbin", "lib", "lib64"];

/// Parts of packages the guest never needs.
const SKIPPED_PACKAGE_DIRS: &[&str] = &[
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/lintian",
    "usr/share/locale",
    "usr/share/bug",
];

#[derive(Debug, Clone)]
enum Source {
    Host(PathBuf),
    Data(Arc<Vec<u8>>),
}

#[derive(Debug, Clone)]
enum Node {
    Dir,
    File { source: Source, mode: u32 },
    Symlink(String),
    CharDev { major: u32, minor: u32 },
}

#[derive(Debug, Clone)]
pub struct Tree {
    /// Guest paths without the leading `/`, sorted, so a directory is written before its contents.
    nodes: BTreeMap<String, Node>,
    /// Roots of unpacked packages, searched by `ldd` before the host's own libraries.
    package_roots: Vec<PathBuf>,
    /// Guest directories (with a trailing `/`) of other releases' packages.
    prefixes: Vec<String>,
}

impl Default for Tree {
    fn default() -> Self {
        let mut tree = Self {
            nodes: BTreeMap::new(),
            package_roots: Vec::new(),
            prefixes: Vec::new(),
        };
        for d in [
            "dev",
            "proc",
            "sys",
            "tmp",
            "run",
            "etc",
            "root",
            "mnt",
            "usr/local/bin",
        ] {
            tree.add_dir(d);
        }
        for d in MERGED_USR {
            tree.add_dir(&format!("usr/{d}"));
        }
        // The kernel opens /dev/console for init's stdin/stdout before /init can mount devtmpfs.
        tree.nodes
            .insert("dev/console".into(), Node::CharDev { major: 5, minor: 1 });
        tree
    }
}

/// The guest path in canonical (merged-/usr, relative) form.
fn canonical(path: &str) -> String {
    let path = path.trim_start_matches('/').trim_end_matches('/');
    let first = path.split('/').next().unwrap_or_default();
    if MERGED_USR.contains(&first) {
        format!("usr/{path}")
    } else {
        path.to_string()
    }
}

impl Tree {
    pub fn add_dir(&mut self, path: &str) {
        let path = canonical(path);
        let mut at = String::new();
        for part in path.split('/').filter(|p| !p.is_empty()) {
            if !at.is_empty() {
                at.push('/');
            }
            at.push_str(part);
            self.nodes.entry(at.clone()).or_insert(Node::Dir);
        }
    }

    fn insert(&mut self, path: &str, node: Node) {
        let path = canonical(path);
        if let Some((parent, _)) = path.rsplit_once('/') {
            self.add_dir(parent);
        }
        self.nodes.insert(path, node);
    }

    pub fn contains(&self, path: &str) -> bool {
        self.nodes.contains_key(&canonical(path))
    }

    pub fn add_host_file(&mut self, guest: &str, host: &Path, mode: u32) -> Result<()> {
        if !host.is_file() {
            bail!(
                "{} (for {guest} in the guest) is not a file",
                host.display()
            );
        }
        self.insert(
            guest,
            Node::File {
                source: Source::Host(host.to_path_buf()),
                mode,
            },
        );
        Ok(())
    }

    pub fn add_data(&mut self, guest: &str, data: Vec<u8>, mode: u32) {
        self.insert(
            guest,
            Node::File {
                source: Source::Data(Arc::new(data)),
                mode,
            },
        );
    }

    pub fn add_symlink(&mut self, guest: &str, target: &str) {
        self.insert(guest, Node::Symlink(target.to_string()));
    }

    /// Adds every file of an unpacked package at its own path (docs and manuals left out).
    pub fn add_unpacked_deb(&mut self, root: &Path) -> Result<()> {
        self.package_roots.push(root.to_path_buf());
        self.add_package_files(root, "")
    }

    /// Adds every file of an unpacked package of another Debian release under `prefix` (e.g.
    /// `opt/trixie`): its programs run through that release's own ld.so and libraries, and
    /// [`Tree::resolve_shared_libs`] neither looks at them nor takes libraries from them.
    pub fn add_unpacked_deb_under(&mut self, root: &Path, prefix: &str) -> Result<()> {
        self.prefixes
            .push(format!("{}/", prefix.trim_end_matches('/')));
        self.add_package_files(root, prefix)
    }

    fn add_package_files(&mut self, root: &Path, prefix: &str) -> Result<()> {
        let guest = |rel: &str| {
            if prefix.is_empty() {
                rel.to_string()
            } else {
                format!("{prefix}/{rel}")
            }
        };
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in
                std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))?
            {
                let entry = entry?;
                let host = entry.path();
                let rel = host.strip_prefix(root)?.to_string_lossy().into_owned();
                if rel == ".unpacked" || SKIPPED_PACKAGE_DIRS.iter().any(|s| rel == *s) {
                    continue;
                }
                let meta = std::fs::symlink_metadata(&host)?;
                if meta.file_type().is_symlink() {
                    let target = std::fs::read_link(&host)?;
                    self.add_symlink(&guest(&rel), &target.to_string_lossy());
                } else if meta.is_dir() {
                    self.add_dir(&guest(&rel));
                    stack.push(host);
                } else if meta.is_file() {
                    self.add_host_file(&guest(&rel), &host, meta.permissions().mode() & 0o7777)?;
                }
            }
        }
        Ok(())
    }

    /// Links every busybox applet to /usr/bin/busybox where no real program has that path.
    pub fn add_busybox_links(&mut self) -> Result<()> {
        let Some(Node::File {
            source: Source::Host(busybox),
            ..
        }) = self.nodes.get("usr/bin/busybox")
        else {
            bail!("busybox is not in the initramfs (busybox-static unpacked?)");
        };
        // busybox-static runs on the host too, so it can tell its own applet paths.
        let out = Command::new(busybox)
            .arg("--list-full")
            .output()
            .context("running busybox --list-full")?;
        if !out.status.success() {
            bail!("busybox --list-full failed");
        }
        for applet in String::from_utf8_lossy(&out.stdout).lines() {
            if !applet.is_empty() && !self.contains(applet) {
                self.add_symlink(applet, "/usr/bin/busybox");
            }
        }
        Ok(())
    }

    /// Adds the shared libraries (and the ELF interpreter) that `ldd` lists for every dynamically
    /// linked executable in the tree. Libraries from unpacked packages are found first; the rest
    /// come from the host: glibc of the (Debian 12) host runs on any kernel the guest boots.
    pub fn resolve_shared_libs(&mut self) -> Result<()> {
        let lib_path: Vec<String> = self
            .package_roots
            .iter()
            // multipath-tools keeps its own libraries (libmultipath, libmpath*) in /lib.
            .flat_map(|r| {
                [
                    "lib/x86_64-linux-gnu",
                    "usr/lib/x86_64-linux-gnu",
                    "lib",
                    "usr/lib",
                ]
                .map(|d| r.join(d))
            })
            .filter(|d| d.is_dir())
            .map(|d| d.to_string_lossy().into_owned())
            .collect();
        let executables: Vec<(String, PathBuf)> = self
            .nodes
            .iter()
            .filter_map(|(path, node)| match node {
                Node::File {
                    source: Source::Host(host),
                    mode,
                } if mode & 0o111 != 0 && !self.prefixes.iter().any(|p| path.starts_with(p)) => {
                    Some((path.clone(), host.clone()))
                }
                _ => None,
            })
            .collect();
        for (guest, host) in executables {
            if !is_elf(&host)? {
                continue;
            }
            let out = Command::new("ldd")
                .arg(&host)
                .env("LD_LIBRARY_PATH", lib_path.join(":"))
                .output()
                .context("running ldd")?;
            let text = String::from_utf8_lossy(&out.stdout);
            if !out.status.success() || text.contains("not a dynamic executable") {
                continue; // static, like busybox
            }
            for line in text.lines() {
                let line = line.trim();
                if line.contains("=> not found") {
                    bail!(
                        "/{guest}: ldd cannot find {line} (add the package that has it to vm-debs)"
                    );
                }
                // "libx.so.1 => /path/libx.so.1 (0x...)" or "/lib64/ld-linux-x86-64.so.2 (0x...)"
                let path = match line.split_once(" => ") {
                    Some((_, rest)) => rest,
                    None => line,
                };
                let path = path.split(" (").next().unwrap_or_default();
                if !path.starts_with('/') {
                    continue; // linux-vdso.so.1 has no file
                }
                let path = Path::new(path);
                let in_package = self
                    .package_roots
                    .iter()
                    .find_map(|r| path.strip_prefix(r).ok());
                let guest_lib = match in_package {
                    Some(rel) => rel.to_string_lossy().into_owned(),
                    None => path.to_string_lossy().into_owned(),
                };
                if !self.contains(&guest_lib) {
                    self.add_host_file(&guest_lib, path, 0o755)?;
                }
            }
        }
        Ok(())
    }

    /// Writes the archive; returns its size in bytes.
    pub fn write_cpio(&self, out: &Path) -> Result<u64> {
        let tmp = out.with_extension(format!("tmp{}", std::process::id()));
        let mut w = BufWriter::new(
            File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?,
        );
        let mut entries: Vec<(&str, Node)> = MERGED_USR
            .iter()
            .map(|d| (*d, Node::Symlink(format!("usr/{d}"))))
            .collect();
        entries.extend(self.nodes.iter().map(|(p, n)| (p.as_str(), n.clone())));
        for (ino, (path, node)) in entries.into_iter().enumerate() {
            let b = cpio::NewcBuilder::new(path).ino(ino as u32 + 1).nlink(1);
            w = match node {
                Node::Dir => b.mode(0o040755).nlink(2).write(w, 0).finish()?,
                Node::Symlink(target) => {
                    let mut f = b.mode(0o120777).write(w, target.len() as u32);
                    f.write_all(target.as_bytes())?;
                    f.finish()?
                }
                Node::CharDev { major, minor } => b
                    .mode(0o020600)
                    .rdev_major(major)
                    .rdev_minor(minor)
                    .write(w, 0)
                    .finish()?,
                Node::File {
                    source: Source::Data(data),
                    mode,
                } => {
                    let mut f = b
                        .mode(0o100000 | mode)
                        .write(w, size32(data.len() as u64, path)?);
                    f.write_all(&data)?;
                    f.finish()?
                }
                Node::File {
                    source: Source::Host(host),
                    mode,
                } => {
                    let mut src =
                        File::open(&host).with_context(|| format!("opening {}", host.display()))?;
                    let len = src.metadata()?.len();
                    let mut f = b.mode(0o100000 | mode).write(w, size32(len, path)?);
                    std::io::copy(&mut src, &mut f)?;
                    f.finish()?
                }
            };
        }
        let w = cpio::newc::trailer(w)?;
        let file = w.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        let size = file.metadata()?.len();
        std::fs::rename(&tmp, out)?;
        Ok(size)
    }
}

fn size32(len: u64, path: &str) -> Result<u32> {
    u32::try_from(len).with_context(|| format!("/{path} is too big for a newc archive"))
}

fn is_elf(path: &Path) -> Result<bool> {
    let mut magic = [0u8; 4];
    let mut f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    Ok(f.read(&mut magic)? == 4 && magic == *b"\x7fELF")
}
