//! The engine's figures as Prometheus series, built at scrape time from
//! [`Engine::figures`]: the engine counts under the lock it holds anyway and
//! knows nothing of Prometheus; this collector reads the counts once per
//! scrape. Names and labels are listed in docs/metrics.md.
//!
//! Known label values are written even at zero (every outcome of a function
//! that ran, every final phase of a namespace), so that `rate()` sees a
//! series from its first increment on and a query for failures answers 0
//! rather than nothing.

use crate::state::AppStateRef;
use kontinuum_api::ObjectKind;
use kontinuum_engine::{AttemptOutcome, Engine, EngineFigures, FINAL_PHASES, Histogram};
use prometheus::core::{Collector, Desc};
use prometheus::proto::{self, MetricFamily, MetricType};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// A worker seen (registering or asking for work) this recently counts as
/// connected; one holding a lease counts however long its tasks take.
pub const CONNECTED_WITHIN: Duration = Duration::from_secs(30);

struct Family {
    name: &'static str,
    help: &'static str,
    kind: MetricType,
    labels: &'static [&'static str],
}

const SUBMITTED: Family = Family {
    name: "kontinuum_tasks_submitted_total",
    help: "Tasks (calls and map leaves) queued for the first time.",
    kind: MetricType::COUNTER,
    labels: &["namespace", "pool"],
};
const COMPLETED: Family = Family {
    name: "kontinuum_tasks_completed_total",
    help: "Attempts finished, by outcome: succeeded, retried, failed, cancelled, timeout.",
    kind: MetricType::COUNTER,
    labels: &["namespace", "pool", "function", "outcome"],
};
const DURATION: Family = Family {
    name: "kontinuum_task_duration_seconds",
    help: "Time from lease to completion of an attempt.",
    kind: MetricType::HISTOGRAM,
    labels: &["namespace", "pool", "function"],
};
const QUEUE: Family = Family {
    name: "kontinuum_queue_depth",
    help: "Tasks per pool by state: queued, running, delayed.",
    kind: MetricType::GAUGE,
    labels: &["namespace", "pool", "state"],
};
const WORKERS: Family = Family {
    name: "kontinuum_pool_workers",
    help: "Workers connected to the worker API that serve the pool.",
    kind: MetricType::GAUGE,
    labels: &["namespace", "pool"],
};
const FUTURES: Family = Family {
    name: "kontinuum_futures_active",
    help: "HierarchicalFutures not yet final.",
    kind: MetricType::GAUGE,
    labels: &["namespace"],
};
const UNITS_DONE: Family = Family {
    name: "kontinuum_future_units_done",
    help: "Work units done, summed over active futures.",
    kind: MetricType::GAUGE,
    labels: &["namespace"],
};
const UNITS_TOTAL: Family = Family {
    name: "kontinuum_future_units_total",
    help: "Work units expected, summed over active futures.",
    kind: MetricType::GAUGE,
    labels: &["namespace"],
};
const FINISHED: Family = Family {
    name: "kontinuum_objects_finished_total",
    help: "Tasks and HierarchicalFutures that reached a final phase.",
    kind: MetricType::COUNTER,
    labels: &["namespace", "kind", "phase"],
};
const FSYNC: Family = Family {
    name: "kontinuum_store_fsync_duration_seconds",
    help: "Time one fsync of the store took.",
    kind: MetricType::HISTOGRAM,
    labels: &[],
};
const STORE_SIZE: Family = Family {
    name: "kontinuum_store_size_bytes",
    help: "On-disk size of the store.",
    kind: MetricType::GAUGE,
    labels: &[],
};

const FAMILIES: [&Family; 11] = [
    &SUBMITTED,
    &COMPLETED,
    &DURATION,
    &QUEUE,
    &WORKERS,
    &FUTURES,
    &UNITS_DONE,
    &UNITS_TOTAL,
    &FINISHED,
    &FSYNC,
    &STORE_SIZE,
];

/// The engine's series, and with the worker API's state its connected
/// workers. Register it once into a [`prometheus::Registry`].
pub struct EngineCollector {
    engine: Engine,
    api: Option<AppStateRef>,
    descs: Vec<Desc>,
}

impl EngineCollector {
    /// The engine's series alone (no worker API: no `kontinuum_pool_workers`).
    pub fn new(engine: Engine) -> EngineCollector {
        EngineCollector::build(engine, None)
    }

    pub(crate) fn build(engine: Engine, api: Option<AppStateRef>) -> EngineCollector {
        let descs = FAMILIES
            .iter()
            .filter(|f| api.is_some() || f.name != WORKERS.name)
            .map(|f| {
                Desc::new(
                    f.name.into(),
                    f.help.into(),
                    f.labels.iter().map(|l| l.to_string()).collect(),
                    Default::default(),
                )
            })
            .collect::<Result<Vec<_>, _>>()
            // The names and labels above are constants that are valid.
            .unwrap_or_default();
        EngineCollector { engine, api, descs }
    }

    fn workers(&self, figures: &EngineFigures) -> Vec<proto::Metric> {
        let Some(api) = &self.api else {
            return Vec::new();
        };
        let now = Instant::now();
        let registered = api.workers.lock();
        let fresh: Vec<Connected<'_>> = registered
            .iter()
            .filter(|(_, w)| now.duration_since(w.last_seen) < CONNECTED_WITHIN)
            .map(|(name, w)| Connected {
                name,
                namespace: w.namespace.as_deref(),
                pool: &w.pool,
            })
            .collect();
        figures
            .pools
            .iter()
            .map(|p| {
                let serving = serving(&fresh, &p.namespace, &p.pool, &p.workers);
                gauge(
                    &[("namespace", &p.namespace), ("pool", &p.pool)],
                    serving as f64,
                )
            })
            .collect()
    }
}

/// A worker that registered lately.
struct Connected<'a> {
    name: &'a str,
    /// The namespace its token confines it to (None: the shared token).
    namespace: Option<&'a str>,
    pool: &'a str,
}

/// The workers serving `pool` in `namespace`: those registered for it (a
/// worker confined to another namespace does not serve it; one with the
/// shared token serves its pool in every namespace; `*` serves every pool),
/// and those holding its leases.
fn serving(connected: &[Connected<'_>], namespace: &str, pool: &str, leasing: &[String]) -> usize {
    let mut names: BTreeSet<&str> = connected
        .iter()
        .filter(|w| w.pool == pool || w.pool == "*")
        .filter(|w| w.namespace.is_none_or(|ns| ns == namespace))
        .map(|w| w.name)
        .collect();
    names.extend(leasing.iter().map(String::as_str));
    names.len()
}

impl Collector for EngineCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let f = self.engine.figures();
        let mut submitted = Vec::new();
        let mut completed = Vec::new();
        let mut duration = Vec::new();
        let mut queue = Vec::new();
        for p in &f.pools {
            let (ns, pool) = (p.namespace.as_str(), p.pool.as_str());
            submitted.push(counter(&[("namespace", ns), ("pool", pool)], p.submitted));
            for (state, n) in [
                ("queued", p.stats.queued),
                ("running", p.stats.running),
                ("delayed", p.stats.delayed),
            ] {
                queue.push(gauge(
                    &[("namespace", ns), ("pool", pool), ("state", state)],
                    n as f64,
                ));
            }
            for func in &p.functions {
                let function = func.function.as_str();
                for (outcome, n) in AttemptOutcome::ALL.iter().zip(func.outcomes) {
                    completed.push(counter(
                        &[
                            ("namespace", ns),
                            ("pool", pool),
                            ("function", function),
                            ("outcome", outcome.as_str()),
                        ],
                        n,
                    ));
                }
                duration.push(histogram(
                    &[("namespace", ns), ("pool", pool), ("function", function)],
                    &func.duration,
                ));
            }
        }
        let mut futures = Vec::new();
        let mut done = Vec::new();
        let mut total = Vec::new();
        let mut finished = Vec::new();
        for n in &f.namespaces {
            let ns = [("namespace", n.namespace.as_str())];
            futures.push(gauge(&ns, n.futures_active as f64));
            done.push(gauge(&ns, n.units_done as f64));
            total.push(gauge(&ns, n.units_total as f64));
            for kind in [ObjectKind::Task, ObjectKind::Future] {
                for phase in FINAL_PHASES {
                    let count = n
                        .finished
                        .iter()
                        .find(|(k, p, _)| *k == kind && *p == phase)
                        .map_or(0, |(_, _, c)| *c);
                    finished.push(counter(
                        &[
                            ("namespace", n.namespace.as_str()),
                            ("kind", kind.as_str()),
                            ("phase", phase.as_str()),
                        ],
                        count,
                    ));
                }
            }
        }
        let workers = self.workers(&f);
        let store_size = f
            .store_bytes
            .map(|b| vec![gauge(&[], b as f64)])
            .unwrap_or_default();
        vec![
            family(&SUBMITTED, submitted),
            family(&COMPLETED, completed),
            family(&DURATION, duration),
            family(&QUEUE, queue),
            family(&WORKERS, workers),
            family(&FUTURES, futures),
            family(&UNITS_DONE, done),
            family(&UNITS_TOTAL, total),
            family(&FINISHED, finished),
            family(&FSYNC, vec![histogram(&[], &f.fsync)]),
            family(&STORE_SIZE, store_size),
        ]
    }
}

fn family(f: &Family, metrics: Vec<proto::Metric>) -> MetricFamily {
    let mut mf = MetricFamily::default();
    mf.set_name(f.name.into());
    mf.set_help(f.help.into());
    mf.set_field_type(f.kind);
    mf.set_metric(metrics);
    mf
}

fn labels(pairs: &[(&str, &str)]) -> Vec<proto::LabelPair> {
    pairs
        .iter()
        .map(|(name, value)| {
            let mut l = proto::LabelPair::default();
            l.set_name((*name).into());
            l.set_value((*value).into());
            l
        })
        .collect()
}

fn counter(pairs: &[(&str, &str)], value: u64) -> proto::Metric {
    let mut c = proto::Counter::default();
    c.set_value(value as f64);
    let mut m = proto::Metric::from_label(labels(pairs));
    m.set_counter(c);
    m
}

fn gauge(pairs: &[(&str, &str)], value: f64) -> proto::Metric {
    let mut g = proto::Gauge::default();
    g.set_value(value);
    let mut m = proto::Metric::from_label(labels(pairs));
    m.set_gauge(g);
    m
}

fn histogram(pairs: &[(&str, &str)], h: &Histogram) -> proto::Metric {
    let buckets = h
        .bounds
        .iter()
        .zip(h.cumulative())
        .map(|(bound, count)| {
            let mut b = proto::Bucket::default();
            b.set_upper_bound(*bound);
            b.set_cumulative_count(count);
            b
        })
        .collect();
    let mut p = proto::Histogram::default();
    p.set_sample_count(h.count);
    p.set_sample_sum(h.sum);
    p.set_bucket(buckets);
    let mut m = proto::Metric::from_label(labels(pairs));
    m.set_histogram(p);
    m
}

#[cfg(test)]
mod tests {
    use super::{Connected, serving};

    #[test]
    fn workers_count_in_the_namespace_they_serve_only() {
        let connected = [
            Connected {
                name: "a-1",
                namespace: Some("default"),
                pool: "default",
            },
            Connected {
                name: "a-2",
                namespace: Some("default"),
                pool: "default",
            },
            Connected {
                name: "shared",
                namespace: None,
                pool: "default",
            },
            Connected {
                name: "any",
                namespace: Some("kontinuum"),
                pool: "*",
            },
        ];
        assert_eq!(serving(&connected, "default", "default", &[]), 3);
        assert_eq!(serving(&connected, "kontinuum", "default", &[]), 2);
        assert_eq!(serving(&connected, "other", "default", &[]), 1);
        let leasing = ["a-1".to_string(), "gone".to_string()];
        assert_eq!(serving(&connected, "default", "default", &leasing), 4);
    }
}
