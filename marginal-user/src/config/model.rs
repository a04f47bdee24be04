//! What marginal keeps of multipath.conf ([`Config`]) and how it is built from the syntax tree.
//!
//! Of all of multipathd's sections and keywords marginal keeps only what decides the
//! `marginal_path_*` settings of a map: the `defaults` and `overrides` values, the `devices`
//! entries (vendor/product/revision patterns and their values), the `multipaths` entries (wwid,
//! alias and values), `marginal_pathgroups` and `config_dir`. Everything else is read past:
//! other keywords are logged at debug level, other sections skipped whole.
//!
//! Files are added in the order multipathd reads them (main file, then conf.d); later files
//! extend the tables and overwrite `defaults`/`overrides` values, as in multipathd.
//!
//! How serious a problem is depends on whether marginal uses the keyword: a keyword marginal
//! reads must have one clean value (anything else is an error that refuses the configuration),
//! while an odd line for a keyword marginal ignores is only a warning, because multipathd runs
//! with it too.
use std::{
    collections::HashSet,
    path::{Path, PathBuf},
};

use super::{
    Overrides,
    devices::{DeviceEntry, Pattern, factorize},
    diag::{ConfigError, Diagnostic},
    multipathd::MultipathdConfig,
    syntax::{self, Item, Keyword, Section},
    values::{ACTION_KEYWORD, Key, PathAction, Pathgroups, Setting},
};

/// A value and where it was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Assigned<T> {
    pub value: T,
    pub file: PathBuf,
    pub line: u32,
}

/// The [`Setting`]s one section (or entry) assigns.
#[derive(Clone, Debug, Default)]
pub(crate) struct Block {
    values: [Option<Assigned<Setting>>; Key::ALL.len()],
    /// `marginal_path_action` (marginal.conf only; multipathd has no such keyword).
    pub(crate) action: Option<Assigned<PathAction>>,
}

impl Block {
    pub fn get(&self, key: Key) -> Option<&Assigned<Setting>> {
        self.values[key.index()].as_ref()
    }

    fn set(&mut self, key: Key, value: Assigned<Setting>) {
        self.values[key.index()] = Some(value);
    }

    /// Takes from `earlier` each value this block does not set (multipathd's `merge_num`).
    pub(crate) fn merge_from(&mut self, earlier: Block) {
        for (mine, theirs) in self.values.iter_mut().zip(earlier.values) {
            if mine.is_none() {
                *mine = theirs;
            }
        }
        if self.action.is_none() {
            self.action = earlier.action;
        }
    }
}

/// One `multipath` subsection of `multipaths`.
#[derive(Clone, Debug)]
pub struct MultipathEntry {
    pub wwid: String,
    pub alias: Option<String>,
    pub file: PathBuf,
    pub line: u32,
    pub(crate) settings: Block,
}

/// The multipath.conf settings marginal uses, from the main file and conf.d, plus the
/// command-line overrides. Load it with [`Config::load`] (or [`super::ConfigArgs::load`]),
/// parse text with [`Config::parse_str`], and ask it about a map with [`Config::resolve`].
#[derive(Clone, Debug, Default)]
pub struct Config {
    pub(crate) files: Vec<PathBuf>,
    pub(crate) defaults: Block,
    pub(crate) overrides: Block,
    pub(crate) devices: Vec<DeviceEntry>,
    pub(crate) multipaths: Vec<MultipathEntry>,
    pub(crate) marginal_pathgroups: Option<Assigned<Pathgroups>>,
    pub(crate) command_line: Overrides,
    pub(crate) warnings: Vec<Diagnostic>,
    /// The main file, when it did not exist.
    pub(crate) missing_main: Option<PathBuf>,
    /// multipathd's configuration, to leave the maps it checks itself to it.
    pub(crate) multipathd: Option<std::sync::Arc<MultipathdConfig>>,
}

impl Config {
    /// The main file, if it was not there (no settings from it).
    pub fn missing_main_file(&self) -> Option<&Path> {
        self.missing_main.as_deref()
    }

    /// multipathd's configuration, when it was read alongside.
    pub fn multipathd(&self) -> Option<&MultipathdConfig> {
        self.multipathd.as_deref()
    }

    /// The same configuration, leaving to multipathd the maps `multipathd` says it checks.
    pub fn with_multipathd(mut self, multipathd: MultipathdConfig) -> Config {
        self.multipathd = Some(std::sync::Arc::new(multipathd));
        self
    }

    /// The same configuration without multipathd's: for `--watch` devices, which are no
    /// multipathd map's paths.
    pub fn without_multipathd(mut self) -> Config {
        self.multipathd = None;
        self
    }

    /// The files read, in order (main file first, then conf.d by name).
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// The `devices` entries, in file order.
    pub fn devices(&self) -> &[DeviceEntry] {
        &self.devices
    }

    /// The `multipaths` entries (those with a wwid), in file order.
    pub fn multipaths(&self) -> &[MultipathEntry] {
        &self.multipaths
    }

    /// Problems that did not stop loading; the daemon should log them.
    pub fn warnings(&self) -> &[Diagnostic] {
        &self.warnings
    }

    /// Logs [`Config::warnings`] at warning level.
    pub fn log_warnings(&self) {
        for warning in &self.warnings {
            log::warn!("{warning}");
        }
    }

    /// The command-line overrides in force.
    pub fn overrides(&self) -> &Overrides {
        &self.command_line
    }

    /// The same configuration with these command-line overrides above every file setting.
    pub fn with_overrides(mut self, overrides: Overrides) -> Config {
        self.command_line = overrides;
        self
    }
}

/// The `config_dir` keyword of the main file's `defaults` (multipath-tools before 0.9).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ConfigDirKeyword {
    /// `config_dir ""`: read no conf.d directory.
    Disabled,
    Dir(PathBuf),
}

/// Builds a [`Config`] file by file.
#[derive(Default)]
pub(crate) struct Builder {
    config: Config,
    diagnostics: Vec<Diagnostic>,
    config_dir: Option<ConfigDirKeyword>,
}

/// What a section handler is reading, for messages and for the rules about which keyword is
/// valid where.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Place {
    Defaults,
    Overrides,
    Device,
    Multipath,
}

impl Builder {
    /// Parses one file and adds what it says. `main` is the main file (only it may set
    /// `config_dir`).
    pub fn add_file(&mut self, file: &Path, text: &[u8], main: bool) {
        self.config.files.push(file.to_path_buf());
        let items = syntax::parse(file, text, &mut self.diagnostics);
        for item in &items {
            match item {
                Item::Keyword(k) => self.ignored(file, k, "the top level"),
                Item::Section(s) => match s.name.as_str() {
                    "defaults" => self.defaults(file, s, main),
                    "overrides" => {
                        let mut block = std::mem::take(&mut self.config.overrides);
                        self.block(file, s, Place::Overrides, &mut block, |_, _, _| false);
                        self.config.overrides = block;
                    }
                    "devices" => self.table(file, s, "device", Self::device),
                    "multipaths" => self.table(file, s, "multipath", Self::multipath),
                    "blacklist" | "blacklist_exceptions" => {
                        log::debug!(
                            "{}:{}: section '{}' not used by marginal",
                            file.display(),
                            s.line,
                            s.name
                        )
                    }
                    // multipathd warns "invalid keyword" for the section's name and for every
                    // line in it; one warning for the section says the same.
                    _ => self.push(Diagnostic::warning(
                        file,
                        s.line,
                        format!(
                            "invalid keyword '{}': not a section of multipath.conf; it is \
                             skipped with everything in it (multipathd skips it too, with a warning)",
                            s.name
                        ),
                    )),
                },
            }
        }
    }

    /// The `config_dir` the main file asked for, if any.
    pub fn config_dir(&self) -> Option<&ConfigDirKeyword> {
        self.config_dir.as_ref()
    }

    pub fn missing_main(&mut self, file: &Path) {
        self.config.missing_main = Some(file.to_path_buf());
    }

    pub fn push(&mut self, diagnostic: Diagnostic) {
        self.diagnostics.push(diagnostic);
    }

    pub fn finish(mut self) -> Result<Config, ConfigError> {
        // In reading order: files as read, lines ascending (a section never closed is only
        // found at the end of its file).
        let files = &self.config.files;
        let order = |d: &Diagnostic| {
            let file = files.iter().position(|f| *f == d.file);
            (file.unwrap_or(usize::MAX), d.line)
        };
        let devices = std::mem::take(&mut self.config.devices);
        self.config.devices = factorize(devices, &mut self.diagnostics);
        self.diagnostics.sort_by_key(order);
        if self.diagnostics.iter().any(Diagnostic::is_error) {
            return Err(ConfigError::Invalid {
                diagnostics: self.diagnostics,
            });
        }
        Ok(Config {
            warnings: self.diagnostics,
            ..self.config
        })
    }

    fn defaults(&mut self, file: &Path, section: &Section, main: bool) {
        let mut block = std::mem::take(&mut self.config.defaults);
        self.block(
            file,
            section,
            Place::Defaults,
            &mut block,
            |this, k, value| match k.name.as_str() {
                "marginal_pathgroups" => {
                    match Pathgroups::parse(value) {
                        Ok(v) => {
                            this.config.marginal_pathgroups = Some(Assigned {
                                value: v,
                                file: file.to_path_buf(),
                                line: k.line,
                            })
                        }
                        Err(e) => this.push(Diagnostic::error(
                            file,
                            k.line,
                            format!("marginal_pathgroups: {e}"),
                        )),
                    }
                    true
                }
                "config_dir" => {
                    if !main {
                        this.push(Diagnostic::warning(
                            file,
                            k.line,
                            "config_dir is only read in the main configuration file; ignored",
                        ));
                    } else if value.is_empty() {
                        this.config_dir = Some(ConfigDirKeyword::Disabled);
                    } else if value.starts_with('/') {
                        this.config_dir = Some(ConfigDirKeyword::Dir(PathBuf::from(value)));
                    } else {
                        this.push(Diagnostic::warning(
                            file,
                            k.line,
                            format!("config_dir \"{value}\" is not an absolute path; ignored"),
                        ));
                    }
                    true
                }
                _ => false,
            },
        );
        self.config.defaults = block;
    }

    /// `devices` or `multipaths`: a list of `entry` subsections.
    fn table(
        &mut self,
        file: &Path,
        section: &Section,
        entry: &str,
        add: fn(&mut Self, &Path, &Section),
    ) {
        for item in &section.items {
            match item {
                Item::Section(s) if s.name == entry => add(self, file, s),
                Item::Section(s) => {
                    log::debug!(
                        "{}:{}: skipping unknown section '{}' in {}",
                        file.display(),
                        s.line,
                        s.name,
                        section.name
                    )
                }
                Item::Keyword(k) => self.ignored(file, k, &section.name),
            }
        }
    }

    fn device(&mut self, file: &Path, section: &Section) {
        let (mut vendor, mut product, mut revision) = (None, None, None);
        let mut settings = Block::default();
        self.block(
            file,
            section,
            Place::Device,
            &mut settings,
            |this, k, value| {
                let slot = match k.name.as_str() {
                    "vendor" => &mut vendor,
                    "product" => &mut product,
                    "revision" => &mut revision,
                    _ => return false,
                };
                match Pattern::new(value) {
                    Ok(pattern) => *slot = Some(pattern),
                    Err(e) => this.push(Diagnostic::error(
                        file,
                        k.line,
                        format!(
                            "{} \"{value}\" is not a valid POSIX extended regular expression: {e}",
                            k.name
                        ),
                    )),
                }
                true
            },
        );
        match (vendor, product) {
            (Some(vendor), Some(product)) => self.config.devices.push(DeviceEntry {
                vendor,
                product,
                revision,
                file: file.to_path_buf(),
                line: section.line,
                settings,
            }),
            _ if self.has_error_in(file, section) => {}
            _ => self.push(Diagnostic::warning(
                file,
                section.line,
                "device entry without vendor or product is ignored (as multipathd does)",
            )),
        }
    }

    fn multipath(&mut self, file: &Path, section: &Section) {
        let (mut wwid, mut alias) = (None, None);
        let mut settings = Block::default();
        self.block(
            file,
            section,
            Place::Multipath,
            &mut settings,
            |_, k, value| {
                match k.name.as_str() {
                    "wwid" => wwid = Some(value.to_string()),
                    "alias" => alias = Some(value.to_string()),
                    _ => return false,
                }
                true
            },
        );
        let Some(wwid) = wwid.filter(|w| !w.is_empty()) else {
            self.push(Diagnostic::warning(
                file,
                section.line,
                "multipath entry without wwid is ignored (as multipathd does)",
            ));
            return;
        };
        if let Some(earlier) = self.config.multipaths.iter().find(|m| m.wwid == wwid) {
            let message = format!(
                "another multipath entry for wwid {wwid} ({}:{}); values set here win, as in multipathd",
                earlier.file.display(),
                earlier.line
            );
            self.push(Diagnostic::warning(file, section.line, message));
        }
        self.config.multipaths.push(MultipathEntry {
            wwid,
            alias,
            file: file.to_path_buf(),
            line: section.line,
            settings,
        });
    }

    /// Reads the keywords of one section into `block`. `special` gets first look at each
    /// keyword with a clean value and returns whether it used it.
    fn block(
        &mut self,
        file: &Path,
        section: &Section,
        place: Place,
        block: &mut Block,
        mut special: impl FnMut(&mut Self, &Keyword, &str) -> bool,
    ) {
        let mut seen = HashSet::new();
        for item in &section.items {
            let k = match item {
                Item::Keyword(k) => k,
                Item::Section(s) => {
                    // `protocol` inside overrides/device only holds timeouts marginal ignores.
                    log::debug!(
                        "{}:{}: skipping section '{}' in {}",
                        file.display(),
                        s.line,
                        s.name,
                        section.name
                    );
                    continue;
                }
            };
            let key = Key::from_keyword(&k.name);
            let reads =
                key.is_some() || k.name == ACTION_KEYWORD || special_keyword(place, &k.name);
            if !reads {
                self.ignored(file, k, &section.name);
                continue;
            }
            if !seen.insert(k.name.as_str()) {
                let message = format!("{} set again in this section; the later value wins", k.name);
                self.push(Diagnostic::warning(file, k.line, message));
            }
            let mut clean = true;
            for problem in &k.problems {
                self.push(Diagnostic::error(
                    file,
                    k.line,
                    format!("{}: {problem}", k.name),
                ));
                clean = false;
            }
            let Some(value) = k.value.as_deref().filter(|_| clean) else {
                continue;
            };
            match key {
                Some(key) => match Setting::parse(value) {
                    Ok(setting) => block.set(
                        key,
                        Assigned {
                            value: setting,
                            file: file.to_path_buf(),
                            line: k.line,
                        },
                    ),
                    Err(e) => {
                        self.push(Diagnostic::error(file, k.line, format!("{}: {e}", k.name)))
                    }
                },
                None if k.name == ACTION_KEYWORD => match PathAction::parse(value) {
                    Ok(action) => {
                        block.action = Some(Assigned {
                            value: action,
                            file: file.to_path_buf(),
                            line: k.line,
                        })
                    }
                    Err(e) => {
                        self.push(Diagnostic::error(file, k.line, format!("{}: {e}", k.name)))
                    }
                },
                None => {
                    special(self, k, value);
                }
            }
        }
    }

    /// A keyword marginal does not read here: warn if it is one of ours in the wrong place or
    /// if multipathd would complain about the line, else only note it at debug level.
    fn ignored(&mut self, file: &Path, k: &Keyword, section: &str) {
        let ours = Key::from_keyword(&k.name).is_some() || k.name == "marginal_pathgroups";
        if ours {
            let message = format!(
                "{} is not valid in {section}; ignored (multipathd ignores it too)",
                k.name
            );
            self.push(Diagnostic::warning(file, k.line, message));
        } else if let Some(problem) = k.problems.first() {
            self.push(Diagnostic::warning(
                file,
                k.line,
                format!("{}: {problem}", k.name),
            ));
        } else {
            log::debug!(
                "{}:{}: keyword '{}' in {section} not used by marginal",
                file.display(),
                k.line,
                k.name
            );
        }
    }

    fn has_error_in(&self, file: &Path, section: &Section) -> bool {
        let last = last_line(section);
        self.diagnostics
            .iter()
            .any(|d| d.is_error() && d.file == file && (section.line..=last).contains(&d.line))
    }
}

/// Section-specific keywords marginal reads (besides the [`Key`]s, valid in every block).
fn special_keyword(place: Place, name: &str) -> bool {
    match place {
        Place::Defaults => matches!(name, "marginal_pathgroups" | "config_dir"),
        Place::Device => matches!(name, "vendor" | "product" | "revision"),
        Place::Multipath => matches!(name, "wwid" | "alias"),
        Place::Overrides => false,
    }
}

fn last_line(section: &Section) -> u32 {
    section
        .items
        .iter()
        .map(|item| match item {
            Item::Keyword(k) => k.line,
            Item::Section(s) => last_line(s),
        })
        .max()
        .unwrap_or(section.line)
}
