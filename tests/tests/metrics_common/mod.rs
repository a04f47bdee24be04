//! Shared by the metrics_* and dashboards_* tests: a strict exposition parser, a fully
//! populated snapshot, the exporter served on a free port, a real Prometheus server, and the
//! metric names a PromQL expression uses.
//!
//! Each test crate uses part of it, hence the allowance for unused items.
#![allow(dead_code)]

pub mod exposition;
pub mod prometheus;
pub mod snapshots;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use marginal::status::Snapshot;

/// The `Accept` header Prometheus 2.x sends: OpenMetrics first.
pub const OPENMETRICS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0;q=0.5,\
    application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2";

/// The workspace root (dashboards/ lives there).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

pub fn rules_file() -> PathBuf {
    repo_root().join("dashboards/marginal-rules.yml")
}

pub fn rules_test_file() -> PathBuf {
    repo_root().join("dashboards/marginal-rules.test.yml")
}

pub fn dashboard_file() -> PathBuf {
    repo_root().join("dashboards/marginal-grafana.json")
}

/// Identifiers of a PromQL expression outside string literals and `[...]` ranges: metric
/// names, recording-rule names, functions, label names and keywords. Callers filter.
pub fn promql_identifiers(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut chars = expr.chars().peekable();
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut BTreeSet<String>| {
        if !word.is_empty() {
            out.insert(std::mem::take(word));
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '"' | '\'' | '`' => {
                flush(&mut word, &mut out);
                let mut escaped = false;
                for d in chars.by_ref() {
                    match (escaped, d) {
                        (false, '\\') if c != '`' => escaped = true,
                        (false, d) if d == c => break,
                        _ => escaped = false,
                    }
                }
            }
            '[' => {
                // Durations such as [5m] or [$__rate_interval] name nothing.
                flush(&mut word, &mut out);
                for d in chars.by_ref() {
                    if d == ']' {
                        break;
                    }
                }
            }
            c if c.is_ascii_alphanumeric() || c == '_' || c == ':' => word.push(c),
            // `$map` is a Grafana variable, not an identifier.
            '$' => {
                flush(&mut word, &mut out);
                while chars.peek().is_some_and(|d| {
                    d.is_ascii_alphanumeric() || *d == '_' || *d == '{' || *d == '}'
                }) {
                    chars.next();
                }
            }
            _ => flush(&mut word, &mut out),
        }
    }
    flush(&mut word, &mut out);
    out.retain(|w| !w.chars().next().is_some_and(|c| c.is_ascii_digit()));
    out
}

/// The exporter's metric names an expression queries (`marginal_*`, without `:`, which marks
/// recording rules).
pub fn metric_names_in(expr: &str) -> BTreeSet<String> {
    promql_identifiers(expr)
        .into_iter()
        .filter(|w| w.starts_with("marginal_") && !w.contains(':'))
        .collect()
}

/// Recording-rule names an expression queries (`level:metric:operations`).
pub fn recorded_names_in(expr: &str) -> BTreeSet<String> {
    promql_identifiers(expr)
        .into_iter()
        .filter(|w| w.contains(':') && w.contains("marginal"))
        .collect()
}

/// The exporter's own list of sample names.
pub fn exported_names() -> BTreeSet<String> {
    marginal::metrics::sample_names().into_iter().collect()
}

/// The real HTTP server of the daemon, serving whatever snapshot the test sets.
pub struct Exporter {
    pub addr: SocketAddr,
    pub snapshot: Arc<Mutex<Snapshot>>,
    runtime: Option<tokio::runtime::Runtime>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Exporter {
    pub fn start(initial: Snapshot) -> Exporter {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(marginal::http::bind("127.0.0.1:0".parse().unwrap()))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let snapshot = Arc::new(Mutex::new(initial));
        let source = Arc::clone(&snapshot);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        runtime.spawn(async move {
            let shutdown = async move {
                let _ = stopped.await;
            };
            marginal::http::serve_on(listener, move || source.lock().unwrap().clone(), shutdown)
                .await
                .unwrap();
        });
        Exporter {
            addr,
            snapshot,
            runtime: Some(runtime),
            stop: Some(stop),
        }
    }

    pub fn set(&self, snapshot: Snapshot) {
        *self.snapshot.lock().unwrap() = snapshot;
    }

    pub fn get(&self, path: &str) -> marginal::http::HttpResponse {
        marginal::http::get(self.addr, path, std::time::Duration::from_secs(10)).unwrap()
    }

    /// `path` as a scraper sending this `Accept` header gets it.
    pub fn get_accepting(&self, path: &str, accept: &str) -> marginal::http::HttpResponse {
        marginal::http::get_accepting(self.addr, path, accept, std::time::Duration::from_secs(10))
            .unwrap()
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(std::time::Duration::from_secs(5));
        }
    }
}

/// The values of `key:` in a YAML file of the shape Prometheus rule files have: a plain or
/// quoted scalar on the same line, or a `|`/`>` block scalar on the lines below. (No YAML
/// crate in the workspace; `promtool check rules` validates the YAML itself.)
pub fn yaml_values(yaml: &str, key: &str) -> Vec<String> {
    let lines: Vec<&str> = yaml.lines().collect();
    let mut out = Vec::new();
    let needle = format!("{key}:");
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start().trim_start_matches("- ");
        let Some(rest) = trimmed.strip_prefix(&needle) else {
            continue;
        };
        let rest = rest.trim();
        if rest.starts_with('|') || rest.starts_with('>') {
            let indent = line.len() - line.trim_start().len();
            let block: Vec<&str> = lines[i + 1..]
                .iter()
                .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() > indent)
                .map(|l| l.trim())
                .collect();
            out.push(block.join("\n").trim().to_string());
        } else if let Some(q) = rest.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')) {
            out.push(q.replace("''", "'"));
        } else if let Some(q) = rest.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
            out.push(q.replace("\\\"", "\"").replace("\\\\", "\\"));
        } else {
            out.push(rest.to_string());
        }
    }
    out
}

/// Every PromQL expression of a Grafana dashboard: panel targets (rows included) and query
/// variables, with the panel title for messages.
pub fn dashboard_exprs(dashboard: &serde_json::Value) -> Vec<(String, String)> {
    fn walk(panels: &serde_json::Value, out: &mut Vec<(String, String)>) {
        for panel in panels.as_array().into_iter().flatten() {
            let title = panel["title"].as_str().unwrap_or("?").to_string();
            for target in panel["targets"].as_array().into_iter().flatten() {
                if let Some(expr) = target["expr"].as_str() {
                    out.push((title.clone(), expr.to_string()));
                }
            }
            walk(&panel["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    for var in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if var["type"] == "query" {
            let query = var["query"]["query"]
                .as_str()
                .or(var["query"].as_str())
                .unwrap_or_default();
            out.push((format!("variable {}", var["name"]), query.to_string()));
        }
    }
    out
}

/// A dashboard expression as Prometheus would receive it from Grafana with "All" selected.
/// `label_values(metric, label)` variable queries become the metric selector they read.
pub fn grafana_to_promql(expr: &str) -> String {
    let expr = expr
        .replace("$__rate_interval", "1m")
        .replace("$__interval", "15s")
        .replace("$__range", "1h")
        .replace("$instance", ".*")
        .replace("$map", ".*")
        .replace("$path", ".*");
    match expr
        .strip_prefix("label_values(")
        .and_then(|e| e.strip_suffix(')'))
    {
        Some(args) => args
            .rsplit_once(',')
            .map_or(args, |(selector, _label)| selector)
            .trim()
            .to_string(),
        None => expr,
    }
}
