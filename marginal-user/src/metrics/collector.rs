//! Encodes one [`Snapshot`] as metric families at scrape time.
//!
//! Nothing is kept between scrapes: each scrape writes the series of the maps, paths and
//! programs the snapshot holds, so the series of a path or map that went away are simply not
//! written again (no stale series to delete, by construction).
use std::collections::HashMap;
use std::fmt;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;

use super::catalog::{self as c, Kind, MetricDef, VERDICTS};
use crate::status::{MapStatus, PATH_STATES, PathStatus, Snapshot};

/// The running binary's version, for `marginal_build_info`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// A prometheus-client collector over a snapshot taken for this scrape.
#[derive(Debug)]
pub struct SnapshotCollector {
    snapshot: Snapshot,
}

impl SnapshotCollector {
    pub fn new(snapshot: Snapshot) -> Self {
        Self { snapshot }
    }
}

type LabelSet = Vec<(&'static str, String)>;

#[derive(Clone, Copy, Debug)]
enum Value {
    Int(u64),
    Float(f64),
}

/// The series of one family, collected before any of it is written so that a family without
/// series (no maps yet, no finished run) is left out entirely.
struct Family {
    def: MetricDef,
    series: Vec<(LabelSet, Value)>,
}

impl Family {
    fn new(def: MetricDef) -> Self {
        Self {
            def,
            series: Vec::new(),
        }
    }

    fn push(&mut self, labels: LabelSet, value: Value) {
        debug_assert_eq!(
            labels.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
            self.def.labels.names(),
            "labels of {}",
            self.def.family
        );
        self.series.push((labels, value));
    }

    fn int(&mut self, labels: LabelSet, value: u64) {
        self.push(labels, Value::Int(value));
    }

    fn float(&mut self, labels: LabelSet, value: f64) {
        self.push(labels, Value::Float(value));
    }

    fn flag(&mut self, labels: LabelSet, on: bool) {
        self.int(labels, u64::from(on));
    }

    fn encode(&self, encoder: &mut DescriptorEncoder) -> fmt::Result {
        if self.series.is_empty() {
            return Ok(());
        }
        let def = &self.def;
        // prometheus-client appends the unit to the name it is given; the catalog spells
        // family names out in full, so hand it the name without its unit suffix.
        let unit = def.unit.map(|u| match u {
            "seconds" => Unit::Seconds,
            other => Unit::Other(other.to_string()),
        });
        let name = match def.unit {
            Some(u) => def
                .family
                .strip_suffix(u)
                .and_then(|n| n.strip_suffix('_'))
                .expect("family names end with their unit"),
            None => def.family,
        };
        let metric_type = match def.kind {
            Kind::Counter => MetricType::Counter,
            Kind::Gauge => MetricType::Gauge,
            Kind::Info => MetricType::Info,
        };
        let mut metric = encoder.encode_descriptor(name, def.help, unit.as_ref(), metric_type)?;
        for (labels, value) in &self.series {
            if def.kind == Kind::Info {
                // An info's labels are its value; it is always 1.
                metric.encode_info(labels)?;
                continue;
            }
            if labels.is_empty() {
                // An empty family label set would be written as `name{}`.
                encode_value(&mut metric, def.kind, *value)?;
            } else {
                encode_value(&mut metric.encode_family(labels)?, def.kind, *value)?;
            }
        }
        Ok(())
    }
}

fn encode_value(series: &mut MetricEncoder, kind: Kind, value: Value) -> fmt::Result {
    match (kind, value) {
        (Kind::Counter, Value::Int(v)) => series.encode_counter::<NoLabelSet, _, u64>(&v, None),
        (Kind::Counter, Value::Float(v)) => series.encode_counter::<NoLabelSet, _, u64>(&v, None),
        (_, Value::Int(v)) => series.encode_gauge(&v),
        (_, Value::Float(v)) => series.encode_gauge(&v),
    }
}

fn with(mut labels: LabelSet, key: &'static str, value: &str) -> LabelSet {
    labels.push((key, value.to_string()));
    labels
}

/// The families of one scrape, in catalog order, found by their definition.
struct Families {
    list: Vec<Family>,
    index: HashMap<&'static str, usize>,
}

impl Families {
    fn new() -> Self {
        let list: Vec<Family> = c::METRICS.iter().copied().map(Family::new).collect();
        let index = list
            .iter()
            .enumerate()
            .map(|(i, f)| (f.def.family, i))
            .collect();
        Self { list, index }
    }

    fn get(&mut self, def: MetricDef) -> &mut Family {
        let i = *self
            .index
            .get(def.family)
            .expect("every family is in the catalog");
        &mut self.list[i]
    }
}

/// All families of `snapshot`, in catalog order.
fn families(snapshot: &Snapshot) -> Families {
    let mut f = Families::new();
    f.get(c::BUILD)
        .int(vec![("version", VERSION.to_string())], 1);
    f.get(c::UPTIME).float(vec![], snapshot.uptime_seconds);
    for signal in &snapshot.signals {
        f.get(c::SIGNAL_LIVE)
            .flag(vec![("signal", signal.name.clone())], signal.live);
    }
    if !snapshot.actuator.is_empty() {
        f.get(c::ACTUATOR)
            .int(vec![("actuator", snapshot.actuator.clone())], 1);
    }
    for map in &snapshot.maps {
        map_families(&mut f, map);
        for path in &map.paths {
            path_families(&mut f, map, path);
        }
    }
    for program in &snapshot.programs {
        let l = || vec![("program", program.name.clone())];
        f.get(c::EBPF_PROGRAM_RUNS).int(l(), program.run_count);
        f.get(c::EBPF_PROGRAM_RUN_TIME)
            .float(l(), program.run_time_ns as f64 / 1e9);
    }
    f
}

fn map_families(f: &mut Families, map: &MapStatus) {
    let l = || vec![("map", map.name.clone())];
    f.get(c::MAP_PATHS).int(l(), map.paths.len() as u64);
    f.get(c::MAP_ACTIVE_PATHS).int(l(), map.active_paths.into());
    f.get(c::MAP_CHECKING).flag(l(), map.checking);
    f.get(c::MAP_DOUBLE_FAILED_TIME)
        .int(l(), map.double_failed_time_seconds);
    f.get(c::MAP_ERR_SAMPLE_TIME)
        .int(l(), map.err_sample_time_seconds);
    f.get(c::MAP_ERR_RATE_THRESHOLD)
        .int(l(), map.err_rate_threshold_permille.into());
    f.get(c::MAP_ERR_RECHECK_GAP_TIME)
        .int(l(), map.err_recheck_gap_time_seconds);
}

fn path_families(f: &mut Families, map: &MapStatus, path: &PathStatus) {
    let l = || -> LabelSet {
        vec![
            ("map", map.name.clone()),
            ("path", path.name.clone()),
            ("device", path.device.clone()),
        ]
    };
    // One series per state, so that `sum by (state)` counts paths and a state no path is in
    // still reads 0 instead of vanishing.
    for s in PATH_STATES {
        f.get(c::PATH_STATE)
            .flag(with(l(), "state", s), path.state == *s);
    }
    f.get(c::PATH_ACTIVE).flag(l(), path.active);
    f.get(c::PATH_FAILED_BY_MARGINAL)
        .flag(l(), path.failed_by_marginal);
    f.get(c::PATH_FAILURES).int(l(), path.kernel_failures);
    f.get(c::PATH_IO_ERRORS).int(l(), path.kernel_io_errors);
    f.get(c::PATH_DOUBLE_FAILURES)
        .int(l(), path.kernel_double_failures);
    f.get(c::PATH_SAMPLING_RUNS).int(l(), path.sampling_runs);
    f.get(c::PATH_SAMPLING_READS).int(l(), path.sampling_reads);
    f.get(c::PATH_SAMPLING_ERRORS)
        .int(l(), path.sampling_errors);
    f.get(c::PATH_SAMPLING_TIMEOUTS)
        .int(l(), path.sampling_timeouts);
    f.get(c::PATH_SAMPLING_RUN_READS)
        .int(l(), path.current_run_reads);
    f.get(c::PATH_SAMPLING_RUN_ERRORS)
        .int(l(), path.current_run_errors);
    if let Some(permille) = path.last_rate_permille {
        f.get(c::PATH_ERROR_RATE).int(l(), permille.into());
    }
    let last = if path.last_verdict.is_empty() {
        "none"
    } else {
        path.last_verdict.as_str()
    };
    for v in VERDICTS {
        f.get(c::PATH_LAST_VERDICT)
            .flag(with(l(), "verdict", v), last == *v);
    }
    if let Some(secs) = path.next_recheck_seconds {
        // Overdue is "due now", not a negative countdown.
        f.get(c::PATH_NEXT_RECHECK).float(l(), secs.max(0.0));
    }
    f.get(c::PATH_FAILED_BY_DAEMON)
        .int(l(), path.failed_by_daemon_total);
    f.get(c::PATH_RETURNED_BY_DAEMON)
        .int(l(), path.returned_by_daemon_total);
}

impl Collector for SnapshotCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        for family in &families(&self.snapshot).list {
            family.encode(&mut encoder)?;
        }
        Ok(())
    }
}
