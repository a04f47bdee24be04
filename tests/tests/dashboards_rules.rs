//! dashboards/marginal-rules.yml: valid for Prometheus (`promtool check rules`), alerts and
//! recordings behave as their unit tests say (`promtool test rules`), and every metric they
//! read is one the exporter emits, so a renamed metric cannot silently mute an alert.
//!
//! Needs `promtool` (Debian package `prometheus`).
mod metrics_common;

use std::collections::BTreeSet;
use std::process::Command;

use metrics_common::prometheus::require_tool;
use metrics_common::{
    exported_names, metric_names_in, recorded_names_in, rules_file, rules_test_file, yaml_values,
};

fn promtool(args: &[&str]) -> (bool, String) {
    let out = Command::new(require_tool("promtool"))
        .args(args)
        .current_dir(rules_file().parent().unwrap())
        .output()
        .expect("running promtool");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn promtool_check_rules_passes() {
    let (ok, out) = promtool(&["check", "rules", rules_file().to_str().unwrap()]);
    assert!(ok, "{out}");
    assert!(out.contains("SUCCESS"), "{out}");
}

#[test]
fn promtool_rule_unit_tests_pass() {
    let (ok, out) = promtool(&["test", "rules", rules_test_file().to_str().unwrap()]);
    assert!(ok, "{out}");
}

#[test]
fn rules_read_only_metrics_the_exporter_emits() {
    let yaml = std::fs::read_to_string(rules_file()).unwrap();
    let exprs = yaml_values(&yaml, "expr");
    let records: BTreeSet<String> = yaml_values(&yaml, "record").into_iter().collect();
    let alerts = yaml_values(&yaml, "alert");
    assert!(
        exprs.len() == records.len() + alerts.len(),
        "one expr per rule: {exprs:?}"
    );
    assert!(
        records.len() >= 5 && alerts.len() >= 8,
        "records {records:?} alerts {alerts:?}"
    );
    let exported = exported_names();
    for expr in &exprs {
        let names = metric_names_in(expr);
        // `up` is Prometheus's own; everything else must come from the exporter or a recording
        // (an alert on a recording: the recording's own expression is checked here too).
        assert!(
            !names.is_empty() || !recorded_names_in(expr).is_empty() || expr.contains("up{"),
            "{expr} reads no marginal metric"
        );
        for name in names {
            assert!(
                exported.contains(&name),
                "rule expression {expr:?} reads {name}, which the exporter does not emit"
            );
        }
        for name in recorded_names_in(expr) {
            assert!(
                records.contains(&name),
                "rule expression {expr:?} reads {name}, which no rule records"
            );
        }
    }
    for record in &records {
        let parts: Vec<&str> = record.split(':').collect();
        assert_eq!(
            parts.len(),
            3,
            "recording rule {record} is not named level:metric:operations"
        );
        assert!(parts[1].starts_with("marginal_"), "{record}");
    }
    for alert in &alerts {
        assert!(alert.starts_with("Marginal"), "{alert}");
    }
}

#[test]
fn rule_unit_tests_use_the_exporters_names() {
    let yaml = std::fs::read_to_string(rules_test_file()).unwrap();
    let exported = exported_names();
    let series = yaml_values(&yaml, "series");
    assert!(!series.is_empty());
    for s in &series {
        let (name, labels) = s.split_once('{').unwrap_or((s, "}"));
        if name == "up" {
            continue;
        }
        assert!(
            exported.contains(name),
            "test input {s} is not an exported metric"
        );
        // Its labels are the family's own plus the two Prometheus adds.
        let def = marginal::metrics::METRICS
            .iter()
            .find(|d| d.sample_name() == name)
            .unwrap();
        let mut expected: BTreeSet<&str> = def.labels.names().iter().copied().collect();
        expected.extend(["instance", "job"]);
        let keys: BTreeSet<&str> = labels
            .trim_end_matches('}')
            .split(',')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, _)| k.trim())
            .collect();
        assert_eq!(keys, expected, "labels of test input {s}");
    }
}
