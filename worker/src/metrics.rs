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

/// Serves the worker's metrics on `/metrics` (and `/healthz`) at `listen`,
/// in the background, with the worker API's connection limits (header
/// timeout, connection cap): a pod's metrics port is open to its whole
/// network. Binds before returning, so a wrong address fails at start;
/// returns the address bound.
pub async fn serve_metrics(
    listen: std::net::SocketAddr,
    metrics: Arc<WorkerMetrics>,
) -> Result<std::net::SocketAddr, kontinuum_server::ServeError> {
    kontinuum_server::metrics::serve_metrics(
        listen,
        metrics.registry().clone(),
        std::future::pending(),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

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
