//! A worker's own metrics (`kontinuum-worker --metrics-listen ADDR`): tasks
//! run by function and outcome, how long they took, slots busy and slots.
//! Names and labels are listed in docs/metrics.md. The function label is
//! capped per worker like the engine's, so generated names cannot grow the
//! label set without bound.

use kontinuum_engine::{MAX_FUNCTIONS_PER_POOL, OTHER_FUNCTION, TASK_DURATION_BUCKETS};
use parking_lot::Mutex;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// One function's series, looked up once per task.
pub(crate) struct FunctionSeries {
    succeeded: IntCounter,
    failed: IntCounter,
    duration: Histogram,
}

impl FunctionSeries {
    pub(crate) fn record(&self, ok: bool, took: Duration) {
        if ok {
            self.succeeded.inc();
        } else {
            self.failed.inc();
        }
        self.duration.observe(took.as_secs_f64());
    }
}

pub struct WorkerMetrics {
    registry: Registry,
    pool: String,
    tasks: IntCounterVec,
    duration: HistogramVec,
    busy: IntGauge,
    functions: Mutex<HashMap<String, Arc<FunctionSeries>>>,
}

impl std::fmt::Debug for WorkerMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerMetrics")
            .field("pool", &self.pool)
            .finish_non_exhaustive()
    }
}

impl WorkerMetrics {
    /// The series of a worker serving `pool` ("*" too) with `slots` slots.
    pub fn new(pool: &str, slots: usize) -> WorkerMetrics {
        let registry = Registry::new();
        let tasks = IntCounterVec::new(
            Opts::new(
                "kontinuum_worker_tasks_total",
                "Tasks this worker ran, by function and outcome (succeeded, failed).",
            ),
            &["pool", "function", "outcome"],
        )
        .expect("valid metric"); // ok: static names
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "kontinuum_worker_task_duration_seconds",
                "Time this worker took to run one task.",
            )
            .buckets(TASK_DURATION_BUCKETS.to_vec()),
            &["pool", "function"],
        )
        .expect("valid metric"); // ok: static names
        let busy_vec = IntGaugeVec::new(
            Opts::new("kontinuum_worker_slots_busy", "Slots running a task."),
            &["pool"],
        )
        .expect("valid metric"); // ok: static names
        let slots_vec = IntGaugeVec::new(
            Opts::new("kontinuum_worker_slots", "Slots (--concurrency)."),
            &["pool"],
        )
        .expect("valid metric"); // ok: static names
        for c in [
            Box::new(tasks.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(duration.clone()),
            Box::new(busy_vec.clone()),
            Box::new(slots_vec.clone()),
        ] {
            registry.register(c).expect("registered once"); // ok: fresh registry
        }
        slots_vec
            .with_label_values(&[pool])
            .set(i64::try_from(slots).unwrap_or(i64::MAX));
        WorkerMetrics {
            registry,
            pool: pool.to_string(),
            tasks,
            duration,
            busy: busy_vec.with_label_values(&[pool]),
            functions: Mutex::new(HashMap::new()),
        }
    }

    /// The series of `function`, or of [`OTHER_FUNCTION`] past the cap.
    pub(crate) fn function(&self, function: &str) -> Arc<FunctionSeries> {
        let mut known = self.functions.lock();
        if let Some(s) = known.get(function) {
            return s.clone();
        }
        let label = if known.len() >= MAX_FUNCTIONS_PER_POOL {
            OTHER_FUNCTION
        } else {
            function
        };
        if let Some(s) = known.get(label) {
            return s.clone();
        }
        let series = Arc::new(FunctionSeries {
            succeeded: self
                .tasks
                .with_label_values(&[&self.pool, label, "succeeded"]),
            failed: self.tasks.with_label_values(&[&self.pool, label, "failed"]),
            duration: self.duration.with_label_values(&[&self.pool, label]),
        });
        known.insert(label.to_string(), series.clone());
        series
    }

    /// Marks a slot busy until the returned guard is dropped (when the
    /// task ends, however it ends).
    pub(crate) fn busy(self: &Arc<Self>) -> BusySlot {
        self.busy.inc();
        BusySlot(self.clone())
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The text exposition of the worker's series.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding well-formed families into a Vec cannot fail.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

pub(crate) struct BusySlot(Arc<WorkerMetrics>);

impl Drop for BusySlot {
    fn drop(&mut self) {
        self.0.busy.dec();
    }
}

/// How long a scraper may take to send a request's headers (and how long a
/// keep-alive connection may sit idle): a worker pod's metrics port is open
/// to its whole network, so a client that never finishes must not hold a
/// connection for ever.
pub const METRICS_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once; more are closed at once (a scraper needs one).
pub const METRICS_MAX_CONNECTIONS: usize = 32;

/// Serves the worker's metrics on `/metrics` (and `/healthz`) at `listen`,
/// in the background. Binds before returning, so a wrong address fails at
/// start; returns the address bound.
pub async fn serve_metrics(
    listen: std::net::SocketAddr,
    metrics: Arc<WorkerMetrics>,
) -> Result<std::net::SocketAddr, std::io::Error> {
    use axum::routing::get;
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let bound = listener.local_addr()?;
    let app = axum::Router::new()
        .route(
            "/metrics",
            get(move || {
                let metrics = metrics.clone();
                async move {
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "text/plain; version=0.0.4",
                        )],
                        metrics.render(),
                    )
                }
            }),
        )
        .route("/healthz", get(|| async { "ok\n" }));
    tokio::spawn(accept_loop(listener, app, METRICS_HEADER_TIMEOUT));
    Ok(bound)
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    header_timeout: Duration,
) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;
    let slots = Arc::new(tokio::sync::Semaphore::new(METRICS_MAX_CONNECTIONS));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "metrics: cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            // Over the cap: closed unanswered.
            drop(stream);
            continue;
        };
        let service = TowerToHyperService::new(app.clone());
        let connection = http.serve_connection(TokioIo::new(stream), service);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "metrics connection ended with an error");
            }
            drop(slot);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_scraper_that_never_finishes_its_headers_is_cut_off() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new().route("/metrics", axum::routing::get(|| async { "m\n" }));
        tokio::spawn(accept_loop(listener, app, Duration::from_millis(300)));

        let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
        slow.write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\n")
            .await
            .unwrap();
        let started = std::time::Instant::now();
        let mut sink = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut sink)).await;
        assert!(
            read.is_ok(),
            "the half-sent request was not closed within 5 s"
        );
        assert!(started.elapsed() >= Duration::from_millis(250));

        let mut ok = tokio::net::TcpStream::connect(addr).await.unwrap();
        ok.write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        ok.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("m\n"), "{answer}");
    }

    #[test]
    fn functions_past_the_cap_share_one_series() {
        let m = Arc::new(WorkerMetrics::new("p", 4));
        for i in 0..MAX_FUNCTIONS_PER_POOL + 5 {
            m.function(&format!("gen.f{i}"))
                .record(true, Duration::from_millis(3));
        }
        let text = m.render();
        let other = format!(
            "kontinuum_worker_tasks_total{{function=\"{OTHER_FUNCTION}\",outcome=\"succeeded\",pool=\"p\"}} 5"
        );
        assert!(text.contains(&other), "{text}");
        assert!(text.contains("kontinuum_worker_slots{pool=\"p\"} 4"));
        let busy = m.busy();
        assert!(
            m.render()
                .contains("kontinuum_worker_slots_busy{pool=\"p\"} 1")
        );
        drop(busy);
        assert!(
            m.render()
                .contains("kontinuum_worker_slots_busy{pool=\"p\"} 0")
        );
    }
}
