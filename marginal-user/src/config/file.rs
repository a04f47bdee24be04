//! Reading the files: the main multipath.conf, then the `*.conf` files of the configuration
//! directory in name order, as multipathd does.
//!
//! The directory is, first found: the one the caller forces (`--config-dir`), the main file's
//! `config_dir` keyword (honoured as multipath-tools 0.8 did: main file only, absolute path,
//! `""` for none), `/etc/multipath/conf.d`. A missing directory means no extra files unless the
//! caller forced it; a missing main file is an error only when it was asked for by name, since a
//! host without /etc/multipath.conf simply has no settings (multipathd still reads conf.d then).
use std::{
    fs, io,
    os::unix::ffi::OsStrExt,
    path::{Path, PathBuf},
};

use super::{
    diag::{ConfigError, Diagnostic},
    model::{Builder, Config, ConfigDirKeyword},
};

/// Where multipathd reads its configuration.
pub const DEFAULT_CONFIG_FILE: &str = "/etc/multipath.conf";
/// Where multipathd reads extra `*.conf` files.
pub const DEFAULT_CONFIG_DIR: &str = "/etc/multipath/conf.d";

/// Which files to read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadOptions {
    /// The main file.
    pub file: PathBuf,
    /// Whether a missing main file is an error.
    pub required: bool,
    /// A configuration directory that replaces `config_dir` and the default; it must exist.
    pub config_dir: Option<PathBuf>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            file: PathBuf::from(DEFAULT_CONFIG_FILE),
            required: false,
            config_dir: None,
        }
    }
}

impl Config {
    /// Reads `path` (which must exist) and the configuration directory it implies.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Self::load_with(&LoadOptions {
            file: path.to_path_buf(),
            required: true,
            config_dir: None,
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
            (None, None) => Some(PathBuf::from(DEFAULT_CONFIG_DIR)),
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
