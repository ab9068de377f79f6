//! The worker API's own metrics: requests by route template and status
//! code (`kontinuum_http_requests_total`), counted by one layer around the
//! router; and a small `/metrics` listener for processes that have no other
//! (`kontinuum serve`, benchmarks). The operator serves its registry on its
//! own listener beside its probes. `Server::register_metrics` puts these
//! and the engine's series into a registry: it knows the server's state,
//! which this module does not need to.

use crate::conn::Limits;
use crate::error::ServeError;
use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus::{Encoder, IntCounterVec, Opts, Registry, TextEncoder};
use std::future::Future;
use std::net::SocketAddr;

/// The label of requests that matched no route (404s of any path): the
/// raw path would make the label set unbounded.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// Cloned into the layer that counts: one counter behind both (an `Arc`).
#[derive(Clone)]
pub(crate) struct ApiMetrics {
    requests: IntCounterVec,
}

impl ApiMetrics {
    pub(crate) fn new() -> ApiMetrics {
        let requests = IntCounterVec::new(
            Opts::new(
                "kontinuum_http_requests_total",
                "Worker API requests by route template and status code.",
            ),
            &["route", "code"],
        );
        ApiMetrics {
            requests: requests.expect("valid metric"), // ok: static name and labels
        }
    }

    /// Registers the request counter into `registry` (once per registry).
    pub(crate) fn register(&self, registry: &Registry) -> Result<(), prometheus::Error> {
        registry.register(Box::new(self.requests.clone()))
    }
}

/// Counts every request by the route it matched (`/v1/objects/{namespace}/
/// {kind}/{name}`, not the path asked for) and the status answered.
pub(crate) async fn count(State(metrics): State<ApiMetrics>, req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().cloned();
    let response = next.run(req).await;
    let route = route.as_ref().map_or(UNMATCHED_ROUTE, MatchedPath::as_str);
    metrics
        .requests
        .with_label_values(&[route, response.status().as_str()])
        .inc();
    response
}

/// The text exposition of everything in `registry`. Collecting reads the
/// engine under its lock: call it off the async threads.
pub fn render(registry: &Registry) -> String {
    let mut out = Vec::new();
    // Encoding well-formed families into a Vec cannot fail.
    let _ = TextEncoder::new().encode(&registry.gather(), &mut out);
    String::from_utf8(out).unwrap_or_default()
}

/// The value of the first sample of `name` in a text exposition whose
/// labels include every `(label, value)` of `want` (for tests and tools
/// reading a scrape).
pub fn sample(exposition: &str, name: &str, want: &[(&str, &str)]) -> Option<f64> {
    exposition
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .find(|(series, _)| {
            let (n, labels) = series.split_once('{').unwrap_or((series, ""));
            n == name
                && want
                    .iter()
                    .all(|(k, v)| labels.contains(&format!("{k}=\"{v}\"")))
        })
        .and_then(|(_, v)| v.parse().ok())
}

/// Serves `registry` on `/metrics` (and `/healthz`) at `listen` until
/// `shutdown` resolves. Binds before returning, so a wrong address fails
/// at start; returns the address bound.
pub async fn serve_metrics(
    listen: SocketAddr,
    registry: Registry,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<SocketAddr, ServeError> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| ServeError::Bind {
            addr: listen,
            source,
        })?;
    let bound = listener.local_addr()?;
    let app = Router::new()
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(|| async { "ok\n" }))
        .with_state(registry);
    tokio::spawn(crate::conn::serve(
        listener,
        app,
        Limits::default(),
        shutdown,
    ));
    Ok(bound)
}

async fn metrics_text(State(registry): State<Registry>) -> Response {
    match tokio::task::spawn_blocking(move || render(&registry)).await {
        Ok(text) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response(),
        Err(_) => (
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "collecting the metrics failed\n",
        )
            .into_response(),
    }
}
