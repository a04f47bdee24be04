//! The on/off rule, `"no"`, zeros, fpin, and the 120 s floor of the sample time.
use super::*;
use crate::config::*;
use crate::engine::Params;
use std::time::Duration;

#[test]
fn checking_on_with_all_four() {
    let resolved = parse(ALL_FOUR).resolve(&netapp());
    assert_eq!(
        resolved.params(),
        Some(Params {
            double_failed_time: Duration::from_secs(10),
            sample_time: Duration::from_secs(300),
            err_rate_threshold: 5,
            recheck_gap_time: Duration::from_secs(600),
            slow: None,
            action: Default::default(),
        })
    );
    assert!(resolved.warnings.is_empty());
}

#[test]
fn checking_off_when_a_parameter_is_unset() {
    let text = ALL_FOUR.replace("    marginal_path_err_recheck_gap_time 600\n", "");
    let resolved = parse(&text).resolve(&netapp());
    assert_eq!(
        resolved.checking,
        Err(WhyOff::Params(vec![(
            Key::ErrRecheckGapTime,
            OffReason::Unset
        )]))
    );
    assert_eq!(
        resolved.checking.unwrap_err().to_string(),
        "marginal_path_err_recheck_gap_time is unset"
    );
}

#[test]
fn zero_times_are_off_but_a_zero_threshold_is_on() {
    let text = ALL_FOUR.replace("threshold 5", "threshold 0");
    assert_eq!(
        parse(&text)
            .resolve(&netapp())
            .params()
            .map(|p| p.err_rate_threshold),
        Some(0)
    );
    for key in [
        "double_failed_time 10",
        "sample_time 300",
        "recheck_gap_time 600",
    ] {
        let zeroed = format!("{} 0", key.split(' ').next().unwrap());
        let text = ALL_FOUR.replace(key, &zeroed);
        match parse(&text).resolve(&netapp()).checking {
            Err(WhyOff::Params(params)) => {
                assert!(matches!(params[..], [(_, OffReason::Zero(_))]), "{key}")
            }
            other => panic!("{key}: {other:?}"),
        }
    }
}

#[test]
fn sample_time_below_120_is_raised_with_a_warning() {
    let text = ALL_FOUR.replace("sample_time 300", "sample_time 60");
    let resolved = parse(&text).resolve(&netapp());
    assert_eq!(
        resolved.params().map(|p| p.sample_time),
        Some(Duration::from_secs(120))
    );
    // The value shown is the one written; the warning says what is used.
    assert_eq!(
        resolved.get(Key::ErrSampleTime).map(|s| s.value),
        Some(Setting::Value(60))
    );
    assert_eq!(resolved.warnings.len(), 1);
    assert!(
        resolved.warnings[0].contains("t.conf:4"),
        "{}",
        resolved.warnings[0]
    );
    assert!(resolved.warnings[0].contains("using 120"));

    let text = ALL_FOUR.replace("sample_time 300", "sample_time 120");
    let resolved = parse(&text).resolve(&netapp());
    assert_eq!(
        resolved.params().map(|p| p.sample_time),
        Some(Duration::from_secs(120))
    );
    assert!(resolved.warnings.is_empty());

    let overrides = Overrides {
        err_sample_time: Some(Setting::Value(30)),
        ..Default::default()
    };
    let resolved = parse(ALL_FOUR).with_overrides(overrides).resolve(&netapp());
    assert_eq!(
        resolved.params().map(|p| p.sample_time),
        Some(Duration::from_secs(120))
    );
    assert!(resolved.warnings[0].contains("--err-sample-time"));
}

#[test]
fn fpin_pathgroups_turn_checking_off_and_displace_san_path() {
    let text = format!(
        "{ALL_FOUR}defaults {{\n marginal_pathgroups fpin\n san_path_err_threshold 3\n}}\n"
    );
    let resolved = parse(&text).resolve(&netapp());
    assert!(matches!(
        resolved.checking,
        Err(WhyOff::Fpin(Origin::File { line: 9, .. }))
    ));
    assert!(resolved.san_path_displaced());

    let text =
        format!("{ALL_FOUR}defaults {{\n marginal_pathgroups on\n san_path_err_threshold 3\n}}\n");
    let resolved = parse(&text).resolve(&netapp());
    assert!(resolved.params().is_some());
    assert_eq!(
        resolved.marginal_pathgroups.as_ref().map(|s| s.value),
        Some(Pathgroups::On)
    );
    assert!(resolved.san_path_displaced());

    let text = "defaults {\n san_path_err_threshold 3\n}\n";
    assert!(!parse(text).resolve(&netapp()).san_path_displaced());
}

#[test]
fn slow_checking_needs_the_factor_and_defaults_the_rest() {
    let off = parse(ALL_FOUR).resolve(&netapp());
    assert_eq!(off.params().unwrap().slow, None);
    let text = ALL_FOUR.replace(
        "    marginal_path_err_recheck_gap_time 600\n",
        "    marginal_path_err_recheck_gap_time 600\n    marginal_path_slow_factor 4\n    \
         marginal_path_slow_floor 50\n",
    );
    let on = parse(&text).resolve(&netapp());
    assert_eq!(
        on.params().unwrap().slow,
        Some(crate::engine::SlowParams {
            factor: 4,
            min_ios: 100,
            floor: Duration::from_millis(50),
            window: Duration::from_secs(30),
        })
    );
    let one = text.replace("marginal_path_slow_factor 4", "marginal_path_slow_factor 1");
    let one = parse(&one).resolve(&netapp());
    assert_eq!(one.params().unwrap().slow, None);
    assert!(
        one.warnings
            .iter()
            .any(|w| w.contains("marginal_path_slow_factor 1")),
        "{:?}",
        one.warnings
    );
}
