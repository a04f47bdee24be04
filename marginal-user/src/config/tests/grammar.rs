//! Grammar through whole files: quoting, comments, nesting, unknown keywords and sections.
use super::*;
use crate::config::*;

#[test]
fn quoting_comments_and_unknown_things() {
    let config = parse(
        r#"# multipath.conf
! an old-style comment
defaults {
    user_friendly_names yes          # ignored keyword
    polling_interval "10"
    marginal_path_err_sample_time "300" # quoted number
    marginal_path_double_failed_time 10!comment glued to the value
    some_future_keyword "with { braces } and # inside quotes"
}
frobnicate {
    marginal_path_err_rate_threshold 7
    nested {
        x y
    }
}
devices {
    device {
        vendor "HP ""quoted"" 3PAR"
        product "VV"
        marginal_path_err_rate_threshold 9
    }
    something_else {
        vendor X
    }
}
"#,
    );
    let map = MapIdentity {
        vendor: Some("HP \"quoted\" 3PAR".into()),
        product: Some("VV".into()),
        ..netapp()
    };
    assert_eq!(
        at(&config, &map, Key::ErrSampleTime),
        Some((Setting::Value(300), "6 defaults".into()))
    );
    assert_eq!(
        at(&config, &map, Key::DoubleFailedTime),
        Some((Setting::Value(10), "7 defaults".into()))
    );
    // From the device entry, not from the unknown top-level section.
    assert_eq!(
        at(&config, &map, Key::ErrRateThreshold),
        Some((Setting::Value(9), "20 device".into()))
    );
    assert_eq!(config.devices().len(), 1);
    assert_eq!(config.devices()[0].vendor.text, "HP \"quoted\" 3PAR");
    // multipathd warns "invalid keyword" for the unknown section: so does marginal, once.
    let warnings: Vec<_> = config.warnings().iter().map(|w| w.line).collect();
    assert_eq!(warnings, vec![10], "{:?}", config.warnings());
    assert!(config.warnings()[0].message.contains("'frobnicate'"));
}

#[test]
fn empty_file_and_comment_only_file_have_no_settings() {
    for text in ["", "# nothing\n   \n! here\n"] {
        let resolved = parse(text).resolve(&netapp());
        assert!(Key::ALL.iter().all(|&k| resolved.get(k).is_none()));
        assert!(resolved.params().is_none());
    }
}

#[test]
fn later_defaults_sections_and_repeated_keywords() {
    let config = parse(
        "defaults {\n marginal_path_err_sample_time 200\n marginal_path_err_sample_time 250\n}\ndefaults {\n marginal_path_err_sample_time 300\n}\n",
    );
    assert_eq!(
        at(&config, &netapp(), Key::ErrSampleTime),
        Some((Setting::Value(300), "6 defaults".into()))
    );
    // The repeat inside one section is worth a warning; a second section is not.
    assert_eq!(config.warnings().len(), 1);
    assert_eq!(config.warnings()[0].line, 3);
}

#[test]
fn keywords_in_the_wrong_place_are_warned_about_and_ignored() {
    let config = parse(
        "marginal_path_err_sample_time 300\nblacklist {\n}\noverrides {\n marginal_pathgroups fpin\n}\ndevices {\n marginal_path_err_sample_time 100\n}\n",
    );
    let lines: Vec<_> = config.warnings().iter().map(|w| w.line).collect();
    assert_eq!(lines, vec![1, 5, 8]);
    let resolved = config.resolve(&netapp());
    assert!(resolved.get(Key::ErrSampleTime).is_none());
    assert!(resolved.marginal_pathgroups.is_none());
}

#[test]
fn protocol_is_a_keyword_in_blacklist_and_a_section_in_overrides() {
    let config = parse(
        "blacklist {\n protocol \"scsi:unspec\"\n}\noverrides {\n protocol {\n  type \"scsi:fcp\"\n  fast_io_fail_tmo 5\n }\n marginal_path_err_sample_time 300\n}\n",
    );
    assert!(config.warnings().is_empty(), "{:?}", config.warnings());
    let resolved = config.resolve(&netapp());
    assert_eq!(
        resolved.get(Key::ErrSampleTime).map(|s| s.value),
        Some(Setting::Value(300))
    );
}
