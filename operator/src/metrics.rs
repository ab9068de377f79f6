//! The operator's Prometheus registry: the controllers' own series (here),
//! and, once the store is open, the engine's and the worker API's
//! (registered by [`kontinuum_server::Server::register_metrics`]). Names and
//! labels are listed in docs/metrics.md; labels are bounded (namespace,
//! pool, controller, kind, reason), never an object's name.

use kontinuum_api::WorkerPool;
use kube::runtime::reflector::Store;
use parking_lot::Mutex;
use prometheus::{
    HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

/// The controllers, as the `controller` label names them.
pub const CONTROLLERS: [&str; 3] = ["task", "future", "workerpool"];

pub struct Metrics {
    pub registry: Registry,
    pub reconcile_duration: HistogramVec,
    pub reconcile_errors: IntCounterVec,
    pub status_patches: IntCounterVec,
    pub events_dropped: IntCounter,
    pub pool_replicas_desired: IntGaugeVec,
    pub pool_replicas: IntGaugeVec,
    pub pool_replicas_ready: IntGaugeVec,
    pub pool_demand: IntGaugeVec,
    pub leader: IntGauge,
    pools: Mutex<Vec<Store<WorkerPool>>>,
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

impl Metrics {
    pub fn new() -> Metrics {
        let r = Registry::new();
        let reconcile_duration = HistogramVec::new(
            HistogramOpts::new(
                "kontinuum_reconcile_duration_seconds",
                "Time one reconcile took.",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
            &["controller"],
        )
        .expect("valid metric"); // ok: static names
        r.register(Box::new(reconcile_duration.clone()))
            .expect("registered once"); // ok: fresh registry
        let reconcile_errors = counter(
            &r,
            "kontinuum_reconcile_errors_total",
            "Reconciles that failed and will be retried.",
            &["controller", "reason"],
        );
        // Every (controller, reason) starts at 0: a rate over a series
        // born at its first error would miss that error, and a dashboard
        // asking for errors should read 0, not nothing.
        for controller in CONTROLLERS {
            reconcile_duration.with_label_values(&[controller]);
            for reason in crate::error::Error::REASONS {
                reconcile_errors.with_label_values(&[controller, reason]);
            }
        }
        let status_patches = counter(
            &r,
            "kontinuum_status_patches_total",
            "Status patches sent to the API server.",
            &["kind"],
        );
        for kind in CONTROLLERS {
            status_patches.with_label_values(&[kind]);
        }
        let events_dropped = IntCounter::new(
            "kontinuum_events_dropped_total",
            "Kubernetes Events not published (queue full or refused).",
        )
        .expect("valid metric"); // ok: static name
        r.register(Box::new(events_dropped.clone()))
            .expect("registered once"); // ok: fresh registry
        let pool = ["namespace", "pool"];
        let pool_replicas_desired = gauge(
            &r,
            "kontinuum_pool_replicas_desired",
            "Replicas the WorkerPool's scaler (or spec.replicas) asks for.",
            &pool,
        );
        let pool_replicas = gauge(
            &r,
            "kontinuum_pool_replicas",
            "The worker Deployment's current replicas (status.replicas).",
            &pool,
        );
        let pool_replicas_ready = gauge(
            &r,
            "kontinuum_pool_replicas_ready",
            "The worker Deployment's ready replicas.",
            &pool,
        );
        let pool_demand = gauge(
            &r,
            "kontinuum_pool_demand",
            "The work the WorkerPool's scaler sizes it on: tasks its queue will become (a map range not yet split counts its leaves), running, and due delayed.",
            &pool,
        );
        let leader = IntGauge::new("kontinuum_leader", "1 while this replica holds the Lease.")
            .expect("valid metric"); // ok: static name
        r.register(Box::new(leader.clone()))
            .expect("registered once"); // ok: fresh registry
        Metrics {
            registry: r,
            reconcile_duration,
            reconcile_errors,
            status_patches,
            events_dropped,
            pool_replicas_desired,
            pool_replicas,
            pool_replicas_ready,
            pool_demand,
            leader,
            pools: Mutex::new(Vec::new()),
        }
    }

    /// Runs one reconcile of `controller`, observing its duration.
    pub async fn timed<T>(&self, controller: &str, reconcile: impl Future<Output = T>) -> T {
        let started = std::time::Instant::now();
        let out = reconcile.await;
        self.reconcile_duration
            .with_label_values(&[controller])
            .observe(started.elapsed().as_secs_f64());
        out
    }

    /// From now on the replicas series follow the WorkerPools these
    /// caches hold (the controllers' own, kept current by their watches):
    /// a pool shows the replicas its status reports, and a deleted pool
    /// leaves no series behind.
    pub fn follow_pools(&self, pools: Vec<Store<WorkerPool>>) {
        *self.pools.lock() = pools;
    }

    /// Sets the replicas series from the pools' statuses, dropping those
    /// of pools that are gone.
    fn refresh_pools(&self, pools: &[Store<WorkerPool>]) {
        let gauges = [
            &self.pool_replicas_desired,
            &self.pool_replicas,
            &self.pool_replicas_ready,
            &self.pool_demand,
        ];
        for g in gauges {
            g.reset();
        }
        for pool in pools.iter().flat_map(Store::state) {
            let (Some(ns), Some(status)) = (pool.metadata.namespace.as_deref(), &pool.status)
            else {
                continue;
            };
            let name = pool.metadata.name.as_deref().unwrap_or_default();
            let values = [
                i64::from(status.desired_replicas),
                i64::from(status.replicas),
                i64::from(status.ready_replicas),
                i64::try_from(status.demand).unwrap_or(i64::MAX),
            ];
            for (g, v) in gauges.iter().zip(values) {
                g.with_label_values(&[ns, name]).set(v);
            }
        }
    }

    /// The text exposition of every metric. Collecting reads the engine
    /// under its lock: call it off the async threads.
    pub fn render(&self) -> String {
        // One scrape at a time: another's refresh would empty the replicas
        // series while this one gathers.
        let pools = self.pools.lock();
        self.refresh_pools(&pools);
        kontinuum_server::metrics::render(&self.registry)
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_series_exist_at_zero_for_every_controller_and_reason() {
        let text = Metrics::new().render();
        for controller in CONTROLLERS {
            for reason in crate::error::Error::REASONS {
                let line = format!(
                    "kontinuum_reconcile_errors_total{{controller=\"{controller}\",reason=\"{reason}\"}} 0"
                );
                assert!(text.contains(&line), "{line} missing:\n{text}");
            }
        }
    }

    #[test]
    fn pools_show_the_replicas_of_their_status_while_they_exist() {
        use kube::runtime::watcher::Event;
        let m = Metrics::new();
        let (reader, mut writer) = kube::runtime::reflector::store::<WorkerPool>();
        m.follow_pools(vec![reader]);
        let pool: WorkerPool = serde_json::from_value(serde_json::json!({
            "apiVersion": kontinuum_api::API_VERSION, "kind": "WorkerPool",
            "metadata": {"name": "squares", "namespace": "team-a"},
            "spec": {},
            "status": {"desiredReplicas": 3, "replicas": 2, "readyReplicas": 1, "demand": 250}
        }))
        .unwrap();
        writer.apply_watcher_event(&Event::Apply(pool.clone()));
        let text = m.render();
        for (name, v) in [
            ("kontinuum_pool_replicas_desired", 3),
            ("kontinuum_pool_replicas", 2),
            ("kontinuum_pool_replicas_ready", 1),
            ("kontinuum_pool_demand", 250),
        ] {
            let line = format!("{name}{{namespace=\"team-a\",pool=\"squares\"}} {v}");
            assert!(text.contains(&line), "{line} missing:\n{text}");
        }
        writer.apply_watcher_event(&Event::Delete(pool));
        assert!(!m.render().contains("squares"));
    }
}
