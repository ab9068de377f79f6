//! The Task and future reconciler's I/O against a scripted API server
//! ([`crate::fixtures`]) and a real engine in a temporary directory: what
//! it sends to the API server, what the engine holds after, and what it
//! tells the status writer.

use super::{FINALIZER, error_policy, reconcile};
use crate::bridge::JobKey;
use crate::error::Error;
use crate::fixtures::{ScriptedApi, context, path, resource};
use crate::job::JobKind;
use crate::status::StatusMsg;
use crate::status::render::Note;
use kontinuum_api::Task;
use kube::runtime::controller::Action;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::Receiver;

const NS: &str = "jobs";

fn echo() -> Value {
    json!({"call": {"function": "std.echo", "args": {"x": 1}}})
}

fn key(name: &str) -> JobKey {
    JobKey {
        namespace: NS.into(),
        kind: JobKind::Task,
        name: name.into(),
    }
}

/// The resource as the controller's cache hands it over: what the API
/// server holds now.
fn cached(api: &ScriptedApi, name: &str) -> Arc<Task> {
    Arc::new(serde_json::from_value(api.get(&path(NS, "tasks", name)).unwrap()).unwrap())
}

fn drain(messages: &mut Receiver<StatusMsg>) -> Vec<StatusMsg> {
    let mut out = Vec::new();
    while let Ok(m) = messages.try_recv() {
        out.push(m);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_task_gets_the_finalizer_then_is_submitted_once() {
    let dir = tempfile::tempdir().unwrap();
    let api = ScriptedApi::default();
    let at = path(NS, "tasks", "t1");
    api.put(&at, resource("Task", NS, "t1", "u1", echo()));
    let (ctx, mut messages) = context(&api, dir.path()).await;

    reconcile(cached(&api, "t1"), ctx.clone()).await.unwrap();

    // One server-side apply of the metadata, forced, as the operator.
    assert_eq!(api.calls(), [format!("PATCH {at}")]);
    let apply = api.requests.lock().unwrap()[0].clone();
    assert!(apply.content_type.starts_with("application/apply-patch"));
    assert!(apply.query.contains("fieldManager=kontinuum-operator"));
    assert!(apply.query.contains("force=true"));
    assert_eq!(
        apply.body["metadata"],
        json!({"name": "t1", "uid": "u1", "finalizers": [FINALIZER]})
    );
    assert_eq!(
        api.get(&at).unwrap()["metadata"]["finalizers"],
        json!([FINALIZER])
    );
    // The engine runs it, and the status writer hears of it.
    let held = ctx.bridge.held(&key("t1")).await.unwrap();
    assert!(held.is_some_and(|h| !h.is_final));
    let said = drain(&mut messages);
    assert!(
        matches!(&said[0], StatusMsg::Observe { key: k, uid, .. } if *k == key("t1") && uid == "u1"),
        "{said:?}"
    );
    assert!(
        said.iter()
            .any(|m| matches!(m, StatusMsg::Note { note: None, .. }))
    );
    assert!(
        said.iter()
            .any(|m| matches!(m, StatusMsg::Changed { keys } if *keys == [key("t1")]))
    );

    // Again, with the finalizer in the cache now: nothing more is sent.
    reconcile(cached(&api, "t1"), ctx.clone()).await.unwrap();
    assert_eq!(api.calls().len(), 1, "{:?}", api.calls());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_task_is_cancelled_removed_and_released() {
    let dir = tempfile::tempdir().unwrap();
    let api = ScriptedApi::default();
    let at = path(NS, "tasks", "t2");
    api.put(&at, resource("Task", NS, "t2", "u2", echo()));
    let (ctx, mut messages) = context(&api, dir.path()).await;
    reconcile(cached(&api, "t2"), ctx.clone()).await.unwrap();
    assert!(ctx.bridge.held(&key("t2")).await.unwrap().is_some());
    drain(&mut messages);

    let mut deleting = api.get(&at).unwrap();
    deleting["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:01:00Z");
    api.put(&at, deleting);
    reconcile(cached(&api, "t2"), ctx.clone()).await.unwrap();

    assert!(ctx.bridge.held(&key("t2")).await.unwrap().is_none());
    let release = api.requests.lock().unwrap().last().cloned().unwrap();
    assert!(release.content_type.starts_with("application/json-patch"));
    assert_eq!(
        release.body,
        json!([
            {"op": "test", "path": "/metadata/uid", "value": "u2"},
            {"op": "test", "path": "/metadata/finalizers/0", "value": FINALIZER},
            {"op": "remove", "path": "/metadata/finalizers/0"},
        ])
    );
    assert_eq!(api.get(&at).unwrap()["metadata"]["finalizers"], json!([]));
    let said = drain(&mut messages);
    assert!(
        said.iter().any(|m| matches!(m, StatusMsg::Forget { .. })),
        "{said:?}"
    );
    assert!(!said.iter().any(|m| matches!(m, StatusMsg::Observe { .. })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_finalizer_list_is_read_again_before_the_release() {
    let dir = tempfile::tempdir().unwrap();
    let api = ScriptedApi::default();
    let at = path(NS, "tasks", "t3");
    let mut task = resource("Task", NS, "t3", "u3", echo());
    task["metadata"]["finalizers"] = json!([FINALIZER]);
    task["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:01:00Z");
    api.put(&at, task.clone());
    let (ctx, _messages) = context(&api, dir.path()).await;
    let stale = cached(&api, "t3");
    // Someone else added a finalizer in front since the cache was filled.
    task["metadata"]["finalizers"] = json!(["example.com/keep", FINALIZER]);
    api.put(&at, task);

    reconcile(stale, ctx).await.unwrap();

    assert_eq!(
        api.calls(),
        [
            format!("PATCH {at}"),
            format!("GET {at}"),
            format!("PATCH {at}")
        ]
    );
    assert_eq!(
        api.get(&at).unwrap()["metadata"]["finalizers"],
        json!(["example.com/keep"])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_is_owned_by_its_parent_and_waits_for_it_in_the_engine() {
    let dir = tempfile::tempdir().unwrap();
    let api = ScriptedApi::default();
    let parent = path(NS, "futures", "p");
    api.put(
        &parent,
        resource(
            "HierarchicalFuture",
            NS,
            "p",
            "pu",
            json!({"call": {"function": "std.echo"}}),
        ),
    );
    let at = path(NS, "tasks", "c");
    let mut spec = echo();
    spec["parentRef"] = json!({"name": "p"});
    api.put(&at, resource("Task", NS, "c", "cu", spec));
    let (ctx, mut messages) = context(&api, dir.path()).await;

    let action = reconcile(cached(&api, "c"), ctx.clone()).await.unwrap();

    assert_eq!(
        api.calls(),
        [format!("GET {parent}"), format!("PATCH {at}")]
    );
    assert_eq!(
        api.get(&at).unwrap()["metadata"]["ownerReferences"],
        json!([{"apiVersion": "kontinuum.dev/v1alpha1", "kind": "HierarchicalFuture",
                "name": "p", "uid": "pu", "blockOwnerDeletion": true}])
    );
    // The engine does not hold the parent yet: the child waits, and looks
    // again soon, rather than running on its own.
    assert!(ctx.bridge.held(&key("c")).await.unwrap().is_none());
    assert_eq!(action, Action::requeue(Duration::from_secs(2)));
    let said = drain(&mut messages);
    assert!(
        said.iter().any(|m| matches!(m,
            StatusMsg::Note { note: Some(Note::WaitingForParent { message }), .. }
                if message.contains("'p'"))),
        "{said:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_server_error_fails_the_reconcile_before_the_engine_is_touched() {
    let dir = tempfile::tempdir().unwrap();
    let api = ScriptedApi::default();
    let at = path(NS, "tasks", "t5");
    api.put(&at, resource("Task", NS, "t5", "u5", echo()));
    api.answer(|r| {
        (r.method == "PATCH").then(|| {
            (
                500,
                json!({"apiVersion": "v1", "kind": "Status", "status": "Failure",
                       "code": 500, "reason": "InternalError", "message": "etcd is away"}),
            )
        })
    });
    let (ctx, _messages) = context(&api, dir.path()).await;

    let task = cached(&api, "t5");
    let error = reconcile(task.clone(), ctx.clone()).await.unwrap_err();

    assert!(
        matches!(&error, Error::Kube { doing, .. } if *doing == "apply the finalizer"),
        "{error}"
    );
    assert!(error.to_string().contains("etcd is away"), "{error}");
    assert!(ctx.bridge.held(&key("t5")).await.unwrap().is_none());
    // Counted, and tried again after a second, then two, per object.
    let action = error_policy(task.clone(), &error, ctx.clone());
    assert_eq!(action, Action::requeue(Duration::from_secs(1)));
    let error = reconcile(task.clone(), ctx.clone()).await.unwrap_err();
    let action = error_policy(task.clone(), &error, ctx.clone());
    assert_eq!(action, Action::requeue(Duration::from_secs(2)));
    let errors = ctx
        .metrics
        .reconcile_errors
        .with_label_values(&["task", error.reason()])
        .get();
    assert_eq!(errors, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_answer_waits_for_a_change_and_a_success_resets_the_backoff() {
    let dir = tempfile::tempdir().unwrap();
    let api = ScriptedApi::default();
    let at = path(NS, "tasks", "t6");
    api.put(&at, resource("Task", NS, "t6", "u6", echo()));
    // The first two applies are refused as invalid (422), then accepted.
    let refusals = Arc::new(std::sync::atomic::AtomicU32::new(2));
    let left = refusals.clone();
    api.answer(move |r| {
        use std::sync::atomic::Ordering;
        (r.method == "PATCH" && left.load(Ordering::SeqCst) > 0).then(|| {
            left.fetch_sub(1, Ordering::SeqCst);
            (
                422,
                json!({"apiVersion": "v1", "kind": "Status", "status": "Failure",
                       "code": 422, "reason": "Invalid", "message": "metadata.finalizers: Invalid value"}),
            )
        })
    });
    let (ctx, _messages) = context(&api, dir.path()).await;
    let task = cached(&api, "t6");

    let error = reconcile(task.clone(), ctx.clone()).await.unwrap_err();
    assert_eq!(
        error_policy(task.clone(), &error, ctx.clone()),
        Action::await_change()
    );
    // A transient failure counted in between; the success after it starts
    // the count over.
    ctx.backoff.failed("jobs/task/t6");
    let error = reconcile(task.clone(), ctx.clone()).await.unwrap_err();
    assert_eq!(
        error_policy(task.clone(), &error, ctx.clone()),
        Action::await_change()
    );
    reconcile(task.clone(), ctx.clone()).await.unwrap();
    assert!(ctx.bridge.held(&key("t6")).await.unwrap().is_some());
    assert_eq!(ctx.backoff.failed("jobs/task/t6"), Duration::from_secs(1));
}
