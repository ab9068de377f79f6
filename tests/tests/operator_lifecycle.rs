//! The operator's life on a real control plane: live progress with a
//! bounded patch rate, deletion, kill -9 and restart, leader failover, bad
//! resources, a million-leaf tree.

use kontinuum_e2e::procs::{
    Operator, OperatorOptions, Proc, StatusRecorder, http_get, start_worker,
};
use kontinuum_e2e::{
    TestNamespace, apply, client, ensure_crds, kubectl, kubectl_result, kubectl_stdin, parse_table,
};
use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};

/// A map whose items each sleep `ms`: `items` items in leaves of `shard`,
/// counted (so an item counted twice would show).
fn slow_map(name: &str, items: u64, shard: u64, ms: u64) -> Value {
    json!({
        "apiVersion": "kontinuum.dev/v1alpha1",
        "kind": "HierarchicalFuture",
        "metadata": {"name": name},
        "spec": {"map": {
            "source": {"range": {"start": 0, "end": items}},
            "function": {"function": "std.sleep", "args": {"ms": ms}},
            "shardSize": shard,
            "reduce": "count"
        }}
    })
}

fn worker(dir: &Path, label: &str, op: &Operator, concurrency: u32) -> Proc {
    start_worker(
        dir,
        label,
        &op.api,
        "default",
        &op.token_file,
        &["--concurrency", &concurrency.to_string()],
    )
}

fn phase(s: &Value) -> &str {
    s["phase"].as_str().unwrap_or("")
}

fn is_final(s: &Value) -> bool {
    matches!(phase(s), "Succeeded" | "Failed" | "Cancelled")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_moves_in_kubectl_and_status_is_patched_at_most_once_per_second() {
    ensure_crds().await;
    let client = client().await;
    let ns = TestNamespace::create(&client, "progress").await;
    let dir = tempfile::tempdir().unwrap();
    let mut op = Operator::start(
        dir.path(),
        "a",
        &OperatorOptions::watching(dir.path(), ns.name()),
    );
    op.wait_ready(Duration::from_secs(60));
    let _w = worker(dir.path(), "1", &op, 8);
    let recorder = StatusRecorder::start(client.clone(), ns.name(), "futures", "slow");
    apply(ns.name(), &slow_map("slow", 600, 5, 100));
    // What `kubectl get futures` prints while it runs.
    let mut shown = Vec::new();
    let start = Instant::now();
    loop {
        let r = kubectl_result(&["get", "futures", "-n", ns.name()], None);
        let (header, rows) = parse_table(&r.stdout);
        let col = |n: &str| header.iter().position(|h| h == n);
        if let (Some(p), Some(ph), Some(row)) = (col("PROGRESS"), col("PHASE"), rows.first()) {
            if row[ph] == "Succeeded" {
                break;
            }
            if !row[p].is_empty() && shown.last() != Some(&row[p]) {
                shown.push(row[p].clone());
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "not done in 120 s: {shown:?}\n{}",
            op.proc.output()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        shown.len() >= 3,
        "kubectl showed fewer than three PROGRESS values before Succeeded: {shown:?}"
    );
    let last = recorder
        .wait("Succeeded", Duration::from_secs(10), |s| {
            phase(s) == "Succeeded"
        })
        .await;
    assert_eq!(last["result"], 600, "each item counted once");
    let statuses = recorder.statuses();
    for pair in statuses.windows(2) {
        let gap = pair[1].0.duration_since(pair[0].0);
        // The watch delivers with a little jitter; the writer's interval is 1 s.
        assert!(
            gap >= Duration::from_millis(850),
            "two status patches {gap:?} apart: {} then {}",
            pair[0].1,
            pair[1].1
        );
    }
    let progress: Vec<u64> = statuses
        .iter()
        .filter_map(|(_, s)| s["progress"]["done"].as_u64())
        .collect();
    assert!(
        progress.windows(2).all(|w| w[0] <= w[1]),
        "done went backwards: {progress:?}"
    );
    let metrics = http_get(&format!("{}/metrics", op.metrics))
        .map(|(_, b)| b)
        .unwrap_or_default();
    assert!(
        metrics.contains("kontinuum_status_patches_total{kind=\"future\"}"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_running_future_cancels_its_tree_and_leaves_nothing() {
    ensure_crds().await;
    let client = client().await;
    let ns = TestNamespace::create(&client, "delete").await;
    let dir = tempfile::tempdir().unwrap();
    let mut op = Operator::start(
        dir.path(),
        "a",
        &OperatorOptions::watching(dir.path(), ns.name()),
    );
    op.wait_ready(Duration::from_secs(60));
    let w = worker(dir.path(), "1", &op, 4);
    let recorder = StatusRecorder::start(client.clone(), ns.name(), "futures", "doomed");
    apply(ns.name(), &slow_map("doomed", 10_000, 10, 200));
    recorder
        .wait("Running with progress", Duration::from_secs(60), |s| {
            phase(s) == "Running" && s["progress"]["done"].as_u64().unwrap_or(0) > 0
        })
        .await;
    let finalizers = kubectl(&[
        "get",
        "future",
        "doomed",
        "-n",
        ns.name(),
        "-o",
        "jsonpath={.metadata.finalizers}",
    ]);
    assert!(finalizers.contains("kontinuum.dev/cancel"), "{finalizers}");
    assert!(
        op.engine_objects().iter().any(|n| n.ends_with("doomed")),
        "the engine holds it"
    );
    kubectl(&[
        "delete",
        "future",
        "doomed",
        "-n",
        ns.name(),
        "--wait=true",
        "--timeout=30s",
    ]);
    let r = kubectl_result(&["get", "future", "doomed", "-n", ns.name()], None);
    assert!(!r.success && r.stderr.contains("NotFound"), "{r:?}");
    assert!(
        !op.engine_objects().iter().any(|n| n.ends_with("doomed")),
        "the engine still holds it: {:?}",
        op.engine_objects()
    );
    drop(w);
}

/// `spec.parentRef`: the child joins the parent's tree (its weight in the
/// parent's total), gets an ownerReference to it, and goes with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_resource_joins_its_parents_tree_and_goes_with_it() {
    ensure_crds().await;
    let client = client().await;
    let ns = TestNamespace::create(&client, "parent").await;
    let dir = tempfile::tempdir().unwrap();
    let mut op = Operator::start(
        dir.path(),
        "a",
        &OperatorOptions::watching(dir.path(), ns.name()),
    );
    op.wait_ready(Duration::from_secs(60));
    let _w = worker(dir.path(), "1", &op, 4);
    let recorder = StatusRecorder::start(client.clone(), ns.name(), "futures", "parent");
    let kid = json!({
        "apiVersion": "kontinuum.dev/v1alpha1",
        "kind": "Task",
        "metadata": {"name": "kid"},
        "spec": {"parentRef": {"name": "parent"},
                 "call": {"function": "std.sleep", "args": {"ms": 60000}}}
    });
    // One apply, as a user would: the reconciles run in any order.
    let both = format!("{}\n---\n{}", slow_map("parent", 2000, 10, 100), kid);
    kubectl_stdin(&["apply", "-n", ns.name(), "-f", "-"], Some(&both));
    recorder
        .wait(
            "the child's weight in the total",
            Duration::from_secs(60),
            |s| phase(s) == "Running" && s["progress"]["total"].as_u64() == Some(2001),
        )
        .await;
    let owners = kubectl(&[
        "get",
        "task",
        "kid",
        "-n",
        ns.name(),
        "-o",
        "jsonpath={.metadata.ownerReferences[*].kind}/{.metadata.ownerReferences[*].name}",
    ]);
    assert_eq!(owners.trim(), "HierarchicalFuture/parent");
    kubectl(&[
        "delete",
        "future",
        "parent",
        "-n",
        ns.name(),
        "--wait=true",
        "--timeout=30s",
    ]);
    // The garbage collector deletes the child; its finalizer cancels it.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = kubectl_result(&["get", "task", "kid", "-n", ns.name()], None);
        if !r.success && r.stderr.contains("NotFound") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the child outlived its parent: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let left = op.engine_objects();
    assert!(
        !left
            .iter()
            .any(|n| n.ends_with("parent") || n.ends_with("kid")),
        "the engine still holds them: {left:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_operator_mid_map_then_restart_finishes_exactly() {
    ensure_crds().await;
    let client = client().await;
    let ns = TestNamespace::create(&client, "kill").await;
    let dir = tempfile::tempdir().unwrap();
    let opts = OperatorOptions::watching(dir.path(), ns.name());
    let mut op = Operator::start(dir.path(), "first", &opts);
    op.wait_ready(Duration::from_secs(60));
    let _w = worker(dir.path(), "1", &op, 8);
    let recorder = StatusRecorder::start(client.clone(), ns.name(), "futures", "survivor");
    apply(ns.name(), &slow_map("survivor", 800, 4, 50));
    recorder
        .wait("a third of the map", Duration::from_secs(60), |s| {
            s["progress"]["percent"].as_u64().unwrap_or(0) >= 30
        })
        .await;
    op.proc.kill9();
    // The same store, the same worker API port (the worker reconnects).
    let port: u16 = op.api.rsplit(':').next().unwrap().parse().unwrap();
    let mut again = Operator::start(
        dir.path(),
        "second",
        &OperatorOptions {
            api_port: Some(port),
            ..opts
        },
    );
    again.wait_ready(Duration::from_secs(60));
    let done = recorder
        .wait("final", Duration::from_secs(180), is_final)
        .await;
    assert_eq!(phase(&done), "Succeeded", "{done}\n{}", again.proc.output());
    assert_eq!(done["result"], 800, "each item counted exactly once");
    assert_eq!(done["progress"]["done"], 800);
    let copies = again
        .engine_objects()
        .iter()
        .filter(|n| n.ends_with("survivor"))
        .count();
    assert_eq!(copies, 1, "submitted once: {:?}", again.engine_objects());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_operator_takes_over_within_the_lease_duration() {
    ensure_crds().await;
    let client = client().await;
    let ns = TestNamespace::create(&client, "leader").await;
    let dir = tempfile::tempdir().unwrap();
    let port = kontinuum_e2e::procs::free_port();
    // One store and one worker API address, as a Deployment's Service and
    // volume would give both replicas; a Lease of 4 s.
    // Two identities (two pods); a Lease of 4 s, renewed every second.
    let opts = |identity: &str| OperatorOptions {
        leader_elect: true,
        lease_name: "kontinuum-e2e".into(),
        api_port: Some(port),
        extra: [
            "--lease-duration=4s",
            "--renew-deadline=3s",
            "--retry-period=1s",
            &format!("--identity={identity}"),
        ]
        .map(String::from)
        .to_vec(),
        ..OperatorOptions::watching(dir.path(), ns.name())
    };
    let mut a = Operator::start(dir.path(), "a", &opts("a"));
    a.wait_ready(Duration::from_secs(60));
    let mut b = Operator::start(dir.path(), "b", &opts("b"));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(a.is_ready() && !b.is_ready(), "exactly one leads");
    assert!(b.proc.running(), "the standby waits:\n{}", b.proc.output());
    let _w = worker(dir.path(), "1", &a, 8);
    let recorder = StatusRecorder::start(client.clone(), ns.name(), "futures", "handover");
    apply(ns.name(), &slow_map("handover", 400, 4, 50));
    recorder
        .wait("progress", Duration::from_secs(60), |s| {
            s["progress"]["done"].as_u64().unwrap_or(0) > 40
        })
        .await;
    a.proc.kill9();
    let killed = Instant::now();
    while !b.is_ready() {
        assert!(
            killed.elapsed() < Duration::from_secs(4 + 1 + 3),
            "the standby did not lead within the lease duration and a retry period (4 s + 1 s, plus 3 s to open):\n{}",
            b.proc.output()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let took = killed.elapsed();
    let done = recorder
        .wait("final", Duration::from_secs(120), is_final)
        .await;
    assert_eq!(phase(&done), "Succeeded", "{done}");
    assert_eq!(done["result"], 400);
    eprintln!("standby took over {took:?} after the leader's kill -9");
    let holder = kubectl(&[
        "get",
        "lease",
        "kontinuum-e2e",
        "-n",
        ns.name(),
        "-o",
        "jsonpath={.spec.holderIdentity}",
    ]);
    assert!(!holder.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_resources_are_refused_or_failed_and_other_jobs_run_on() {
    ensure_crds().await;
    let client = client().await;
    let ns = TestNamespace::create(&client, "bad").await;
    // What the schema refuses, the API server refuses (server-side dry run),
    // naming the field.
    let schema_bad = json!({
        "apiVersion": "kontinuum.dev/v1alpha1", "kind": "HierarchicalFuture",
        "metadata": {"name": "no-shard"},
        "spec": {"map": {"source": {"range": {"start": 0, "end": 10}}, "function": {"function": "std.square"}, "shardSize": 0}}
    });
    let r = kubectl_result(
        &["apply", "--dry-run=server", "-n", ns.name(), "-f", "-"],
        Some(&schema_bad.to_string()),
    );
    assert!(
        !r.success && r.stderr.contains("spec.map.shardSize"),
        "{r:?}"
    );
    let dir = tempfile::tempdir().unwrap();
    let mut op = Operator::start(
        dir.path(),
        "a",
        &OperatorOptions::watching(dir.path(), ns.name()),
    );
    op.wait_ready(Duration::from_secs(60));
    let _w = worker(dir.path(), "1", &op, 4);
    // What passes the schema but not the engine ends Failed / InvalidSpec.
    let engine_bad = json!({
        "apiVersion": "kontinuum.dev/v1alpha1", "kind": "HierarchicalFuture",
        "metadata": {"name": "relative"},
        "spec": {"map": {"source": {"lines": {"path": "data/rhyme.txt"}}, "function": {"function": "std.wordcount"}, "reduce": "merge"}}
    });
    let good = json!({
        "apiVersion": "kontinuum.dev/v1alpha1", "kind": "Task",
        "metadata": {"name": "fine"},
        "spec": {"call": {"function": "std.sum", "args": {"a": 4, "b": 5}}}
    });
    let bad_rec = StatusRecorder::start(client.clone(), ns.name(), "futures", "relative");
    let good_rec = StatusRecorder::start(client.clone(), ns.name(), "tasks", "fine");
    apply(ns.name(), &engine_bad);
    apply(ns.name(), &good);
    let bad = bad_rec
        .wait("Failed", Duration::from_secs(60), is_final)
        .await;
    assert_eq!(phase(&bad), "Failed", "{bad}");
    let accepted = bad["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Accepted").cloned())
        .unwrap_or(Value::Null);
    assert_eq!(accepted["status"], "False", "{bad}");
    assert_eq!(accepted["reason"], "InvalidSpec", "{bad}");
    assert!(
        accepted["message"]
            .as_str()
            .unwrap_or("")
            .contains("spec.map.source.lines.path"),
        "{bad}"
    );
    let fine = good_rec
        .wait("Succeeded", Duration::from_secs(60), is_final)
        .await;
    assert_eq!(phase(&fine), "Succeeded");
    assert_eq!(fine["result"], 9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_leaf_future_keeps_its_status_under_16_kib() {
    ensure_crds().await;
    let client = client().await;
    let ns = TestNamespace::create(&client, "million").await;
    let dir = tempfile::tempdir().unwrap();
    let mut op = Operator::start(
        dir.path(),
        "a",
        &OperatorOptions::watching(dir.path(), ns.name()),
    );
    op.wait_ready(Duration::from_secs(60));
    let _w1 = worker(dir.path(), "1", &op, 64);
    let _w2 = worker(dir.path(), "2", &op, 64);
    let recorder = StatusRecorder::start(client.clone(), ns.name(), "futures", "million");
    apply(
        ns.name(),
        &json!({
            "apiVersion": "kontinuum.dev/v1alpha1", "kind": "HierarchicalFuture",
            "metadata": {"name": "million"},
            "spec": {"map": {"source": {"range": {"start": 0, "end": 1_000_000}},
                "function": {"function": "std.square"}, "shardSize": 1, "reduce": "sum"}}
        }),
    );
    let started = Instant::now();
    let done = recorder
        .wait("final", Duration::from_secs(1500), is_final)
        .await;
    let elapsed = started.elapsed();
    assert_eq!(phase(&done), "Succeeded", "{done}");
    // Σ i² for i < 10^6 = (n-1)n(2n-1)/6 with n = 10^6.
    assert_eq!(done["result"].to_string(), "333332833333500000");
    let statuses = recorder.statuses();
    let biggest = statuses
        .iter()
        .map(|(_, s)| s.to_string().len())
        .max()
        .unwrap_or(0);
    assert!(biggest < 16 * 1024, "a status of {biggest} bytes");
    let rate = statuses.len() as f64 / elapsed.as_secs_f64().max(1.0);
    eprintln!(
        "1M leaves: {:.1} s, {} status patches ({rate:.2}/s), largest status {biggest} bytes, {} nodes",
        elapsed.as_secs_f64(),
        statuses.len(),
        done["nodes"]
    );
    assert!(rate <= 1.05, "{rate} status patches per second");
}
