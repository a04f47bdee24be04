//! marginal's configuration, in multipath.conf's syntax and precedence, and multipathd's, read
//! only to leave it the maps it checks itself.
//!
//! marginal reads its settings from its own `/etc/marginal/marginal.conf` and
//! `/etc/marginal/conf.d/*.conf` (multipathd never reads them: the same `marginal_path_*`
//! keywords in multipath.conf would turn on multipathd's own checking, and two checkers on one
//! path fight). No file means no map is checked. It also reads multipathd's
//! `/etc/multipath.conf` and conf.d, and its running configuration through its socket, to learn
//! which maps multipathd checks itself ([`Config::multipathd_checks`]): those are off for
//! marginal ([`WhyOff::Multipathd`]), whatever marginal.conf says.
//!
//! The pieces, in the order data flows through them:
//!
//! ```text
//! file.rs        main file + conf.d/*.conf in name order (config_dir honoured)
//!   lexer.rs     one line -> tokens (multipathd's quoting and comment rules)
//!   syntax.rs    tokens -> tree of sections and `keyword value` lines; brace errors
//!   model.rs     tree -> Config: defaults, overrides, devices (devices.rs: posix_regex.rs
//!                patterns, matched and merged as multipathd does), multipaths (values.rs
//!                parses values)
//! resolve.rs     Config + a map (wwid, vendor, product, revision) -> Resolved: each value with
//!                its Origin, and engine::Params or why checking is off
//! multipathd.rs  multipathd's files + `show config` -> which maps it checks itself, and the
//!                multipath.conf lines responsible (ConflictReason)
//! args.rs        --config, --config-dir, --multipath-conf, --multipath-conf-dir and the
//!                per-map overrides (daemon and CLI options)
//! import.rs      `marginal config import` (multipath.conf -> marginal.conf); the command
//!                front ends are in crate::cli::config
//! manual.rs      what marginal.conf(5) says about each keyword and section
//! ```
//!
//! Problems are collected as [`Diagnostic`]s with file and line; any error refuses the whole
//! configuration ([`ConfigError`]), so the daemon does not start on a broken file and a reload
//! keeps the settings it had ([`ConfigArgs::reload`]).
//!
//! Typical use by the daemon:
//!
//! ```no_run
//! # fn demo(args: marginal::config::ConfigArgs) -> Result<(), marginal::config::ConfigError> {
//! use marginal::config::MapIdentity;
//! let config = args.load()?;
//! config.log_warnings();
//! let map = MapIdentity { wwid: "3600a0980...".into(), vendor: Some("NETAPP".into()), ..Default::default() };
//! let resolved = config.resolve(&map);
//! match &resolved.checking {
//!     Ok(params) => println!("checking {} with {params:?}", map.name()),
//!     Err(why) => println!("not checking {}: {why}", map.name()),
//! }
//! # Ok(()) }
//! ```
mod args;
mod devices;
mod diag;
mod file;
pub mod import;
mod lexer;
pub mod manual;
pub(crate) mod model;
mod multipathd;
mod posix_regex;
mod resolve;
mod syntax;
pub(crate) mod values;

#[cfg(test)]
mod tests;

pub use args::{ConfigArgs, Overrides};
pub use devices::{DeviceEntry, Pattern};
pub use diag::{ConfigError, Diagnostic, Severity};
pub use file::{
    DEFAULT_CONFIG_DIR, DEFAULT_CONFIG_FILE, LoadOptions, MULTIPATH_CONFIG_DIR,
    MULTIPATH_CONFIG_FILE,
};
pub use model::{Config, MultipathEntry};
pub use multipathd::{ConflictKind, ConflictLine, ConflictReason, MultipathdConfig, SHOW_CONFIG};
pub use resolve::{
    ActionChoice, MIN_SAMPLE_TIME, MapIdentity, OffReason, Origin, Resolved, SectionRef, Sourced,
    WhyOff,
};
pub use values::{ACTION_KEYWORD, Key, MAX_VALUE, PathAction, Pathgroups, SLOW_DEFAULTS, Setting};
