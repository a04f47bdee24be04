//! The large realistic multipath.conf fixture through the library: it must load without a
//! single complaint, and the values for typical maps must come from the right places.
//!
//! Fixture: tests/fixtures/multipath/multipath.conf (Debian 12's `multipath -t` output, i.e.
//! every defaults keyword and the whole built-in hardware table, plus site entries, overrides
//! with protocol subsections, multipaths entries and an unknown section) and its conf.d/.
use std::{path::PathBuf, time::Duration};

use marginal::config::{
    Config, Key, LoadOptions, MapIdentity, OffReason, Origin, SectionRef, Setting, WhyOff,
};

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/multipath")
}

fn load() -> Config {
    let dir = fixture_dir();
    let options = LoadOptions {
        file: dir.join("multipath.conf"),
        required: true,
        config_dir: Some(dir.join("conf.d")),
        ..LoadOptions::default()
    };
    Config::load_with(&options).unwrap_or_else(|e| panic!("{e}"))
}

/// The 1-based line of the first line of `file` (in the fixture dir) containing `needle`
/// after the first line containing `after`.
fn line_of(file: &str, after: &str, needle: &str) -> u32 {
    let text = std::fs::read_to_string(fixture_dir().join(file)).unwrap();
    let start = text.lines().position(|l| l.contains(after)).expect(after);
    let index = text
        .lines()
        .skip(start)
        .position(|l| l.contains(needle))
        .expect(needle);
    (start + index + 1) as u32
}

fn map(wwid: &str, vendor: &str, product: &str, revision: Option<&str>) -> MapIdentity {
    MapIdentity {
        wwid: wwid.into(),
        alias: None,
        vendor: Some(vendor.into()),
        product: Some(product.into()),
        revision: revision.map(String::from),
    }
}

/// (value, file name, line, section kind) of `key` for `map`.
fn origin_of(config: &Config, map: &MapIdentity, key: Key) -> (Setting, String, u32, String) {
    let resolved = config.resolve(map);
    let sourced = resolved.get(key).unwrap_or_else(|| panic!("{key} unset"));
    match &sourced.origin {
        Origin::File {
            file,
            line,
            section,
        } => {
            let kind = match section {
                SectionRef::Defaults => "defaults",
                SectionRef::Overrides => "overrides",
                SectionRef::Device { .. } => "device",
                SectionRef::Multipath { .. } => "multipath",
            };
            let name = file.file_name().unwrap().to_string_lossy().into_owned();
            (sourced.value, name, *line, kind.to_string())
        }
        Origin::CommandLine { option } => (sourced.value, option.to_string(), 0, String::new()),
    }
}

#[test]
fn the_whole_fixture_loads_with_multipathds_own_warnings_only() {
    let text = std::fs::read_to_string(fixture_dir().join("multipath.conf")).unwrap();
    assert!(text.lines().count() >= 1000);
    let config = load();
    // The dump repeats built-in entries that the site entries redefine: multipathd merges each
    // pair into the later one and warns (factorize_hwtable), and so does marginal. The site's
    // section of another tool is an invalid keyword to multipathd and a warning here too.
    let warnings: Vec<_> = config
        .warnings()
        .iter()
        .map(|w| (w.line, w.message.split(';').next().unwrap_or_default()))
        .collect();
    assert_eq!(
        warnings,
        vec![
            (177, "duplicate device section for 3PARdata:VV:(null)"),
            (769, "duplicate device section for NETAPP:LUN:(null)"),
            (984, "duplicate device section for PURE:FlashArray:(null)"),
            (
                1358,
                "invalid keyword 'site_inventory': not a section of multipath.conf"
            ),
        ],
        "{:?}",
        config.warnings()
    );
    let names: Vec<_> = config
        .files()
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        vec!["multipath.conf", "10-marginal.conf", "20-pure.conf"]
    );
    // The built-in hardware table (minus blacklist device entries) plus the site entries.
    assert!(config.devices().len() > 120, "{}", config.devices().len());
    let aliases: Vec<_> = config.maps().into_iter().filter_map(|m| m.alias).collect();
    assert_eq!(
        aliases,
        vec!["oradata1", "backup", "vmstore", "scratch", "pure-vol1"]
    );
}

#[test]
fn netapp_database_lun_takes_values_from_four_levels() {
    let config = load();
    let oradata = MapIdentity {
        alias: Some("oradata1".into()),
        ..map(
            "3600a098038303053453f463045535a4b",
            "NETAPP",
            "LUN C-Mode",
            None,
        )
    };
    let site_netapp = line_of(
        "multipath.conf",
        "Flaky FC links",
        "marginal_path_err_sample_time 600",
    );
    assert_eq!(
        origin_of(&config, &oradata, Key::ErrSampleTime),
        (
            Setting::Value(600),
            "multipath.conf".into(),
            site_netapp,
            "device".into()
        )
    );
    let mp = line_of(
        "multipath.conf",
        "alias \"oradata1\"",
        "marginal_path_err_rate_threshold 2",
    );
    assert_eq!(
        origin_of(&config, &oradata, Key::ErrRateThreshold),
        (
            Setting::Value(2),
            "multipath.conf".into(),
            mp,
            "multipath".into()
        )
    );
    let ovr = line_of(
        "multipath.conf",
        "overrides {",
        "marginal_path_err_recheck_gap_time 1800",
    );
    assert_eq!(
        origin_of(&config, &oradata, Key::ErrRecheckGapTime),
        (
            Setting::Value(1800),
            "multipath.conf".into(),
            ovr,
            "overrides".into()
        )
    );
    // multipath.conf's defaults say "no"; conf.d, read later, says 60.
    assert_eq!(
        origin_of(&config, &oradata, Key::DoubleFailedTime),
        (
            Setting::Value(60),
            "10-marginal.conf".into(),
            3,
            "defaults".into()
        )
    );
    let params = config.resolve(&oradata).params().expect("checking on");
    assert_eq!(params.sample_time, Duration::from_secs(600));
    assert_eq!(params.err_rate_threshold, 2);
}

#[test]
fn clariion_sample_time_is_raised_to_the_floor_for_matching_revisions_only() {
    let config = load();
    let dgc = map(
        "36006016000000000000000000000abcd",
        "DGC",
        "RAID 5",
        Some("0531"),
    );
    let resolved = config.resolve(&dgc);
    assert_eq!(
        resolved.get(Key::ErrSampleTime).unwrap().value,
        Setting::Value(60)
    );
    assert_eq!(
        resolved.params().unwrap().sample_time,
        Duration::from_secs(120)
    );
    assert_eq!(resolved.warnings.len(), 1);
    assert!(resolved.warnings[0].contains("below the minimum of 120 s"));

    let older = map(
        "36006016000000000000000000000abcd",
        "DGC",
        "RAID 5",
        Some("0430"),
    );
    let resolved = config.resolve(&older);
    assert_eq!(
        resolved.params().unwrap().sample_time,
        Duration::from_secs(300)
    );
    assert!(resolved.warnings.is_empty());
}

#[test]
fn three_par_is_off_by_its_device_entry() {
    let config = load();
    let vv = map("360002ac000000000000000080001b2c4", "3PARdata", "VV", None);
    match config.resolve(&vv).checking {
        Err(WhyOff::Params(params)) => {
            assert_eq!(params.len(), 1);
            assert_eq!(params[0].0, Key::DoubleFailedTime);
            assert!(matches!(params[0].1, OffReason::No(_)));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_device_entry_setting_everything_still_yields_to_overrides() {
    let config = load();
    let huawei = map(
        "36a0000000000000000000000000000001",
        "HUAWEI",
        "XSG1",
        Some("6000"),
    );
    let params = config.resolve(&huawei).params().unwrap();
    assert_eq!(params.double_failed_time, Duration::from_secs(30));
    assert_eq!(params.sample_time, Duration::from_secs(240));
    assert_eq!(params.err_rate_threshold, 20);
    assert_eq!(params.recheck_gap_time, Duration::from_secs(1800));
}

#[test]
fn unknown_sections_do_not_leak_values() {
    let config = load();
    // site_inventory sets marginal_path_err_sample_time 1; a map no device entry matches still
    // gets the defaults' 300.
    let unknown = map("3", "NOBODY", "NOTHING", None);
    assert_eq!(
        origin_of(&config, &unknown, Key::ErrSampleTime),
        (
            Setting::Value(300),
            "10-marginal.conf".into(),
            4,
            "defaults".into()
        )
    );
}
