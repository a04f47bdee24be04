//! The keywords marginal reads and the values they take.
//!
//! The four `marginal_path_*` keywords and the three `san_path_err_*` ones share one value type
//! ([`Setting`]): `"no"` (or `"off"`) for off, or a whole number. multipathd parses them the same
//! way (dict.c `set_off_int_undef`) except in two places where marginal is stricter or follows
//! the spec:
//!
//! * multipathd quietly turns a negative number into 1; marginal refuses it, because whoever
//!   wrote it did not mean 1.
//! * multipathd reads `0` as `"no"`. For the three times that is the same in effect (checking
//!   needs them > 0), but `marginal_path_err_rate_threshold 0` is a real threshold for marginal
//!   ("any error is too many"), as the spec's `rate_threshold >= 0` rule says.
//!
//! `marginal_pathgroups` (`off`/`on`/`fpin`, also `no`/`yes`) is only read for reporting and for
//! its `fpin` value, under which multipathd disables marginal_path checking.
use std::{fmt, str::FromStr};

pub use crate::engine::PathAction;

/// The keyword choosing how a map's marginal paths are held out ([`PathAction`]): `fail` (the
/// default) or `setmarginal`. marginal.conf only, in every section, with the same precedence
/// as the `marginal_path_*` keywords.
pub const ACTION_KEYWORD: &str = "marginal_path_action";

/// The largest number multipathd accepts (C `INT_MAX`).
pub const MAX_VALUE: u32 = i32::MAX as u32;

/// The value of a `marginal_path_*` or `san_path_err_*` keyword.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Setting {
    /// `"no"` or `"off"`: set, to off. It still wins over lower levels of precedence, as in
    /// multipathd, so `overrides { marginal_path_err_sample_time no }` turns checking off.
    Off,
    /// A number (seconds, or permille for the rate threshold). 0 is kept as 0.
    Value(u32),
}

impl Setting {
    /// Parses a value as multipath.conf or the command line gives it. The error says what is
    /// wrong without naming the keyword (the caller adds that).
    pub fn parse(text: &str) -> Result<Setting, String> {
        let t = text.trim_matches(|c: char| c.is_ascii_whitespace());
        if t == "no" || t == "off" {
            return Ok(Setting::Off);
        }
        let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if let Some(negative) = t.strip_prefix('-')
            && all_digits(negative)
        {
            return Err(format!(
                "negative value {t} is not allowed (use \"no\" to turn it off)"
            ));
        }
        let digits = t.strip_prefix('+').unwrap_or(t);
        if !all_digits(digits) {
            return Err(format!("\"{text}\" is not a whole number or \"no\""));
        }
        match digits.parse::<u64>() {
            Ok(n) if n <= u64::from(MAX_VALUE) => Ok(Setting::Value(n as u32)),
            _ => Err(format!("{digits} is too large (at most {MAX_VALUE})")),
        }
    }

    /// The number, if not off.
    pub fn value(self) -> Option<u32> {
        match self {
            Setting::Off => None,
            Setting::Value(n) => Some(n),
        }
    }
}

impl fmt::Display for Setting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Setting::Off => f.write_str("no"),
            Setting::Value(n) => write!(f, "{n}"),
        }
    }
}

impl FromStr for Setting {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Setting::parse(s)
    }
}

/// A keyword whose value is a [`Setting`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Key {
    DoubleFailedTime,
    ErrSampleTime,
    ErrRateThreshold,
    ErrRecheckGapTime,
    SlowFactor,
    SlowMinIos,
    SlowFloor,
    SlowWindow,
    SanPathErrThreshold,
    SanPathErrForgetRate,
    SanPathErrRecoveryTime,
    DelayWatchChecks,
    DelayWaitChecks,
}

impl Key {
    /// Every key, in display order.
    pub const ALL: [Key; 13] = [
        Key::DoubleFailedTime,
        Key::ErrSampleTime,
        Key::ErrRateThreshold,
        Key::ErrRecheckGapTime,
        Key::SlowFactor,
        Key::SlowMinIos,
        Key::SlowFloor,
        Key::SlowWindow,
        Key::SanPathErrThreshold,
        Key::SanPathErrForgetRate,
        Key::SanPathErrRecoveryTime,
        Key::DelayWatchChecks,
        Key::DelayWaitChecks,
    ];

    /// The four that turn marginal path checking on.
    pub const MARGINAL: [Key; 4] = [
        Key::DoubleFailedTime,
        Key::ErrSampleTime,
        Key::ErrRateThreshold,
        Key::ErrRecheckGapTime,
    ];

    /// Slow-path checking (marginal.conf only; multipathd has no such keywords): on for a map
    /// with marginal path checking on and `marginal_path_slow_factor` set; the other three
    /// have defaults ([`SLOW_DEFAULTS`]).
    pub const SLOW: [Key; 4] = [
        Key::SlowFactor,
        Key::SlowMinIos,
        Key::SlowFloor,
        Key::SlowWindow,
    ];

    /// The keywords marginal.conf sets.
    pub fn in_marginal_conf(self) -> bool {
        Key::MARGINAL.contains(&self) || Key::SLOW.contains(&self)
    }

    /// The older keywords marginal_path checking displaces (multipathd turns them off for a map
    /// on which marginal_path checking is on).
    pub const SAN_PATH: [Key; 3] = [
        Key::SanPathErrThreshold,
        Key::SanPathErrForgetRate,
        Key::SanPathErrRecoveryTime,
    ];

    /// The deprecated keywords multipathd turns into san_path_err_* settings when no
    /// san_path_err_* keyword is set (propsel.c `select_delay_checks`).
    pub const DELAY_CHECKS: [Key; 2] = [Key::DelayWatchChecks, Key::DelayWaitChecks];

    /// The multipath.conf keyword.
    pub fn keyword(self) -> &'static str {
        match self {
            Key::DoubleFailedTime => "marginal_path_double_failed_time",
            Key::ErrSampleTime => "marginal_path_err_sample_time",
            Key::ErrRateThreshold => "marginal_path_err_rate_threshold",
            Key::ErrRecheckGapTime => "marginal_path_err_recheck_gap_time",
            Key::SlowFactor => "marginal_path_slow_factor",
            Key::SlowMinIos => "marginal_path_slow_min_ios",
            Key::SlowFloor => "marginal_path_slow_floor",
            Key::SlowWindow => "marginal_path_slow_window",
            Key::SanPathErrThreshold => "san_path_err_threshold",
            Key::SanPathErrForgetRate => "san_path_err_forget_rate",
            Key::SanPathErrRecoveryTime => "san_path_err_recovery_time",
            Key::DelayWatchChecks => "delay_watch_checks",
            Key::DelayWaitChecks => "delay_wait_checks",
        }
    }

    pub fn from_keyword(keyword: &str) -> Option<Key> {
        Key::ALL.into_iter().find(|k| k.keyword() == keyword)
    }

    /// What the number counts, for messages and `config show`.
    pub fn unit(self) -> &'static str {
        match self {
            Key::ErrRateThreshold => "permille",
            Key::SlowFactor => "times",
            Key::SlowMinIos => "I/Os",
            Key::SlowFloor => "ms",
            Key::SanPathErrThreshold => "errors",
            Key::SanPathErrForgetRate | Key::DelayWatchChecks | Key::DelayWaitChecks => "checks",
            _ => "s",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.keyword())
    }
}

/// Values of the slow-path keywords left unset: at least 100 completed I/Os in a window of
/// 30 s, and never slow at or below a mean of 20 ms.
pub const SLOW_DEFAULTS: [(Key, u32); 3] = [
    (Key::SlowMinIos, 100),
    (Key::SlowFloor, 20),
    (Key::SlowWindow, 30),
];

/// `marginal_pathgroups` (defaults section only).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Pathgroups {
    /// Marginal paths are failed (the classic behaviour marginal implements).
    Off,
    /// multipathd moves marginal paths into their own path group instead of failing them.
    On,
    /// multipathd takes marginal paths from fabric FPIN notifications; it then turns
    /// marginal_path checking off, and so does marginal.
    Fpin,
}

impl Pathgroups {
    pub fn parse(text: &str) -> Result<Pathgroups, String> {
        match text {
            "off" | "no" => Ok(Pathgroups::Off),
            "on" | "yes" => Ok(Pathgroups::On),
            "fpin" => Ok(Pathgroups::Fpin),
            _ => Err(format!("\"{text}\" is not one of off, on, fpin")),
        }
    }
}

impl fmt::Display for Pathgroups {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Pathgroups::Off => "off",
            Pathgroups::On => "on",
            Pathgroups::Fpin => "fpin",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings() {
        assert_eq!(Setting::parse("no"), Ok(Setting::Off));
        assert_eq!(Setting::parse("off"), Ok(Setting::Off));
        assert_eq!(Setting::parse("0"), Ok(Setting::Value(0)));
        assert_eq!(Setting::parse("120"), Ok(Setting::Value(120)));
        assert_eq!(Setting::parse(" +60 "), Ok(Setting::Value(60)));
        assert_eq!(Setting::parse("2147483647"), Ok(Setting::Value(MAX_VALUE)));
        assert!(
            Setting::parse("2147483648")
                .unwrap_err()
                .contains("too large")
        );
        assert!(Setting::parse("-5").unwrap_err().contains("negative"));
        assert!(
            Setting::parse("5s")
                .unwrap_err()
                .contains("not a whole number")
        );
        assert!(Setting::parse("").is_err());
        assert!(Setting::parse("NO").is_err());
        assert!(Setting::parse("1.5").is_err());
    }

    #[test]
    fn keys_round_trip() {
        for key in Key::ALL {
            assert_eq!(Key::from_keyword(key.keyword()), Some(key));
            assert_eq!(Key::ALL[key.index()], key);
        }
        assert_eq!(Key::from_keyword("marginal_pathgroups"), None);
    }

    #[test]
    fn pathgroups() {
        assert_eq!(Pathgroups::parse("no"), Ok(Pathgroups::Off));
        assert_eq!(Pathgroups::parse("yes"), Ok(Pathgroups::On));
        assert_eq!(Pathgroups::parse("fpin"), Ok(Pathgroups::Fpin));
        assert!(Pathgroups::parse("maybe").is_err());
    }
}
