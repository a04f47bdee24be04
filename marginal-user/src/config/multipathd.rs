//! Which maps multipathd checks itself, so that marginal leaves them alone: never two checkers
//! on one path.
//!
//! multipathd (0.7.4 and later) runs its own checking of a map when, resolved with its own
//! precedence (the same as marginal's, [`super::resolve`]):
//!
//! * `marginal_pathgroups fpin` (FPIN-driven marginal paths);
//! * the `marginal_path_*` keywords are on: the three times > 0 and the rate threshold >= 0,
//!   where multipathd reads a `0` as `"no"` (dict.c `set_off_int_undef`), so a threshold needs
//!   to be at least 1 for multipathd;
//! * the `san_path_err_*` keywords are on: threshold, forget rate and recovery time all > 0,
//!   or, with none of them set, the deprecated `delay_watch_checks` and `delay_wait_checks`
//!   both > 0 (multipathd turns those into san_path_err_* settings).
//!
//! marginal reads multipathd's files (`/etc/multipath.conf`, its conf.d, `config_dir`
//! honoured) for the lines responsible, and, when multipathd answers on its socket, its
//! `show config`: what multipathd really runs with (it may not have re-read edited files yet).
//! The socket is the truth; the files name the lines to delete. When only the running
//! configuration checks a map, the reason says so (`multipathd reconfigure` would end it).
use std::{fmt, path::PathBuf};

use super::{
    diag::ConfigError,
    file::LoadOptions,
    model::Config,
    resolve::{MapIdentity, Origin, Resolved},
    values::{Key, Pathgroups, Setting},
};
use crate::actuator::multipathd::MultipathdSocket;

/// How multipathd checks a map itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConflictKind {
    /// `marginal_path_*` enabled: multipathd's own marginal path checking (the same job).
    MarginalPath,
    /// `san_path_err_*` enabled: multipathd's older check that delays reinstating a path.
    SanPathErr,
    /// `marginal_pathgroups fpin`: multipathd takes marginal paths from fabric notifications.
    FpinPathgroups,
}

impl ConflictKind {
    /// A short, fixed name (metric label, JSON).
    pub fn label(self) -> &'static str {
        match self {
            ConflictKind::MarginalPath => "marginal_path",
            ConflictKind::SanPathErr => "san_path_err",
            ConflictKind::FpinPathgroups => "marginal_pathgroups_fpin",
        }
    }

    /// What turns it on, for messages.
    pub fn describe(self) -> &'static str {
        match self {
            ConflictKind::MarginalPath => "marginal_path_* checking is on",
            ConflictKind::SanPathErr => "san_path_err_* checking is on",
            ConflictKind::FpinPathgroups => "marginal_pathgroups is fpin",
        }
    }
}

/// One line of multipathd's configuration that turns its checking on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConflictLine {
    pub keyword: &'static str,
    pub value: String,
    pub origin: Origin,
}

/// Why marginal leaves a map to multipathd.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConflictReason {
    pub kind: ConflictKind,
    /// The lines responsible, in their files when the files agree with what multipathd runs
    /// with; else in its `show config` output.
    pub lines: Vec<ConflictLine>,
    /// Only the running configuration checks the map: its files no longer do.
    pub running_only: bool,
}

impl fmt::Display for ConflictReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "multipathd checks this map itself ({}",
            self.kind.describe()
        )?;
        if self.running_only {
            f.write_str(" in its running configuration, not in its files any more: run `multipathd reconfigure`")?;
        }
        f.write_str("; set by ")?;
        for (i, line) in self.lines.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{} {} at {}", line.keyword, line.value, line.origin)?;
        }
        f.write_str(")")
    }
}

/// multipathd's configuration as far as marginal needs it.
#[derive(Clone, Debug)]
pub struct MultipathdConfig {
    files: Config,
    running: Option<Config>,
    /// Why the running configuration is not used, when multipathd was asked and it is not.
    pub running_unavailable: Option<String>,
    /// What multipathd's help text says of it (version, `setmarginal`), when it answered.
    commands: Option<Commands>,
}

/// What multipathd's command reference (its reply to a command it does not know) says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Commands {
    /// `multipath-tools v0.11.1`: (0, 11, 1).
    pub version: Option<(u32, u32, u32)>,
    /// It lists `setmarginal` (multipath-tools 0.8.3 and later).
    pub setmarginal: bool,
}

impl Commands {
    /// Reads multipathd's help text (`multipath-tools v0.11.1 (...)`, then `CLI commands
    /// reference:` and one command a line).
    pub fn parse(help: &str) -> Commands {
        let version = help.split("multipath-tools v").nth(1).and_then(|rest| {
            let text: String = rest
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.')
                .collect();
            let mut numbers = text.split('.').map(|n| n.parse::<u32>().ok());
            Some((numbers.next()??, numbers.next()??, numbers.next()??))
        });
        Commands {
            version,
            setmarginal: help.split_whitespace().any(|w| w == "setmarginal"),
        }
    }

    fn describe_version(&self) -> String {
        match self.version {
            Some((a, b, c)) => format!("multipathd {a}.{b}.{c}"),
            None => "multipathd".into(),
        }
    }
}

impl MultipathdConfig {
    /// Reads multipathd's files as `options` name them and, if `socket` is given and
    /// multipathd answers there, its running configuration. Errors in the files are errors:
    /// marginal cannot tell which maps multipathd checks from a file it cannot read.
    pub fn load(
        options: &LoadOptions,
        socket: Option<&MultipathdSocket>,
    ) -> Result<MultipathdConfig, ConfigError> {
        let files = Config::load_with(options)?;
        let mut config = MultipathdConfig {
            files,
            running: None,
            running_unavailable: None,
            commands: None,
        };
        if let Some(socket) = socket {
            match socket.command("show config") {
                Ok(reply) => {
                    config.set_running(&reply);
                    // No command asks for the version; an unknown one gets the command
                    // reference, which starts with it and lists `setmarginal` where it exists.
                    if let Ok(help) = socket.command("help") {
                        config.commands = Some(Commands::parse(&help));
                    }
                }
                Err(e) => {
                    log::debug!("multipathd's running configuration: {e:#}");
                    config.running_unavailable = Some(format!("{e:#}"));
                }
            }
        }
        Ok(config)
    }

    /// From files and a `show config` reply already in hand (tests, and [`Self::load`]).
    pub fn from_parts(files: Config, show_config: Option<&str>) -> MultipathdConfig {
        let mut config = MultipathdConfig {
            files,
            running: None,
            running_unavailable: None,
            commands: None,
        };
        if let Some(reply) = show_config {
            config.set_running(reply);
        }
        config
    }

    fn set_running(&mut self, reply: &str) {
        match Config::parse_str(SHOW_CONFIG, reply) {
            Ok(running) => self.running = Some(running),
            Err(e) => {
                log::warn!("cannot read multipathd's `show config` reply, using its files: {e}");
                self.running_unavailable =
                    Some(format!("its `show config` reply is unreadable: {e}"));
            }
        }
    }

    /// With multipathd's help text in hand (tests, and [`Self::load`]).
    pub fn with_help(mut self, help: &str) -> MultipathdConfig {
        self.commands = Some(Commands::parse(help));
        self
    }

    /// Why multipathd cannot hold marginal's paths as marginal (`setmarginal path`), if it
    /// cannot. It needs to answer on its socket (the command goes there), to run with
    /// `marginal_pathgroups on` (else the path is flagged but stays in its group: nothing
    /// changes for I/O), and to know the command (0.8.3 and later; older versions also print
    /// no marginal_pathgroups in `show config`). multipathd's own shaky-path methods
    /// (marginal_path_*, san_path_err_*, delay_*_checks) are not checked here: a map where
    /// they are on is left to multipathd whole ([`Self::checks`]), and on such a map
    /// multipathd's checker would clear the flag itself.
    pub fn setmarginal_refusal(&self) -> Option<String> {
        let Some(running) = &self.running else {
            let why = self
                .running_unavailable
                .as_deref()
                .unwrap_or("it was not asked");
            return Some(format!(
                "multipathd's running configuration is unknown ({why}); setmarginal goes \
                 through multipathd"
            ));
        };
        if let Some(commands) = &self.commands
            && !commands.setmarginal
        {
            return Some(format!(
                "{} has no setmarginal command (multipath-tools 0.8.3 and later)",
                commands.describe_version()
            ));
        }
        match &running.marginal_pathgroups {
            Some(pathgroups) if pathgroups.value == Pathgroups::On => None,
            Some(pathgroups) => Some(format!(
                "multipathd runs with marginal_pathgroups {} ({SHOW_CONFIG}), not on: it would \
                 not move a marginal path to a group of its own",
                pathgroups.value
            )),
            None => Some(format!(
                "multipathd runs without marginal_pathgroups ({SHOW_CONFIG}; off by default, \
                 and multipath-tools before 0.8.3 lack it): it would not move a marginal path \
                 to a group of its own"
            )),
        }
    }

    /// The files read.
    pub fn files(&self) -> &[PathBuf] {
        self.files.files()
    }

    /// The parsed files (for `config import`).
    pub fn file_config(&self) -> &Config {
        &self.files
    }

    /// Whether the running configuration was read through the socket.
    pub fn has_running(&self) -> bool {
        self.running.is_some()
    }

    /// Whether multipathd checks `map` itself, and the lines responsible.
    pub fn checks(&self, map: &MapIdentity) -> Option<ConflictReason> {
        let from_files = detect(&self.files.resolve(map));
        let Some(running) = &self.running else {
            return from_files;
        };
        let truth = detect(&running.resolve(map))?;
        match from_files {
            Some(files) if files.kind == truth.kind => Some(files),
            _ => Some(ConflictReason {
                running_only: true,
                ..truth
            }),
        }
    }
}

/// How the running configuration is named in origins.
pub const SHOW_CONFIG: &str = "multipathd show config";

/// multipathd's rules on resolved values (its precedence is marginal's).
fn detect(resolved: &Resolved) -> Option<ConflictReason> {
    let reason = |kind, lines| {
        Some(ConflictReason {
            kind,
            lines,
            running_only: false,
        })
    };
    if let Some(pathgroups) = &resolved.marginal_pathgroups
        && pathgroups.value == Pathgroups::Fpin
    {
        let line = ConflictLine {
            keyword: "marginal_pathgroups",
            value: "fpin".into(),
            origin: pathgroups.origin.clone(),
        };
        return reason(ConflictKind::FpinPathgroups, vec![line]);
    }
    let all_positive = |keys: &[Key]| -> Option<Vec<ConflictLine>> {
        keys.iter()
            .map(|&key| {
                let sourced = resolved.get(key)?;
                // multipathd reads 0 as "no", so every value must be at least 1.
                matches!(sourced.value, Setting::Value(n) if n > 0).then(|| ConflictLine {
                    keyword: key.keyword(),
                    value: sourced.value.to_string(),
                    origin: sourced.origin.clone(),
                })
            })
            .collect()
    };
    if let Some(lines) = all_positive(&Key::MARGINAL) {
        return reason(ConflictKind::MarginalPath, lines);
    }
    if let Some(lines) = all_positive(&Key::SAN_PATH) {
        return reason(ConflictKind::SanPathErr, lines);
    }
    // delay_watch_checks and delay_wait_checks stand for san_path_err_* (threshold 1) when no
    // san_path_err_* keyword is on; both are needed for all three to be > 0.
    let any_san_path = Key::SAN_PATH
        .iter()
        .any(|&k| matches!(resolved.get(k).map(|s| s.value), Some(Setting::Value(n)) if n > 0));
    if !any_san_path && let Some(lines) = all_positive(&Key::DELAY_CHECKS) {
        return reason(ConflictKind::SanPathErr, lines);
    }
    None
}

impl MultipathdConfig {
    /// The conflicts `config check` can find without real maps: for the maps the
    /// configurations name (`maps`, a map no entry matches among them) and for a map of each
    /// of multipathd's `devices` entries. Each distinct set of lines once.
    pub fn conflicts_for_check(&self, maps: &[MapIdentity]) -> Vec<(String, ConflictReason)> {
        let mut found: Vec<(String, ConflictReason)> = Vec::new();
        let mut add = |what: String, reason: Option<ConflictReason>| {
            if let Some(reason) = reason
                && !found.iter().any(|(_, r)| r.lines == reason.lines)
            {
                found.push((what, reason));
            }
        };
        for map in maps {
            let what = if map.wwid.is_empty() && map.alias.is_none() {
                "every map (defaults/overrides)".to_string()
            } else {
                format!("map {}", map.name())
            };
            add(what, self.checks(map));
        }
        for (index, entry) in self.files.devices().iter().enumerate() {
            let resolved = self.files.resolve_device_entry(index);
            let what = format!(
                "maps of devices entry \"{}\" \"{}\" ({}:{})",
                entry.vendor.text,
                entry.product.text,
                entry.file.display(),
                entry.line
            );
            add(what, resolved.as_ref().and_then(detect));
        }
        found
    }
}
