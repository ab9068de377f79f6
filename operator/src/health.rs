//! The metrics listener: /metrics, /healthz and /readyz, and what they
//! report ([`Health`]).
//!
//! - `/healthz` (the chart's liveness probe) fails while the process cannot
//!   do its job however long it waits: the store failed, the worker API
//!   stopped, or the API server has not answered for longer than the renew
//!   deadline. The kubelet then restarts it, which is what recovers a store
//!   after space is freed.
//! - `/readyz` (readiness) also needs the Lease and the API server's
//!   admission of Tasks and futures; a replica waiting for the Lease is
//!   alive but not ready.

use crate::error::Error;
use crate::metrics::Metrics;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use parking_lot::Mutex;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// What the probes answer from. Written by the parts that know (the Lease,
/// the monitors of the store, the worker API and the API server).
#[derive(Debug, Default)]
pub struct Health {
    leading: AtomicBool,
    admitted: AtomicBool,
    /// Why the process cannot work, by source (a source clears its own).
    problems: Mutex<Vec<(Source, String)>>,
}

/// Who reported a problem.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Store,
    WorkerApi,
    ApiServer,
}

/// A probe's answer: 200 with "ok"/"ready", or 503 with the reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub ok: bool,
    pub text: String,
}

impl Health {
    pub fn set_leading(&self, leading: bool) {
        self.leading.store(leading, Ordering::SeqCst);
    }

    pub fn is_leading(&self) -> bool {
        self.leading.load(Ordering::SeqCst)
    }

    pub fn set_admitted(&self) {
        self.admitted.store(true, Ordering::SeqCst);
    }

    /// Records (Some) or clears (None) `source`'s problem.
    pub fn report(&self, source: Source, problem: Option<String>) {
        let mut problems = self.problems.lock();
        problems.retain(|(s, _)| *s != source);
        if let Some(p) = problem {
            problems.push((source, p));
        }
    }

    /// The liveness answer.
    pub fn live(&self) -> Verdict {
        let problems = self.problems.lock();
        if problems.is_empty() {
            return Verdict {
                ok: true,
                text: "ok\n".into(),
            };
        }
        let reasons: Vec<&str> = problems.iter().map(|(_, p)| p.as_str()).collect();
        Verdict {
            ok: false,
            text: format!("unhealthy: {}\n", reasons.join("; ")),
        }
    }

    /// The readiness answer.
    pub fn ready(&self) -> Verdict {
        let live = self.live();
        if !live.ok {
            return live;
        }
        let text = if !self.is_leading() {
            "not ready: not leading (waiting for the Lease, or stepped down)\n"
        } else if !self.admitted.load(Ordering::SeqCst) {
            "not ready: waiting for the API server to admit Tasks and futures\n"
        } else {
            return Verdict {
                ok: true,
                text: "ready\n".into(),
            };
        };
        Verdict {
            ok: false,
            text: text.into(),
        }
    }
}

#[derive(Clone)]
struct Shared {
    metrics: Arc<Metrics>,
    health: Arc<Health>,
}

/// Binds now (so a wrong address fails at start), serves in the background.
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
) -> Result<SocketAddr, Error> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| Error::MetricsBind { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| Error::MetricsBind { addr, source })?;
    let app = Router::new()
        .route("/metrics", get(metrics_text))
        .route(
            "/healthz",
            get(|State(s): State<Shared>| async move { answer(s.health.live()) }),
        )
        .route(
            "/readyz",
            get(|State(s): State<Shared>| async move { answer(s.health.ready()) }),
        )
        .with_state(Shared { metrics, health });
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!("metrics listener stopped: {e}");
        }
    });
    Ok(bound)
}

fn answer(v: Verdict) -> impl IntoResponse {
    let code = if v.ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, v.text)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_waiting_replica_is_alive_but_not_ready() {
        let h = Health::default();
        assert!(h.live().ok);
        let r = h.ready();
        assert!(!r.ok && r.text.contains("not leading"), "{r:?}");
        h.set_leading(true);
        assert!(h.ready().text.contains("admit"));
        h.set_admitted();
        assert_eq!(h.ready().text, "ready\n");
    }

    #[test]
    fn a_problem_fails_both_probes_until_its_source_clears_it() {
        let h = Health::default();
        h.set_leading(true);
        h.set_admitted();
        h.report(Source::Store, Some("the store failed: disk full".into()));
        h.report(
            Source::ApiServer,
            Some("the API server has not answered".into()),
        );
        let live = h.live();
        assert!(!live.ok);
        assert!(live.text.contains("disk full") && live.text.contains("not answered"));
        assert_eq!(h.ready(), live);
        h.report(Source::ApiServer, None);
        assert!(!h.live().ok, "the store's problem stays");
        h.report(Source::Store, None);
        assert!(h.live().ok && h.ready().ok);
    }
}
