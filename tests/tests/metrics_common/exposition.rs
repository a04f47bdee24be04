//! A strict parser of the OpenMetrics text format, for the subset a metrics exporter writes
//! (counters, gauges, infos; no histograms, exemplars or timestamps).
//!
//! Written from the specification rather than borrowed from the exporter's library, so a bug
//! in the encoder cannot hide behind the same bug in the check. It rejects what a Prometheus
//! server would reject or misread, and what this exporter should never write: samples
//! without their family's `# TYPE`, interleaved or repeated families, sample names that do
//! not fit their family's type, bad escapes, duplicate series or labels, a missing `# EOF`.
use std::collections::{BTreeMap, BTreeSet};

#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Family {
    pub name: String,
    pub kind: String,
    pub help: Option<String>,
    pub unit: Option<String>,
    pub samples: Vec<Sample>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Exposition {
    pub families: Vec<Family>,
}

impl Exposition {
    pub fn parse(text: &str) -> Result<Self, String> {
        parse(text)
    }

    pub fn family(&self, name: &str) -> Option<&Family> {
        self.families.iter().find(|f| f.name == name)
    }

    pub fn samples(&self) -> impl Iterator<Item = &Sample> {
        self.families.iter().flat_map(|f| f.samples.iter())
    }

    /// Every distinct sample name.
    pub fn sample_names(&self) -> BTreeSet<String> {
        self.samples().map(|s| s.name.clone()).collect()
    }

    /// Samples named `name` whose labels include all of `labels`.
    pub fn find(&self, name: &str, labels: &[(&str, &str)]) -> Vec<&Sample> {
        self.samples()
            .filter(|s| s.name == name)
            .filter(|s| {
                labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .collect()
    }

    /// The value of the one sample named `name` with (at least) `labels`; panics if there is
    /// not exactly one.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        match self.find(name, labels).as_slice() {
            [one] => one.value,
            other => panic!("{} samples {name}{labels:?}: {other:?}", other.len()),
        }
    }
}

fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn is_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The sample-name suffixes each type allows (OpenMetrics 1.0, "Metric types").
fn suffixes(kind: &str) -> &'static [&'static str] {
    match kind {
        "counter" => &["_total", "_created"],
        "gauge" | "unknown" => &[""],
        "info" => &["_info"],
        "histogram" => &["_bucket", "_sum", "_count"],
        "stateset" => &[""],
        _ => &[],
    }
}

fn parse(text: &str) -> Result<Exposition, String> {
    let body = text
        .strip_suffix("# EOF\n")
        .ok_or("does not end with \"# EOF\\n\"")?;
    let mut out = Exposition::default();
    let mut closed: BTreeSet<String> = BTreeSet::new();
    let mut series: BTreeSet<(String, Vec<(String, String)>)> = BTreeSet::new();
    for (n, line) in body.split_terminator('\n').enumerate() {
        let fail = |msg: String| format!("line {}: {msg}: {line:?}", n + 1);
        if line.contains("# EOF") {
            return Err(fail("EOF before the end".into()));
        }
        if let Some(meta) = line.strip_prefix("# ") {
            let mut parts = meta.splitn(3, ' ');
            let (keyword, name) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            let rest = parts.next();
            if !is_name(name) {
                return Err(fail(format!("bad family name {name:?}")));
            }
            // A new family starts when the name changes; an earlier family may not come back.
            if out.families.last().is_none_or(|f| f.name != name) {
                if closed.contains(name) {
                    return Err(fail(format!("family {name} appears twice")));
                }
                if let Some(prev) = out.families.last() {
                    closed.insert(prev.name.clone());
                }
                out.families.push(Family {
                    name: name.to_string(),
                    kind: "unknown".into(),
                    help: None,
                    unit: None,
                    samples: vec![],
                });
            }
            let family = out.families.last_mut().unwrap();
            if !family.samples.is_empty() {
                return Err(fail("metadata after samples".into()));
            }
            let rest = rest.ok_or_else(|| fail("metadata without a value".into()))?;
            match keyword {
                "HELP" => {
                    if family
                        .help
                        .replace(unescape(rest).map_err(&fail)?)
                        .is_some()
                    {
                        return Err(fail("second HELP".into()));
                    }
                }
                "TYPE" => {
                    if suffixes(rest).is_empty() {
                        return Err(fail(format!("unknown type {rest:?}")));
                    }
                    family.kind = rest.to_string();
                }
                "UNIT" => {
                    if !name.ends_with(&format!("_{rest}")) {
                        return Err(fail(format!(
                            "family name does not end with its unit {rest:?}"
                        )));
                    }
                    family.unit = Some(rest.to_string());
                }
                other => return Err(fail(format!("unknown metadata {other:?}"))),
            }
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            return Err(fail("stray comment or empty line".into()));
        }
        let sample = parse_sample(line).map_err(&fail)?;
        let family = out
            .families
            .last_mut()
            .filter(|f| {
                suffixes(&f.kind)
                    .iter()
                    .any(|s| sample.name == format!("{}{s}", f.name))
            })
            .ok_or_else(|| fail(format!("sample {} outside its family", sample.name)))?;
        match family.kind.as_str() {
            "counter" if sample.value < 0.0 || sample.value.is_nan() => {
                return Err(fail("negative or NaN counter".into()));
            }
            "info" if sample.value != 1.0 => return Err(fail("info value is not 1".into())),
            _ => {}
        }
        let key = (
            sample.name.clone(),
            sample.labels.clone().into_iter().collect(),
        );
        if !series.insert(key) {
            return Err(fail("duplicate series".into()));
        }
        family.samples.push(sample);
    }
    Ok(out)
}

fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line.find(['{', ' ']).ok_or("no value")?;
    let name = &line[..name_end];
    if !is_name(name) {
        return Err(format!("bad sample name {name:?}"));
    }
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(after) = rest.strip_prefix('{') {
        rest = after;
        loop {
            if let Some(after) = rest.strip_prefix('}') {
                rest = after;
                break;
            }
            if !labels.is_empty() {
                rest = rest
                    .strip_prefix(',')
                    .ok_or("labels not separated by a comma")?;
            }
            let eq = rest.find('=').ok_or("label without '='")?;
            let key = &rest[..eq];
            if !is_label_name(key) || key.starts_with("__") {
                return Err(format!("bad label name {key:?}"));
            }
            rest = rest[eq + 1..]
                .strip_prefix('"')
                .ok_or("label value not quoted")?;
            let (value, after) = quoted(rest)?;
            rest = after;
            if labels.insert(key.to_string(), value).is_some() {
                return Err(format!("label {key} twice"));
            }
        }
    }
    let value = rest.strip_prefix(' ').ok_or("no space before the value")?;
    if value.contains(' ') {
        return Err("timestamps or exemplars are not expected".into());
    }
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v if v.chars().all(|c| c.is_ascii_digit() || "+-.eE".contains(c)) => {
            v.parse().map_err(|_| format!("bad value {v:?}"))?
        }
        v => return Err(format!("bad value {v:?}")),
    };
    Ok(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

/// A label value up to its closing quote, unescaped; returns the text after the quote.
fn quoted(s: &str) -> Result<(String, &str), String> {
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match (escaped, c) {
            (false, '\\') => escaped = true,
            (false, '"') => return Ok((unescape(&s[..i])?, &s[i + 1..])),
            (false, '\n') => return Err("newline in a label value".into()),
            _ => escaped = false,
        }
    }
    Err("unterminated label value".into())
}

fn unescape(s: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            // HELP text may escape quotes too; label values must.
            Some('"') => out.push('"'),
            other => return Err(format!("bad escape \\{other:?}")),
        }
    }
    Ok(out)
}
