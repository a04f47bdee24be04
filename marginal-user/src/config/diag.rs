//! What loading a configuration found wrong: diagnostics with file and line, and the error that
//! refuses a configuration.
//!
//! Every stage (syntax, values, loading) appends [`Diagnostic`]s instead of stopping at the first
//! problem, so `marginal config check` lists everything wrong at once. A configuration with any
//! [`Severity::Error`] is refused as a whole ([`ConfigError::Invalid`]): the daemon does not start
//! on it, and a reload keeps the settings it already has.
use std::{
    fmt, io,
    path::{Path, PathBuf},
};

/// How bad a [`Diagnostic`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Understood and used, but probably not what the admin meant (multipathd logs these too).
    Warning,
    /// marginal cannot tell what the file means: the configuration is refused.
    Error,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Warning => "warning",
            Severity::Error => "error",
        })
    }
}

/// One problem, at `file:line` (line 0 when it concerns the whole file).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub file: PathBuf,
    pub line: u32,
    pub message: String,
}

impl Diagnostic {
    pub(crate) fn error(file: &Path, line: u32, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Error,
            file: file.to_path_buf(),
            line,
            message: message.into(),
        }
    }

    pub(crate) fn warning(file: &Path, line: u32, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Warning,
            file: file.to_path_buf(),
            line,
            message: message.into(),
        }
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(
                f,
                "{}: {}: {}",
                self.file.display(),
                self.severity,
                self.message
            )
        } else {
            write!(
                f,
                "{}:{}: {}: {}",
                self.file.display(),
                self.line,
                self.severity,
                self.message
            )
        }
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug)]
pub enum ConfigError {
    /// A file or directory that had to be read could not be.
    Io { path: PathBuf, error: io::Error },
    /// The files were read but have errors. Holds every diagnostic, warnings included, in the
    /// order found.
    Invalid { diagnostics: Vec<Diagnostic> },
}

impl ConfigError {
    /// All diagnostics (errors and warnings); empty for an I/O error.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            ConfigError::Io { .. } => &[],
            ConfigError::Invalid { diagnostics } => diagnostics,
        }
    }

    /// Only the errors.
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics().iter().filter(|d| d.is_error())
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Io { path, error } => write!(f, "cannot read {}: {error}", path.display()),
            ConfigError::Invalid { .. } => {
                let errors: Vec<_> = self.errors().collect();
                let plural = if errors.len() == 1 { "" } else { "s" };
                write!(f, "invalid configuration ({} error{plural})", errors.len())?;
                for error in errors {
                    write!(f, "\n  {error}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConfigError::Io { error, .. } => Some(error),
            ConfigError::Invalid { .. } => None,
        }
    }
}
