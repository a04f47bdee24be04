//! dashboards/marginal-grafana.json: an importable Grafana dashboard, built with Grafana's
//! foundation SDK (dashboards/generate-grafana.py), whose every query is valid PromQL and reads
//! only metrics the exporter emits (Grafana itself is not packaged for Debian;
//! metrics_prometheus.rs runs every query against a real Prometheus).
mod metrics_common;

use std::collections::BTreeSet;
use std::process::Command;

use metrics_common::prometheus::{TempDir, require_tool};
use metrics_common::{
    dashboard_exprs, dashboard_file, exported_names, grafana_to_promql, metric_names_in,
    recorded_names_in, repo_root, rules_file, yaml_values,
};
use serde_json::Value;

fn dashboard() -> Value {
    let text = std::fs::read_to_string(dashboard_file()).unwrap();
    serde_json::from_str(&text).expect("the dashboard is valid JSON")
}

/// All panels, those inside rows included.
fn panels(d: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in d["panels"].as_array().unwrap() {
        out.push(p);
        out.extend(p["panels"].as_array().into_iter().flatten());
    }
    out
}

/// The committed JSON is what the SDK builds from the generator, so what Grafana's schema types
/// allowed is what users import.
#[test]
fn the_dashboard_is_the_foundation_sdk_generators_output() {
    let python = repo_root().join("target/grafana-sdk-venv/bin/python");
    assert!(
        python.exists(),
        "Grafana's foundation SDK is not installed ({}): run cargo xtask setup",
        python.display()
    );
    let out = Command::new(&python)
        .arg(repo_root().join("dashboards/generate-grafana.py"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "generate-grafana.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let generated: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        generated == dashboard(),
        "dashboards/marginal-grafana.json is not the generator's output: regenerate it with \
         target/grafana-sdk-venv/bin/python dashboards/generate-grafana.py > \
         dashboards/marginal-grafana.json"
    );
}

#[test]
fn the_dashboard_is_importable_with_a_datasource_and_map_and_path_variables() {
    let d = dashboard();
    assert!(
        d["uid"]
            .as_str()
            .is_some_and(|u| !u.is_empty() && u.len() <= 40)
    );
    assert!(d["title"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(d["schemaVersion"].as_u64().unwrap() >= 36);
    assert!(d["id"].is_null(), "an exported dashboard has no id");
    let input = &d["__inputs"][0];
    assert_eq!(
        (input["type"].as_str(), input["pluginId"].as_str()),
        (Some("datasource"), Some("prometheus"))
    );

    let vars = d["templating"]["list"].as_array().unwrap();
    let var = |name: &str| {
        vars.iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("no ${name} variable"))
    };
    assert_eq!(var("datasource")["type"], "datasource");
    assert_eq!(var("datasource")["query"], "prometheus");
    for name in ["instance", "map", "path"] {
        let v = var(name);
        assert_eq!(v["type"], "query", "{name}");
        assert_eq!(v["datasource"]["uid"], "${datasource}", "{name}");
        let query = v["query"]["query"].as_str().unwrap();
        assert!(query.starts_with("label_values("), "{name}: {query}");
        assert!(
            query.trim_end_matches(')').ends_with(&format!(", {name}")),
            "{name} reads label {name}: {query}"
        );
        // The metric it lists values from carries that label.
        let selector = grafana_to_promql(query);
        let metric = selector.split('{').next().unwrap();
        let def = marginal::metrics::METRICS
            .iter()
            .find(|d| d.sample_name() == metric)
            .unwrap();
        assert!(
            name == "instance" || def.labels.names().contains(&name),
            "{metric} has no label {name}"
        );
    }
}

#[test]
fn panels_are_laid_out_and_use_the_datasource_variable() {
    let d = dashboard();
    let mut ids = BTreeSet::new();
    let mut boxes: Vec<(u64, u64, u64, u64, String)> = Vec::new();
    for p in panels(&d) {
        let title = p["title"].as_str().unwrap().to_string();
        assert!(
            ids.insert(p["id"].as_u64().unwrap()),
            "duplicate id in {title}"
        );
        let g = &p["gridPos"];
        let (x, y, w, h) = (
            g["x"].as_u64().unwrap(),
            g["y"].as_u64().unwrap(),
            g["w"].as_u64().unwrap(),
            g["h"].as_u64().unwrap(),
        );
        assert!(
            x + w <= 24 && w > 0 && h > 0,
            "{title} is outside the 24-column grid"
        );
        for (bx, by, bw, bh, other) in &boxes {
            let overlap = x < bx + bw && *bx < x + w && y < by + bh && *by < y + h;
            assert!(!overlap, "{title} overlaps {other}");
        }
        boxes.push((x, y, w, h, title.clone()));
        if p["type"] == "row" {
            continue;
        }
        assert_eq!(p["datasource"]["uid"], "${datasource}", "{title}");
        let targets = p["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{title} has no query");
        let mut refs = BTreeSet::new();
        for t in targets {
            assert_eq!(t["datasource"]["uid"], "${datasource}", "{title}");
            assert!(
                refs.insert(t["refId"].as_str().unwrap()),
                "{title}: duplicate refId"
            );
            assert!(t["expr"].as_str().is_some_and(|e| !e.is_empty()), "{title}");
        }
        assert!(
            p["description"].as_str().is_some_and(|s| !s.is_empty()),
            "{title} has no description"
        );
    }
}

#[test]
fn every_query_reads_only_metrics_the_exporter_emits() {
    let d = dashboard();
    let exported = exported_names();
    let records: BTreeSet<String> =
        yaml_values(&std::fs::read_to_string(rules_file()).unwrap(), "record")
            .into_iter()
            .collect();
    let mut used = BTreeSet::new();
    for (title, expr) in dashboard_exprs(&d) {
        let names = metric_names_in(&expr);
        assert!(
            !names.is_empty(),
            "{title}: {expr} reads no marginal metric"
        );
        for name in names {
            assert!(
                exported.contains(&name),
                "panel {title:?} queries {name}, which the exporter does not emit"
            );
            used.insert(name);
        }
        for name in recorded_names_in(&expr) {
            assert!(
                records.contains(&name),
                "panel {title:?} queries {name}, which no rule records"
            );
        }
    }
    // What the issue asks the dashboard to show.
    for needed in [
        "marginal_path_state",
        "marginal_path_error_rate_permille",
        "marginal_map_err_rate_threshold_permille",
        "marginal_path_failures_total",
        "marginal_path_io_errors_total",
        "marginal_path_sampling_reads_total",
        "marginal_path_sampling_run_reads",
        "marginal_ebpf_program_run_seconds_total",
        "marginal_ebpf_program_runs_total",
        "marginal_map_active_paths",
    ] {
        assert!(used.contains(needed), "no panel shows {needed}");
    }
}

#[test]
fn every_query_is_valid_promql() {
    // promtool parses each query as the expression of a recording rule.
    let dir = TempDir::new("dashboard-promql");
    let mut yaml = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, (title, expr)) in dashboard_exprs(&dashboard()).iter().enumerate() {
        yaml.push_str(&format!(
            "      # {title}\n      - record: dashboard:query_{i}:expr\n        expr: |\n"
        ));
        for line in grafana_to_promql(expr).lines() {
            yaml.push_str(&format!("          {line}\n"));
        }
    }
    let path = dir.0.join("dashboard-queries.yml");
    std::fs::write(&path, &yaml).unwrap();
    let out = Command::new(require_tool("promtool"))
        .args(["check", "rules"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}\n{yaml}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
