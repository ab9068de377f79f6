//! The metrics listener: /metrics, /healthz (the process answers) and
//! /readyz (leader, store open, controllers running, creates admitted).

use crate::error::Error;
use crate::metrics::Metrics;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Clone)]
struct Shared {
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
}

/// Binds now (so a wrong address fails at start), serves in the background.
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
) -> Result<SocketAddr, Error> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| Error::MetricsBind { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| Error::MetricsBind { addr, source })?;
    let app = Router::new()
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(Shared { metrics, ready });
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!("metrics listener stopped: {e}");
        }
    });
    Ok(bound)
}

async fn metrics_text(State(s): State<Shared>) -> axum::response::Response {
    // Collecting takes the engine's lock: not on an async thread.
    match tokio::task::spawn_blocking(move || s.metrics.render()).await {
        Ok(text) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response(),
        Err(e) => {
            tracing::error!("collecting the metrics failed: {e}");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "collecting the metrics failed\n",
            )
                .into_response()
        }
    }
}

async fn readyz(State(s): State<Shared>) -> impl IntoResponse {
    if s.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ready\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: waiting for the Lease, the store, or the API server to admit Tasks and futures\n",
        )
    }
}
