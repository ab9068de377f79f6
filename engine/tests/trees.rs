//! Trees across objects (parentRef): an object that joins a future's tree
//! counts in its weight, progress, value and failure policy, keeps it from
//! finishing while it runs, and is cancelled with it. Manual clock.

mod common;

use common::*;
use kontinuum_api::Phase;
use kontinuum_api::work::{Completion, Outcome};
use kontinuum_engine::{EngineError, Submission};
use serde_json::json;
use std::time::Duration;

const PARENT: &str =
    "{parallel: [{function: t.sum, args: {a: 1, b: 1}}, {function: t.sum, args: {a: 2, b: 2}}]}";

fn child(name: &str, spec: &str) -> Submission {
    let mut s = task(name, spec);
    s.parent = Some(fid("p"));
    s
}

#[test]
fn a_joined_task_adds_its_value_and_weight_and_holds_the_parent_open() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    engine.submit(vec![future("p", PARENT)]).unwrap();
    // parentRef in the spec, as a manifest would say it.
    engine
        .submit(vec![task(
            "c",
            "{call: {function: t.sum, args: {a: 3, b: 3}}, parentRef: {name: p}}",
        )])
        .unwrap();
    let p = future_status(&status(&engine, "p")).clone();
    assert_eq!(p.progress.map(|p| p.total), Some(3), "2 calls + the task");
    // Run everything but the joined task.
    let mut held = None;
    for _ in 0..10 {
        for lease in lease_now(&engine, 10) {
            let is_child = matches!(&lease.work, kontinuum_api::work::Work::Call { call } if call.args.get("a") == Some(&json!(3)));
            if is_child {
                held = Some(lease);
            } else {
                complete_all(&engine, &[lease]);
            }
        }
    }
    let held = held.expect("the joined task ran");
    assert_eq!(
        status(&engine, "p").phase(),
        Some(Phase::Running),
        "not final while the joined task runs"
    );
    complete_all(&engine, &[held]);
    let p = future_status(&status(&engine, "p")).clone();
    assert_eq!(p.phase, Some(Phase::Succeeded));
    // In creation order: the link was made before the parallel body ran.
    assert_eq!(p.result, Some(json!([6, 2, 4])));
    assert_eq!(p.progress.map(|p| (p.done, p.total)), Some((3, 3)));
    let tree = engine.tree(&fid("p"), 100).unwrap();
    let link = &tree.root.children[0];
    assert_eq!(
        (link.kind.as_str(), link.object.as_deref()),
        ("link", Some("default/task/c"))
    );
}

#[test]
fn parent_and_child_may_come_in_one_call_parent_first() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    let err = engine
        .submit(vec![
            child("c", "{call: {function: t.sum}}"),
            future("p", PARENT),
        ])
        .unwrap_err();
    assert!(
        matches!(&err, EngineError::ParentNotFound(id) if *id == fid("p")),
        "{err:?}"
    );
    assert!(engine.objects().unwrap().is_empty(), "nothing was accepted");
    engine
        .submit(vec![
            future("p", PARENT),
            child("c", "{call: {function: t.sum, args: {a: 5}}}"),
        ])
        .unwrap();
    let done = drive(&engine, &["p", "c"], Duration::from_secs(10));
    assert_eq!(future_status(&done[0]).result, Some(json!([5, 2, 4])));
}

#[test]
fn a_parent_that_is_missing_finished_or_a_task_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    engine
        .submit(vec![
            future("done", "{call: {function: t.sum}}"),
            task("t", "{call: {function: t.sum}}"),
        ])
        .unwrap();
    drive(&engine, &["done", "t"], Duration::from_secs(10));
    let spec = "{call: {function: t.sum}}";
    let mut to_done = task("c", spec);
    to_done.parent = Some(fid("done"));
    let err = engine.submit(vec![to_done]).unwrap_err();
    assert!(matches!(err, EngineError::ParentFinished(_)), "{err:?}");
    let mut to_task = task("c", spec);
    to_task.parent = Some(tid("t"));
    let err = engine.submit(vec![to_task]).unwrap_err();
    assert!(
        matches!(&err, EngineError::Invalid(m) if m.contains("not a HierarchicalFuture")),
        "{err:?}"
    );
    let err = engine.submit(vec![child("c", spec)]).unwrap_err();
    assert!(matches!(err, EngineError::ParentNotFound(_)), "{err:?}");
    let mut elsewhere = task("c", spec);
    elsewhere.parent = Some("other/future/p".parse().unwrap());
    let err = engine.submit(vec![elsewhere]).unwrap_err();
    assert!(err.to_string().contains("another namespace"), "{err}");
}

#[test]
fn a_failed_child_counts_against_the_failure_policy() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    engine
        .submit(vec![
            future(
                "p",
                "{parallel: [{function: t.sum}], failurePolicy: {maxFailedChildren: 0}}",
            ),
            child("bad", "{call: {function: t.fail, args: {message: nope}}}"),
        ])
        .unwrap();
    let done = drive(&engine, &["p", "bad"], Duration::from_secs(10));
    let p = future_status(&done[0]);
    assert_eq!(p.phase, Some(Phase::Failed));
    assert_eq!(p.failures[0].message, "nope");
    assert!(p.conditions[0].message.contains("1 child(ren) failed"));
}

#[test]
fn a_tolerated_child_failure_leaves_a_hole_in_the_value() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    engine
        .submit(vec![
            future(
                "p",
                "{parallel: [{function: t.sum, args: {a: 1}}], failurePolicy: {maxFailedChildren: 1}}",
            ),
            child("bad", "{call: {function: t.fail}}"),
        ])
        .unwrap();
    let done = drive(&engine, &["p"], Duration::from_secs(10));
    assert_eq!(future_status(&done[0]).phase, Some(Phase::Succeeded));
    assert_eq!(future_status(&done[0]).result, Some(json!([1])));
}

#[test]
fn cancelling_the_parent_cancels_what_joined_it() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    engine
        .submit(vec![
            future("p", PARENT),
            child("c", "{call: {function: t.sum}, delay: 1h}"),
        ])
        .unwrap();
    let mut grandchild = future(
        "g",
        "{map: {source: {range: {start: 0, end: 10}}, function: {function: t.square}, shardSize: 5}}",
    );
    grandchild.parent = Some(fid("p"));
    engine.submit(vec![grandchild]).unwrap();
    engine.cancel(&fid("p")).unwrap();
    for name in ["p", "c", "g"] {
        assert_eq!(
            status(&engine, name).phase(),
            Some(Phase::Cancelled),
            "{name}"
        );
    }
    let c = task_status(&status(&engine, "c")).clone();
    assert!(c.error.unwrap().message.contains("parentRef"));
    assert!(
        lease_now(&engine, 100).is_empty(),
        "nothing of them is left to run"
    );
}

#[test]
fn a_joined_future_rolls_its_live_progress_up() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    engine
        .submit(vec![
            future("p", "{parallel: [{function: t.sum}]}"),
            Submission {
                parent: Some(fid("p")),
                ..future(
                    "m",
                    "{map: {source: {range: {start: 0, end: 100}}, function: {function: t.square}, shardSize: 100, reduce: sum}}",
                )
            },
        ])
        .unwrap();
    let p = future_status(&status(&engine, "p")).clone();
    assert_eq!(p.progress.map(|p| p.total), Some(101));
    let leases = lease_now(&engine, 10);
    let leaf = leases
        .iter()
        .find(|l| matches!(l.work, kontinuum_api::work::Work::MapLeaf { .. }))
        .expect("the map's leaf");
    let feed = engine.subscribe();
    engine.heartbeat(leaf.token, Some(30)).unwrap();
    let changed = feed.wait(Duration::ZERO).objects;
    assert_eq!(
        changed,
        [fid("m"), fid("p")],
        "the parent's progress moved too"
    );
    let p = future_status(&status(&engine, "p")).clone();
    assert_eq!(
        p.progress.map(|p| p.done),
        Some(30),
        "the leaf's 30 of the map's 100"
    );
    complete_all(&engine, &leases);
    let done = drive(&engine, &["p", "m"], Duration::from_secs(10));
    let p = future_status(&done[0]);
    assert_eq!(
        p.progress.as_ref().map(|p| (p.done, p.total)),
        Some((101, 101))
    );
    let squares: i64 = (0..100).map(|i| i * i).sum();
    assert_eq!(p.result, Some(json!([squares, 0])));
}

#[test]
fn a_tree_across_objects_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let engine = open(dir.path());
        engine
            .submit(vec![
                future("p", PARENT),
                child("c", "{call: {function: t.sum, args: {a: 7}}}"),
            ])
            .unwrap();
        let leases = lease_now(&engine, 10);
        let (child_lease, rest): (Vec<_>, Vec<_>) = leases
            .into_iter()
            .partition(|l| matches!(&l.work, kontinuum_api::work::Work::Call { call } if call.args.get("a") == Some(&json!(7))));
        complete_all(&engine, &rest);
        assert_eq!(child_lease.len(), 1, "the child was running at the stop");
    }
    let engine = open(dir.path());
    assert_eq!(status(&engine, "p").phase(), Some(Phase::Running));
    let again = lease_now(&engine, 10);
    assert_eq!(again.len(), 1, "only the child runs again");
    engine
        .complete(vec![Completion {
            token: again[0].token,
            outcome: Outcome::Success { value: json!(7) },
        }])
        .unwrap();
    let p = future_status(&status(&engine, "p")).clone();
    assert_eq!(p.phase, Some(Phase::Succeeded));
    assert_eq!(p.result, Some(json!([7, 2, 4])));
}

#[test]
fn a_sequence_moves_on_only_when_its_own_steps_finish() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    engine
        .submit(vec![
            future(
                "p",
                "{sequence: [{function: t.sum, args: {a: 1}}, {function: t.echo}]}",
            ),
            child("c", "{call: {function: t.sum, args: {a: 10}}}"),
        ])
        .unwrap();
    // The first step and the joined task run; the task finishes first.
    let leases = lease_now(&engine, 10);
    assert_eq!(leases.len(), 2);
    let (joined, step): (Vec<_>, Vec<_>) = leases
        .into_iter()
        .partition(|l| matches!(&l.work, kontinuum_api::work::Work::Call { call } if call.args.get("a") == Some(&json!(10))));
    complete_all(&engine, &joined);
    assert!(
        lease_now(&engine, 10).is_empty(),
        "a link does not advance the sequence"
    );
    complete_all(&engine, &step);
    let done = drive(&engine, &["p"], Duration::from_secs(10));
    // The link came first; the second step sees every value so far.
    assert_eq!(
        future_status(&done[0]).result,
        Some(json!([10, 1, {"previous": [10, 1]}]))
    );
}

#[test]
fn an_object_merged_on_arrival_joins_as_a_success_without_a_value() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    let debounced = "{call: {function: t.echo, args: {k: 1}}, debounce: {initial: 1s}}";
    engine
        .submit(vec![
            future("p", "{parallel: [{function: t.sum, args: {a: 2}}]}"),
            task("first", debounced),
            child("merged", debounced),
        ])
        .unwrap();
    assert_eq!(status(&engine, "merged").phase(), Some(Phase::Merged));
    let done = drive(&engine, &["p"], Duration::from_secs(10));
    assert_eq!(future_status(&done[0]).result, Some(json!([null, 2])));
}
