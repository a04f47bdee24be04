//! Prometheus metrics: the daemon's [`Snapshot`](crate::status::Snapshot) in the OpenMetrics
//! text format, served on `/metrics` by [`crate::http`].
//!
//! * [`catalog`]: every family's name, type, unit, labels and help, defined once; the
//!   dashboards' and rules' tests check their queries against it.
//! * [`collector`]: a prometheus-client `Collector` that writes one snapshot's series.
//!
//! Labels are `map`, `path` (kernel name), `device` (major:minor), and small fixed sets
//! (`state`, `verdict`, `signal`, `program`, `actuator`, `version`, FC `statistic`), plus what a
//! path is on its one `marginal_path_info` series and what an FC port is (its host and WWPN:
//! ports exist on the host, like paths); nothing unbounded such as
//! a reason text or a time. Per-path and per-map series exist only while their path or map
//! does: every scrape encodes a fresh snapshot, so nothing can go stale.
pub mod catalog;
pub mod collector;

use std::sync::Arc;

use prometheus_client::encoding::text;
use prometheus_client::registry::Registry;

pub use catalog::{METRICS, MetricDef, sample_names};
pub use collector::{SnapshotCollector, VERSION};

use crate::status::Snapshot;

/// Content type of [`render`]'s output (OpenMetrics 1.0; Prometheus asks for it first).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The complete exposition of one snapshot, `# EOF` included. The snapshot is moved (or
/// shared) into the collector, not copied.
pub fn render(snapshot: impl Into<Arc<Snapshot>>) -> String {
    let mut out = String::new();
    // A registry per scrape is cheap and keeps the collector free of shared mutable state.
    let mut registry = Registry::default();
    registry.register_collector(Box::new(SnapshotCollector::new(snapshot.into())));
    text::encode(&mut out, &registry).expect("writing to a String cannot fail");
    out
}

#[cfg(test)]
mod tests;
