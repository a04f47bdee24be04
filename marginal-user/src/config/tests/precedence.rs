//! Every level of precedence, and how devices entries match a map.
use super::*;
use crate::config::*;

const LEVELS: &str = r#"
defaults {
    marginal_path_double_failed_time 1
    marginal_path_err_sample_time 201
    marginal_path_err_rate_threshold 1
    marginal_path_err_recheck_gap_time 1
    san_path_err_threshold 1
}
devices {
    device {
        vendor "NETAPP"
        product "LUN"
        marginal_path_err_sample_time 202
        marginal_path_err_rate_threshold 2
        marginal_path_err_recheck_gap_time 2
    }
    device {
        vendor "^NET"
        product "C-Mode$"
        marginal_path_err_rate_threshold 3
        marginal_path_err_recheck_gap_time 3
    }
    device {
        vendor "EMC"
        product ".*"
        marginal_path_err_recheck_gap_time 99
    }
    device {
        vendor "NETAPP"
        product "LUN"
        revision "^8"
        marginal_path_err_recheck_gap_time 98
    }
}
overrides {
    marginal_path_err_recheck_gap_time 4
}
multipaths {
    multipath {
        wwid 3600a098038303053453f463045535a4b
        alias data1
        marginal_path_err_recheck_gap_time 5
    }
}
"#;

#[test]
fn each_level_of_precedence() {
    let config = parse(LEVELS);
    let map = netapp();
    assert_eq!(
        at(&config, &map, Key::DoubleFailedTime),
        Some((Setting::Value(1), "3 defaults".into()))
    );
    // Only the first device entry sets the sample time.
    assert_eq!(
        at(&config, &map, Key::ErrSampleTime),
        Some((Setting::Value(202), "13 device".into()))
    );
    // Both NETAPP entries match: the last one wins.
    assert_eq!(
        at(&config, &map, Key::ErrRateThreshold),
        Some((Setting::Value(3), "20 device".into()))
    );
    // multipaths > overrides > devices.
    assert_eq!(
        at(&config, &map, Key::ErrRecheckGapTime),
        Some((Setting::Value(5), "42 multipath".into()))
    );
    let other_map = MapIdentity {
        wwid: "other".into(),
        ..netapp()
    };
    assert_eq!(
        at(&config, &other_map, Key::ErrRecheckGapTime),
        Some((Setting::Value(4), "36 overrides".into()))
    );
    assert_eq!(
        at(&config, &map, Key::SanPathErrThreshold),
        Some((Setting::Value(1), "7 defaults".into()))
    );
    assert_eq!(at(&config, &map, Key::SanPathErrForgetRate), None);

    let resolved = config.resolve(&map);
    let lines: Vec<_> = resolved
        .matching_devices
        .iter()
        .map(|o| match o {
            Origin::File { line, .. } => *line,
            Origin::CommandLine { .. } => 0,
        })
        .collect();
    // The EMC entry and the revision-8 entry do not match; highest precedence first.
    assert_eq!(lines, vec![17, 10]);
    assert_eq!(resolved.multipath_entries.len(), 1);
}

#[test]
fn command_line_is_above_everything() {
    let overrides = Overrides {
        err_recheck_gap_time: Some(Setting::Value(7)),
        ..Default::default()
    };
    let config = parse(LEVELS).with_overrides(overrides);
    assert_eq!(
        at(&config, &netapp(), Key::ErrRecheckGapTime),
        Some((Setting::Value(7), "--err-recheck-gap-time".into()))
    );
    assert_eq!(
        at(&config, &netapp(), Key::DoubleFailedTime),
        Some((Setting::Value(1), "3 defaults".into()))
    );
}

#[test]
fn device_patterns_match_like_regexec() {
    let config = parse(LEVELS);
    let map = |vendor: Option<&str>, product: Option<&str>, revision: Option<&str>| MapIdentity {
        wwid: "x".into(),
        vendor: vendor.map(String::from),
        product: product.map(String::from),
        revision: revision.map(String::from),
        ..Default::default()
    };
    let gap = |m: MapIdentity| at(&config, &m, Key::ErrRecheckGapTime).map(|(v, _)| v);
    // Overrides hide the devices level for the gap time; use the rate threshold instead.
    let rate = |m: MapIdentity| at(&config, &m, Key::ErrRateThreshold).map(|(v, _)| v);
    assert_eq!(
        rate(map(Some("NETAPP"), Some("LUN"), None)),
        Some(Setting::Value(2))
    );
    assert_eq!(
        rate(map(Some("XNETAPP"), Some("LUN C-Mode"), None)),
        Some(Setting::Value(2))
    );
    assert_eq!(
        rate(map(Some("NETAPP"), Some("LUN C-Mode"), None)),
        Some(Setting::Value(3))
    );
    // A missing attribute is not tested (hwe_regmatch), but a map with none matches nothing.
    assert_eq!(
        rate(map(Some("NETAPP"), None, None)),
        Some(Setting::Value(3))
    );
    assert_eq!(rate(map(None, None, None)), Some(Setting::Value(1)));
    assert_eq!(gap(map(None, None, None)), Some(Setting::Value(4)));
    let config = parse(
        "devices {\n device {\n  vendor NETAPP\n  product LUN\n  revision \"^8\"\n  marginal_path_err_rate_threshold 8\n }\n}\n",
    );
    let rate = |m: MapIdentity| at(&config, &m, Key::ErrRateThreshold).map(|(v, _)| v);
    assert_eq!(
        rate(map(Some("NETAPP"), Some("LUN"), Some("8300"))),
        Some(Setting::Value(8))
    );
    assert_eq!(rate(map(Some("NETAPP"), Some("LUN"), Some("9800"))), None);
    // Without a revision (an admin's `config show` without --revision) a revision-specific
    // entry is not taken.
    assert_eq!(rate(map(Some("NETAPP"), Some("LUN"), None)), None);
}

/// Issue 19: a revision-specific entry after a generic one for the same vendor/product.
#[test]
fn revision_specific_entry_applies_only_to_that_revision() {
    let config = parse(
        "devices {\n device {\n  vendor NETAPP\n  product LUN\n  marginal_path_err_rate_threshold 5\n }\n device {\n  vendor NETAPP\n  product LUN\n  revision \"^8\"\n  marginal_path_err_rate_threshold 8\n }\n}\n",
    );
    let id = |revision: Option<&str>| MapIdentity {
        wwid: "x".into(),
        vendor: Some("NETAPP".into()),
        product: Some("LUN".into()),
        revision: revision.map(String::from),
        ..Default::default()
    };
    let rate = |m: MapIdentity| at(&config, &m, Key::ErrRateThreshold);
    assert_eq!(rate(id(None)), Some((Setting::Value(5), "5 device".into())));
    assert_eq!(
        rate(id(Some("9800"))),
        Some((Setting::Value(5), "5 device".into()))
    );
    assert_eq!(
        rate(id(Some("8300"))),
        Some((Setting::Value(8), "11 device".into()))
    );
}

/// multipathd's factorize_hwtable: entries with the same vendor/product/revision texts are
/// one, in the later place, so a value of the earlier one wins over an entry between them.
#[test]
fn duplicate_device_entries_merge_into_the_later_place() {
    let text = "devices {
 device {
  vendor NETAPP
  product LUN
  marginal_path_err_rate_threshold 1
  marginal_path_err_sample_time 200
 }
 device {
  vendor NETAPP
  product \".*\"
  marginal_path_err_rate_threshold 2
 }
 device {
  vendor NETAPP
  product LUN
  marginal_path_err_sample_time 300
 }
}
";
    let config = parse(text);
    assert_eq!(config.devices().len(), 2);
    assert_eq!(config.devices()[1].line, 13);
    let map = MapIdentity {
        wwid: "x".into(),
        vendor: Some("NETAPP".into()),
        product: Some("LUN".into()),
        ..Default::default()
    };
    // Kept apart, the entry at line 8 would win with 2.
    assert_eq!(
        at(&config, &map, Key::ErrRateThreshold),
        Some((Setting::Value(1), "5 device".into()))
    );
    assert_eq!(
        at(&config, &map, Key::ErrSampleTime),
        Some((Setting::Value(300), "16 device".into()))
    );
    let warning = &config.warnings()[0];
    assert_eq!(warning.line, 2);
    assert!(
        warning.message.starts_with(
            "duplicate device section for NETAPP:LUN:(null); merged into the one at t.conf:13"
        ),
        "{warning}"
    );
    // A revision makes an entry different.
    let config = parse(&text.replace(
        "  product LUN\n  marginal_path_err_sample_time 300",
        "  product LUN\n  revision 1\n  marginal_path_err_sample_time 300",
    ));
    assert_eq!(config.devices().len(), 3);
}

#[test]
fn no_at_a_higher_level_wins_and_turns_checking_off() {
    let text = format!("{ALL_FOUR}overrides {{\n marginal_path_err_sample_time no\n}}\n");
    let resolved = parse(&text).resolve(&netapp());
    assert_eq!(
        resolved.get(Key::ErrSampleTime).map(|s| s.value),
        Some(Setting::Off)
    );
    match &resolved.checking {
        Err(WhyOff::Params(params)) => {
            assert_eq!(params.len(), 1);
            assert_eq!(params[0].0, Key::ErrSampleTime);
            assert!(matches!(
                params[0].1,
                OffReason::No(Origin::File { line: 9, .. })
            ));
        }
        other => panic!("{other:?}"),
    }
    // "off" is the same, on the command line too.
    let overrides = Overrides {
        double_failed_time: Some(Setting::Off),
        ..Default::default()
    };
    let resolved = parse(ALL_FOUR).with_overrides(overrides).resolve(&netapp());
    assert!(resolved.params().is_none());
    assert!(
        resolved
            .checking
            .unwrap_err()
            .to_string()
            .contains("--double-failed-time")
    );
}

#[test]
fn duplicate_multipaths_entries_merge_with_the_later_winning() {
    let config = parse(
        "multipaths {\n multipath {\n  wwid W\n  alias first\n  marginal_path_err_sample_time 200\n  marginal_path_err_rate_threshold 1\n }\n multipath {\n  wwid W\n  marginal_path_err_sample_time 300\n }\n}\n",
    );
    let map = MapIdentity {
        wwid: "W".into(),
        ..Default::default()
    };
    assert_eq!(
        at(&config, &map, Key::ErrSampleTime),
        Some((Setting::Value(300), "10 multipath".into()))
    );
    assert_eq!(
        at(&config, &map, Key::ErrRateThreshold),
        Some((Setting::Value(1), "6 multipath".into()))
    );
    assert_eq!(config.warnings().len(), 1);
    assert_eq!(config.maps().len(), 1);
    assert_eq!(
        config.find_map("first").map(|m| m.wwid),
        Some("W".to_string())
    );
    assert_eq!(
        config.find_map("W").map(|m| m.alias),
        Some(Some("first".to_string()))
    );
    assert!(config.find_map("nope").is_none());
}

#[test]
fn entries_without_identity_are_dropped_with_a_warning() {
    let config = parse(
        "devices {\n device {\n  vendor X\n  marginal_path_err_sample_time 300\n }\n}\nmultipaths {\n multipath {\n  alias a\n }\n}\n",
    );
    assert!(config.devices().is_empty());
    assert!(config.multipaths().is_empty());
    let lines: Vec<_> = config.warnings().iter().map(|w| w.line).collect();
    assert_eq!(lines, vec![2, 8]);
}
