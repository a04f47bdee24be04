//! The effective marginal_path settings of one map, each with where it came from.
//!
//! Precedence, highest first, per keyword (as multipathd's propsel.c):
//!
//! 1. the command line ([`super::Overrides`]), when the admin gave one;
//! 2. the map's `multipaths` entry, found by wwid (if several entries share a wwid, the last
//!    one that sets the keyword, as multipathd merges them);
//! 3. `overrides`;
//! 4. the `devices` entries whose vendor/product/revision patterns match the map, the last
//!    matching entry (in file order, conf.d after the main file) that sets the keyword winning;
//! 5. `defaults`;
//! 6. unset.
//!
//! `"no"` is a value: written at a level it wins over the levels below and means off.
//! Checking is on only when `marginal_pathgroups` is not `fpin`, the three times are > 0 and the
//! rate threshold is >= 0 (i.e. set to a number); `marginal_path_err_sample_time` below 120 s is
//! raised to 120 s with a warning. multipathd's built-in hardware table sets none of these
//! keywords, so it plays no part here.
use std::{fmt, path::PathBuf, time::Duration};

use super::{
    devices::DeviceEntry,
    model::{Assigned, Config},
    multipathd::ConflictReason,
    values::{ACTION_KEYWORD, Key, PathAction, Pathgroups, SLOW_DEFAULTS, Setting},
};
use crate::engine::{Params, SlowParams};

/// A map's `marginal_path_action`: what the configuration asks for and what marginal does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActionChoice {
    /// As written (None: unset, which means `fail`).
    pub requested: Option<Sourced<PathAction>>,
    /// What marginal does: `fail` when `setmarginal` was asked for but multipathd cannot.
    pub effective: PathAction,
    /// Why `setmarginal` falls back to `fail`.
    pub fallback: Option<String>,
}

impl ActionChoice {
    fn choose(
        requested: Option<Sourced<PathAction>>,
        refusal: impl FnOnce() -> Option<String>,
    ) -> Self {
        let wanted = requested.as_ref().map_or(PathAction::Fail, |s| s.value);
        let fallback = (wanted == PathAction::SetMarginal).then(refusal).flatten();
        let effective = if fallback.is_some() {
            PathAction::Fail
        } else {
            wanted
        };
        ActionChoice {
            requested,
            effective,
            fallback,
        }
    }
}

impl fmt::Display for ActionChoice {
    /// `setmarginal`, or `fail (setmarginal asked for at ..., but ...: falling back to failing paths)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.effective)?;
        if let (Some(why), Some(requested)) = (&self.fallback, &self.requested) {
            write!(
                f,
                " ({ACTION_KEYWORD} {} at {}, but {why}: falling back to failing paths)",
                requested.value, requested.origin
            )?;
        }
        Ok(())
    }
}

/// The smallest sample time: two of the sampler's 60 s read timeouts (multipathd's
/// `2 * IOTIMEOUT_SEC`), so that every read ends inside the window.
pub const MIN_SAMPLE_TIME: u32 = 120;

/// What marginal knows of a map when it asks for its settings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct MapIdentity {
    /// The map's wwid (dm uuid without `mpath-`); empty when unknown.
    pub wwid: String,
    /// Its dm name, for display.
    pub alias: Option<String>,
    /// SCSI vendor, product and revision of its paths, as multipathd reads them from sysfs
    /// (the caller strips sysfs' trailing blanks, as multipathd does). A map with none of the
    /// three matches no `devices` entry.
    pub vendor: Option<String>,
    pub product: Option<String>,
    pub revision: Option<String>,
}

impl MapIdentity {
    /// How to name the map in messages: its alias, else its wwid.
    pub fn name(&self) -> &str {
        match &self.alias {
            Some(alias) if !alias.is_empty() => alias,
            _ if !self.wwid.is_empty() => &self.wwid,
            _ => "(unnamed map)",
        }
    }
}

/// The section a value was written in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SectionRef {
    Defaults,
    Overrides,
    Device {
        vendor: String,
        product: String,
        revision: Option<String>,
    },
    Multipath {
        wwid: String,
        alias: Option<String>,
    },
}

impl fmt::Display for SectionRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SectionRef::Defaults => f.write_str("defaults"),
            SectionRef::Overrides => f.write_str("overrides"),
            SectionRef::Device {
                vendor,
                product,
                revision,
            } => {
                write!(f, "devices entry \"{vendor}\" \"{product}\"")?;
                match revision {
                    Some(r) => write!(f, " revision \"{r}\""),
                    None => Ok(()),
                }
            }
            SectionRef::Multipath {
                alias: Some(alias), ..
            } => write!(f, "multipaths entry {alias}"),
            SectionRef::Multipath { wwid, alias: None } => write!(f, "multipaths entry {wwid}"),
        }
    }
}

/// Where an effective value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    File {
        file: PathBuf,
        line: u32,
        section: SectionRef,
    },
    /// A daemon option, e.g. `--err-sample-time`.
    CommandLine { option: &'static str },
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File {
                file,
                line,
                section,
            } => write!(f, "{}:{line} ({section})", file.display()),
            Origin::CommandLine { option } => write!(f, "command line ({option})"),
        }
    }
}

/// A value with its origin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sourced<T> {
    pub value: T,
    pub origin: Origin,
}

/// Why one of the four parameters keeps checking off.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OffReason {
    Unset,
    /// Set to `"no"`.
    No(Origin),
    /// A time set to 0.
    Zero(Origin),
}

/// Why checking is off for a map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WhyOff {
    /// multipathd checks the map itself: marginal leaves it alone, whatever its own settings.
    Multipathd(ConflictReason),
    /// marginal's configuration file does not exist (and nothing else set the parameters).
    NoConfiguration(PathBuf),
    /// `marginal_pathgroups fpin`: multipathd handles marginal paths from FPIN notifications.
    Fpin(Origin),
    /// These parameters are not usable (in [`Key::MARGINAL`] order).
    Params(Vec<(Key, OffReason)>),
}

impl fmt::Display for WhyOff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WhyOff::Multipathd(reason) => {
                write!(f, "left to multipathd: {reason}")
            }
            WhyOff::NoConfiguration(file) => {
                write!(f, "no {}: checking is off for every map", file.display())
            }
            WhyOff::Fpin(origin) => write!(
                f,
                "marginal_pathgroups is \"fpin\" (at {origin}): multipathd handles marginal paths from FPIN notifications"
            ),
            WhyOff::Params(params) => {
                for (i, (key, reason)) in params.iter().enumerate() {
                    if i > 0 {
                        f.write_str("; ")?;
                    }
                    match reason {
                        OffReason::Unset => write!(f, "{key} is unset")?,
                        OffReason::No(origin) => write!(f, "{key} is \"no\" (at {origin})")?,
                        OffReason::Zero(origin) => write!(f, "{key} is 0 (at {origin})")?,
                    }
                }
                Ok(())
            }
        }
    }
}

/// The effective settings of one map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    pub map: MapIdentity,
    values: [Option<Sourced<Setting>>; Key::ALL.len()],
    pub marginal_pathgroups: Option<Sourced<Pathgroups>>,
    /// The map's `multipaths` entries (normally one).
    pub multipath_entries: Vec<Origin>,
    /// The `devices` entries that match the map, highest precedence (last in the files) first.
    pub matching_devices: Vec<Origin>,
    /// Things the admin should know (a sample time raised to the minimum).
    pub warnings: Vec<String>,
    /// The engine's parameters, or why checking is off.
    pub checking: Result<Params, WhyOff>,
    /// How marginal paths are held out (also in `checking`'s parameters).
    pub action: ActionChoice,
}

impl Resolved {
    /// The effective value of `key`, None when unset at every level.
    pub fn get(&self, key: Key) -> Option<&Sourced<Setting>> {
        self.values[key.index()].as_ref()
    }

    /// The parameters for the engine, None when checking is off.
    pub fn params(&self) -> Option<Params> {
        self.checking.as_ref().ok().copied()
    }

    /// Whether the `san_path_err_*` values are displaced: multipathd ignores them on a map
    /// with marginal_path checking on, or under `marginal_pathgroups fpin`.
    pub fn san_path_displaced(&self) -> bool {
        self.checking.is_ok() || matches!(self.checking, Err(WhyOff::Fpin(_)))
    }
}

impl Config {
    /// The effective settings of `map`.
    pub fn resolve(&self, map: &MapIdentity) -> Resolved {
        let devices: Vec<_> = self
            .devices
            .iter()
            .rev()
            .filter(|d| d.matches(map))
            .collect();
        self.resolve_with(map, devices)
    }

    /// The settings of a map that the `devices` entry at `index` matches, and no other
    /// entry: what that entry means, for `config check`, which has no real map to ask about.
    pub fn resolve_device_entry(&self, index: usize) -> Option<Resolved> {
        let entry = self.devices.get(index)?;
        let map = MapIdentity {
            vendor: Some(entry.vendor.text.clone()),
            product: Some(entry.product.text.clone()),
            revision: entry.revision.as_ref().map(|r| r.text.clone()),
            ..Default::default()
        };
        Some(self.resolve_with(&map, vec![entry]))
    }

    fn resolve_with(&self, map: &MapIdentity, devices: Vec<&DeviceEntry>) -> Resolved {
        let entries: Vec<_> = if map.wwid.is_empty() {
            Vec::new()
        } else {
            self.multipaths
                .iter()
                .rev()
                .filter(|m| m.wwid == map.wwid)
                .collect()
        };
        let in_section = |assigned: &Assigned<Setting>, section: SectionRef| Sourced {
            value: assigned.value,
            origin: Origin::File {
                file: assigned.file.clone(),
                line: assigned.line,
                section,
            },
        };

        let values = Key::ALL.map(|key| {
            if let Some((value, option)) = self.command_line.get(key) {
                return Some(Sourced {
                    value,
                    origin: Origin::CommandLine { option },
                });
            }
            let from_multipaths = entries.iter().find_map(|m| {
                let section = SectionRef::Multipath {
                    wwid: m.wwid.clone(),
                    alias: m.alias.clone(),
                };
                m.settings.get(key).map(|a| in_section(a, section))
            });
            let from_devices = || {
                devices.iter().find_map(|d| {
                    let section = SectionRef::Device {
                        vendor: d.vendor.text.clone(),
                        product: d.product.text.clone(),
                        revision: d.revision.as_ref().map(|r| r.text.clone()),
                    };
                    d.settings.get(key).map(|a| in_section(a, section))
                })
            };
            from_multipaths
                .or_else(|| {
                    self.overrides
                        .get(key)
                        .map(|a| in_section(a, SectionRef::Overrides))
                })
                .or_else(from_devices)
                .or_else(|| {
                    self.defaults
                        .get(key)
                        .map(|a| in_section(a, SectionRef::Defaults))
                })
        });

        // marginal_path_action: the same precedence, without a command-line option.
        let action_in = |a: &Assigned<PathAction>, section: SectionRef| Sourced {
            value: a.value,
            origin: Origin::File {
                file: a.file.clone(),
                line: a.line,
                section,
            },
        };
        let requested_action = entries
            .iter()
            .find_map(|m| {
                let section = SectionRef::Multipath {
                    wwid: m.wwid.clone(),
                    alias: m.alias.clone(),
                };
                m.settings.action.as_ref().map(|a| action_in(a, section))
            })
            .or_else(|| {
                self.overrides
                    .action
                    .as_ref()
                    .map(|a| action_in(a, SectionRef::Overrides))
            })
            .or_else(|| {
                devices.iter().find_map(|d| {
                    let section = SectionRef::Device {
                        vendor: d.vendor.text.clone(),
                        product: d.product.text.clone(),
                        revision: d.revision.as_ref().map(|r| r.text.clone()),
                    };
                    d.settings.action.as_ref().map(|a| action_in(a, section))
                })
            })
            .or_else(|| {
                self.defaults
                    .action
                    .as_ref()
                    .map(|a| action_in(a, SectionRef::Defaults))
            });
        let action = ActionChoice::choose(requested_action, || match &self.multipathd {
            Some(multipathd) => multipathd.setmarginal_refusal(),
            None => Some("multipathd's configuration was not read (no multipath maps)".into()),
        });

        let marginal_pathgroups = self.marginal_pathgroups.as_ref().map(|a| Sourced {
            value: a.value,
            origin: Origin::File {
                file: a.file.clone(),
                line: a.line,
                section: SectionRef::Defaults,
            },
        });
        let entry_origin = |file: &PathBuf, line: u32, section: SectionRef| Origin::File {
            file: file.clone(),
            line,
            section,
        };
        let multipath_entries = entries
            .iter()
            .rev()
            .map(|m| {
                entry_origin(
                    &m.file,
                    m.line,
                    SectionRef::Multipath {
                        wwid: m.wwid.clone(),
                        alias: m.alias.clone(),
                    },
                )
            })
            .collect();
        let matching_devices = devices
            .iter()
            .map(|d| {
                let section = SectionRef::Device {
                    vendor: d.vendor.text.clone(),
                    product: d.product.text.clone(),
                    revision: d.revision.as_ref().map(|r| r.text.clone()),
                };
                entry_origin(&d.file, d.line, section)
            })
            .collect();

        let mut warnings = Vec::new();
        let mut checking =
            checking(&values, marginal_pathgroups.as_ref(), &mut warnings).map(|params| Params {
                action: action.effective,
                ..params
            });
        if let Some(reason) = self.multipathd_checks(map) {
            checking = Err(WhyOff::Multipathd(reason));
        } else if let (Err(WhyOff::Params(_)), true, Some(missing)) =
            (&checking, self.files.is_empty(), self.missing_main.as_ref())
        {
            checking = Err(WhyOff::NoConfiguration(missing.clone()));
        }
        Resolved {
            map: map.clone(),
            values,
            marginal_pathgroups,
            multipath_entries,
            matching_devices,
            warnings,
            checking,
            action,
        }
    }

    /// Whether multipathd checks `map` itself (by multipathd's configuration read alongside,
    /// if any), with the multipath.conf lines responsible. marginal acts on nothing in such a
    /// map.
    pub fn multipathd_checks(&self, map: &MapIdentity) -> Option<ConflictReason> {
        self.multipathd.as_ref()?.checks(map)
    }

    /// The maps the configuration names: one per wwid of the `multipaths` entries, with the
    /// alias given there (vendor and product are not known from the file).
    pub fn maps(&self) -> Vec<MapIdentity> {
        let mut maps: Vec<MapIdentity> = Vec::new();
        for entry in &self.multipaths {
            match maps.iter_mut().find(|m| m.wwid == entry.wwid) {
                Some(map) => {
                    if entry.alias.is_some() {
                        map.alias = entry.alias.clone();
                    }
                }
                None => maps.push(MapIdentity {
                    wwid: entry.wwid.clone(),
                    alias: entry.alias.clone(),
                    ..Default::default()
                }),
            }
        }
        maps
    }

    /// The map called `name` in `multipaths`: by alias first, else by wwid.
    pub fn find_map(&self, name: &str) -> Option<MapIdentity> {
        let maps = self.maps();
        let by_alias = maps.iter().find(|m| m.alias.as_deref() == Some(name));
        by_alias
            .or_else(|| maps.iter().find(|m| m.wwid == name))
            .cloned()
    }
}

/// The on/off rule and the sample-time floor.
fn checking(
    values: &[Option<Sourced<Setting>>; Key::ALL.len()],
    pathgroups: Option<&Sourced<Pathgroups>>,
    warnings: &mut Vec<String>,
) -> Result<Params, WhyOff> {
    let number = |key: Key| values[key.index()].as_ref().and_then(|s| s.value.value());
    if let Some(sample) = values[Key::ErrSampleTime.index()].as_ref()
        && let Setting::Value(n) = sample.value
        && n > 0
        && n < MIN_SAMPLE_TIME
    {
        warnings.push(format!(
            "{} {n} (at {}) is below the minimum of {MIN_SAMPLE_TIME} s; using {MIN_SAMPLE_TIME}",
            Key::ErrSampleTime,
            sample.origin
        ));
    }
    if let Some(pathgroups) = pathgroups
        && pathgroups.value == Pathgroups::Fpin
    {
        return Err(WhyOff::Fpin(pathgroups.origin.clone()));
    }

    let mut off = Vec::new();
    for key in Key::MARGINAL {
        match &values[key.index()] {
            None => off.push((key, OffReason::Unset)),
            Some(Sourced {
                value: Setting::Off,
                origin,
            }) => off.push((key, OffReason::No(origin.clone()))),
            Some(Sourced {
                value: Setting::Value(0),
                origin,
            }) if key != Key::ErrRateThreshold => off.push((key, OffReason::Zero(origin.clone()))),
            Some(_) => {}
        }
    }
    if !off.is_empty() {
        return Err(WhyOff::Params(off));
    }
    let seconds = |key: Key| Duration::from_secs(number(key).map_or(0, u64::from));
    let sample = number(Key::ErrSampleTime).unwrap_or(0).max(MIN_SAMPLE_TIME);
    Ok(Params {
        double_failed_time: seconds(Key::DoubleFailedTime),
        sample_time: Duration::from_secs(u64::from(sample)),
        err_rate_threshold: number(Key::ErrRateThreshold).unwrap_or(0),
        recheck_gap_time: seconds(Key::ErrRecheckGapTime),
        slow: slow_params(values, warnings),
        action: PathAction::Fail,
    })
}

/// Slow-path checking: on when `marginal_path_slow_factor` is a number above 0 (1 would call
/// every path above the median slow, so it counts as off too); the others default.
fn slow_params(
    values: &[Option<Sourced<Setting>>; Key::ALL.len()],
    warnings: &mut Vec<String>,
) -> Option<SlowParams> {
    if let Some(factor) = values[Key::SlowFactor.index()].as_ref()
        && factor.value == Setting::Value(1)
    {
        warnings.push(format!(
            "{} 1 (at {}) would call every path above its siblings' median slow; \
             slow-path checking stays off (use 2 or more)",
            Key::SlowFactor,
            factor.origin
        ));
    }
    let number = |key: Key| {
        values[key.index()]
            .as_ref()
            .and_then(|s| s.value.value())
            .or_else(|| {
                SLOW_DEFAULTS
                    .iter()
                    .find(|(k, _)| *k == key)
                    .map(|(_, v)| *v)
            })
    };
    let factor = number(Key::SlowFactor).filter(|&f| f >= 2)?;
    Some(SlowParams {
        factor,
        min_ios: u64::from(number(Key::SlowMinIos).unwrap_or(0)).max(1),
        floor: Duration::from_millis(u64::from(number(Key::SlowFloor).unwrap_or(0))),
        window: Duration::from_secs(u64::from(number(Key::SlowWindow).unwrap_or(0)).max(1)),
    })
}
