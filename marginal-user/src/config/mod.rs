//! multipath.conf compatibility: marginal reads the `marginal_path_*` settings from the same
//! files, with the same syntax and precedence, as multipathd.
//!
//! The pieces, in the order data flows through them:
//!
//! ```text
//! file.rs      main file + conf.d/*.conf in name order (config_dir honoured)
//!   lexer.rs   one line -> tokens (multipathd's quoting and comment rules)
//!   syntax.rs  tokens -> tree of sections and `keyword value` lines; brace errors
//!   model.rs   tree -> Config: defaults, overrides, devices, multipaths (values.rs parses values)
//! resolve.rs   Config + a map (wwid, vendor, product) -> Resolved: each value with its Origin,
//!              and engine::Params or why checking is off
//! args.rs      --config, --config-dir and the per-map overrides (daemon and CLI options)
//! cli.rs       `marginal config show|check`
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
pub mod cli;
mod diag;
mod file;
mod lexer;
mod model;
mod posix_regex;
mod resolve;
mod syntax;
mod values;

#[cfg(test)]
mod tests;

pub use args::{ConfigArgs, Overrides};
pub use diag::{ConfigError, Diagnostic, Severity};
pub use file::{DEFAULT_CONFIG_DIR, DEFAULT_CONFIG_FILE, LoadOptions};
pub use model::{Config, DeviceEntry, MultipathEntry, Pattern};
pub use resolve::{
    MIN_SAMPLE_TIME, MapIdentity, OffReason, Origin, Resolved, SectionRef, Sourced, WhyOff,
};
pub use values::{Key, MAX_VALUE, Pathgroups, Setting};
