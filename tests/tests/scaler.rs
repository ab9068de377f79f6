//! The WorkerPool scaler on a real control plane, with no workers at all
//! (nothing takes work off the queue, so the demand moves only when the
//! test moves it): a map not yet split scales a pool from 0 to its
//! maximum at once; a demand that stayed high and quiet for longer than
//! scaleDownDelay still holds the replicas a whole delay after it falls;
//! and so does an operator killed in that window and started again.

use kontinuum_e2e::pool::{deployment_replicas, wait_until};
use kontinuum_e2e::procs::{Operator, OperatorOptions};
use kontinuum_e2e::{TestNamespace, apply, client, ensure_crds, kubectl};
use kontinuum_server::Client as ApiClient;
use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};

const POOL: &str = "ahead";

async fn setup(prefix: &str) -> (Operator, tempfile::TempDir, TestNamespace) {
    ensure_crds().await;
    let client = client().await;
    let ns = TestNamespace::create(&client, prefix).await;
    let dir = tempfile::tempdir().unwrap();
    let op = start_operator(dir.path(), "a", ns.name());
    (op, dir, ns)
}

fn start_operator(dir: &Path, label: &str, ns: &str) -> Operator {
    let mut op = Operator::start(dir, label, &OperatorOptions::watching(dir, ns));
    op.wait_ready(Duration::from_secs(60));
    op
}

/// A pool of 0..`max` replicas, 10 tasks per replica, at 0 replicas.
fn pool_at_zero(ns: &str, max: i32, delay: &str) {
    apply(
        ns,
        &json!({"apiVersion": "kontinuum.dev/v1alpha1", "kind": "WorkerPool",
                "metadata": {"name": POOL},
                "spec": {"scaling": {"minReplicas": 0, "maxReplicas": max,
                                     "targetPerReplica": 10, "scaleDownDelay": delay}}}),
    );
    wait_until(
        "the Deployment at 0 replicas",
        Duration::from_secs(30),
        || deployment_replicas(ns, POOL) == Some(0),
    );
}

/// A map of `items` positions in shards of `shard` on the pool (one
/// queued node until a worker splits it).
fn map(ns: &str, name: &str, items: u64, shard: u64) {
    apply(
        ns,
        &json!({"apiVersion": "kontinuum.dev/v1alpha1", "kind": "HierarchicalFuture",
                "metadata": {"name": name},
                "spec": {"pool": POOL,
                         "map": {"source": {"range": {"start": 0, "end": items}},
                                 "function": {"function": "std.sleep", "args": {"ms": 1}},
                                 "shardSize": shard}}}),
    );
}

/// Fails if the Deployment's replicas are anything but `replicas` at any
/// look (every 50 ms) until `until`.
fn held(ns: &str, replicas: i64, until: Instant, why: &str) {
    let from = Instant::now();
    while Instant::now() < until {
        let seen = deployment_replicas(ns, POOL);
        assert_eq!(
            seen,
            Some(replicas),
            "{why}: {seen:?} replicas {:?} into the hold, {:?} before its end",
            from.elapsed(),
            until.saturating_duration_since(Instant::now())
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn status_field(ns: &str, field: &str) -> String {
    kubectl(&[
        "get",
        "workerpool",
        POOL,
        "-n",
        ns,
        "-o",
        &format!("jsonpath={{.status.{field}}}"),
    ])
    .trim()
    .to_string()
}

/// The pool at its maximum on a queue nobody takes from, quiet for 20 s;
/// returns as the queue starts to drain. 21 Tasks (each one queued node,
/// so any count of the demand sees them) ask for ceil(21 / 10) = 3
/// replicas, and the first cancelled one already takes the demand below
/// them: from that instant on the replicas must stay for scaleDownDelay.
async fn high_and_quiet_then_drop(op: &Operator, ns: &str, max: i64) -> Instant {
    let api = ApiClient::new(&op.api, Some(op.token())).unwrap();
    let tasks: Vec<Value> = (0..21)
        .map(|i| {
            json!({"apiVersion": "kontinuum.dev/v1alpha1", "kind": "Task",
                   "metadata": {"name": format!("wait-{i:02}"), "namespace": ns},
                   "spec": {"pool": POOL, "call": {"function": "std.echo"}}})
        })
        .collect();
    let names = api.submit(tasks).await.unwrap();
    wait_until("the pool at its maximum", Duration::from_secs(10), || {
        deployment_replicas(ns, POOL) == Some(max)
    });
    // Nothing moves the demand for 20 s (more than scaleDownDelay).
    held(
        ns,
        max,
        Instant::now() + Duration::from_secs(20),
        "a steady demand",
    );
    assert_eq!(status_field(ns, "demand"), "21");
    let dropped = Instant::now();
    for name in names {
        api.cancel(&name.parse().unwrap()).await.unwrap();
    }
    wait_until("the demand at 0", Duration::from_secs(5), || {
        status_field(ns, "demand") == "0"
    });
    dropped
}

/// Item 1: 100,000 positions in shards of 1,000 are one queued node but
/// 100 tasks ahead; with no worker to split them the pool still goes from
/// 0 to maxReplicas within 2 s of `kubectl apply`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_map_not_yet_split_scales_a_pool_from_zero_to_max_at_once() {
    let (_op, _dir, ns) = setup("ahead").await;
    pool_at_zero(ns.name(), 4, "60s");
    let applied = Instant::now();
    map(ns.name(), "big", 100_000, 1_000);
    wait_until("4 replicas", Duration::from_secs(10), || {
        deployment_replicas(ns.name(), POOL) == Some(4)
    });
    let took = applied.elapsed();
    assert!(
        took <= Duration::from_secs(2),
        "0 → 4 replicas took {took:?} after kubectl apply (target: 2 s)"
    );
    // Counted from the spec while the future settles, then by the engine
    // (one queued node, 100 tasks ahead), never twice.
    assert_eq!(status_field(ns.name(), "demand"), "100");
    wait_until("the engine holds it", Duration::from_secs(10), || {
        status_field(ns.name(), "queued") == "1"
    });
    assert_eq!(status_field(ns.name(), "demand"), "100");
    assert_eq!(deployment_replicas(ns.name(), POOL), Some(4));
    eprintln!("0 → 4 replicas {took:?} after kubectl apply of a 100,000-item map");
}

/// Item 2: the delay counts from when the demand fell, not from the last
/// decision that saw it high (20 s earlier here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_demand_high_and_quiet_keeps_its_replicas_for_the_delay_after_it_falls() {
    let (op, _dir, ns) = setup("quiet").await;
    let delay = Duration::from_secs(8);
    pool_at_zero(ns.name(), 3, "8s");
    let dropped = high_and_quiet_then_drop(&op, ns.name(), 3).await;
    let scale_down_at = status_field(ns.name(), "scaleDownAt");
    // 300 ms of slack for the reconcile that saw the drop.
    held(
        ns.name(),
        3,
        dropped + delay - Duration::from_millis(300),
        "within scaleDownDelay of the drop",
    );
    assert!(
        !scale_down_at.is_empty(),
        "status.scaleDownAt during the hold"
    );
    wait_until("0 replicas", Duration::from_secs(5), || {
        deployment_replicas(ns.name(), POOL) == Some(0)
    });
    let after = dropped.elapsed();
    assert!(
        after <= delay + Duration::from_secs(2),
        "down {after:?} after the drop: the timer at the window's end did not wake the pool"
    );
    assert_eq!(status_field(ns.name(), "scaleDownAt"), "");
    eprintln!("held 3 replicas for {after:?} after the demand fell (scaleDownDelay 8 s)");
}

/// Item 3: an operator killed (SIGKILL) inside the window and started
/// again does not scale down before scaleDownDelay has passed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_killed_in_the_window_does_not_scale_down_early() {
    let (mut op, dir, ns) = setup("restart").await;
    let delay = Duration::from_secs(8);
    pool_at_zero(ns.name(), 3, "8s");
    let dropped = high_and_quiet_then_drop(&op, ns.name(), 3).await;
    held(
        ns.name(),
        3,
        dropped + Duration::from_secs(2),
        "before the kill",
    );
    op.proc.kill9();
    let restarted = Instant::now();
    let _op = start_operator(dir.path(), "b", ns.name());
    eprintln!("operator started again in {:?}", restarted.elapsed());
    held(
        ns.name(),
        3,
        dropped + delay,
        "after a restart inside the window",
    );
    wait_until("0 replicas", Duration::from_secs(20), || {
        deployment_replicas(ns.name(), POOL) == Some(0)
    });
    let after = dropped.elapsed();
    // The new leader waits a whole delay from its start.
    assert!(
        after <= restarted.duration_since(dropped) + delay + Duration::from_secs(5),
        "down {after:?} after the drop"
    );
    eprintln!("down {after:?} after the drop, the operator killed 2 s into the window");
}
