//! /metrics in both formats through the real HTTP server, as scrapers ask for them: the
//! classic text format (0.0.4) unless the `Accept` header asks for OpenMetrics, each with its
//! content type, each accepted by `promtool check metrics`, and both holding the same samples.
mod metrics_common;

use std::collections::BTreeSet;
use std::io::Write;
use std::process::{Command, Stdio};

use marginal::metrics::catalog::{self, Kind};
use marginal::metrics::{OPENMETRICS_CONTENT_TYPE, TEXT_CONTENT_TYPE};
use metrics_common::prometheus::{TempDir, require_tool};
use metrics_common::{Exporter, OPENMETRICS_ACCEPT, exported_names, snapshots};

/// What curl, Telegraf's prometheus input and most agents send (or nothing at all).
const CLASSIC_ACCEPTS: &[&str] = &[
    "*/*",
    "text/plain",
    "text/plain;version=0.0.4;q=1,*/*;q=0.1",
    "application/json",
];

/// `promtool check metrics` on `text`: its exit status and what it said.
fn promtool_check(text: &str) -> (bool, String) {
    let mut child = Command::new(require_tool("promtool"))
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}

/// The sample lines of an exposition, metadata left out.
fn samples(text: &str) -> BTreeSet<&str> {
    text.lines().filter(|l| !l.starts_with('#')).collect()
}

#[test]
fn scrapers_that_do_not_ask_for_openmetrics_get_the_classic_format_and_promtool_accepts_it() {
    let exporter = Exporter::start(snapshots::full());
    for accept in CLASSIC_ACCEPTS {
        let r = exporter.get_accepting("/metrics", accept);
        assert_eq!(r.status, 200, "{accept}");
        assert_eq!(
            r.header("content-type"),
            Some(TEXT_CONTENT_TYPE),
            "{accept}"
        );
        assert_eq!(r.header("vary"), Some("Accept"), "{accept}");
        let (ok, said) = promtool_check(&r.body);
        assert!(ok, "promtool check metrics ({accept}):\n{said}\n{}", r.body);
        assert!(said.trim().is_empty(), "promtool has remarks:\n{said}");
        assert!(!r.body.contains("# EOF") && !r.body.contains("# UNIT"));
    }
    // No Accept header at all (the client always sends one; a raw request here).
    let raw = raw_get(exporter.addr, "/metrics");
    assert!(
        raw.to_ascii_lowercase()
            .contains(&format!("content-type: {TEXT_CONTENT_TYPE}")),
        "{raw}"
    );
}

#[test]
fn the_classic_format_names_and_types_every_family_as_the_official_clients_do() {
    let exporter = Exporter::start(snapshots::full());
    let text = exporter.get_accepting("/metrics", "text/plain").body;
    let typed: Vec<(&str, &str)> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| l.split_once(' ').unwrap())
        .collect();
    let expected: Vec<(String, &str)> = catalog::METRICS
        .iter()
        .map(|def| {
            let kind = match def.kind {
                Kind::Counter => "counter",
                Kind::Gauge | Kind::Info => "gauge",
                Kind::Histogram => "histogram",
            };
            (classic_name(def), kind)
        })
        .collect();
    let typed: Vec<(String, &str)> = typed.iter().map(|(n, k)| (n.to_string(), *k)).collect();
    assert_eq!(typed, expected);
    for def in catalog::METRICS {
        // The classic format escapes only backslashes and line breaks in help texts.
        let escaped = def.help.replace('\\', "\\\\").replace('\n', "\\n");
        let help = format!("# HELP {} {escaped}", classic_name(def));
        assert!(text.lines().any(|l| l == help), "{help}");
    }
    let names: BTreeSet<String> = samples(&text)
        .iter()
        .map(|l| l.split(['{', ' ']).next().unwrap().to_string())
        .collect();
    assert_eq!(names, exported_names());
    assert!(text.contains(&format!(
        "marginal_build_info{{version=\"{}\"}} 1\n",
        env!("CARGO_PKG_VERSION")
    )));
}

#[test]
fn prometheus_gets_openmetrics_with_the_same_samples() {
    let exporter = Exporter::start(snapshots::full());
    let om = exporter.get_accepting("/metrics", OPENMETRICS_ACCEPT);
    assert_eq!(om.status, 200);
    assert_eq!(om.header("content-type"), Some(OPENMETRICS_CONTENT_TYPE));
    assert_eq!(om.header("vary"), Some("Accept"));
    assert!(om.body.ends_with("# EOF\n"));
    let classic = exporter.get_accepting("/metrics", "text/plain");
    assert_eq!(samples(&om.body), samples(&classic.body));
    assert!(!samples(&om.body).is_empty());
}

/// `promtool check metrics` reads only the classic format (2.42 stops at the first
/// `# TYPE ... info`: "unknown metric type"), so the OpenMetrics exposition goes through
/// promtool's OpenMetrics parser instead: `tsdb create-blocks-from openmetrics`, which parses
/// every line as Prometheus's scraper does and, being an import, wants a timestamp on each
/// sample (added here; a scrape has none).
#[test]
fn promtools_openmetrics_parser_accepts_the_openmetrics_exposition() {
    let exporter = Exporter::start(snapshots::full());
    let om = exporter.get_accepting("/metrics", "application/openmetrics-text");
    assert_eq!(om.header("content-type"), Some(OPENMETRICS_CONTENT_TYPE));
    let stamped: String = om
        .body
        .lines()
        .map(|l| match l.starts_with('#') {
            true => format!("{l}\n"),
            false => format!("{l} 1700000000\n"),
        })
        .collect();
    let dir = TempDir::new("openmetrics-import");
    let input = dir.0.join("metrics.om");
    std::fs::write(&input, &stamped).unwrap();
    let out = Command::new(require_tool("promtool"))
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&input)
        .arg(dir.0.join("blocks"))
        .output()
        .unwrap();
    let said =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}\n{stamped}");
    // One block with a series per sample: nothing was skipped.
    let series: usize = said
        .lines()
        .nth(1)
        .and_then(|row| row.split_whitespace().nth(6))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no block row: {said}"));
    assert_eq!(series, samples(&om.body).len(), "{said}");
}

/// A GET without any `Accept` header.
fn raw_get(addr: std::net::SocketAddr, path: &str) -> String {
    use std::io::Read;
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).unwrap();
    out
}

/// The name the classic format gives the family in `# HELP` and `# TYPE`: its sample's, but a
/// histogram's own.
fn classic_name(def: &catalog::MetricDef) -> String {
    match def.kind {
        Kind::Histogram => def.family.to_string(),
        _ => def.sample_name(),
    }
}
