//! `marginal_path_action`: its precedence, its values, and the preconditions of `setmarginal`
//! (multipathd answering, running with marginal_pathgroups on, knowing the command).
use super::*;
use crate::config::{PathAction, multipathd::MultipathdConfig};

const ALL_FOUR: &str = "defaults {
    marginal_path_double_failed_time 60
    marginal_path_err_sample_time 120
    marginal_path_err_rate_threshold 100
    marginal_path_err_recheck_gap_time 300
}
";

/// multipathd answering with `marginal_pathgroups` as given (None: not in its `show config`).
fn running(pathgroups: Option<&str>) -> MultipathdConfig {
    let show_config = match pathgroups {
        Some(v) => format!("defaults {{\n\tmarginal_pathgroups \"{v}\"\n}}\n"),
        None => "defaults {\n\tpolling_interval 5\n}\n".into(),
    };
    MultipathdConfig::from_parts(parse(""), Some(&show_config))
}

fn requested(config: &Config, map: &MapIdentity) -> Option<(PathAction, u32)> {
    let action = config.resolve(map).action;
    action.requested.map(|s| match s.origin {
        Origin::File { line, .. } => (s.value, line),
        Origin::CommandLine { .. } => panic!("no command-line option"),
    })
}

#[test]
fn multipaths_over_overrides_over_devices_over_defaults() {
    let text = format!(
        "{ALL_FOUR}defaults {{
    marginal_path_action setmarginal
}}
devices {{
    device {{
        vendor NETAPP
        product LUN
        marginal_path_action fail
    }}
}}
multipaths {{
    multipath {{
        wwid 3600a098038303053453f463045535a4b
        marginal_path_action setmarginal
    }}
}}
"
    );
    let config = parse(&text);
    assert_eq!(
        requested(&config, &netapp()),
        Some((PathAction::SetMarginal, 20))
    );
    let other_netapp = MapIdentity {
        wwid: "other".into(),
        ..netapp()
    };
    assert_eq!(
        requested(&config, &other_netapp),
        Some((PathAction::Fail, 14))
    );
    assert_eq!(
        requested(&config, &MapIdentity::default()),
        Some((PathAction::SetMarginal, 8))
    );
    let with_overrides = parse(&format!(
        "{text}overrides {{\n    marginal_path_action fail\n}}\n"
    ));
    assert_eq!(
        requested(&with_overrides, &other_netapp),
        Some((PathAction::Fail, 24))
    );
    assert_eq!(
        requested(&with_overrides, &netapp()),
        Some((PathAction::SetMarginal, 20)),
        "multipaths still wins"
    );
}

#[test]
fn unset_is_fail_and_a_bad_value_is_an_error_with_its_line() {
    let config = parse(ALL_FOUR);
    let resolved = config.resolve(&netapp());
    assert_eq!(resolved.action.effective, PathAction::Fail);
    assert!(resolved.action.requested.is_none() && resolved.action.fallback.is_none());
    let errors = parse_err("defaults {\n    marginal_path_action gently\n}\n");
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].0, 2);
    assert!(
        errors[0].1.contains("marginal_path_action") && errors[0].1.contains("fail, setmarginal"),
        "{:?}",
        errors[0]
    );
}

#[test]
fn setmarginal_needs_marginal_pathgroups_on_in_the_running_multipathd() {
    let text = format!("{ALL_FOUR}defaults {{\n    marginal_path_action setmarginal\n}}\n");
    let resolve =
        |multipathd: MultipathdConfig| parse(&text).with_multipathd(multipathd).resolve(&netapp());

    let on = resolve(running(Some("on")));
    assert_eq!(on.action.effective, PathAction::SetMarginal);
    assert_eq!(on.params().unwrap().action, PathAction::SetMarginal);
    assert!(on.action.fallback.is_none());
    assert_eq!(
        resolve(running(Some("yes"))).action.effective,
        PathAction::SetMarginal
    );

    for (multipathd, says) in [
        (running(Some("off")), "marginal_pathgroups off"),
        (running(None), "runs without marginal_pathgroups"),
        (
            MultipathdConfig::from_parts(parse(""), None),
            "running configuration is unknown",
        ),
        (
            running(Some("on")).with_help(
                "multipath-tools v0.8.2 (06/18, 2019)\nCLI commands reference:\n fail path $path\n",
            ),
            "multipathd 0.8.2 has no setmarginal command",
        ),
    ] {
        let resolved = resolve(multipathd);
        assert_eq!(resolved.action.effective, PathAction::Fail, "{says}");
        assert_eq!(resolved.params().unwrap().action, PathAction::Fail);
        let text = resolved.action.to_string();
        assert!(text.contains(says), "{text}");
        assert!(text.contains("falling back to failing paths"), "{text}");
        assert!(
            text.contains("t.conf:"),
            "names where it was asked for: {text}"
        );
    }
    // Without multipathd's configuration at all (--watch devices): fail.
    assert_eq!(
        parse(&text).resolve(&netapp()).action.effective,
        PathAction::Fail
    );
}

#[test]
fn multipathd_help_text() {
    let help = "multipath-tools v0.11.1 (12/05, 2024)\nCLI commands reference:\n list|show paths\n setmarginal path $path\n unsetmarginal path $path\n";
    let commands = crate::config::multipathd::Commands::parse(help);
    assert_eq!(commands.version, Some((0, 11, 1)));
    assert!(commands.setmarginal);
    let old = crate::config::multipathd::Commands::parse(
        "multipath-tools v0.7.9 (12/04, 2018)\n fail path $path\n",
    );
    assert_eq!(old.version, Some((0, 7, 9)));
    assert!(!old.setmarginal);
    assert_eq!(
        crate::config::multipathd::Commands::parse("fail").version,
        None
    );
    // A running multipathd that knows the command and has marginal_pathgroups on: no refusal.
    assert_eq!(
        running(Some("on")).with_help(help).setmarginal_refusal(),
        None
    );
}
