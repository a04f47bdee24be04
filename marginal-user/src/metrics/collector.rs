//! Encodes one [`Snapshot`] as metric families at scrape time.
//!
//! Nothing is kept between scrapes: each scrape writes the series of the maps, paths and
//! programs the snapshot holds, so the series of a path or map that went away are simply not
//! written again (no stale series to delete, by construction).
//!
//! Nothing is built per series either: each family's series are encoded as they are read off
//! the snapshot, with labels borrowed from it. A list of owned label sets per series, built
//! before encoding, was most of a large scrape's CPU (allocating and freeing them) and left
//! tens of MiB of freed heap behind it.
use std::fmt;
use std::iter;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;

use super::catalog::{self as c, Kind, MetricDef};
use crate::status::{MapStatus, PATH_STATES, PathStatus, Snapshot};

/// The running binary's version, for `marginal_build_info`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// A prometheus-client collector over the snapshot taken for this scrape (shared, not copied:
/// a registry wants its collectors `'static`).
#[derive(Debug)]
pub struct SnapshotCollector {
    snapshot: Arc<Snapshot>,
}

impl SnapshotCollector {
    pub fn new(snapshot: Arc<Snapshot>) -> Self {
        Self { snapshot }
    }
}

/// One series' labels, borrowed from the snapshot, in the order the catalog names them.
pub(super) type Labels<'a, const N: usize> = [(&'static str, &'a str); N];

#[derive(Clone, Copy, Debug)]
pub(super) enum Value {
    Int(u64),
    Float(f64),
}

impl Value {
    fn flag(on: bool) -> Self {
        Value::Int(u64::from(on))
    }
}

/// Where one snapshot's families go, in catalog order ([`write_families`]): prometheus-client's
/// encoder ([`SnapshotCollector`], the reference) or the direct text writer
/// ([`super::direct`], what is served). Both get the same series with the same values: which
/// families exist, in what order, with which labels and values is decided once, here.
pub(super) trait Sink {
    /// Family `def` with `series`; a family without series (no maps yet, no finished run) is
    /// left out entirely.
    fn family<'a, const N: usize>(
        &mut self,
        def: MetricDef,
        series: impl Iterator<Item = (Labels<'a, N>, Value)>,
    ) -> fmt::Result;

    /// A per-path family: every path's series, labelled `map`, `path`, `device` (and the
    /// label a [`PathSeries::Label`] adds).
    fn path_family(
        &mut self,
        snapshot: &Snapshot,
        def: MetricDef,
        read: &PathSeries,
    ) -> fmt::Result;

    /// Several per-path families, one after the other.
    fn path_families(
        &mut self,
        snapshot: &Snapshot,
        families: &[(MetricDef, PathSeries)],
    ) -> fmt::Result {
        for (def, read) in families {
            self.path_family(snapshot, *def, read)?;
        }
        Ok(())
    }

    /// `marginal_path_io_latency_seconds`: one histogram per measured path and direction.
    fn path_latency(&mut self, snapshot: &Snapshot) -> fmt::Result;
}

/// prometheus-client's encoder as a [`Sink`].
struct Reference<'e, 'w>(&'e mut DescriptorEncoder<'w>);

impl Sink for Reference<'_, '_> {
    fn family<'a, const N: usize>(
        &mut self,
        def: MetricDef,
        series: impl Iterator<Item = (Labels<'a, N>, Value)>,
    ) -> fmt::Result {
        family(self.0, def, series)
    }

    fn path_family(
        &mut self,
        snapshot: &Snapshot,
        def: MetricDef,
        read: &PathSeries,
    ) -> fmt::Result {
        path_family(self.0, snapshot, def, read)
    }

    fn path_latency(&mut self, snapshot: &Snapshot) -> fmt::Result {
        path_latency(self.0, snapshot)
    }
}

fn family<'a, const N: usize>(
    encoder: &mut DescriptorEncoder,
    def: MetricDef,
    series: impl Iterator<Item = (Labels<'a, N>, Value)>,
) -> fmt::Result {
    let mut series = series.peekable();
    if series.peek().is_none() {
        return Ok(());
    }
    let (name, unit, metric_type) = descriptor(def);
    let mut metric = encoder.encode_descriptor(name, def.help, unit.as_ref(), metric_type)?;
    for (labels, value) in series {
        debug_assert!(
            labels
                .iter()
                .map(|(k, _)| *k)
                .eq(def.labels.names().iter().copied()),
            "labels of {}",
            def.family
        );
        if def.kind == Kind::Info {
            // An info's labels are its value; it is always 1.
            metric.encode_info(&labels)?;
        } else if N == 0 {
            // An empty family label set would be written as `name{}`.
            encode_value(&mut metric, def.kind, value)?;
        } else {
            encode_value(&mut metric.encode_family(&labels)?, def.kind, value)?;
        }
    }
    Ok(())
}

/// What `# HELP`, `# TYPE` and `# UNIT` of `def` say: the name without its unit (which
/// prometheus-client appends itself; the catalog spells family names out in full), the unit
/// and the type.
pub(super) fn descriptor(def: MetricDef) -> (&'static str, Option<Unit>, MetricType) {
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
        Kind::Histogram => MetricType::Histogram,
    };
    (name, unit, metric_type)
}

fn encode_value(series: &mut MetricEncoder, kind: Kind, value: Value) -> fmt::Result {
    match (kind, value) {
        (Kind::Counter, Value::Int(v)) => series.encode_counter::<NoLabelSet, _, u64>(&v, None),
        (Kind::Counter, Value::Float(v)) => series.encode_counter::<NoLabelSet, _, u64>(&v, None),
        (_, Value::Int(v)) => series.encode_gauge(&v),
        (_, Value::Float(v)) => series.encode_gauge(&v),
    }
}

/// Every path with its map, in snapshot order.
pub(super) fn paths(snapshot: &Snapshot) -> impl Iterator<Item = (&MapStatus, &PathStatus)> {
    snapshot
        .maps
        .iter()
        .flat_map(|map| map.paths.iter().map(move |path| (map, path)))
}

fn path_labels<'a>(map: &'a MapStatus, path: &'a PathStatus) -> Labels<'a, 3> {
    [
        ("map", map.name.as_str()),
        ("path", path.name.as_str()),
        ("device", path.device.as_str()),
    ]
}

/// How a per-path family's series are read off a path.
pub(super) enum PathSeries {
    /// One series with this value.
    Always(fn(&PathStatus) -> Value),
    /// One series with this value, or none if the path has none.
    Optional(fn(&PathStatus) -> Option<Value>),
    /// One series, always 1, whose label `key` holds what `current` reads off the path. One
    /// series per value the label could take (1 for the path's, 0 for the others) made the
    /// state and verdict families 8 of a path's 21 series.
    Label {
        key: &'static str,
        current: fn(&PathStatus) -> &str,
    },
}

use PathSeries::{Always, Label, Optional};

/// Reads a per-map family's value off a map.
type MapValue = fn(&MapStatus) -> Value;

/// The per-map families, in catalog order.
const MAP_FAMILIES: &[(MetricDef, MapValue)] = &[
    (c::MAP_PATHS, |m| Value::Int(m.paths.len() as u64)),
    (c::MAP_ACTIVE_PATHS, |m| Value::Int(m.active_paths.into())),
    (c::MAP_CHECKING, |m| Value::flag(m.checking)),
    (c::MAP_DOUBLE_FAILED_TIME, |m| {
        Value::Int(m.double_failed_time_seconds)
    }),
    (c::MAP_ERR_SAMPLE_TIME, |m| {
        Value::Int(m.err_sample_time_seconds)
    }),
    (c::MAP_ERR_RATE_THRESHOLD, |m| {
        Value::Int(m.err_rate_threshold_permille.into())
    }),
    (c::MAP_ERR_RECHECK_GAP_TIME, |m| {
        Value::Int(m.err_recheck_gap_time_seconds)
    }),
    (c::MAP_SETMARGINAL_FALLBACK, |m| {
        Value::flag(!m.action_fallback.is_empty())
    }),
];

/// The per-path families, in catalog order.
const PATH_FAMILIES: &[(MetricDef, PathSeries)] = &[
    (
        c::PATH_STATE,
        Label {
            key: "state",
            current: |p| &p.state,
        },
    ),
    (c::PATH_ACTIVE, Always(|p| Value::flag(p.active))),
    (
        c::PATH_FAILED_BY_MARGINAL,
        Always(|p| Value::flag(p.failed_by_marginal)),
    ),
    (c::PATH_FAILURES, Always(|p| Value::Int(p.kernel_failures))),
    (
        c::PATH_FAILURE_SIGNAL,
        Label {
            key: "signal",
            current: |p| &p.failure_signal,
        },
    ),
    (
        c::PATH_IO_ERRORS,
        Always(|p| Value::Int(p.kernel_io_errors)),
    ),
    (
        c::PATH_NON_PATH_ERRORS,
        Always(|p| Value::Int(p.kernel_non_path_errors)),
    ),
    (
        c::PATH_DOUBLE_FAILURES,
        Always(|p| Value::Int(p.kernel_double_failures)),
    ),
    (c::PATH_OWN_FAILS, Always(|p| Value::Int(p.own_fails))),
    (
        c::PATH_SAME_OUTAGE_REFAILS,
        Always(|p| Value::Int(p.same_outage_refails)),
    ),
    (
        c::PATH_SAMPLING_RUNS,
        Always(|p| Value::Int(p.sampling_runs)),
    ),
    (
        c::PATH_SAMPLING_READS,
        Always(|p| Value::Int(p.sampling_reads)),
    ),
    (
        c::PATH_SAMPLING_ERRORS,
        Always(|p| Value::Int(p.sampling_errors)),
    ),
    (
        c::PATH_SAMPLING_TIMEOUTS,
        Always(|p| Value::Int(p.sampling_timeouts)),
    ),
    // A run in progress exists only while it runs, like a next recheck: its gauges are absent
    // between runs rather than two zeros on every idle path.
    (
        c::PATH_SAMPLING_RUN_READS,
        Optional(|p| {
            p.run_in_progress()
                .then_some(Value::Int(p.current_run_reads))
        }),
    ),
    (
        c::PATH_SAMPLING_RUN_ERRORS,
        Optional(|p| {
            p.run_in_progress()
                .then_some(Value::Int(p.current_run_errors))
        }),
    ),
    (
        c::PATH_ERROR_RATE,
        Optional(|p| p.last_rate_permille.map(|r| Value::Int(r.into()))),
    ),
    (
        c::PATH_LAST_VERDICT,
        Label {
            key: "verdict",
            current: PathStatus::verdict,
        },
    ),
    (
        c::PATH_NEXT_RECHECK,
        // Overdue is "due now", not a negative countdown.
        Optional(|p| p.next_recheck_seconds.map(|s| Value::Float(s.max(0.0)))),
    ),
    (
        c::PATH_FAILED_BY_DAEMON,
        Always(|p| Value::Int(p.failed_by_daemon_total)),
    ),
    (
        c::PATH_RETURNED_BY_DAEMON,
        Always(|p| Value::Int(p.returned_by_daemon_total)),
    ),
    (
        c::PATH_LAST_REACTION,
        Optional(|p| p.last_reaction_seconds.map(Value::Float)),
    ),
];

/// log2 of the exposed histogram bounds' step: every other kernel bucket (powers of 4 ns, from
/// 8 µs to 137 s), so a path's histogram is 14 series per direction rather than 28.
const EXPOSED_FIRST_LOG2: u32 = 13;
const EXPOSED_LAST_LOG2: u32 = 37;

/// The kernel's buckets folded into the exposed bounds (not cumulative; the encoder adds up).
pub(super) fn exposed_buckets(h: &crate::status::HistogramStatus) -> Vec<(f64, u64)> {
    let mut out: Vec<(f64, u64)> = (EXPOSED_FIRST_LOG2..=EXPOSED_LAST_LOG2)
        .step_by(2)
        .map(|log2| ((1u64 << log2) as f64 / 1e9, 0))
        .chain(iter::once((f64::INFINITY, 0)))
        .collect();
    let last = out.len() - 1;
    for (i, &count) in h.buckets.iter().enumerate() {
        let slot = match marginal_common::latency_bucket_upper_ns(i) {
            // The first exposed bound at or above the kernel bucket's upper bound.
            Some(upper) => {
                let log2 = upper.trailing_zeros().max(EXPOSED_FIRST_LOG2);
                (log2 - EXPOSED_FIRST_LOG2).div_ceil(2) as usize
            }
            None => last,
        };
        out[slot.min(last)].1 += count;
    }
    out
}

/// `marginal_path_io_latency_seconds`: one histogram per measured path and direction.
fn path_latency(encoder: &mut DescriptorEncoder, snapshot: &Snapshot) -> fmt::Result {
    let def = c::PATH_IO_LATENCY;
    let mut measured = paths(snapshot)
        .filter_map(|(map, path)| Some((path_labels(map, path), path.latency.as_ref()?)))
        .peekable();
    if measured.peek().is_none() {
        return Ok(());
    }
    let (name, unit, metric_type) = descriptor(def);
    let mut metric = encoder.encode_descriptor(name, def.help, unit.as_ref(), metric_type)?;
    for ([m, p, d], latency) in measured {
        for (direction, h) in [("read", &latency.read), ("write", &latency.write)] {
            let labels = [m, p, d, ("direction", direction)];
            metric
                .encode_family(&labels)?
                .encode_histogram::<NoLabelSet>(
                    h.sum_seconds,
                    h.count(),
                    &exposed_buckets(h),
                    None,
                )?;
        }
    }
    Ok(())
}

fn map_family(
    sink: &mut impl Sink,
    snapshot: &Snapshot,
    def: MetricDef,
    read: MapValue,
) -> fmt::Result {
    let series = snapshot
        .maps
        .iter()
        .map(|map| ([("map", map.name.as_str())], read(map)));
    sink.family(def, series)
}

fn path_family(
    encoder: &mut DescriptorEncoder,
    snapshot: &Snapshot,
    def: MetricDef,
    read: &PathSeries,
) -> fmt::Result {
    let labelled = paths(snapshot).map(|(map, path)| (path_labels(map, path), path));
    match read {
        Always(read) => family(encoder, def, labelled.map(|(l, p)| (l, read(p)))),
        Optional(read) => family(
            encoder,
            def,
            labelled.filter_map(|(l, p)| Some((l, read(p)?))),
        ),
        Label { key, current } => {
            let series =
                labelled.map(|([m, p, d], path)| ([m, p, d, (*key, current(path))], Value::Int(1)));
            family(encoder, def, series)
        }
    }
}

/// Per map, how many of its paths are in each state, every state listed: the counts by state,
/// zeros included, that `marginal_path_state` (one series per path) does not give.
fn paths_in_state(snapshot: &Snapshot) -> impl Iterator<Item = (Labels<'_, 2>, Value)> {
    snapshot.maps.iter().flat_map(|map| {
        PATH_STATES.iter().map(move |state| {
            let count = map.paths.iter().filter(|p| p.state == *state).count();
            let labels = [("map", map.name.as_str()), ("state", *state)];
            (labels, Value::Int(count as u64))
        })
    })
}

/// One `marginal_path_info` series per path.
fn path_info(snapshot: &Snapshot) -> impl Iterator<Item = (Labels<'_, 11>, Value)> {
    paths(snapshot).map(|(map, path)| {
        let [m, p, d] = path_labels(map, path);
        let t = &path.transport;
        // A daemon's JSON from before transports were read has none: "other", as for a
        // device sysfs could not place.
        let kind = if t.kind.is_empty() { "other" } else { &t.kind };
        let labels = [
            m,
            p,
            d,
            ("wwid", path.wwid.as_str()),
            ("vendor", path.vendor.as_str()),
            ("product", path.product.as_str()),
            ("transport", kind),
            ("host", t.host.as_str()),
            ("target_port", t.target_port.as_str()),
            ("target_node", t.target_node.as_str()),
            ("host_port", t.host_port.as_str()),
        ];
        (labels, Value::Int(1))
    })
}

fn fc_host_statistics(snapshot: &Snapshot) -> impl Iterator<Item = (Labels<'_, 3>, Value)> {
    snapshot.fc_host_ports.iter().flat_map(|port| {
        port.statistics.iter().map(move |(name, value)| {
            let labels = [
                ("host", port.host.as_str()),
                ("host_port", port.port_name.as_str()),
                ("statistic", name.as_str()),
            ];
            (labels, Value::Int(*value))
        })
    })
}

fn fc_rport_statistics(snapshot: &Snapshot) -> impl Iterator<Item = (Labels<'_, 4>, Value)> {
    snapshot.fc_remote_ports.iter().flat_map(|port| {
        port.statistics.iter().map(move |(name, value)| {
            let labels = [
                ("host", port.host.as_str()),
                ("rport", port.name.as_str()),
                ("target_port", port.port_name.as_str()),
                ("statistic", name.as_str()),
            ];
            (labels, Value::Int(*value))
        })
    })
}

impl Collector for SnapshotCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        write_families(&mut Reference(&mut encoder), &self.snapshot)
    }
}

/// Every family of snapshot `s` into `e`, in catalog order (which the exposition tests check).
pub(super) fn write_families(e: &mut impl Sink, s: &Snapshot) -> fmt::Result {
    e.family(
        c::BUILD,
        iter::once(([("version", VERSION)], Value::Int(1))),
    )?;
    e.family(c::UPTIME, iter::once(([], Value::Float(s.uptime_seconds))))?;
    let signals = s.signals.iter();
    let live = |sig: &'_ crate::status::SignalStatus| Value::flag(sig.live);
    e.family(
        c::SIGNAL_LIVE,
        signals.map(|sig| ([("signal", sig.name.as_str())], live(sig))),
    )?;
    let actuator = (!s.actuator.is_empty()).then_some([("actuator", s.actuator.as_str())]);
    e.family(
        c::ACTUATOR,
        actuator.into_iter().map(|l| (l, Value::Int(1))),
    )?;
    e.family(
        c::ACTUATOR_ERRORS,
        iter::once(([], Value::Int(s.actuator_errors_total))),
    )?;
    e.family(
        c::KERNEL_EVENTS_LOST,
        iter::once(([], Value::Int(s.kernel_events_lost_total))),
    )?;
    e.family(
        c::STATE_FILE_PROBLEM,
        iter::once(([], Value::flag(!s.state_file_problem.is_empty()))),
    )?;
    for (def, read) in MAP_FAMILIES {
        map_family(e, s, *def, *read)?;
    }
    let left = s.maps.iter().map(|m| {
        let reason = m.left_to_multipathd.as_str();
        let labels = [
            ("map", m.name.as_str()),
            ("reason", if reason.is_empty() { "none" } else { reason }),
        ];
        (labels, Value::flag(!reason.is_empty()))
    });
    e.family(c::MAP_LEFT_TO_MULTIPATHD, left)?;
    e.family(c::MAP_PATHS_IN_STATE, paths_in_state(s))?;
    e.family(c::PATH_INFO, path_info(s))?;
    e.path_families(s, PATH_FAMILIES)?;
    e.path_latency(s)?;
    e.path_family(
        s,
        c::PATH_LATENCY_RATIO,
        &Optional(|p| p.latency_ratio.map(Value::Float)),
    )?;
    let programs = || {
        s.programs
            .iter()
            .map(|p| ([("program", p.name.as_str())], p))
    };
    let runs = programs().map(|(l, p)| (l, Value::Int(p.run_count)));
    e.family(c::EBPF_PROGRAM_RUNS, runs)?;
    let time = programs().map(|(l, p)| (l, Value::Float(p.run_time_ns as f64 / 1e9)));
    e.family(c::EBPF_PROGRAM_RUN_TIME, time)?;
    e.family(c::FC_HOST_STATISTIC, fc_host_statistics(s))?;
    e.family(c::FC_RPORT_STATISTIC, fc_rport_statistics(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_buckets_fold_into_the_first_exposed_bound_above_them() {
        let mut h = crate::status::HistogramStatus {
            buckets: vec![0; marginal_common::LATENCY_BUCKETS],
            sum_seconds: 0.0,
        };
        // 1 below 2 us, 1 in [1, 2) ms, 1 above 137 s.
        h.buckets[0] = 1;
        h.buckets[marginal_common::latency_bucket(1_500_000)] = 1;
        h.buckets[marginal_common::LATENCY_BUCKETS - 1] = 1;
        let out = exposed_buckets(&h);
        assert_eq!(out.len(), 14);
        assert_eq!(out[0], ((1u64 << 13) as f64 / 1e9, 1));
        // 2^21 ns = 2.1 ms is the first exposed bound above 1.5 ms.
        let at = out
            .iter()
            .position(|(le, _)| *le == (1u64 << 21) as f64 / 1e9);
        assert_eq!(out[at.unwrap()].1, 1);
        assert_eq!(out[13], (f64::INFINITY, 1));
        assert_eq!(out.iter().map(|(_, n)| n).sum::<u64>(), 3);
    }
}
