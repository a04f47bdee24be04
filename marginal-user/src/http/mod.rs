//! The daemon's HTTP endpoint and the small client `marginal status` uses to read it.
//!
//! * `/metrics`: the [`Snapshot`](crate::status::Snapshot) in the OpenMetrics text format or
//!   the classic one, as the `Accept` header asks ([`crate::metrics::Format`]).
//! * `/status`: the same snapshot as JSON, read by `marginal status` ([`crate::cli::status`]).
//! * `/`: a short index.
//!
//! Every request asks the [`SnapshotSource`] for a fresh snapshot, so what is served is
//! exactly what the daemon knows at that instant and nothing is cached to go stale.
pub mod client;
pub mod server;

pub use client::{HttpResponse, get, get_accepting};
pub use server::{SnapshotSource, bind, router, serve, serve_on};

/// Where the daemon listens unless told otherwise: loopback only, since the endpoint has no
/// authentication (put a reverse proxy in front to expose it).
pub const DEFAULT_ADDRESS: &str = "127.0.0.1:9750";
