//! Tests across the configuration modules, through whole files: grammar, every level of
//! precedence, the on/off rule and the sample-time floor, errors with their lines, loading files.
//! (Each module also tests its own piece: lexer, syntax, values.)
mod action;
mod errors;
mod files;
mod grammar;
mod multipathd;
mod precedence;
mod rules;

use super::*;

pub(super) fn parse(text: &str) -> Config {
    match Config::parse_str("t.conf", text) {
        Ok(config) => config,
        Err(e) => panic!("{e}"),
    }
}

pub(super) fn parse_err(text: &str) -> Vec<(u32, String)> {
    match Config::parse_str("t.conf", text) {
        Ok(_) => panic!("expected errors in:\n{text}"),
        Err(e) => e.errors().map(|d| (d.line, d.message.clone())).collect(),
    }
}

pub(super) fn netapp() -> MapIdentity {
    MapIdentity {
        wwid: "3600a098038303053453f463045535a4b".into(),
        alias: Some("data1".into()),
        vendor: Some("NETAPP".into()),
        product: Some("LUN C-Mode".into()),
        revision: Some("9800".into()),
    }
}

/// The value of `key` for `map` and the line and section it came from.
pub(super) fn at(config: &Config, map: &MapIdentity, key: Key) -> Option<(Setting, String)> {
    let resolved = config.resolve(map);
    resolved.get(key).map(|s| {
        let place = match &s.origin {
            Origin::File { line, section, .. } => format!("{line} {}", section_name(section)),
            Origin::CommandLine { option } => option.to_string(),
        };
        (s.value, place)
    })
}

fn section_name(section: &SectionRef) -> &'static str {
    match section {
        SectionRef::Defaults => "defaults",
        SectionRef::Overrides => "overrides",
        SectionRef::Device { .. } => "device",
        SectionRef::Multipath { .. } => "multipath",
    }
}

pub(super) const ALL_FOUR: &str = "
defaults {
    marginal_path_double_failed_time 10
    marginal_path_err_sample_time 300
    marginal_path_err_rate_threshold 5
    marginal_path_err_recheck_gap_time 600
}
";
