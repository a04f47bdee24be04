//! The server: axum on the daemon's tokio runtime, stateless between requests.
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;

use crate::metrics::{self, Format};
use crate::status::Snapshot;

/// Anything that can tell the daemon's state now.
///
/// Called from a blocking-pool thread, so it may take a lock or do a quick syscall (reading
/// the eBPF maps) without stalling the runtime.
pub trait SnapshotSource: Send + Sync + 'static {
    fn snapshot(&self) -> Snapshot;
}

impl<F> SnapshotSource for F
where
    F: Fn() -> Snapshot + Send + Sync + 'static,
{
    fn snapshot(&self) -> Snapshot {
        self()
    }
}

type Source = Arc<dyn SnapshotSource>;

/// Binds the listener; the error names the address (already in use, not local, ...).
pub async fn bind(addr: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} for /metrics and /status"))
}

/// Binds `addr` and serves until `shutdown` completes.
pub async fn serve(
    addr: SocketAddr,
    source: impl SnapshotSource,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    serve_on(bind(addr).await?, source, shutdown).await
}

/// Serves on a listener already bound (tests bind port 0 and read the address back).
pub async fn serve_on(
    listener: TcpListener,
    source: impl SnapshotSource,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let addr = listener.local_addr().context("listener address")?;
    log::info!("serving http://{addr}/metrics and http://{addr}/status");
    axum::serve(listener, router(source))
        .with_graceful_shutdown(shutdown)
        .await
        .with_context(|| format!("HTTP server on {addr}"))
}

/// The routes, without a listener.
pub fn router(source: impl SnapshotSource) -> Router {
    let source: Source = Arc::new(source);
    Router::new()
        .route("/", get(index))
        .route("/metrics", get(metrics_handler))
        .route("/status", get(status_handler))
        .with_state(source)
}

/// Takes a snapshot and turns it into a response on a blocking-pool thread: both take time
/// in proportion to the paths watched (milliseconds with thousands), which would otherwise
/// hold up a runtime worker.
async fn answer(
    source: &Source,
    respond: impl FnOnce(Snapshot) -> Response + Send + 'static,
) -> Response {
    let source = Arc::clone(source);
    tokio::task::spawn_blocking(move || respond(source.snapshot()))
        .await
        .unwrap_or_else(|err| {
            log::error!("building the status snapshot failed: {err}");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("building the snapshot failed: {err}\n"),
            )
                .into_response()
        })
}

/// The exposition in the format the scraper's `Accept` header asks for ([`Format`]).
async fn metrics_handler(State(source): State<Source>, headers: HeaderMap) -> Response {
    let accept = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(",");
    let format = Format::negotiate((!accept.is_empty()).then_some(accept.as_str()));
    answer(&source, move |snapshot| {
        // Caches between scraper and daemon must not give one format to a client that asked
        // for the other.
        let vary = (header::VARY, "Accept");
        let body = metrics::render_as(&snapshot, format);
        ([(header::CONTENT_TYPE, format.content_type()), vary], body).into_response()
    })
    .await
}

async fn status_handler(State(source): State<Source>) -> Response {
    answer(&source, |snapshot| {
        match serde_json::to_string_pretty(&snapshot) {
            Ok(mut body) => {
                body.push('\n');
                ([(header::CONTENT_TYPE, "application/json")], body).into_response()
            }
            Err(err) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("encoding the status: {err}\n"),
            )
                .into_response(),
        }
    })
    .await
}

async fn index() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        concat!(
            "<html><head><title>marginal</title></head><body>\n",
            "<h1>marginal ",
            env!("CARGO_PKG_VERSION"),
            "</h1>\n<ul>\n",
            "<li><a href=\"/metrics\">/metrics</a>: Prometheus metrics (OpenMetrics or the classic text format, as asked)</li>\n",
            "<li><a href=\"/status\">/status</a>: maps and paths as JSON (<code>marginal status</code>)</li>\n",
            "</ul>\n</body></html>\n"
        ),
    )
}
