//! Block devices as the rest of marginal names them: `sdb`, `/dev/sdb` or `8:16` in, a
//! [`BlockDevice`] with its numbers (user and kernel encodings) out.
use std::{
    fmt,
    os::unix::fs::{FileTypeExt, MetadataExt},
    path::{Path, PathBuf},
};

use anyhow::{Context, Result, bail};
use marginal_common::kernel_dev;

/// A block device on this host.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlockDevice {
    /// Kernel name, e.g. `sdb`, `loop3`, `dm-0`.
    pub name: String,
    pub major: u32,
    pub minor: u32,
}

impl BlockDevice {
    /// Resolve `sdb`, `/dev/sdb`, any path to a block device node, or `MAJ:MIN`.
    pub fn resolve(spec: &str) -> Result<Self> {
        if let Some((major, minor)) = parse_major_minor(spec) {
            return Self::from_numbers(major, minor);
        }
        let path = if spec.contains('/') {
            PathBuf::from(spec)
        } else {
            Path::new("/dev").join(spec)
        };
        let metadata = std::fs::metadata(&path)
            .with_context(|| format!("block device {}: cannot stat it", path.display()))?;
        if !metadata.file_type().is_block_device() {
            bail!("{} is not a block device", path.display());
        }
        let rdev = metadata.rdev();
        Self::from_numbers(libc::major(rdev), libc::minor(rdev))
    }

    /// The device `major:minor`, named from `/sys/dev/block`.
    pub fn from_numbers(major: u32, minor: u32) -> Result<Self> {
        let link = format!("/sys/dev/block/{major}:{minor}");
        let target = std::fs::read_link(&link)
            .with_context(|| format!("block device {major}:{minor}: not present ({link})"))?;
        let name = target
            .file_name()
            .and_then(|n| n.to_str())
            .with_context(|| format!("block device {major}:{minor}: odd sysfs link {target:?}"))?
            .to_string();
        Ok(Self { name, major, minor })
    }

    /// The kernel-internal `dev_t` that block tracepoints and dm report.
    pub fn kernel_dev(&self) -> u32 {
        kernel_dev(self.major, self.minor)
    }

    /// `MAJ:MIN`, as device-mapper tables and metrics name a device.
    pub fn numbers(&self) -> String {
        format!("{}:{}", self.major, self.minor)
    }

    /// The device node.
    pub fn node(&self) -> PathBuf {
        Path::new("/dev").join(&self.name)
    }

    /// `/sys/block/<name>`, or the partition's directory.
    pub fn sysfs_dir(&self) -> PathBuf {
        PathBuf::from(format!("/sys/dev/block/{}:{}", self.major, self.minor))
    }
}

impl fmt::Display for BlockDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}:{})", self.name, self.major, self.minor)
    }
}

/// `"8:16"` -> `(8, 16)`.
pub fn parse_major_minor(text: &str) -> Option<(u32, u32)> {
    let (major, minor) = text.trim().split_once(':')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_major_minor() {
        assert_eq!(parse_major_minor("8:16"), Some((8, 16)));
        assert_eq!(parse_major_minor(" 254:0\n"), Some((254, 0)));
        assert_eq!(parse_major_minor("sdb"), None);
        assert_eq!(parse_major_minor("8:x"), None);
    }

    #[test]
    fn missing_device_names_itself() {
        let err = BlockDevice::resolve("/dev/definitely-not-here").unwrap_err();
        assert!(format!("{err:#}").contains("/dev/definitely-not-here"));
    }
}
