//! A real Prometheus server (Debian's `prometheus` package) for a test: temporary config and
//! storage, a free port on 127.0.0.1, killed on drop. Queried through its HTTP API.
use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Scrape and rule-evaluation interval: short, so tests wait seconds, not minutes.
pub const INTERVAL: &str = "1s";

/// Finds `name` on PATH or says which package provides it.
pub fn require_tool(name: &str) -> PathBuf {
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join(name))
        .find(|p| p.is_file());
    found.unwrap_or_else(|| {
        panic!(
            "`{name}` is not installed: apt-get install prometheus (the setup script installs it)"
        )
    })
}

/// A directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        use std::sync::atomic::{AtomicU32, Ordering};
        static COUNT: AtomicU32 = AtomicU32::new(0);
        let n = COUNT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("marginal-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One series of a query result: its labels and value.
pub type Series = (BTreeMap<String, String>, f64);

pub struct Prometheus {
    pub addr: SocketAddr,
    child: Child,
    dir: TempDir,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `%`-encodes a query parameter.
pub fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl Prometheus {
    /// Starts a server scraping `target` (job "marginal") every [`INTERVAL`] and evaluating
    /// `rule_files`; returns once it is ready.
    pub fn start(target: SocketAddr, rule_files: &[&Path]) -> Prometheus {
        let binary = require_tool("prometheus");
        let dir = TempDir::new("prometheus");
        let rules: String = rule_files
            .iter()
            .map(|p| format!("  - {:?}\n", p.display().to_string()))
            .collect();
        let config = format!(
            "global:\n  scrape_interval: {INTERVAL}\n  scrape_timeout: {INTERVAL}\n  evaluation_interval: {INTERVAL}\n\
             rule_files:\n{rules}\
             scrape_configs:\n  - job_name: marginal\n    static_configs:\n      - targets: [\"{target}\"]\n"
        );
        let config_path = dir.0.join("prometheus.yml");
        std::fs::write(&config_path, config).unwrap();
        // The port is free when chosen; in the rare case another process takes it first,
        // Prometheus exits and we retry with a new one.
        let log_path = dir.0.join("prometheus.log");
        for _attempt in 0..3 {
            let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
            let log = std::fs::File::create(&log_path).unwrap();
            let mut child = Command::new(&binary)
                .arg(format!("--config.file={}", config_path.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.0.join("data").display()
                ))
                .arg(format!("--web.listen-address={addr}"))
                .arg("--log.level=warn")
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("starting prometheus");
            if wait_ready(&mut child, addr, Duration::from_secs(60)) {
                return Prometheus { addr, child, dir };
            }
            let _ = child.kill();
            let _ = child.wait();
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            if !log.contains("address already in use") {
                panic!("prometheus did not become ready:\n{log}");
            }
        }
        panic!("prometheus could not find a free port");
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.0.join("prometheus.log")).unwrap_or_default()
    }

    /// GET an API path; panics on transport errors, returns the JSON `data`.
    pub fn api(&self, path_and_query: &str) -> Result<Value, String> {
        let r = marginal::http::get(self.addr, path_and_query, Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("prometheus at {}: {e:#}", self.addr));
        let v: Value = serde_json::from_str(&r.body).map_err(|e| format!("{e}: {}", r.body))?;
        if v["status"] != "success" {
            return Err(format!("{path_and_query}: {}", r.body));
        }
        Ok(v["data"].clone())
    }

    /// An instant query's result: (labels, value) per series.
    pub fn query(&self, expr: &str) -> Result<Vec<Series>, String> {
        let data = self.api(&format!("/api/v1/query?query={}", url_encode(expr)))?;
        let result = data["result"].as_array().cloned().unwrap_or_default();
        Ok(result
            .iter()
            .map(|series| {
                let labels = series["metric"]
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                            .collect()
                    })
                    .unwrap_or_default();
                let value = series["value"][1]
                    .as_str()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(f64::NAN);
                (labels, value)
            })
            .collect())
    }

    /// The one value `expr` yields; `None` if it yields nothing.
    pub fn scalar(&self, expr: &str) -> Option<f64> {
        let result = self.query(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
        assert!(
            result.len() <= 1,
            "{expr} gave {} series: {result:?}",
            result.len()
        );
        result.first().map(|(_, v)| *v)
    }

    /// Polls `expr` until `ok` accepts its result or `timeout` passes; returns the last result.
    pub fn wait_for(
        &self,
        expr: &str,
        timeout: Duration,
        ok: impl Fn(&[Series]) -> bool,
    ) -> Vec<Series> {
        let deadline = Instant::now() + timeout;
        loop {
            let result = self.query(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
            if ok(&result) {
                return result;
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out waiting on {expr}; last result {result:?}\nprometheus log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

fn wait_ready(child: &mut Child, addr: SocketAddr, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if let Ok(r) = marginal::http::get(addr, "/-/ready", Duration::from_secs(2))
            && r.status == 200
        {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
