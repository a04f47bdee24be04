//! The paths the daemon has taken out of service, kept in a file under /run so that a
//! restarted daemon takes them up again: no path marginal failed is ever forgotten.
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
}

/// The state file: written atomically (temp file + rename) on every change.
pub struct HeldOutFile {
    path: PathBuf,
    paths: BTreeMap<String, HeldOutPath>,
}

impl HeldOutFile {
    /// Read the file at `path` (absent means none held out). A file that cannot be parsed is
    /// an error: guessing would risk forgetting a failed path.
    pub fn open(path: &Path) -> Result<Self> {
        let paths = match std::fs::read_to_string(path) {
            Ok(text) => serde_json::from_str(&text).with_context(|| {
                format!(
                    "{}: unreadable state of paths marginal failed; fix or remove it \
                     after checking those paths by hand",
                    path.display()
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        Ok(Self {
            path: path.to_path_buf(),
            paths,
        })
    }

    pub fn held_out(&self) -> &BTreeMap<String, HeldOutPath> {
        &self.paths
    }

    pub fn insert(&mut self, name: &str, entry: HeldOutPath) -> Result<()> {
        if self.paths.get(name) == Some(&entry) {
            return Ok(());
        }
        self.paths.insert(name.to_string(), entry);
        self.save()
    }

    pub fn remove(&mut self, name: &str) -> Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn survives_a_reopen() {
        let dir = std::env::temp_dir().join(format!("marginal-held-{}", std::process::id()));
        let file = dir.join("state.json");
        let mut state = HeldOutFile::open(&file).unwrap();
        assert!(state.held_out().is_empty());
        let entry = HeldOutPath {
            map: "mpatha".into(),
            device: "8:16".into(),
        };
        state.insert("sdb", entry.clone()).unwrap();
        let reopened = HeldOutFile::open(&file).unwrap();
        assert_eq!(reopened.held_out().get("sdb"), Some(&entry));
        let mut reopened = reopened;
        reopened.remove("sdb").unwrap();
        assert!(HeldOutFile::open(&file).unwrap().held_out().is_empty());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn corrupt_state_is_an_error_naming_the_file() {
        let file = std::env::temp_dir().join(format!("marginal-bad-{}.json", std::process::id()));
        std::fs::write(&file, "{not json").unwrap();
        let err = HeldOutFile::open(&file)
            .err()
            .expect("corrupt file must fail");
        assert!(format!("{err:#}").contains(&file.display().to_string()));
        std::fs::remove_file(file).unwrap();
    }
}
