//! The Grafana dashboard on a real Prometheus: it scrapes an operator (out
//! of cluster, against the test control plane) and two workers while a job
//! runs — tasks that succeed, tasks that fail and retry, a long map — and a
//! WorkerPool scales with the queue. Every PromQL expression of the
//! dashboard must answer with data; one that answers nothing fails the test
//! with its panel's title. The scraped series must also be exactly those
//! docs/metrics.md lists for each process.

use kontinuum_e2e::dashboard::{dashboard_path, empty_panels, load};
use kontinuum_e2e::metrics::{Prometheus, disagreements, documented, served};
use kontinuum_e2e::procs::{Operator, OperatorOptions, Proc, free_port, http_get, start_worker};
use kontinuum_e2e::{TestNamespace, apply, client, ensure_crds, kubectl_result, repo_root};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

/// Tasks that succeed, and tasks that fail, retry twice and fail for good.
fn tasks(ns: &str) {
    for i in 0..6 {
        apply(
            ns,
            &json!({"apiVersion": "kontinuum.dev/v1alpha1", "kind": "Task",
                    "metadata": {"name": format!("ok-{i}")},
                    "spec": {"call": {"function": "std.echo", "args": {"i": i}}}}),
        );
    }
    for i in 0..FLAKY {
        apply(
            ns,
            &json!({"apiVersion": "kontinuum.dev/v1alpha1", "kind": "Task",
                    "metadata": {"name": format!("flaky-{i}")},
                    "spec": {"call": {"function": "std.fail", "args": {"message": "not yet"}},
                             "retry": {"maxAttempts": 3, "backoff": {"initial": "1s"}}}}),
        );
    }
}

const FLAKY: usize = 4;

/// A map long enough to still run when the dashboard is checked (about
/// 40 s on eight slots), with a queue deep enough to scale the pool.
fn long_map(ns: &str) {
    apply(
        ns,
        &json!({"apiVersion": "kontinuum.dev/v1alpha1", "kind": "HierarchicalFuture",
                "metadata": {"name": "naps"},
                "spec": {"map": {"source": {"range": {"start": 0, "end": 3000}},
                                 "function": {"function": "std.sleep", "args": {"ms": 100}},
                                 "shardSize": 10, "reduce": "count"}}}),
    );
}

fn worker(dir: &Path, label: &str, op: &Operator, metrics_port: u16) -> Proc {
    let listen = format!("127.0.0.1:{metrics_port}");
    start_worker(
        dir,
        label,
        &op.api,
        "default",
        &op.token_file,
        &["--concurrency", "4", "--metrics-listen", &listen],
    )
}

fn host_port(url: &str) -> String {
    url.trim_start_matches("http://").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_query_returns_data_while_a_job_runs() {
    ensure_crds().await;
    let client = client().await;
    let ns = TestNamespace::create(&client, "dash").await;
    let dir = tempfile::tempdir().unwrap();
    let options = OperatorOptions {
        leader_elect: true,
        ..OperatorOptions::watching(dir.path(), ns.name())
    };
    let mut op = Operator::start(dir.path(), "a", &options);
    op.wait_ready(Duration::from_secs(60));
    let worker_ports = [free_port(), free_port()];
    let _w1 = worker(dir.path(), "1", &op, worker_ports[0]);
    let _w2 = worker(dir.path(), "2", &op, worker_ports[1]);
    let workers: Vec<String> = worker_ports
        .iter()
        .map(|p| format!("127.0.0.1:{p}"))
        .collect();
    let prometheus = Prometheus::start(
        dir.path(),
        &[
            ("kontinuum-operator", vec![host_port(&op.metrics)]),
            ("kontinuum-workers", workers.clone()),
        ],
    );

    // A pool that scales with the queue: its pods (kwok's) run nothing; the
    // work is done by the two workers above, with the shared token.
    apply(
        ns.name(),
        &json!({"apiVersion": "kontinuum.dev/v1alpha1", "kind": "WorkerPool",
                "metadata": {"name": "default"},
                "spec": {"concurrency": 4,
                         "scaling": {"minReplicas": 0, "maxReplicas": 3,
                                     "targetPerReplica": 20, "scaleDownDelay": "60s"}}}),
    );
    let started = Instant::now();
    tasks(ns.name());
    // The map goes in once the retries are over: its leaves, deeper in
    // their tree, would be served first and keep the retries waiting.
    let completed = |outcome: &str| {
        format!(
            "sum(kontinuum_tasks_completed_total{{namespace=\"{}\",outcome=\"{outcome}\"}})",
            ns.name()
        )
    };
    loop {
        let failed = prometheus.scalar(&completed("failed")).await.unwrap_or(0.0);
        let retried = prometheus
            .scalar(&completed("retried"))
            .await
            .unwrap_or(0.0);
        if failed >= FLAKY as f64 && retried >= 2.0 * FLAKY as f64 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the flaky tasks did not fail twice and then for good within 60 s: retried {retried}, failed {failed}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    long_map(ns.name());

    let dashboard = load(&dashboard_path());
    let values: BTreeMap<String, String> = [
        ("namespace".to_owned(), ns.name().to_owned()),
        ("pool".to_owned(), "default".to_owned()),
    ]
    .into();
    let running = format!(
        "sum(kontinuum_futures_active{{namespace=\"{}\"}})",
        ns.name()
    );
    let seen = Instant::now();
    while prometheus.scalar(&running).await.is_none_or(|n| n < 1.0) {
        assert!(
            seen.elapsed() < Duration::from_secs(60),
            "Prometheus did not see the job's future running within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Rates need two scrapes in their window and the retries their backoff:
    // ask until every panel answers, for as long as the job runs.
    let mut last = Vec::new();
    loop {
        let empty = empty_panels(&dashboard, &prometheus.url, &values, "30s")
            .await
            .unwrap_or_else(|e| panic!("a dashboard query failed: {e}"));
        let still_running = prometheus.scalar(&running).await.is_some_and(|n| n >= 1.0);
        if empty.is_empty() {
            assert!(
                still_running,
                "the dashboard answered only after the job ended ({:?}): a longer job is needed",
                started.elapsed()
            );
            break;
        }
        last = empty;
        assert!(
            started.elapsed() < Duration::from_secs(150) && still_running,
            "panels with no data while the job ran ({:?} after submitting):\n{}",
            started.elapsed(),
            last.iter()
                .map(|p| format!("- {} ({}): {}", p.panel, p.ref_id, p.query))
                .collect::<Vec<_>>()
                .join("\n")
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    eprintln!(
        "every panel answered {:?} after submitting (last empty: {:?})",
        started.elapsed(),
        last.iter().map(|p| &p.panel).collect::<Vec<_>>()
    );

    // What the job did, as Prometheus saw it.
    let succeeded = prometheus
        .scalar(&completed("succeeded"))
        .await
        .unwrap_or(0.0);
    assert!(
        succeeded >= 6.0,
        "succeeded attempts in Prometheus: {succeeded}"
    );
    let desired = format!(
        "max_over_time(kontinuum_pool_replicas_desired{{namespace=\"{}\",pool=\"default\"}}[5m])",
        ns.name()
    );
    let scaled = prometheus.scalar(&desired).await.unwrap_or(0.0);
    assert!(
        scaled >= 1.0,
        "the pool never asked for a replica: {scaled}"
    );
    let deployment = kubectl_result(
        &[
            "get",
            "deployment",
            "default-workers",
            "-n",
            ns.name(),
            "-o",
            "jsonpath={.spec.replicas}",
        ],
        None,
    );
    assert!(
        deployment
            .stdout
            .trim()
            .parse::<i64>()
            .is_ok_and(|r| r >= 1),
        "the Deployment did not scale up: {:?}",
        deployment.stdout
    );
    // Both workers share the map's leaves (a second each); which of them
    // took the six quick tasks is up to their polls, so the second may
    // finish its first leaf only after the panels answered: ask until then.
    let both = Instant::now();
    loop {
        let per_worker = prometheus
            .query(
                "count(count by (instance) (kontinuum_worker_tasks_total{outcome=\"succeeded\"} > 0))",
            )
            .await;
        if per_worker["data"]["result"][0]["value"][1] == "2" {
            break;
        }
        assert!(
            both.elapsed() < Duration::from_secs(30),
            "both workers did not run tasks within 30 s more: {per_worker}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Each process serves exactly what docs/metrics.md lists for it.
    let docs_path = repo_root().join("docs/metrics.md");
    let docs = documented(&std::fs::read_to_string(&docs_path).unwrap());
    let (code, text) = http_get(&format!("{}/metrics", op.metrics)).expect("operator /metrics");
    assert_eq!(code, 200);
    let problems = disagreements(&docs, &served(&text), |d| {
        matches!(d.section.as_str(), "Work" | "Controllers" | "Worker API")
    });
    assert!(problems.is_empty(), "operator:\n{}", problems.join("\n"));
    for w in &workers {
        let (code, text) = http_get(&format!("http://{w}/metrics")).expect("worker /metrics");
        assert_eq!(code, 200);
        let problems = disagreements(&docs, &served(&text), |d| d.section == "Worker");
        assert!(problems.is_empty(), "worker {w}:\n{}", problems.join("\n"));
    }
}
