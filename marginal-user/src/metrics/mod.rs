//! Prometheus metrics: the daemon's [`Snapshot`](crate::status::Snapshot) in the OpenMetrics
//! text format or the classic text format (0.0.4), as the scraper asks ([`Format`]), served on
//! `/metrics` by [`crate::http`].
//!
//! * [`catalog`]: every family's name, type, unit, labels and help, defined once; the
//!   dashboards' and rules' tests check their queries against it.
//! * [`collector`]: which families and series one snapshot has, in catalog order, written
//!   through prometheus-client's encoder (`SnapshotCollector`, the reference) or
//! * [`direct`]: straight into one buffer in either format, what `/metrics` serves (byte for
//!   byte the reference's output; the per-sample encoder was most of a large scrape's CPU).
//! * [`classic`]: the OpenMetrics text converted to the classic format (the metadata lines
//!   the direct writer uses, and the reference).
//! * [`format`]: which format a scrape gets, from its `Accept` header.
//!
//! Labels are `map`, `path` (kernel name), `device` (major:minor), and small fixed sets
//! (`state`, `verdict`, `signal`, `program`, `actuator`, `version`, FC `statistic`), plus what a
//! path is on its one `marginal_path_info` series and what an FC port is (its host and WWPN:
//! ports exist on the host, like paths); nothing unbounded such as
//! a reason text or a time. Per-path and per-map series exist only while their path or map
//! does: every scrape encodes a fresh snapshot, so nothing can go stale.
pub mod catalog;
pub mod classic;
pub mod collector;
pub mod direct;
pub mod format;

use std::sync::Arc;

use prometheus_client::encoding::text;
use prometheus_client::registry::Registry;

pub use catalog::{METRICS, MetricDef, sample_names};
pub use collector::{SnapshotCollector, VERSION};
pub use format::{Format, OPENMETRICS_CONTENT_TYPE, TEXT_CONTENT_TYPE};

use crate::status::Snapshot;

/// Content type of [`render`]'s output (OpenMetrics 1.0; Prometheus asks for it first).
pub const CONTENT_TYPE: &str = OPENMETRICS_CONTENT_TYPE;

/// The complete OpenMetrics exposition of one snapshot, `# EOF` included, as served
/// ([`direct`]).
pub fn render(snapshot: &Snapshot) -> String {
    direct::render(snapshot, Format::OpenMetrics)
}

/// The same exposition written by prometheus-client's encoder through [`SnapshotCollector`]:
/// the reference [`render`] is tested against, byte for byte. The snapshot is moved (or
/// shared) into the collector, not copied.
pub fn render_reference(snapshot: impl Into<Arc<Snapshot>>) -> String {
    let mut out = String::new();
    // A registry per scrape is cheap and keeps the collector free of shared mutable state.
    let mut registry = Registry::default();
    registry.register_collector(Box::new(SnapshotCollector::new(snapshot.into())));
    text::encode(&mut out, &registry).expect("writing to a String cannot fail");
    out
}

/// One snapshot in `format`, written directly in that format ([`direct`]).
pub fn render_as(snapshot: &Snapshot, format: Format) -> String {
    direct::render(snapshot, format)
}

/// The classic format as the reference writes it: [`render_reference`] converted line by line
/// ([`classic`]), which refuses what it cannot convert faithfully.
pub fn render_reference_as(
    snapshot: impl Into<Arc<Snapshot>>,
    format: Format,
) -> anyhow::Result<String> {
    let openmetrics = render_reference(snapshot);
    match format {
        Format::OpenMetrics => Ok(openmetrics),
        Format::Text => classic::from_openmetrics(&openmetrics),
    }
}

#[cfg(test)]
mod tests;
