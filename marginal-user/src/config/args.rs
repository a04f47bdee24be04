//! The configuration options of the `marginal` command line, shared by the daemon (which
//! flattens [`ConfigArgs`] into its own options) and `marginal config show|check`.
//!
//! No default comes from the environment: without options marginal reads its own
//! /etc/marginal/marginal.conf and /etc/marginal/conf.d for its settings, and multipathd's
//! /etc/multipath.conf and /etc/multipath/conf.d (and, when multipathd answers on its socket,
//! its running configuration) only to leave alone the maps multipathd checks itself.
use std::path::PathBuf;

use super::{
    diag::ConfigError,
    file::{DEFAULT_CONFIG_FILE, LoadOptions},
    model::Config,
    multipathd::MultipathdConfig,
    values::{Key, Setting},
};

/// Values that apply to every map, above anything in multipath.conf. Each takes a number or
/// `no` (off, which turns checking off everywhere).
#[derive(Clone, Debug, Default, PartialEq, Eq, clap::Args)]
pub struct Overrides {
    /// marginal_path_double_failed_time for all maps: two path failures within this many
    /// seconds start the check
    #[arg(long, value_name = "SECONDS|no", value_parser = Setting::parse)]
    pub double_failed_time: Option<Setting>,
    /// marginal_path_err_sample_time for all maps: seconds one sampling run lasts (at least 120)
    #[arg(long, value_name = "SECONDS|no", value_parser = Setting::parse)]
    pub err_sample_time: Option<Setting>,
    /// marginal_path_err_rate_threshold for all maps: an error rate above this many permille is
    /// marginal
    #[arg(long, value_name = "PERMILLE|no", value_parser = Setting::parse)]
    pub err_rate_threshold: Option<Setting>,
    /// marginal_path_err_recheck_gap_time for all maps: seconds a marginal path stays out before
    /// it is sampled again
    #[arg(long, value_name = "SECONDS|no", value_parser = Setting::parse)]
    pub err_recheck_gap_time: Option<Setting>,
}

impl Overrides {
    /// The override of `key` and the option that set it.
    pub fn get(&self, key: Key) -> Option<(Setting, &'static str)> {
        let (value, option) = match key {
            Key::DoubleFailedTime => (self.double_failed_time, "--double-failed-time"),
            Key::ErrSampleTime => (self.err_sample_time, "--err-sample-time"),
            Key::ErrRateThreshold => (self.err_rate_threshold, "--err-rate-threshold"),
            Key::ErrRecheckGapTime => (self.err_recheck_gap_time, "--err-recheck-gap-time"),
            Key::SlowFactor
            | Key::SlowMinIos
            | Key::SlowFloor
            | Key::SlowWindow
            | Key::SanPathErrThreshold
            | Key::SanPathErrForgetRate
            | Key::SanPathErrRecoveryTime
            | Key::DelayWatchChecks
            | Key::DelayWaitChecks => (None, ""),
        };
        value.map(|v| (v, option))
    }

    pub fn is_empty(&self) -> bool {
        Key::MARGINAL.iter().all(|&k| self.get(k).is_none())
    }
}

/// Where the configuration comes from, and the overrides above it.
#[derive(Clone, Debug, Default, PartialEq, Eq, clap::Args)]
pub struct ConfigArgs {
    /// marginal's configuration file to read instead of /etc/marginal/marginal.conf (it must
    /// exist)
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Directory whose *.conf files are read after marginal's file, instead of its config_dir
    /// or /etc/marginal/conf.d (it must exist)
    #[arg(long, value_name = "DIR")]
    pub config_dir: Option<PathBuf>,
    /// multipathd's configuration file to read instead of /etc/multipath.conf (it must exist);
    /// multipathd's socket is then not asked for its running configuration
    #[arg(long, value_name = "PATH")]
    pub multipath_conf: Option<PathBuf>,
    /// Directory of multipathd's extra *.conf files, instead of its config_dir or
    /// /etc/multipath/conf.d (it must exist)
    #[arg(long, value_name = "DIR")]
    pub multipath_conf_dir: Option<PathBuf>,
    #[command(flatten)]
    pub overrides: Overrides,
}

impl ConfigArgs {
    /// marginal's files these options name.
    pub fn load_options(&self) -> LoadOptions {
        LoadOptions {
            file: self
                .config
                .clone()
                .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_FILE)),
            required: self.config.is_some(),
            config_dir: self.config_dir.clone(),
            ..LoadOptions::default()
        }
    }

    /// multipathd's files these options name.
    pub fn multipathd_options(&self) -> LoadOptions {
        let defaults = LoadOptions::multipathd();
        LoadOptions {
            required: self.multipath_conf.is_some(),
            file: self.multipath_conf.clone().unwrap_or(defaults.file.clone()),
            config_dir: self.multipath_conf_dir.clone(),
            ..defaults
        }
    }

    /// Reads multipathd's configuration: its files and, unless a file was named on the
    /// command line (tests, other set-ups), its running configuration through its socket.
    pub fn load_multipathd(&self) -> Result<MultipathdConfig, ConfigError> {
        let socket = crate::actuator::multipathd::MultipathdSocket::new();
        let socket = self.multipath_conf.is_none().then_some(&socket);
        MultipathdConfig::load(&self.multipathd_options(), socket)
    }

    /// Reads marginal's configuration, puts the command-line overrides above it, and reads
    /// multipathd's to leave it the maps it checks itself. The daemon refuses to start when
    /// this fails.
    pub fn load(&self) -> Result<Config, ConfigError> {
        let multipathd = self.load_multipathd()?;
        Ok(Config::load_with(&self.load_options())?
            .with_overrides(self.overrides.clone())
            .with_multipathd(multipathd))
    }

    /// Reads the configuration again into `current`. On any error `current` is left as it was,
    /// so a running daemon told to reload a broken file keeps its old settings.
    pub fn reload(&self, current: &mut Config) -> Result<(), ConfigError> {
        *current = self.load()?;
        Ok(())
    }
}
