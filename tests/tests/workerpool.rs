//! WorkerPools on a real control plane: the operator's Deployment, replicas
//! that follow the queue (up at once, down after scaleDownDelay, to zero and
//! back), `kubectl scale`, and workers that run as the pods' ServiceAccount.
//! kwok runs no containers, so `PodPlayer` (tests/src/kubelet.rs) runs a
//! `kontinuum-worker` for each Running pod with the pod's own settings and a
//! token minted for its ServiceAccount, and stops it when the pod goes.

use kontinuum_e2e::kubelet::PodPlayer;
use kontinuum_e2e::pool::{deployment_replicas, wait_until};
use kontinuum_e2e::procs::{Operator, OperatorOptions};
use kontinuum_e2e::{TestNamespace, apply, client, ensure_crds, kubectl};
use kontinuum_server::Client as ApiClient;
use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};

fn options(dir: &Path, ns: &str) -> OperatorOptions {
    OperatorOptions::watching(dir, ns)
}

/// A test namespace, an operator watching it, and the kubelet stand-in for
/// the pods matching `selector`.
struct Setup {
    pods: PodPlayer,
    op: Operator,
    dir: tempfile::TempDir,
    ns: TestNamespace,
}

async fn setup(prefix: &str, selector: &str) -> Setup {
    ensure_crds().await;
    let client = client().await;
    let ns = TestNamespace::create(&client, prefix).await;
    let dir = tempfile::tempdir().unwrap();
    let mut op = Operator::start(dir.path(), "a", &options(dir.path(), ns.name()));
    op.wait_ready(Duration::from_secs(60));
    let pods = PodPlayer::start(client, ns.name(), selector, dir.path());
    Setup { pods, op, dir, ns }
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
    let Setup {
        op,
        dir: _dir,
        ns,
        pods,
    } = setup("pool", "kontinuum.dev/pool=naps").await;
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

    // Idle: down to 0 once the demand has stayed below 5 replicas' worth
    // for scaleDownDelay (5 s). The demand was 2,000 at the submission, so
    // the way down cannot start earlier than 5 s after it.
    wait_until("0 replicas again", Duration::from_secs(30), || {
        deployment_replicas(ns.name(), "naps") == Some(0)
    });
    let idle_for = submitted.elapsed();
    assert!(
        idle_for >= Duration::from_secs(5),
        "back to 0 {idle_for:?} after the submission, before scaleDownDelay (5 s) could pass"
    );
    wait_until("every worker stopped", Duration::from_secs(60), || {
        pods.live() == 0
    });
    eprintln!("0 → 5 replicas in {scaled_up:?}; back to 0 {idle_for:?} after the submission");
}

/// Without `spec.scaling`, replicas are the pool's `spec.replicas`, set
/// with `kubectl scale` through the scale subresource.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_scale_sets_a_fixed_pool() {
    let Setup {
        op: _op,
        dir: _dir,
        ns,
        pods,
    } = setup("scale", "kontinuum.dev/pool=fixed").await;
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

/// Before replicas go down, busy pods are marked costlier to delete: with
/// two of four workers busy, scaling to 2 removes the two idle pods, and
/// the busy ones finish their tasks (one attempt each).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_down_removes_idle_pods_first() {
    let Setup {
        op,
        dir: _dir,
        ns,
        pods,
    } = setup("busy", "kontinuum.dev/pool=busy").await;
    apply(
        ns.name(),
        &json!({"apiVersion": "kontinuum.dev/v1alpha1", "kind": "WorkerPool",
                "metadata": {"name": "busy"}, "spec": {"replicas": 4, "concurrency": 1}}),
    );
    wait_until("4 workers", Duration::from_secs(30), || pods.live() == 4);
    for i in 0..2 {
        apply(
            ns.name(),
            &json!({"apiVersion": "kontinuum.dev/v1alpha1", "kind": "Task",
                    "metadata": {"name": format!("long-{i}")},
                    "spec": {"pool": "busy", "call": {"function": "std.sleep", "args": {"ms": 15000}}}}),
        );
    }
    // Which workers run them, as the worker API sees it.
    let token = std::fs::read_to_string(&op.token_file).unwrap();
    let api = ApiClient::new(&op.api, Some(token.trim().to_string())).unwrap();
    let mut busy: Vec<String> = Vec::new();
    for _ in 0..200 {
        busy = api
            .workers()
            .await
            .unwrap()
            .into_iter()
            .filter(|w| w.running > 0)
            .map(|w| w.worker)
            .collect();
        if busy.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(busy.len(), 2, "two busy workers: {busy:?}");
    kubectl(&[
        "scale",
        "workerpool",
        "busy",
        "-n",
        ns.name(),
        "--replicas=2",
    ]);
    wait_until("2 workers", Duration::from_secs(30), || pods.live() == 2);
    let stopped = pods.stopped();
    assert_eq!(stopped.len(), 2, "{stopped:?}");
    for pod in &stopped {
        assert!(
            !busy.contains(pod),
            "busy pod {pod} was deleted while idle ones existed (busy: {busy:?}, stopped: {stopped:?})"
        );
    }
    for i in 0..2 {
        kubectl(&[
            "wait",
            "-n",
            ns.name(),
            "--for=jsonpath={.status.phase}=Succeeded",
            &format!("task/long-{i}"),
            "--timeout=60s",
        ]);
        let attempts = kubectl(&[
            "get",
            "task",
            &format!("long-{i}"),
            "-n",
            ns.name(),
            "-o",
            "jsonpath={.status.attempts}",
        ]);
        assert_eq!(attempts.trim(), "1", "long-{i} ran more than once");
    }
}

/// Worker identity on the real API server: a ServiceAccount token of
/// namespace b reaches b only; a token for another audience, or of a
/// ServiceAccount that no longer exists, is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_account_tokens_confine_workers_to_their_namespace() {
    ensure_crds().await;
    let client = client().await;
    let a = TestNamespace::create(&client, "team-a").await;
    let b = TestNamespace::create(&client, "team-b").await;
    let dir = tempfile::tempdir().unwrap();
    let mut options = options(dir.path(), a.name());
    options.namespaces = vec![a.name().into(), b.name().into()];
    let mut op = Operator::start(dir.path(), "a", &options);
    op.wait_ready(Duration::from_secs(60));
    apply(
        a.name(),
        &json!({"apiVersion": "kontinuum.dev/v1alpha1", "kind": "Task",
                "metadata": {"name": "secret-job"},
                "spec": {"call": {"function": "std.echo", "args": {"secret": "alpha-secret"}}}}),
    );
    wait_until("the Task in the engine", Duration::from_secs(30), || {
        kontinuum_e2e::kubectl_result(
            &[
                "get",
                "task",
                "secret-job",
                "-n",
                a.name(),
                "-o",
                "jsonpath={.status.phase}",
            ],
            None,
        )
        .stdout
        .trim()
            == "Queued"
    });
    let http = reqwest::Client::new();
    let call = |token: String, method: reqwest::Method, path: String, body: Option<Value>| {
        let http = http.clone();
        let url = format!("{}{path}", op.api);
        async move {
            let mut req = http.request(method, url).bearer_auth(token);
            if let Some(b) = body {
                req = req
                    .header("content-type", "application/json")
                    .body(b.to_string());
            }
            let resp = req.send().await.unwrap();
            let code = resp.status().as_u16();
            (code, resp.text().await.unwrap())
        }
    };
    let b_token = kontinuum_e2e::kubelet::mint_token(b.name(), "default").unwrap();
    let (code, body) = call(
        b_token.clone(),
        reqwest::Method::GET,
        format!("/v1/objects/{}/task/secret-job", a.name()),
        None,
    )
    .await;
    assert_eq!(code, 403, "{body}");
    assert!(
        !body.contains("alpha-secret") && !body.contains(a.name()),
        "{body}"
    );
    let (code, body) = call(
        b_token.clone(),
        reqwest::Method::POST,
        "/v1/lease".into(),
        Some(json!({"worker": "intruder", "pool": "default", "max": 10, "waitMs": 500})),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert!(!body.contains("alpha-secret"), "b leased a's task: {body}");
    let (code, body) = call(b_token, reqwest::Method::GET, "/v1/objects".into(), None).await;
    assert_eq!(code, 200, "{body}");
    assert!(!body.contains("secret-job"), "b sees a's objects: {body}");

    // The API server's own audience is not ours.
    let r = kontinuum_e2e::kubectl_result(&["create", "token", "default", "-n", b.name()], None);
    assert!(r.success, "{r:?}");
    let (code, body) = call(
        r.stdout.trim().into(),
        reqwest::Method::GET,
        "/v1/workers".into(),
        None,
    )
    .await;
    assert_eq!(code, 401, "{body}");
    // A ServiceAccount deleted after its token was minted.
    kubectl(&["create", "serviceaccount", "gone", "-n", b.name()]);
    let gone = kontinuum_e2e::kubelet::mint_token(b.name(), "gone").unwrap();
    kubectl(&["delete", "serviceaccount", "gone", "-n", b.name()]);
    let mut refused = false;
    for _ in 0..50 {
        let (code, _) = call(
            gone.clone(),
            reqwest::Method::GET,
            "/v1/workers".into(),
            None,
        )
        .await;
        if code == 401 {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        refused,
        "a token of a deleted ServiceAccount is still accepted"
    );
}

/// A template the API server refuses (an invalid quantity, which the
/// WorkerPool's schema cannot know) leaves that pool's status saying why;
/// another pool keeps working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_template_is_reported_and_other_pools_work() {
    let Setup {
        op: _op,
        dir: _dir,
        ns,
        pods,
    } = setup("typo", "kontinuum.dev/pool=fine").await;
    apply(
        ns.name(),
        &json!({"apiVersion": "kontinuum.dev/v1alpha1", "kind": "WorkerPool",
                "metadata": {"name": "broken"},
                "spec": {"replicas": 1, "template": {"spec": {"containers": [
                    {"name": "worker", "resources": {"limits": {"cpu": "lots"}}}]}}}}),
    );
    apply(
        ns.name(),
        &json!({"apiVersion": "kontinuum.dev/v1alpha1", "kind": "WorkerPool",
                "metadata": {"name": "fine"}, "spec": {"replicas": 1}}),
    );
    let mut condition = Value::Null;
    wait_until("the refusal in the status", Duration::from_secs(30), || {
        let out = kubectl(&[
            "get",
            "workerpool",
            "broken",
            "-n",
            ns.name(),
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Ready\")]}",
        ]);
        condition = serde_json::from_str(out.trim()).unwrap_or(Value::Null);
        condition["reason"] == "DeploymentRefused"
    });
    assert_eq!(condition["status"], "False", "{condition}");
    let message = condition["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("quantities must match"),
        "the message says what was refused: {message}"
    );
    wait_until("the fine pool's worker", Duration::from_secs(30), || {
        pods.live() == 1
    });
    apply(
        ns.name(),
        &json!({"apiVersion": "kontinuum.dev/v1alpha1", "kind": "Task",
                "metadata": {"name": "sum"},
                "spec": {"pool": "fine", "call": {"function": "std.sum", "args": {"a": 1, "b": 2}}}}),
    );
    kubectl(&[
        "wait",
        "-n",
        ns.name(),
        "--for=jsonpath={.status.phase}=Succeeded",
        "task/sum",
        "--timeout=60s",
    ]);
}
