//! Leaving to multipathd the maps it checks itself, and importing its settings.
use super::*;
use crate::config::{import, multipathd::MultipathdConfig};

fn multipathd(text: &str) -> MultipathdConfig {
    MultipathdConfig::from_parts(
        Config::parse_str("/etc/multipath.conf", text).unwrap(),
        None,
    )
}

fn with_multipathd(marginal: &str, multipath_conf: &str) -> Config {
    parse(marginal).with_multipathd(multipathd(multipath_conf))
}

/// (kind, [(keyword, line)]) of the conflict for `map`.
fn conflict(
    config: &MultipathdConfig,
    map: &MapIdentity,
) -> Option<(ConflictKind, Vec<(String, u32)>)> {
    config.checks(map).map(|reason| {
        let lines = reason
            .lines
            .iter()
            .map(|l| match &l.origin {
                Origin::File { line, .. } => (l.keyword.to_string(), *line),
                Origin::CommandLine { .. } => unreachable!(),
            })
            .collect();
        (reason.kind, lines)
    })
}

const MULTIPATHD_CHECKS_NETAPP: &str = "defaults {
    marginal_path_double_failed_time 60
    marginal_path_err_sample_time 120
    marginal_path_err_recheck_gap_time 300
}
devices {
    device {
        vendor NETAPP
        product LUN
        marginal_path_err_rate_threshold 10
    }
    device {
        vendor HITACHI
        product OPEN
        san_path_err_threshold 3
        san_path_err_forget_rate 10
        san_path_err_recovery_time 30
    }
}
multipaths {
    multipath {
        wwid 3600a0980
        alias data1
        marginal_path_err_rate_threshold 0
    }
}
";

#[test]
fn each_kind_of_multipathd_checking_with_its_lines() {
    let config = multipathd(MULTIPATHD_CHECKS_NETAPP);
    assert_eq!(
        conflict(&config, &netapp_lun("x")),
        Some((
            ConflictKind::MarginalPath,
            vec![
                ("marginal_path_double_failed_time".into(), 2),
                ("marginal_path_err_sample_time".into(), 3),
                ("marginal_path_err_rate_threshold".into(), 10),
                ("marginal_path_err_recheck_gap_time".into(), 4),
            ]
        ))
    );
    let hitachi = MapIdentity {
        wwid: "y".into(),
        vendor: Some("HITACHI".into()),
        product: Some("OPEN-V".into()),
        revision: Some("1".into()),
        ..Default::default()
    };
    assert_eq!(
        conflict(&config, &hitachi),
        Some((
            ConflictKind::SanPathErr,
            vec![
                ("san_path_err_threshold".into(), 15),
                ("san_path_err_forget_rate".into(), 16),
                ("san_path_err_recovery_time".into(), 17),
            ]
        ))
    );
    // multipathd reads a threshold of 0 as "no": its checking is off for this map.
    assert_eq!(conflict(&config, &netapp_lun("3600a0980")), None);
    // No vendor known: the devices entries do not apply, the threshold is unset.
    assert_eq!(conflict(&config, &MapIdentity::default()), None);

    // The deprecated delay_*_checks stand for san_path_err_* when none of those is set.
    let delay = multipathd("defaults {\n delay_watch_checks 12\n delay_wait_checks 12\n}\n");
    assert_eq!(
        conflict(&delay, &MapIdentity::default()),
        Some((
            ConflictKind::SanPathErr,
            vec![
                ("delay_watch_checks".into(), 2),
                ("delay_wait_checks".into(), 3)
            ]
        ))
    );
    let only_watch = multipathd("defaults {\n delay_watch_checks 12\n}\n");
    assert_eq!(conflict(&only_watch, &MapIdentity::default()), None);
    let san_set = multipathd(
        "defaults {\n delay_watch_checks 12\n delay_wait_checks 12\n san_path_err_threshold 3\n}\n",
    );
    assert_eq!(conflict(&san_set, &MapIdentity::default()), None);

    let fpin = multipathd("defaults {\n marginal_pathgroups fpin\n}\n");
    assert_eq!(
        conflict(&fpin, &MapIdentity::default()),
        Some((
            ConflictKind::FpinPathgroups,
            vec![("marginal_pathgroups".into(), 2)]
        ))
    );
    // "no" at a higher level ends multipathd's checking.
    let off = multipathd(&format!(
        "{MULTIPATHD_CHECKS_NETAPP}overrides {{\n marginal_path_err_sample_time no\n}}\n"
    ));
    assert_eq!(conflict(&off, &netapp_lun("x")), None);
}

fn netapp_lun(wwid: &str) -> MapIdentity {
    MapIdentity {
        wwid: wwid.into(),
        vendor: Some("NETAPP".into()),
        product: Some("LUN".into()),
        revision: Some("9800".into()),
        ..Default::default()
    }
}

#[test]
fn a_map_multipathd_checks_is_off_for_marginal_whatever_its_own_settings() {
    let config = with_multipathd(ALL_FOUR, MULTIPATHD_CHECKS_NETAPP);
    let resolved = config.resolve(&netapp_lun("x"));
    assert_eq!(resolved.params(), None);
    let Err(WhyOff::Multipathd(reason)) = &resolved.checking else {
        panic!("{:?}", resolved.checking);
    };
    assert_eq!(reason.kind, ConflictKind::MarginalPath);
    let text = resolved.checking.as_ref().unwrap_err().to_string();
    assert!(
        text.starts_with("left to multipathd: multipathd checks this map itself (marginal_path_* checking is on; set by marginal_path_double_failed_time 60 at /etc/multipath.conf:2 (defaults)"),
        "{text}"
    );
    // The values marginal would use are still shown.
    assert_eq!(
        resolved.get(Key::ErrSampleTime).map(|s| s.value),
        Some(Setting::Value(300))
    );
    // A map multipathd does not check is marginal's.
    assert!(config.resolve(&netapp_lun("3600a0980")).params().is_some());
    assert_eq!(config.multipathd_checks(&netapp_lun("3600a0980")), None);
}

#[test]
fn the_running_configuration_is_the_truth_and_the_files_name_the_lines() {
    let files = Config::parse_str("/etc/multipath.conf", MULTIPATHD_CHECKS_NETAPP).unwrap();
    // multipathd runs with what its files say: the lines are the files'.
    let agreeing = MultipathdConfig::from_parts(files.clone(), Some(MULTIPATHD_CHECKS_NETAPP));
    let reason = agreeing.checks(&netapp_lun("x")).unwrap();
    assert!(!reason.running_only);
    assert!(
        reason.lines[0]
            .origin
            .to_string()
            .starts_with("/etc/multipath.conf:2")
    );

    // The files were edited but multipathd not reconfigured: it still checks.
    let edited = Config::parse_str("/etc/multipath.conf", "defaults {\n}\n").unwrap();
    let stale = MultipathdConfig::from_parts(edited.clone(), Some(MULTIPATHD_CHECKS_NETAPP));
    let reason = stale.checks(&netapp_lun("x")).unwrap();
    assert!(reason.running_only);
    assert!(
        reason.lines[0]
            .origin
            .to_string()
            .starts_with("multipathd show config:2"),
        "{}",
        reason.lines[0].origin
    );
    assert!(reason.to_string().contains("run `multipathd reconfigure`"));

    // Reconfigured after the edit: the running configuration no longer checks, whatever
    // the files said before.
    let done = MultipathdConfig::from_parts(files, Some("defaults {\n}\n"));
    assert_eq!(done.checks(&netapp_lun("x")), None);

    // An unreadable reply falls back to the files.
    let broken = MultipathdConfig::from_parts(
        edited,
        Some("defaults {\n marginal_path_err_sample_time x\n}\n"),
    );
    assert!(!broken.has_running());
    assert!(broken.running_unavailable.is_some());
}

#[test]
fn check_finds_conflicts_of_devices_entries_and_multipaths_entries() {
    let config = multipathd(
        "devices {\n device {\n  vendor \"^NETAPP\"\n  product \".*\"\n  marginal_path_double_failed_time 1\n  marginal_path_err_sample_time 1\n  marginal_path_err_rate_threshold 1\n  marginal_path_err_recheck_gap_time 1\n }\n}\nmultipaths {\n multipath {\n  wwid 36\n  san_path_err_threshold 1\n  san_path_err_forget_rate 1\n  san_path_err_recovery_time 1\n }\n}\n",
    );
    let maps = vec![
        MapIdentity {
            wwid: "36".into(),
            ..Default::default()
        },
        MapIdentity::default(),
    ];
    let found = config.conflicts_for_check(&maps);
    let kinds: Vec<_> = found
        .iter()
        .map(|(what, r)| (what.as_str(), r.kind))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("map 36", ConflictKind::SanPathErr),
            (
                "maps of devices entry \"^NETAPP\" \".*\" (/etc/multipath.conf:2)",
                ConflictKind::MarginalPath
            ),
        ]
    );
}

#[test]
fn no_configuration_file_means_checking_off_for_every_map() {
    let dir = std::env::temp_dir().join(format!("marginal-noconf-{}", std::process::id()));
    let options = LoadOptions {
        file: dir.join("marginal.conf"),
        required: false,
        config_dir: None,
        default_dir: dir.join("conf.d"),
    };
    let config = Config::load_with(&options).unwrap();
    assert_eq!(config.missing_main_file(), Some(options.file.as_path()));
    let checking = config.resolve(&netapp()).checking;
    assert_eq!(checking, Err(WhyOff::NoConfiguration(options.file.clone())));
    assert_eq!(
        checking.unwrap_err().to_string(),
        format!(
            "no {}: checking is off for every map",
            options.file.display()
        )
    );
    // Command-line overrides alone still turn it on (tests and demos).
    let overrides = Overrides {
        double_failed_time: Some(Setting::Value(10)),
        err_sample_time: Some(Setting::Value(120)),
        err_rate_threshold: Some(Setting::Value(5)),
        err_recheck_gap_time: Some(Setting::Value(60)),
    };
    assert!(
        config
            .with_overrides(overrides)
            .resolve(&netapp())
            .params()
            .is_some()
    );
}

const EVERY_SECTION: &str = "defaults {
\tpolling_interval 5
\tmarginal_path_double_failed_time 60
\tmarginal_path_err_sample_time 200
}
overrides {
\tmarginal_path_err_recheck_gap_time 900
}
devices {
\tdevice {
\t\tvendor \"NETAPP\"
\t\tproduct \"LUN C-Mode\"
\t\trevision \"^8\"
\t\tmarginal_path_err_rate_threshold 0
\t}
\tdevice {
\t\tvendor \"PURE\"
\t\tproduct \"Flash\"
\t\tpath_checker tur
\t}
\tdevice {
\t\tvendor \"3PAR\"
\t\tproduct \".*\"
\t\tmarginal_path_err_rate_threshold 7
\t\tsan_path_err_threshold 2
\t}
}
multipaths {
\tmultipath {
\t\twwid 3600a0980
\t\talias \"data \"\"one\"\"\"
\t\tmarginal_path_err_sample_time no
\t}
}
";

#[test]
fn import_keeps_sections_values_and_sources() {
    let dir = std::env::temp_dir().join(format!("marginal-import-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("conf.d")).unwrap();
    let main = dir.join("multipath.conf");
    std::fs::write(&main, EVERY_SECTION).unwrap();
    std::fs::write(
        dir.join("conf.d/10-site.conf"),
        "defaults {\n\tmarginal_path_err_rate_threshold 5\n\tmarginal_pathgroups fpin\n}\n",
    )
    .unwrap();
    let options = LoadOptions {
        file: main.clone(),
        required: true,
        config_dir: Some(dir.join("conf.d")),
        ..LoadOptions::multipathd()
    };
    let import = import::import(&options).unwrap();
    let imported: Vec<_> = import
        .imported
        .iter()
        .map(|l| {
            (
                l.file.file_name().unwrap().to_string_lossy().into_owned(),
                l.line,
            )
        })
        .collect();
    let main_name = "multipath.conf".to_string();
    assert_eq!(
        imported,
        vec![
            (main_name.clone(), 3),
            (main_name.clone(), 4),
            (main_name.clone(), 7),
            (main_name.clone(), 14),
            (main_name.clone(), 24),
            (main_name.clone(), 32),
            ("10-site.conf".into(), 2),
        ]
    );
    let also: Vec<_> = import
        .also_checking
        .iter()
        .map(|l| l.keyword.as_str())
        .collect();
    assert_eq!(also, vec!["san_path_err_threshold", "marginal_pathgroups"]);
    let text = &import.text;
    assert!(
        text.contains(&format!(
            "\tmarginal_path_double_failed_time 60\t# {}:3\n",
            main.display()
        )),
        "{text}"
    );
    assert!(
        text.contains("marginal_path_err_rate_threshold no\t#"),
        "{text}"
    );
    assert!(
        text.contains("(0, which multipathd reads as \"no\")"),
        "{text}"
    );
    assert!(text.contains("\t\talias \"data \"\"one\"\"\"\n"), "{text}");
    assert!(!text.contains("PURE"), "{text}");
    assert!(!text.contains("polling_interval"), "{text}");
    assert!(!text.contains("san_path"), "{text}");

    // marginal.conf means to marginal what multipath.conf meant to multipathd.
    let imported = Config::parse_str("/etc/marginal/marginal.conf", text).unwrap();
    let original = Config::load_with(&options).unwrap();
    let maps = [
        netapp_lun("x"),
        MapIdentity {
            revision: Some("8300".into()),
            product: Some("LUN C-Mode".into()),
            ..netapp_lun("x")
        },
        MapIdentity {
            vendor: Some("3PAR".into()),
            ..netapp_lun("3600a0980")
        },
        MapIdentity::default(),
    ];
    for map in &maps {
        let (a, b) = (imported.resolve(map), original.resolve(map));
        for key in Key::MARGINAL {
            let value = |r: &Resolved| r.get(key).map(|s| s.value);
            let expected = match value(&b) {
                // The one value that changes spelling: 0 became "no".
                Some(Setting::Value(0)) if key == Key::ErrRateThreshold => Some(Setting::Off),
                other => other,
            };
            assert_eq!(value(&a), expected, "{key} of {map:?}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
