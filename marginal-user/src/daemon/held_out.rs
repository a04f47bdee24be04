//! The paths the daemon has taken out of service, kept in a file under /run so that a
//! restarted daemon takes them up again: no path marginal failed is ever forgotten.
//!
//! An entry is written before the path is failed and removed only once the path is back in
//! service, or really gone (see `reconcile`). Observe mode opens the file read-only: it
//! reports what a previous run holds and never rewrites it. A file that cannot be parsed is
//! moved aside (never a reason not to start: a daemon that does not start protects nothing),
//! and the problem is reported in the log, the status and the metrics.
use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// One path marginal failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldOutPath {
    pub map: String,
    /// `MAJ:MIN`, to check it is still the same device after a restart.
    pub device: String,
    /// The LUN's WWID (SCSI reuses sdX names and numbers for other LUNs).
    #[serde(default)]
    pub wwid: Option<String>,
    /// dm had already failed the path when marginal took it: marginal does not put such a
    /// path back into service with a dm message unless it proved healthy or the map needs it.
    #[serde(default)]
    pub dm_failed_first: bool,
    /// How marginal holds it: `fail` (failed in dm) or `setmarginal` (marginal in
    /// multipathd, still active in dm as a last resort). Files from before the keyword
    /// existed hold failed paths only.
    #[serde(default)]
    pub action: crate::engine::PathAction,
}

/// The state file: written atomically (temp file + rename) on every change.
pub struct HeldOutFile {
    path: PathBuf,
    paths: BTreeMap<String, HeldOutPath>,
    read_only: bool,
    /// What was wrong with the file at start-up, if anything (it was moved aside).
    problem: Option<String>,
}

impl HeldOutFile {
    /// Read the file at `path` (absent means none held out). A corrupt file is moved aside to
    /// `<path>.corrupt-<seconds since the epoch>` and the daemon starts with none held out;
    /// [`HeldOutFile::problem`] says what happened. Only an unreadable file (permissions, I/O)
    /// is an error.
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_with(path, false)
    }

    /// The file for observe mode: read, reported, never written (a corrupt one is left as is).
    pub fn open_read_only(path: &Path) -> Result<Self> {
        Self::open_with(path, true)
    }

    fn open_with(path: &Path, read_only: bool) -> Result<Self> {
        let mut problem = None;
        let paths = match std::fs::read_to_string(path) {
            Ok(text) => match serde_json::from_str(&text) {
                Ok(paths) => paths,
                Err(parse) => {
                    let why = format!("{}: unreadable state ({parse})", path.display());
                    problem = Some(if read_only {
                        format!("{why}; observe mode leaves it as it is")
                    } else {
                        let aside = aside_name(path);
                        match std::fs::rename(path, &aside) {
                            Ok(()) => format!(
                                "{why}; moved aside to {}: check the paths it lists by hand",
                                aside.display()
                            ),
                            Err(e) => format!("{why}; could not move it aside: {e}"),
                        }
                    });
                    BTreeMap::new()
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        Ok(Self {
            path: path.to_path_buf(),
            paths,
            read_only,
            problem,
        })
    }

    pub fn held_out(&self) -> &BTreeMap<String, HeldOutPath> {
        &self.paths
    }

    pub fn get(&self, name: &str) -> Option<&HeldOutPath> {
        self.paths.get(name)
    }

    pub fn file(&self) -> &Path {
        &self.path
    }

    /// What was wrong with the file at start-up.
    pub fn problem(&self) -> Option<&str> {
        self.problem.as_deref()
    }

    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    pub fn insert(&mut self, name: &str, entry: HeldOutPath) -> Result<()> {
        if self.read_only || self.paths.get(name) == Some(&entry) {
            return Ok(());
        }
        self.paths.insert(name.to_string(), entry);
        self.save()
    }

    pub fn remove(&mut self, name: &str) -> Result<()> {
        if self.read_only {
            return Ok(());
        }
        if self.paths.remove(name).is_some() {
            self.save()?;
        }
        Ok(())
    }

    fn save(&self) -> Result<()> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating state directory {}", dir.display()))?;
        }
        let temp = self.path.with_extension("tmp");
        let text = serde_json::to_string_pretty(&self.paths)?;
        std::fs::write(&temp, text).with_context(|| format!("writing {}", temp.display()))?;
        std::fs::rename(&temp, &self.path)
            .with_context(|| format!("replacing {}", self.path.display()))
    }
}

fn aside_name(path: &Path) -> PathBuf {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".corrupt-{seconds}"));
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("marginal-held-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn entry() -> HeldOutPath {
        HeldOutPath {
            map: "mpatha".into(),
            device: "8:16".into(),
            wwid: Some("3600a0980".into()),
            dm_failed_first: true,
            action: Default::default(),
        }
    }

    #[test]
    fn survives_a_reopen() {
        let dir = temp_dir("reopen");
        let file = dir.join("state.json");
        let mut state = HeldOutFile::open(&file).unwrap();
        assert!(state.held_out().is_empty());
        state.insert("sdb", entry()).unwrap();
        let mut reopened = HeldOutFile::open(&file).unwrap();
        assert_eq!(reopened.get("sdb"), Some(&entry()));
        reopened.remove("sdb").unwrap();
        assert!(HeldOutFile::open(&file).unwrap().held_out().is_empty());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn reads_the_entries_of_older_versions() {
        let dir = temp_dir("old");
        let file = dir.join("state.json");
        std::fs::write(&file, r#"{"sdb": {"map": "mpatha", "device": "8:16"}}"#).unwrap();
        let state = HeldOutFile::open(&file).unwrap();
        let old = state.get("sdb").unwrap();
        assert_eq!((old.wwid.as_deref(), old.dm_failed_first), (None, false));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_corrupt_file_is_moved_aside_and_reported() {
        let dir = temp_dir("corrupt");
        let file = dir.join("state.json");
        std::fs::write(&file, "{not json").unwrap();
        let state = HeldOutFile::open(&file).expect("a corrupt file never stops the start");
        assert!(state.held_out().is_empty());
        let problem = state.problem().expect("the problem is reported");
        assert!(problem.contains(&file.display().to_string()), "{problem}");
        assert!(problem.contains("moved aside"), "{problem}");
        assert!(!file.exists(), "the corrupt file is no longer in the way");
        let aside: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(
            aside.iter().any(|n| n.starts_with("state.json.corrupt-")),
            "{aside:?}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn read_only_never_writes_or_moves() {
        let dir = temp_dir("readonly");
        let file = dir.join("state.json");
        let mut writer = HeldOutFile::open(&file).unwrap();
        writer.insert("sdb", entry()).unwrap();
        let before = std::fs::read_to_string(&file).unwrap();
        let mut observer = HeldOutFile::open_read_only(&file).unwrap();
        assert_eq!(observer.get("sdb"), Some(&entry()));
        observer.remove("sdb").unwrap();
        observer.insert("sdc", entry()).unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), before);

        std::fs::write(&file, "{not json").unwrap();
        let observer = HeldOutFile::open_read_only(&file).unwrap();
        assert!(observer.problem().is_some());
        assert!(
            file.exists(),
            "observe mode leaves a corrupt file where it is"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
