//! Reading the files: a main file, then the `*.conf` files of its configuration directory in
//! name order, as multipathd reads multipath.conf. Used for marginal's own file
//! (`/etc/marginal/marginal.conf` and `/etc/marginal/conf.d`) and for multipathd's
//! (`/etc/multipath.conf` and `/etc/multipath/conf.d`), which marginal reads only to learn which
//! maps multipathd checks itself.
//!
//! The directory is, first found: the one the caller forces (`--config-dir`), the main file's
//! `config_dir` keyword (honoured as multipath-tools 0.8 did: main file only, absolute path,
//! `""` for none), the default directory. A missing directory means no extra files unless the
//! caller forced it; a missing main file is an error only when it was asked for by name (a host
//! without the file simply has no settings from it; the directory is still read, as multipathd
//! does).
use std::{
    fs, io,
    os::unix::ffi::OsStrExt,
    path::{Path, PathBuf},
};

use super::{
    diag::{ConfigError, Diagnostic},
    model::{Builder, Config, ConfigDirKeyword},
};

/// marginal's own configuration file, which multipathd never reads.
pub const DEFAULT_CONFIG_FILE: &str = "/etc/marginal/marginal.conf";
/// Where marginal reads extra `*.conf` files.
pub const DEFAULT_CONFIG_DIR: &str = "/etc/marginal/conf.d";
/// Where multipathd reads its configuration.
pub const MULTIPATH_CONFIG_FILE: &str = "/etc/multipath.conf";
/// Where multipathd reads extra `*.conf` files.
pub const MULTIPATH_CONFIG_DIR: &str = "/etc/multipath/conf.d";

/// Which files to read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadOptions {
    /// The main file.
    pub file: PathBuf,
    /// Whether a missing main file is an error.
    pub required: bool,
    /// A configuration directory that replaces `config_dir` and the default; it must exist.
    pub config_dir: Option<PathBuf>,
    /// The directory read when neither `config_dir` nor the caller names one.
    pub default_dir: PathBuf,
}

impl Default for LoadOptions {
    /// marginal's own files.
    fn default() -> Self {
        Self {
            file: PathBuf::from(DEFAULT_CONFIG_FILE),
            required: false,
            config_dir: None,
            default_dir: PathBuf::from(DEFAULT_CONFIG_DIR),
        }
    }
}

impl LoadOptions {
    /// multipathd's files.
    pub fn multipathd() -> Self {
        Self {
            file: PathBuf::from(MULTIPATH_CONFIG_FILE),
            required: false,
            config_dir: None,
            default_dir: PathBuf::from(MULTIPATH_CONFIG_DIR),
        }
    }
}

impl Config {
    /// Reads `path` (which must exist) and the configuration directory it implies.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Self::load_with(&LoadOptions {
            file: path.to_path_buf(),
            required: true,
            ..LoadOptions::default()
        })
    }

    /// Reads the files `options` describe.
    pub fn load_with(options: &LoadOptions) -> Result<Config, ConfigError> {
        let mut builder = Builder::default();
        match fs::read(&options.file) {
            Ok(text) => builder.add_file(&options.file, &text, true),
            Err(e) if e.kind() == io::ErrorKind::NotFound && !options.required => {
                log::debug!(
                    "{} does not exist: no settings from it",
                    options.file.display()
                );
                builder.missing_main(&options.file);
            }
            Err(error) => {
                return Err(ConfigError::Io {
                    path: options.file.clone(),
                    error,
                });
            }
        }

        let dir = match (&options.config_dir, builder.config_dir()) {
            (Some(dir), _) => Some(dir.clone()),
            (None, Some(ConfigDirKeyword::Disabled)) => None,
            (None, Some(ConfigDirKeyword::Dir(dir))) => Some(dir.clone()),
            (None, None) => Some(options.default_dir.clone()),
        };
        if let Some(dir) = dir {
            for path in conf_files(&dir, options.config_dir.is_some())? {
                if path.is_dir() {
                    builder.push(Diagnostic::warning(
                        &path,
                        0,
                        "a directory, not a file; skipped",
                    ));
                    continue;
                }
                let text = fs::read(&path).map_err(|error| ConfigError::Io {
                    path: path.clone(),
                    error,
                })?;
                builder.add_file(&path, &text, false);
            }
        }
        builder.finish()
    }

    /// Parses `text` as a main file called `name`, reading no other file (a `config_dir` in it
    /// is noted but not followed).
    pub fn parse_str(name: &str, text: &str) -> Result<Config, ConfigError> {
        let mut builder = Builder::default();
        builder.add_file(Path::new(name), text.as_bytes(), true);
        builder.finish()
    }
}

/// The `*.conf` entries of `dir`, sorted by name as multipathd's `scandir(alphasort)` in the C
/// locale sorts them (bytewise).
fn conf_files(dir: &Path, required: bool) -> Result<Vec<PathBuf>, ConfigError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound && !required => {
            log::debug!("no configuration directory {}", dir.display());
            return Ok(Vec::new());
        }
        Err(error) => {
            return Err(ConfigError::Io {
                path: dir.to_path_buf(),
                error,
            });
        }
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|error| ConfigError::Io {
            path: dir.to_path_buf(),
            error,
        })?;
        if entry.file_name().as_bytes().ends_with(b".conf") {
            files.push(entry.path());
        }
    }
    files.sort_by(|a, b| {
        a.file_name()
            .map(OsStrExt::as_bytes)
            .cmp(&b.file_name().map(OsStrExt::as_bytes))
    });
    Ok(files)
}
