//! WorkerPools on a real control plane: the operator's Deployment, replicas
//! that follow the queue (up at once, down after scaleDownDelay, to zero and
//! back), `kubectl scale`, and workers that run as the pods' ServiceAccount.
//! kwok runs no containers, so `PodPlayer` (tests/src/kubelet.rs) runs a
//! `kontinuum-worker` for each Running pod with the pod's own settings and a
//! token minted for its ServiceAccount, and stops it when the pod goes.

use kontinuum_e2e::kubelet::PodPlayer;
use kontinuum_e2e::procs::{Operator, OperatorOptions};
use kontinuum_e2e::{TestNamespace, client, ensure_crds, kubectl, kubectl_stdin};
use kontinuum_server::Client as ApiClient;
use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};

fn options(dir: &Path, ns: &str) -> OperatorOptions {
    OperatorOptions {
        data: dir.join("store"),
        leader_elect: false,
        lease_name: "kontinuum-operator".into(),
        lease_namespace: ns.into(),
        status_interval: "1s".into(),
        namespaces: vec![ns.into()],
        api_port: None,
        extra: vec![],
    }
}

fn apply(ns: &str, doc: &Value) {
    kubectl_stdin(&["apply", "-n", ns, "-f", "-"], Some(&doc.to_string()));
}

/// The Deployment's spec.replicas, if it exists.
fn deployment_replicas(ns: &str, pool: &str) -> Option<i64> {
    let out = kontinuum_e2e::kubectl_result(
        &[
            "get",
            "deployment",
            &format!("{pool}-workers"),
            "-n",
            ns,
            "-o",
            "jsonpath={.spec.replicas}",
        ],
        None,
    );
    out.success
        .then(|| out.stdout.trim().parse().ok())
        .flatten()
}

fn wait_until(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    loop {
        if check() {
            return start.elapsed();
        }
        assert!(start.elapsed() < timeout, "{what}: not after {timeout:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn sleeper(ns: &str, i: usize) -> Value {
    json!({"apiVersion": "kontinuum.dev/v1alpha1", "kind": "Task",
           "metadata": {"name": format!("nap-{i:04}"), "namespace": ns},
           "spec": {"pool": "naps", "call": {"function": "std.sleep", "args": {"ms": 200}}}})
}

/// 2,000 tasks of 200 ms into a pool of 0..5 replicas, 100 per replica:
/// 0 → 5 replicas within 2 s of the submission, the tasks all run (on the
/// pods' workers, with ServiceAccount tokens), and the pool goes back to 0
/// after scaleDownDelay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_follows_its_queue_up_and_back_to_zero() {
    ensure_crds().await;
    let client = client().await;
    let ns = TestNamespace::create(&client, "pool").await;
    let dir = tempfile::tempdir().unwrap();
    let mut op = Operator::start(dir.path(), "a", &options(dir.path(), ns.name()));
    op.wait_ready(Duration::from_secs(60));
    let pods = PodPlayer::start(
        client.clone(),
        ns.name(),
        "kontinuum.dev/pool=naps",
        dir.path(),
    );
    apply(
        ns.name(),
        &json!({"apiVersion": "kontinuum.dev/v1alpha1", "kind": "WorkerPool",
                "metadata": {"name": "naps"},
                "spec": {"concurrency": 50,
                         "scaling": {"minReplicas": 0, "maxReplicas": 5,
                                     "targetPerReplica": 100, "scaleDownDelay": "5s"}}}),
    );
    wait_until(
        "the Deployment at 0 replicas",
        Duration::from_secs(30),
        || deployment_replicas(ns.name(), "naps") == Some(0),
    );

    let token = std::fs::read_to_string(&op.token_file).unwrap();
    let api = ApiClient::new(&op.api, Some(token.trim().to_string())).unwrap();
    let tasks: Vec<Value> = (0..2000).map(|i| sleeper(ns.name(), i)).collect();
    api.submit(tasks).await.unwrap();
    let submitted = Instant::now();
    wait_until("5 replicas", Duration::from_secs(10), || {
        deployment_replicas(ns.name(), "naps") == Some(5)
    });
    let scaled_up = submitted.elapsed();
    assert!(
        scaled_up <= Duration::from_secs(2),
        "0 → 5 replicas took {scaled_up:?} (target: 2 s)"
    );

    // Every task runs, on the pods' workers.
    let ids: Vec<_> = (0..2000)
        .map(|i| kontinuum_api::ObjectId::task(ns.name(), format!("nap-{i:04}")))
        .collect();
    let done = tokio::time::timeout(
        Duration::from_secs(120),
        api.wait(&ids, Duration::from_millis(500)),
    )
    .await
    .expect("the 2,000 tasks did not finish in 120 s")
    .unwrap();
    assert!(done.iter().all(|v| v.status["phase"] == "Succeeded"));
    assert_eq!(pods.started().len(), 5, "{:?}", pods.started());
    let listed = kubectl(&["get", "workerpools", "-n", ns.name()]);
    assert!(listed.contains("naps"), "{listed}");

    // Idle: down to 0 once scaleDownDelay has passed, the workers stopped.
    let finished = Instant::now();
    wait_until("0 replicas again", Duration::from_secs(30), || {
        deployment_replicas(ns.name(), "naps") == Some(0)
    });
    let idle_for = finished.elapsed();
    assert!(
        idle_for >= Duration::from_secs(4),
        "scaled down after {idle_for:?}, before scaleDownDelay (5 s)"
    );
    wait_until("every worker stopped", Duration::from_secs(60), || {
        pods.live() == 0
    });
    eprintln!("0 → 5 replicas in {scaled_up:?}; back to 0 {idle_for:?} after the last task");
}

/// Without `spec.scaling`, replicas are the pool's `spec.replicas`, set
/// with `kubectl scale` through the scale subresource.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_scale_sets_a_fixed_pool() {
    ensure_crds().await;
    let client = client().await;
    let ns = TestNamespace::create(&client, "scale").await;
    let dir = tempfile::tempdir().unwrap();
    let mut op = Operator::start(dir.path(), "a", &options(dir.path(), ns.name()));
    op.wait_ready(Duration::from_secs(60));
    let pods = PodPlayer::start(
        client.clone(),
        ns.name(),
        "kontinuum.dev/pool=fixed",
        dir.path(),
    );
    apply(
        ns.name(),
        &json!({"apiVersion": "kontinuum.dev/v1alpha1", "kind": "WorkerPool",
                "metadata": {"name": "fixed"}, "spec": {"replicas": 1}}),
    );
    wait_until("1 worker", Duration::from_secs(30), || pods.live() == 1);
    kubectl(&[
        "scale",
        "workerpool",
        "fixed",
        "-n",
        ns.name(),
        "--replicas=3",
    ]);
    wait_until("3 workers", Duration::from_secs(30), || pods.live() == 3);
    // A job on the pool runs on those workers.
    apply(
        ns.name(),
        &json!({"apiVersion": "kontinuum.dev/v1alpha1", "kind": "Task",
                "metadata": {"name": "sum"},
                "spec": {"pool": "fixed", "call": {"function": "std.sum", "args": {"a": 4, "b": 5}}}}),
    );
    kubectl(&[
        "wait",
        "-n",
        ns.name(),
        "--for=jsonpath={.status.phase}=Succeeded",
        "task/sum",
        "--timeout=60s",
    ]);
    kubectl(&[
        "scale",
        "workerpool",
        "fixed",
        "-n",
        ns.name(),
        "--replicas=0",
    ]);
    wait_until("no workers", Duration::from_secs(60), || pods.live() == 0);
    assert_eq!(pods.stopped().len(), 3, "{:?}", pods.stopped());
}
