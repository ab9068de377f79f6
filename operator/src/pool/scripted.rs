//! The WorkerPool reconciler's I/O against a scripted API server
//! ([`crate::fixtures`]) with a real engine holding the pool's work: the
//! Deployment it applies, the status it writes, and what it does when the
//! API server refuses or fails.

use super::{error_policy, reconcile};
use crate::fixtures::{ScriptedApi, context, path, pool_context, resource};
use kontinuum_api::{Task, WorkerPool};
use kube::runtime::controller::Action;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

const NS: &str = "jobs";

fn deployment_path(pool: &str) -> String {
    format!("/apis/apps/v1/namespaces/{NS}/deployments/{pool}-workers")
}

/// `n` Tasks of pool `pool` submitted through the job reconciler.
async fn queue(api: &ScriptedApi, ctx: &Arc<crate::reconcile::Context>, pool: &str, n: usize) {
    for i in 0..n {
        let name = format!("t{i}");
        let at = path(NS, "tasks", &name);
        api.put(
            &at,
            resource(
                "Task",
                NS,
                &name,
                &format!("u{i}"),
                json!({
                    "pool": pool, "call": {"function": "std.echo", "args": {"i": i}}
                }),
            ),
        );
        let task: Task = serde_json::from_value(api.get(&at).unwrap()).unwrap();
        crate::reconcile::reconcile(Arc::new(task), ctx.clone())
            .await
            .unwrap();
    }
}

fn pool(api: &ScriptedApi, name: &str) -> Arc<WorkerPool> {
    let at = path(NS, "workerpools", name);
    if api.get(&at).is_none() {
        api.put(
            &at,
            resource(
                "WorkerPool",
                NS,
                name,
                "pu",
                json!({
                    "scaling": {"minReplicas": 0, "maxReplicas": 4, "targetPerReplica": 10,
                                "scaleDownDelay": "60s"}
                }),
            ),
        );
    }
    Arc::new(serde_json::from_value(api.get(&at).unwrap()).unwrap())
}

fn last_status(api: &ScriptedApi) -> Value {
    let requests = api.requests.lock().unwrap();
    let patch = requests
        .iter()
        .rev()
        .find(|r| r.path.ends_with("/workerpools/p/status"))
        .expect("a status patch");
    patch.body["status"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_work_scales_the_deployment_up_by_server_side_apply() {
    let dir = tempfile::tempdir().unwrap();
    let api = ScriptedApi::default();
    let (jobs, _messages) = context(&api, dir.path()).await;
    queue(&api, &jobs, "p", 25).await;
    let ctx = pool_context(&api, &jobs);
    api.requests.lock().unwrap().clear();

    reconcile(pool(&api, "p"), ctx.clone()).await.unwrap();

    let calls = api.calls();
    let status_path = format!("{}/status", path(NS, "workerpools", "p"));
    assert_eq!(
        calls,
        [
            format!("PATCH {}", deployment_path("p")),
            format!("PATCH {status_path}")
        ]
    );
    let apply = api.requests.lock().unwrap()[0].clone();
    assert!(apply.content_type.starts_with("application/apply-patch"));
    assert!(apply.query.contains("force=true"), "{}", apply.query);
    // 25 queued at 10 per replica: 3, owned by the pool, running the worker.
    let deployment = &apply.body;
    assert_eq!(deployment["spec"]["replicas"], 3);
    assert_eq!(deployment["metadata"]["ownerReferences"][0]["uid"], "pu");
    assert_eq!(
        deployment["spec"]["template"]["spec"]["containers"][0]["image"],
        "kontinuum.dev/kontinuum:test"
    );
    let status = last_status(&api);
    assert_eq!(status["desiredReplicas"], 3);
    assert_eq!(status["demand"], 25);
    assert_eq!(status["queued"], 25);
    assert_eq!(status["conditions"][0]["reason"], "ScalingUp");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_deployment_is_told_in_the_status_and_a_failing_server_backs_off() {
    let dir = tempfile::tempdir().unwrap();
    let api = ScriptedApi::default();
    let (jobs, _messages) = context(&api, dir.path()).await;
    queue(&api, &jobs, "p", 5).await;
    let ctx = pool_context(&api, &jobs);
    let answer = Arc::new(std::sync::Mutex::new((
        409u16,
        "the object has been modified",
    )));
    let current = answer.clone();
    api.answer(move |r| {
        let (code, message) = *current.lock().unwrap();
        r.path.contains("/deployments/").then(|| {
            (
                code,
                json!({"apiVersion": "v1", "kind": "Status", "status": "Failure",
                       "code": code, "message": message}),
            )
        })
    });

    // A 409: the API server refuses the Deployment as it is; the status
    // says so and the reconcile itself succeeds (a retry would not help).
    reconcile(pool(&api, "p"), ctx.clone()).await.unwrap();
    let status = last_status(&api);
    assert_eq!(status["conditions"][0]["reason"], "DeploymentRefused");
    assert!(
        status["conditions"][0]["message"]
            .as_str()
            .unwrap()
            .contains("the object has been modified"),
        "{status}"
    );

    // A 500: the reconcile fails and is retried after 1 s, then 2 s.
    *answer.lock().unwrap() = (500, "etcdserver: request timed out");
    let p = pool(&api, "p");
    let error = reconcile(p.clone(), ctx.clone()).await.unwrap_err();
    assert!(error.to_string().contains("request timed out"), "{error}");
    assert_eq!(
        error_policy(p.clone(), &error, ctx.clone()),
        Action::requeue(Duration::from_secs(1))
    );
    let error = reconcile(p.clone(), ctx.clone()).await.unwrap_err();
    assert_eq!(
        error_policy(p.clone(), &error, ctx.clone()),
        Action::requeue(Duration::from_secs(2))
    );
}
