//! The exposition written straight into one text buffer, in either format: what `/metrics`
//! serves.
//!
//! Why not through prometheus-client's encoder for every sample: at 16,384 paths a scrape is
//! about 280,000 samples, and the encoder writes each one through `dyn fmt::Write` piece by
//! piece, encoding and escape-checking a path's three labels again for each of its ~17
//! families; the classic format then took a second pass over the 24 MB text, checking every
//! line. That was most of a scrape's 230 ms of CPU (issue 15's target is 100 ms). Here a path's
//! labels are escaped once per scrape and copied per sample, numbers are formatted with the
//! same `itoa`/`dtoa` prometheus-client uses, and the classic format is written directly.
//!
//! prometheus-client stays the contract: every family's `# HELP`/`# TYPE`/`# UNIT` lines are
//! its encoder's own output (converted by [`super::classic`] for the classic format), and the
//! families, series and values come from the same [`write_families`] that feeds
//! [`super::SnapshotCollector`]. The tests check this writer's output byte for byte against
//! prometheus-client's for snapshots where every family has series and labels need escaping.
use std::collections::HashMap;
use std::fmt;
use std::sync::OnceLock;

use prometheus_client::encoding::{DescriptorEncoder, text};
use prometheus_client::registry::Registry;

use super::catalog::{Kind, METRICS, MetricDef};
use super::collector::{Labels, PathSeries, Sink, Value, descriptor, exposed_buckets, paths};
use super::{Format, classic};
use crate::memory::advise_huge_pages;
use crate::status::Snapshot;

/// Snapshot `snapshot` in `format`, `# EOF` included for OpenMetrics.
pub fn render(snapshot: &Snapshot, format: Format) -> String {
    let paths = snapshot.maps.iter().map(|m| m.paths.len()).sum::<usize>();
    // About 1.5 kB per path today; reserving it saves the buffer's copies as it grows.
    let out = String::with_capacity(4096 + paths * 1600);
    advise_huge_pages(out.as_ptr(), out.capacity());
    let mut writer = Writer {
        out,
        format,
        path_labels: None,
    };
    super::collector::write_families(&mut writer, snapshot)
        .expect("writing to a String cannot fail");
    if format == Format::OpenMetrics {
        writer.out.push_str("# EOF\n");
    }
    writer.out
}

/// One path's series in one family: its value, the value of its label, or none.
#[derive(Clone, Copy)]
enum Cell<'a> {
    Absent,
    Value(Value),
    Label(&'a str),
}

struct Writer {
    out: String,
    format: Format,
    /// Every path's `map="…",path="…",device="…"`, escaped, end to end, with where each ends:
    /// built by the first per-path family and copied into each of its samples.
    path_labels: Option<(String, Vec<usize>)>,
}

impl Writer {
    fn metadata(&mut self, def: MetricDef) {
        let (openmetrics, classic) = metadata(def.family);
        self.out.push_str(match self.format {
            Format::OpenMetrics => openmetrics,
            Format::Text => classic,
        });
    }

    fn name(&mut self, def: MetricDef, histogram_suffix: &str) {
        push_name(&mut self.out, def, histogram_suffix);
    }

    fn value(&mut self, value: Value) {
        push_value(&mut self.out, value);
    }

    fn build_path_labels(&mut self, snapshot: &Snapshot) {
        if self.path_labels.is_some() {
            return;
        }
        let mut text = String::new();
        let mut ends = Vec::new();
        for (map, path) in paths(snapshot) {
            let labels = [
                ("map", map.name.as_str()),
                ("path", path.name.as_str()),
                ("device", path.device.as_str()),
            ];
            push_labels(&mut text, &labels);
            ends.push(text.len());
        }
        self.path_labels = Some((text, ends));
    }
}

impl Sink for Writer {
    fn family<'a, const N: usize>(
        &mut self,
        def: MetricDef,
        series: impl Iterator<Item = (Labels<'a, N>, Value)>,
    ) -> fmt::Result {
        let mut series = series.peekable();
        if series.peek().is_none() {
            return Ok(());
        }
        self.metadata(def);
        for (labels, value) in series {
            self.name(def, "");
            // An info's labels are its value (always 1); prometheus-client writes its braces
            // even when empty, and none for another family without labels.
            if N > 0 || def.kind == Kind::Info {
                self.out.push('{');
                push_labels(&mut self.out, &labels);
                self.out.push('}');
            }
            self.value(if def.kind == Kind::Info {
                Value::Int(1)
            } else {
                value
            });
        }
        Ok(())
    }

    fn path_family(
        &mut self,
        snapshot: &Snapshot,
        def: MetricDef,
        read: &PathSeries,
    ) -> fmt::Result {
        let series = paths(snapshot).enumerate().filter_map(|(i, (_, path))| {
            let value = match read {
                PathSeries::Always(read) => read(path),
                PathSeries::Optional(read) => read(path)?,
                PathSeries::Label { .. } => Value::Int(1),
            };
            Some((i, path, value))
        });
        let mut series = series.peekable();
        if series.peek().is_none() {
            return Ok(());
        }
        self.build_path_labels(snapshot);
        let (text, ends) = self.path_labels.take().expect("built above");
        self.metadata(def);
        let sample = sample_start(def);
        for (i, path, value) in series {
            let start = if i == 0 { 0 } else { ends[i - 1] };
            let label = match read {
                PathSeries::Label { key, current } => Some((*key, current(path))),
                _ => None,
            };
            push_path_sample(&mut self.out, &sample, &text[start..ends[i]], label, value);
        }
        self.path_labels = Some((text, ends));
        Ok(())
    }

    /// The values of every family first, in one pass over the paths, then each family's
    /// samples from them: a pass over the paths per family read each path's field from memory
    /// that had left the cache (16,384 paths' statuses are about 10 MB), and those loads were a
    /// third of the writing. The values are laid out family by family, so each family reads
    /// its own in order.
    fn path_families(
        &mut self,
        snapshot: &Snapshot,
        families: &[(MetricDef, PathSeries)],
    ) -> fmt::Result {
        self.build_path_labels(snapshot);
        let (text, ends) = self.path_labels.take().expect("built above");
        let n = ends.len();
        let mut cells: Vec<Cell> = Vec::with_capacity(families.len() * n);
        advise_huge_pages(
            cells.as_ptr().cast(),
            cells.capacity() * std::mem::size_of::<Cell>(),
        );
        cells.resize(families.len() * n, Cell::Absent);
        for (i, (_, path)) in paths(snapshot).enumerate() {
            for (f, (_, read)) in families.iter().enumerate() {
                cells[f * n + i] = match read {
                    PathSeries::Always(read) => Cell::Value(read(path)),
                    PathSeries::Optional(read) => read(path).map_or(Cell::Absent, Cell::Value),
                    PathSeries::Label { current, .. } => Cell::Label(current(path)),
                };
            }
        }
        for (column, (def, read)) in cells.chunks(n.max(1)).zip(families) {
            if column.iter().all(|cell| matches!(cell, Cell::Absent)) {
                continue;
            }
            self.metadata(*def);
            let sample = sample_start(*def);
            let mut start = 0;
            for (cell, end) in column.iter().zip(&ends) {
                let path_labels = &text[start..*end];
                start = *end;
                let (label, value) = match (cell, read) {
                    (Cell::Absent, _) => continue,
                    (Cell::Value(value), _) => (None, *value),
                    (Cell::Label(current), PathSeries::Label { key, .. }) => {
                        (Some((*key, *current)), Value::Int(1))
                    }
                    (Cell::Label(_), _) => unreachable!("a label only for a label family"),
                };
                push_path_sample(&mut self.out, &sample, path_labels, label, value);
            }
        }
        self.path_labels = Some((text, ends));
        Ok(())
    }

    fn path_latency(&mut self, snapshot: &Snapshot) -> fmt::Result {
        let def = super::catalog::PATH_IO_LATENCY;
        let mut measured = paths(snapshot)
            .enumerate()
            .filter_map(|(i, (_, path))| Some((i, path.latency.as_ref()?)))
            .peekable();
        if measured.peek().is_none() {
            return Ok(());
        }
        self.build_path_labels(snapshot);
        let (text, ends) = self.path_labels.take().expect("built above");
        self.metadata(def);
        for (i, latency) in measured {
            let path_labels = &text[if i == 0 { 0 } else { ends[i - 1] }..ends[i]];
            for (direction, h) in [("read", &latency.read), ("write", &latency.write)] {
                let labels = |out: &mut String| {
                    out.push_str(path_labels);
                    out.push_str(",direction=\"");
                    out.push_str(direction);
                    out.push_str("\"}");
                };
                self.name(def, "_sum");
                self.out.push('{');
                labels(&mut self.out);
                self.value(Value::Float(h.sum_seconds));
                self.name(def, "_count");
                self.out.push('{');
                labels(&mut self.out);
                self.value(Value::Int(h.count()));
                let mut cumulative = 0;
                for (upper, count) in exposed_buckets(h) {
                    cumulative += count;
                    self.name(def, "_bucket");
                    self.out.push_str("{le=\"");
                    if upper == f64::INFINITY {
                        self.out.push_str("+Inf");
                    } else {
                        self.out.push_str(dtoa::Buffer::new().format(upper));
                    }
                    self.out.push_str("\",");
                    labels(&mut self.out);
                    self.value(Value::Int(cumulative));
                }
            }
        }
        self.path_labels = Some((text, ends));
        Ok(())
    }
}

/// The sample name: the family's, with the suffix its kind gives its samples.
fn push_name(out: &mut String, def: MetricDef, histogram_suffix: &str) {
    out.push_str(def.family);
    out.push_str(match def.kind {
        Kind::Counter => "_total",
        Kind::Info => "_info",
        Kind::Gauge => "",
        Kind::Histogram => histogram_suffix,
    });
}

/// ` <value>\n`, formatted as prometheus-client formats it (integers with `itoa`, floats with
/// `dtoa`, whatever the kind).
fn push_value(out: &mut String, value: Value) {
    out.push(' ');
    match value {
        Value::Int(v) => out.push_str(itoa::Buffer::new().format(v)),
        Value::Float(v) => out.push_str(dtoa::Buffer::new().format(v)),
    }
    out.push('\n');
}

/// One sample of a per-path family: `path_labels` are the path's, escaped already.
/// `start` is the sample name and `{` ([`sample_start`]).
fn push_path_sample(
    out: &mut String,
    start: &str,
    path_labels: &str,
    label: Option<(&str, &str)>,
    value: Value,
) {
    out.push_str(start);
    out.push_str(path_labels);
    if let Some(label) = label {
        out.push(',');
        push_labels(out, &[label]);
    }
    out.push('}');
    push_value(out, value);
}

/// A per-path family's sample name and the `{` after it, written once per family rather than
/// in three pieces per sample.
fn sample_start(def: MetricDef) -> String {
    let mut start = String::new();
    push_name(&mut start, def, "");
    start.push('{');
    start
}

/// `key="value",…`, values escaped.
fn push_labels(out: &mut String, labels: &[(&str, &str)]) {
    for (i, (key, value)) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(key);
        out.push_str("=\"");
        push_escaped(out, value);
        out.push('"');
    }
}

/// A label value with `\`, `"` and newline escaped, as prometheus-client escapes it (the same
/// in both formats).
fn push_escaped(out: &mut String, value: &str) {
    if !value.bytes().any(|b| matches!(b, b'\\' | b'"' | b'\n')) {
        out.push_str(value);
        return;
    }
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Family `name`'s metadata lines in OpenMetrics and in the classic format, as
/// prometheus-client's encoder writes them (and [`classic`] converts them), built once.
fn metadata(name: &str) -> (&'static str, &'static str) {
    static METADATA: OnceLock<HashMap<&'static str, (String, String)>> = OnceLock::new();
    let all = METADATA.get_or_init(|| {
        METRICS
            .iter()
            .map(|def| {
                let mut registry = Registry::default();
                registry.register_collector(Box::new(Descriptor(*def)));
                let mut openmetrics = String::new();
                text::encode(&mut openmetrics, &registry).expect("writing to a String");
                let classic = classic::from_openmetrics(&openmetrics)
                    .expect("the catalog's metadata converts");
                let openmetrics = openmetrics
                    .strip_suffix("# EOF\n")
                    .expect("an exposition ends with # EOF")
                    .to_string();
                (def.family, (openmetrics, classic))
            })
            .collect()
    });
    let (openmetrics, classic) = all
        .get(name)
        .unwrap_or_else(|| panic!("family {name} is not in the catalog"));
    (openmetrics, classic)
}

/// A family's descriptor and no series.
#[derive(Debug)]
struct Descriptor(MetricDef);

impl prometheus_client::collector::Collector for Descriptor {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let (name, unit, metric_type) = descriptor(self.0);
        encoder.encode_descriptor(name, self.0.help, unit.as_ref(), metric_type)?;
        Ok(())
    }
}
