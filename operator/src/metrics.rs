//! The operator's Prometheus metrics and the listener that serves them with
//! the health probes. Names and labels are listed in docs/metrics.md;
//! labels are bounded (namespace, pool, function, outcome, kind, phase,
//! controller, reason), never an object's name.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

pub struct Metrics {
    pub registry: Registry,
    pub reconcile_duration: HistogramVec,
    pub reconcile_errors: IntCounterVec,
    pub status_patches: IntCounterVec,
    pub objects_finished: IntCounterVec,
    pub events_dropped: IntCounter,
    pub futures_active: IntGaugeVec,
    pub future_units_done: IntGaugeVec,
    pub future_units_total: IntGaugeVec,
    pub queue_depth: IntGaugeVec,
    pub pool_workers: IntGaugeVec,
    pub store_size: IntGauge,
    pub store_fsync: Histogram,
    pub leader: IntGauge,
}

fn counter(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric"); // ok: static names
    r.register(Box::new(c.clone())).expect("registered once"); // ok: fresh registry
    c
}

fn gauge(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric"); // ok: static names
    r.register(Box::new(g.clone())).expect("registered once"); // ok: fresh registry
    g
}

fn histogram(
    r: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
    buckets: Vec<f64>,
) -> HistogramVec {
    let h = HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels)
        .expect("valid metric"); // ok: static names
    r.register(Box::new(h.clone())).expect("registered once"); // ok: fresh registry
    h
}

impl Metrics {
    pub fn new() -> Metrics {
        let r = Registry::new();
        let reconcile_duration = histogram(
            &r,
            "kontinuum_reconcile_duration_seconds",
            "Time one reconcile took.",
            &["controller"],
            vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ],
        );
        let reconcile_errors = counter(
            &r,
            "kontinuum_reconcile_errors_total",
            "Reconciles that failed and will be retried.",
            &["controller", "reason"],
        );
        let status_patches = counter(
            &r,
            "kontinuum_status_patches_total",
            "Status patches sent to the API server.",
            &["kind"],
        );
        let objects_finished = counter(
            &r,
            "kontinuum_objects_finished_total",
            "Tasks and HierarchicalFutures that reached a final phase.",
            &["namespace", "kind", "phase"],
        );
        let events_dropped = IntCounter::new(
            "kontinuum_events_dropped_total",
            "Kubernetes Events not published (queue full or refused).",
        )
        .expect("valid metric"); // ok: static name
        r.register(Box::new(events_dropped.clone()))
            .expect("registered once"); // ok: fresh registry
        let futures_active = gauge(
            &r,
            "kontinuum_futures_active",
            "HierarchicalFutures not yet final.",
            &["namespace"],
        );
        let future_units_done = gauge(
            &r,
            "kontinuum_future_units_done",
            "Work units done, summed over active futures.",
            &["namespace"],
        );
        let future_units_total = gauge(
            &r,
            "kontinuum_future_units_total",
            "Work units expected, summed over active futures.",
            &["namespace"],
        );
        let queue_depth = gauge(
            &r,
            "kontinuum_queue_depth",
            "Tasks per pool by state: queued, running, delayed.",
            &["namespace", "pool", "state"],
        );
        let pool_workers = gauge(
            &r,
            "kontinuum_pool_workers",
            "Workers connected to a pool.",
            &["namespace", "pool"],
        );
        let store_size = IntGauge::new("kontinuum_store_size_bytes", "On-disk size of the store.")
            .expect("valid metric"); // ok: static name
        r.register(Box::new(store_size.clone()))
            .expect("registered once"); // ok: fresh registry
        let store_fsync = Histogram::with_opts(
            HistogramOpts::new(
                "kontinuum_store_fsync_duration_seconds",
                "Time the store took to make one round of writes durable.",
            )
            .buckets(vec![
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
            ]),
        )
        .expect("valid metric"); // ok: static name
        r.register(Box::new(store_fsync.clone()))
            .expect("registered once"); // ok: fresh registry
        let leader = IntGauge::new("kontinuum_leader", "1 while this replica holds the Lease.")
            .expect("valid metric"); // ok: static name
        r.register(Box::new(leader.clone()))
            .expect("registered once"); // ok: fresh registry
        Metrics {
            registry: r,
            reconcile_duration,
            reconcile_errors,
            status_patches,
            objects_finished,
            events_dropped,
            futures_active,
            future_units_done,
            future_units_total,
            queue_depth,
            pool_workers,
            store_size,
            store_fsync,
            leader,
        }
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail for well-formed families.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
