//! What enters the engine is something it can read back, and a record it
//! cannot read fails its own object only: the store opens and runs on.

mod common;

use common::{drive, fid, future, future_status, open, task, task_status, tid, yaml};
use kontinuum_api::Phase;
use kontinuum_api::TaskSpec;
use kontinuum_api::work::{Completion, Outcome};
use kontinuum_engine::{EngineError, ObjectStatus, Submission};
use serde_json::Value;
use std::time::Duration;

/// `{"a": {"a": ... 1}}` as JSON text, `levels` deep (built as text: a deep
/// `Value` built by nesting `json!` costs stack to drop in a test thread).
fn nested_text(levels: usize) -> String {
    format!("{}1{}", r#"{"a":"#.repeat(levels), "}".repeat(levels))
}

fn nested(levels: usize) -> Value {
    let mut v = Value::from(1);
    for _ in 0..levels {
        let mut map = serde_json::Map::new();
        map.insert("a".into(), v);
        v = Value::Object(map);
    }
    v
}

fn deep_task(name: &str, levels: usize) -> Submission {
    let spec: TaskSpec = serde_json::from_value(serde_json::json!({
        "call": {"function": "t.echo", "args": {"x": nested(levels)}}
    }))
    .unwrap();
    Submission::task("default", name, spec)
}

fn error_of(status: &ObjectStatus) -> String {
    let error = match status {
        ObjectStatus::Task(t) => t.error.clone(),
        ObjectStatus::Future(f) => return f.conditions.iter().map(|c| c.message.clone()).collect(),
    };
    error.map(|e| e.message).unwrap_or_default()
}

fn phase_of(status: &ObjectStatus) -> Option<Phase> {
    match status {
        ObjectStatus::Task(t) => t.phase,
        ObjectStatus::Future(f) => f.phase,
    }
}

/// The first submission of this shape made every later open of the store
/// fail with "corrupt record root: recursion limit exceeded".
#[test]
fn a_spec_nested_too_deeply_is_refused_and_the_store_stays_usable() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    for levels in [61, 121, 125] {
        let err = engine.submit(vec![deep_task("deep", levels)]).unwrap_err();
        let EngineError::Invalid(message) = &err else {
            panic!("{err:?}");
        };
        assert!(
            message
                .starts_with("default/task/deep: spec.call.args: nested more than 64 levels deep"),
            "{message}"
        );
    }
    // Within the limit: accepted, stored, read back after reopening.
    engine.submit(vec![deep_task("fits", 60)]).unwrap();
    drop(engine);
    let engine = open(dir.path());
    assert!(engine.objects().unwrap() == [tid("fits")]);
    let done = drive(&engine, &["fits"], Duration::from_secs(20));
    assert_eq!(task_status(&done[0]).phase, Some(Phase::Succeeded));
    drop(engine);
    open(dir.path()).status(&tid("fits")).unwrap();
}

#[test]
fn a_result_nested_too_deeply_fails_the_attempt_instead_of_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    engine
        .submit(vec![task("r", "call: {function: t.echo}")])
        .unwrap();
    let leases = engine
        .lease("*", None, "w", 1, Duration::from_secs(5))
        .unwrap();
    // 126 levels plus the root record's two is past what serde_json reads.
    let acks = engine
        .complete(vec![Completion {
            token: leases[0].token,
            outcome: Outcome::Success { value: nested(126) },
        }])
        .unwrap();
    assert_eq!(acks.len(), 1);
    let status = engine.status(&tid("r")).unwrap();
    assert_eq!(phase_of(&status), Some(Phase::Failed));
    assert!(
        error_of(&status).starts_with("the function's result was refused: nested more than 64"),
        "{status:?}"
    );
    drop(engine);
    let engine = open(dir.path());
    assert_eq!(
        phase_of(&engine.status(&tid("r")).unwrap()),
        Some(Phase::Failed)
    );
}

#[test]
fn calls_and_tasks_made_from_code_are_checked_too() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    engine
        .submit(vec![task("parent", "call: {function: t.echo}")])
        .unwrap();
    let lease = engine
        .lease("*", None, "w", 1, Duration::from_secs(5))
        .unwrap()
        .remove(0);
    let deep_call: kontinuum_api::FnRef = serde_json::from_str(&format!(
        r#"{{"function": "t.echo", "args": {{"x": {}}}}}"#,
        nested_text(100)
    ))
    .unwrap();
    let err = engine.add_child(lease.token, deep_call, 1).unwrap_err();
    assert!(
        matches!(&err, EngineError::Invalid(m) if m.contains("nested more than 64")),
        "{err:?}"
    );
    let kontinuum_engine::SubmissionBody::Task(spec) = deep_task("x", 100).body else {
        unreachable!()
    };
    let err = engine.spawn(lease.token, spec).unwrap_err();
    assert!(
        matches!(&err, EngineError::Invalid(m) if m.contains("nested more than 64")),
        "{err:?}"
    );
    let spec: TaskSpec = yaml("call: {function: t.echo}\ntimeout: 0s");
    let err = engine.spawn(lease.token, spec).unwrap_err();
    assert!(
        matches!(&err, EngineError::Invalid(m) if m.contains("must be at least 1ms")),
        "{err:?}"
    );
}

/// Writes `value` under `key` straight into the store's sled tree (the
/// layout of docs/architecture.md: `o` + name for named root records, whose
/// first byte says whether the tree is active).
fn plant(dir: &std::path::Path, key: &[u8], value: &[u8]) {
    let db = sled::open(dir).unwrap();
    db.insert(key, value).unwrap();
    db.flush().unwrap();
}

fn planted_root(name: &str, body: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let mut key = b"o".to_vec();
    key.extend_from_slice(name.as_bytes());
    let mut value = vec![1u8];
    value.extend_from_slice(body);
    (key, value)
}

#[test]
fn an_undecodable_record_fails_its_object_and_the_rest_of_the_store_runs() {
    let dir = tempfile::tempdir().unwrap();
    {
        let engine = open(dir.path());
        // A tree that is still active when the store closes: its child
        // node records are then spoiled below.
        engine
            .submit(vec![future(
                "par",
                "parallel: [{function: t.sum, args: {a: 1, b: 2}}, {function: t.sum, args: {a: 3, b: 4}}]",
            )])
            .unwrap();
        let leases = engine
            .lease("*", None, "w", 1, Duration::from_secs(5))
            .unwrap();
        assert!(
            !leases.is_empty(),
            "the parallel node's children are queued"
        );
    }
    {
        let db = sled::open(dir.path()).unwrap();
        let nodes: Vec<_> = db.scan_prefix(b"n").keys().map(Result::unwrap).collect();
        assert!(!nodes.is_empty());
        for key in nodes {
            db.insert(key, &b"\x00garbage"[..]).unwrap();
        }
        db.flush().unwrap();
    }
    let deep_record = format!(
        r#"{{"root": {{"id": 424242, "kind": "future", "x": {}}}}}"#,
        nested_text(300)
    );
    for (name, body) in [
        ("default/task/garbage", b"{not json at all".to_vec()),
        ("default/future/deep", deep_record.into_bytes()),
    ] {
        let (key, value) = planted_root(name, &body);
        plant(dir.path(), &key, &value);
    }

    let engine = open(dir.path());
    let garbage = engine.status(&tid("garbage")).unwrap();
    assert_eq!(phase_of(&garbage), Some(Phase::Failed));
    assert!(
        error_of(&garbage).contains("cannot read this object's root record"),
        "{garbage:?}"
    );
    let deep = engine.status(&fid("deep")).unwrap();
    assert!(
        matches!(deep, ObjectStatus::Future(_)),
        "the kind is read where it can be"
    );
    assert_eq!(future_status(&deep).phase, Some(Phase::Failed));
    let par = engine.status(&fid("par")).unwrap();
    assert_eq!(phase_of(&par), Some(Phase::Failed));
    assert!(
        error_of(&par).contains("cannot read this object's node record"),
        "{par:?}"
    );

    // Everything else works: a new task runs, and a resubmission of a
    // failed name is a conflict, not a crash.
    engine
        .submit(vec![task(
            "after",
            "call: {function: t.sum, args: {a: 4, b: 5}}",
        )])
        .unwrap();
    let done = drive(&engine, &["after"], Duration::from_secs(20));
    assert_eq!(task_status(&done[0]).result, Some(serde_json::json!(9)));
    let again = engine.submit(vec![task("garbage", "call: {function: t.echo}")]);
    assert!(
        matches!(again, Err(EngineError::Conflict { .. })),
        "{again:?}"
    );
    drop(engine);
    let engine = open(dir.path());
    assert_eq!(
        phase_of(&engine.status(&fid("par")).unwrap()),
        Some(Phase::Failed)
    );
    assert_eq!(
        phase_of(&engine.status(&tid("garbage")).unwrap()),
        Some(Phase::Failed)
    );
}
