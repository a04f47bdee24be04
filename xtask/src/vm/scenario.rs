//! Scenarios: `tests/vm/scenarios/NAME.sh`, run in the guest in file-name order. Their needs are
//! comment lines in the script itself, so adding one is dropping one file:
//!
//! ```sh
//! # vm-bins: marginal        workspace binaries to build and put in /usr/local/bin
//! # vm-debs: multipath-tools Debian packages to unpack into the guest root
//! # vm-timeout: 90           seconds before the guest kills the scenario (default 60)
//! # vm-kernels: 6.12         only on these kernels (labels; default: every kernel booted)
//! # vm-cmdline: nvme_core.multipath=N   kernel parameters: such scenarios get a boot of their own
//! # vm-prefix-debs: trixie multipath-tools libc6   another release's packages, under /opt/trixie
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub path: PathBuf,
    pub cargo_bins: Vec<String>,
    pub debs: Vec<String>,
    pub timeout: Duration,
    /// Kernel labels it runs on; empty: all.
    pub kernels: Vec<String>,
    /// Extra kernel command line ("" for none); scenarios are booted in groups of equal ones.
    pub cmdline: String,
    /// Packages of other Debian suites, unpacked under `/opt/<suite>`: (suite, package).
    pub prefix_debs: Vec<(String, String)>,
}

impl Scenario {
    pub fn runs_on(&self, kernel: &str) -> bool {
        self.kernels.is_empty() || self.kernels.iter().any(|k| k == kernel)
    }
}

impl Scenario {
    fn parse(path: &Path) -> Result<Self> {
        let name = path
            .file_stem()
            .context("scenario without a name")?
            .to_string_lossy()
            .into_owned();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            bail!(
                "{}: scenario names are letters, digits, '-' and '_' (they appear in marker lines)",
                path.display()
            );
        }
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let mut s = Scenario {
            name,
            path: path.to_path_buf(),
            cargo_bins: Vec::new(),
            debs: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
            kernels: Vec::new(),
            cmdline: String::new(),
            prefix_debs: Vec::new(),
        };
        for (n, line) in text.lines().enumerate() {
            let Some(directive) = line.strip_prefix("# vm-") else {
                continue;
            };
            let (key, value) = directive.split_once(':').with_context(|| {
                format!("{}:{}: `# vm-KEY: VALUE` expected", path.display(), n + 1)
            })?;
            let words = value.split_whitespace().map(str::to_string);
            match key.trim() {
                "bins" => s.cargo_bins.extend(words),
                "debs" => s.debs.extend(words),
                "kernels" => s.kernels.extend(words),
                "cmdline" => s.cmdline = words.collect::<Vec<_>>().join(" "),
                "prefix-debs" => {
                    let mut words = words;
                    let suite = words.next().with_context(|| {
                        format!(
                            "{}:{}: vm-prefix-debs: SUITE PACKAGE...",
                            path.display(),
                            n + 1
                        )
                    })?;
                    s.prefix_debs.extend(words.map(|p| (suite.clone(), p)));
                }
                "timeout" => {
                    let secs: u64 = value.trim().parse().with_context(|| {
                        format!("{}:{}: vm-timeout takes seconds", path.display(), n + 1)
                    })?;
                    s.timeout = Duration::from_secs(secs);
                }
                other => bail!(
                    "{}:{}: unknown directive vm-{other} (bins, debs, timeout, kernels, cmdline, prefix-debs)",
                    path.display(),
                    n + 1
                ),
            }
        }
        Ok(s)
    }
}

/// The scenarios in `dir`, sorted by name; only those in `selected` if it is not empty.
pub fn discover(dir: &Path, selected: &[String]) -> Result<Vec<Scenario>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "sh"))
        .collect();
    paths.sort();
    let all: Vec<Scenario> = paths
        .iter()
        .map(|p| Scenario::parse(p))
        .collect::<Result<_>>()?;
    if all.is_empty() {
        bail!("no scenarios in {}", dir.display());
    }
    if selected.is_empty() {
        return Ok(all);
    }
    for name in selected {
        if !all.iter().any(|s| &s.name == name) {
            let names: Vec<&str> = all.iter().map(|s| s.name.as_str()).collect();
            bail!("no scenario {name:?}; there are: {}", names.join(", "));
        }
    }
    Ok(all
        .into_iter()
        .filter(|s| selected.contains(&s.name))
        .collect())
}
