//! Objects by namespaced id: uids, namespaces and their pools, removal and
//! listing, continuations as objects of their own. Manual clock (common.rs).

mod common;

use common::*;
use kontinuum_api::work::{Completion, Outcome};
use kontinuum_api::{ObjectId, Phase};
use kontinuum_engine::{EngineError, ObjectSummary, PoolStats, Submission};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;

fn with_uid(mut s: Submission, uid: &str) -> Submission {
    s.uid = Some(uid.into());
    s
}

fn in_ns(ns: &str, name: &str, spec: &str) -> Submission {
    Submission::task(ns, name, yaml(spec))
}

#[test]
fn one_name_in_two_namespaces_is_two_objects() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    let (a, b) = (ObjectId::task("a", "sum"), ObjectId::task("b", "sum"));
    engine
        .submit(vec![
            in_ns("a", "sum", "{call: {function: t.sum, args: {a: 1, b: 1}}}"),
            in_ns("b", "sum", "{call: {function: t.sum, args: {a: 2, b: 2}}}"),
        ])
        .unwrap();
    let statuses = drive_ids(&engine, &[a.clone(), b.clone()], Duration::from_secs(10));
    assert_eq!(task_status(&statuses[0]).result, Some(json!(2)));
    assert_eq!(task_status(&statuses[1]).result, Some(json!(4)));
    assert_eq!(engine.objects().unwrap(), vec![a, b]);
}

#[test]
fn the_same_id_is_a_no_op_with_its_uid_and_refused_with_another() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    let spec = "{call: {function: t.sum, args: {a: 1, b: 2}}}";
    engine
        .submit(vec![with_uid(task("s", spec), "u1")])
        .unwrap();
    engine
        .submit(vec![with_uid(task("s", spec), "u1")])
        .unwrap();
    engine.submit(vec![task("s", spec)]).unwrap();
    assert_eq!(lease_now(&engine, 10).len(), 1, "one object, one run");
    let err = engine
        .submit(vec![with_uid(task("s", spec), "u2")])
        .unwrap_err();
    match &err {
        EngineError::UidMismatch { id, stored_uid } => {
            assert_eq!((id, stored_uid.as_deref()), (&tid("s"), Some("u1")));
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("uid u1"), "{err}");
    let err = engine
        .submit(vec![with_uid(
            task("s", "{call: {function: t.sum, args: {a: 9, b: 2}}}"),
            "u1",
        )])
        .unwrap_err();
    assert!(matches!(err, EngineError::Conflict { .. }), "{err:?}");
    // The operator's way out: cancel, remove, submit the new resource.
    engine.cancel(&tid("s")).unwrap();
    engine.remove(&tid("s")).unwrap();
    engine
        .submit(vec![with_uid(task("s", spec), "u2")])
        .unwrap();
    let listed = engine.list().unwrap();
    assert_eq!(
        listed,
        vec![ObjectSummary {
            id: tid("s"),
            uid: Some("u2".into()),
            phase: Phase::Queued,
        }]
    );
}

#[test]
fn bad_ids_are_refused_before_anything_changes() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    let spec = "{call: {function: t.sum}}";
    let cases = [
        (in_ns("a/b", "x", spec), "object id"),
        (in_ns("", "x", spec), "empty namespace"),
        (task("x.on-success", spec), "continuation of 'x'"),
        (
            Submission {
                id: fid("x"),
                ..task("x", spec)
            },
            "the id says HierarchicalFuture but the body is a Task",
        ),
    ];
    for (submission, words) in cases {
        let err = engine
            .submit(vec![task("fine", spec), submission])
            .unwrap_err();
        assert!(
            matches!(err, EngineError::Invalid(_)) && err.to_string().contains(words),
            "{err}"
        );
    }
    assert!(engine.objects().unwrap().is_empty());
}

#[test]
fn a_store_of_the_previous_layout_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = sled::Config::new()
            .path(dir.path())
            .flush_every_ms(None)
            .open()
            .unwrap();
        db.insert("m/layout", &[2u8][..]).unwrap();
        db.insert("otask/old", &[1u8][..]).unwrap();
        db.flush().unwrap();
    }
    let err = kontinuum_engine::Engine::open(dir.path(), Default::default())
        .err()
        .expect("refused");
    let text = err.to_string();
    assert!(
        text.contains("layout Some(2), this one reads 3") && text.contains("new data directory"),
        "{text}"
    );
}

fn stats(engine: &kontinuum_engine::Engine, ns: &str) -> PoolStats {
    engine.pool_stats(ns, "default")
}

#[test]
fn pools_are_per_namespace_and_count_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    engine
        .submit(vec![
            in_ns("a", "later", "{call: {function: t.sum}, delay: 1s}"),
            in_ns("a", "now", "{call: {function: t.sum}}"),
            in_ns("b", "now", "{call: {function: t.sum}}"),
        ])
        .unwrap();
    let a = stats(&engine, "a");
    assert_eq!(
        (a.queued, a.running, a.delayed, a.delayed_due),
        (1, 0, 1, 0)
    );
    assert_eq!(stats(&engine, "b").queued, 1);
    assert_eq!(stats(&engine, "c"), PoolStats::default(), "never used");
    // Due, but the timers have not run yet: counted as due.
    manual_advance(&engine, Duration::from_secs(1));
    assert_eq!(stats(&engine, "a").delayed_due, 1);
    engine.tick().unwrap();
    let a = stats(&engine, "a");
    assert_eq!((a.queued, a.delayed, a.delayed_due), (2, 0, 0));
    let only_a = engine
        .lease("default", Some("a"), "w", 10, Duration::ZERO)
        .unwrap();
    assert_eq!(only_a.len(), 2, "both of a's, none of b's");
    assert_eq!(
        (stats(&engine, "a").running, stats(&engine, "a").queued),
        (2, 0)
    );
    assert_eq!(stats(&engine, "b").queued, 1);
    complete_all(&engine, &only_a);
    assert_eq!(stats(&engine, "a"), PoolStats::default());
    let pools: Vec<(String, String)> = engine
        .pools()
        .into_iter()
        .map(|(ns, pool, _)| (ns, pool))
        .collect();
    assert_eq!(
        pools,
        [
            ("a".into(), "default".into()),
            ("b".into(), "default".into())
        ]
    );
}

/// Moves the clock without running the timers.
fn manual_advance(engine: &kontinuum_engine::Engine, by: Duration) {
    match engine.clock() {
        kontinuum_engine::Clock::Manual(m) => m.advance(by),
        kontinuum_engine::Clock::Wall => panic!("manual clock expected"),
    }
}

#[test]
fn a_worker_of_every_namespace_serves_them_in_turn() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    let big: Vec<Submission> = (0..50)
        .map(|i| {
            in_ns(
                "big",
                &format!("t{i}"),
                &format!("{{call: {{function: t.sum, args: {{a: {i}}}}}}}"),
            )
        })
        .collect();
    engine.submit(big).unwrap();
    let small: Vec<Submission> = (0..5)
        .map(|i| {
            in_ns(
                "small",
                &format!("t{i}"),
                &format!("{{call: {{function: t.sum, args: {{a: {i}}}}}}}"),
            )
        })
        .collect();
    engine.submit(small).unwrap();
    let leases = engine
        .lease("default", None, "w", 10, Duration::ZERO)
        .unwrap();
    assert_eq!(leases.len(), 10);
    assert_eq!(
        stats(&engine, "small").running,
        5,
        "the small namespace is not starved"
    );
    assert_eq!(stats(&engine, "big").running, 5);
}

#[test]
fn a_cancelled_tree_leaves_its_pool_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    engine
        .submit(vec![future(
            "m",
            "{map: {source: {range: {start: 0, end: 100}}, function: {function: t.square}, shardSize: 10, fanout: 10}}",
        )])
        .unwrap();
    let held = lease_now(&engine, 3);
    assert_eq!(held.len(), 3);
    let before = stats(&engine, "default");
    assert_eq!((before.queued, before.running), (7, 3));
    engine.cancel(&fid("m")).unwrap();
    let after = stats(&engine, "default");
    // Queued work is gone at once; running work until its worker hears.
    assert_eq!((after.queued, after.running), (0, 3));
    for lease in &held {
        assert!(engine.heartbeat(lease.token, None).unwrap().cancelled);
    }
    assert_eq!(stats(&engine, "default"), PoolStats::default());
}

/// Records under each one-byte key prefix, read from a closed store.
fn records(dir: &std::path::Path) -> BTreeMap<char, usize> {
    let db = sled::Config::new()
        .path(dir)
        .flush_every_ms(None)
        .open()
        .unwrap();
    let mut out = BTreeMap::new();
    for entry in db.iter() {
        let (key, _) = entry.unwrap();
        *out.entry(key[0] as char).or_default() += 1;
    }
    out
}

#[test]
fn removing_a_final_object_deletes_every_record_of_it_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    {
        let engine = open(dir.path());
        engine
            .submit(vec![
                // Leaves run in order: 2 and 4 succeed (their values wait
                // in the store), 1 fails the tree, which leaves them there.
                future(
                    "m",
                    "{map: {source: {items: [2, 4, 1]}, function: {function: t.fail_odd}, shardSize: 1, fanout: 3, reduce: sum}, retry: {maxAttempts: 1}, onFailure: {function: t.echo}}",
                ),
                task("keep", "{call: {function: t.sum}}"),
            ])
            .unwrap();
        let done = drive(&engine, &["m", "keep"], Duration::from_secs(10));
        assert_eq!(done[0].phase(), Some(Phase::Failed));
        assert_eq!(
            engine.remove(&tid("m.on-failure")).unwrap_err().to_string(),
            EngineError::Active(tid("m.on-failure")).to_string(),
            "the continuation is still queued"
        );
    }
    let before = records(dir.path());
    assert_eq!(
        (before[&'n'], before[&'v'], before[&'i']),
        (3, 2, 1),
        "{before:?}"
    );
    {
        let engine = open(dir.path());
        engine.remove(&fid("m")).unwrap();
        assert!(matches!(
            engine.remove(&fid("m")),
            Err(EngineError::NotFound(_))
        ));
        // Its continuation (queued) went with it; the other object stays.
        let left: Vec<ObjectId> = engine.list().unwrap().into_iter().map(|s| s.id).collect();
        assert_eq!(left, [tid("keep")]);
        assert!(lease_now(&engine, 8).is_empty(), "nothing left to run");
    }
    let after = records(dir.path());
    assert_eq!(after.get(&'n'), None, "every node of the tree");
    assert_eq!(after.get(&'v'), None, "every child value");
    assert_eq!(after.get(&'i'), None, "the map's items");
    assert_eq!(
        after[&'o'],
        before[&'o'] - 2,
        "the object's record and its continuation's"
    );
    assert_eq!(after[&'m'], before[&'m'], "the layout and id counter stay");
}

#[test]
fn an_active_object_is_not_removed() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    engine
        .submit(vec![task("busy", "{call: {function: t.sum}}")])
        .unwrap();
    let err = engine.remove(&tid("busy")).unwrap_err();
    assert!(matches!(err, EngineError::Active(_)), "{err:?}");
    assert_eq!(lease_now(&engine, 1).len(), 1, "still there and runnable");
}

#[test]
fn a_continuation_is_a_task_named_after_its_object() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    engine
        .submit(vec![
            task(
                "sum-4-5",
                "{call: {function: t.sum, args: {a: 4, b: 5}}, onSuccess: {function: t.echo, args: {c: 7}}}",
            ),
            future(
                "bad",
                "{call: {function: t.fail}, onFailure: {function: t.echo}}",
            ),
        ])
        .unwrap();
    let statuses = drive(&engine, &["sum-4-5", "bad"], Duration::from_secs(10));
    assert_eq!(
        task_status(&statuses[0]).continuation.as_deref(),
        Some("sum-4-5.on-success")
    );
    assert_eq!(
        future_status(&statuses[1]).continuation.as_deref(),
        Some("bad.on-failure")
    );
    assert_eq!(
        engine.continuation(&tid("sum-4-5")).unwrap(),
        Some(tid("sum-4-5.on-success"))
    );
    let conts = drive(
        &engine,
        &["sum-4-5.on-success", "bad.on-failure"],
        Duration::from_secs(10),
    );
    let echoed = task_status(&conts[0]).result.clone().unwrap();
    assert_eq!(
        (echoed["result"].clone(), echoed["c"].clone()),
        (json!(9), json!(7))
    );
    assert_eq!(conts[1].phase(), Some(Phase::Succeeded));
    // Removing the object removes its continuation with it.
    engine.remove(&tid("sum-4-5")).unwrap();
    assert!(matches!(
        engine.status(&tid("sum-4-5.on-success")),
        Err(EngineError::NotFound(_))
    ));
    // Run again under the same name: a continuation of its own, named.
    engine
        .submit(vec![task(
            "sum-4-5",
            "{call: {function: t.sum, args: {a: 4, b: 5}}, onSuccess: {function: t.echo, args: {c: 8}}}",
        )])
        .unwrap();
    let again = drive(&engine, &["sum-4-5"], Duration::from_secs(10));
    assert_eq!(
        task_status(&again[0]).continuation.as_deref(),
        Some("sum-4-5.on-success")
    );
    let fresh = drive(&engine, &["sum-4-5.on-success"], Duration::from_secs(10));
    assert_eq!(
        task_status(&fresh[0]).result.as_ref().unwrap()["c"],
        8,
        "this run's continuation"
    );
}

#[test]
fn removing_an_object_cancels_its_running_continuation_and_removes_it() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    engine
        .submit(vec![task(
            "t",
            "{call: {function: t.sum, args: {a: 1, b: 2}}, onSuccess: {function: t.echo}}",
        )])
        .unwrap();
    let first = lease_now(&engine, 1);
    complete_all(&engine, &first);
    assert_eq!(status(&engine, "t").phase(), Some(Phase::Succeeded));
    let running = lease_now(&engine, 1);
    assert_eq!(running.len(), 1, "the continuation is leased");
    engine.remove(&tid("t")).unwrap();
    assert!(
        engine.heartbeat(running[0].token, None).unwrap().cancelled,
        "its worker hears of it at the next heartbeat"
    );
    assert!(engine.list().unwrap().is_empty(), "{:?}", engine.list());
    assert_eq!(stats(&engine, "default"), PoolStats::default());
    // A late completion of the cancelled run changes nothing.
    complete_all(&engine, &running);
    assert!(engine.list().unwrap().is_empty());
}

#[test]
fn a_finished_continuation_left_by_an_earlier_version_gives_way() {
    let dir = tempfile::tempdir().unwrap();
    {
        let engine = open(dir.path());
        engine
            .submit(vec![task(
                "t",
                "{call: {function: t.sum, args: {a: 1, b: 2}}, onSuccess: {function: t.echo, args: {run: 1}}}",
            )])
            .unwrap();
        drive(&engine, &["t", "t.on-success"], Duration::from_secs(10));
    }
    // What removal did before: the object's record went, its
    // continuation's stayed.
    {
        // Without sled's flusher thread, which could still hold the
        // store's lock for a moment after the drop.
        let db = sled::Config::new()
            .path(dir.path())
            .flush_every_ms(None)
            .open()
            .unwrap();
        db.remove(b"odefault/task/t")
            .unwrap()
            .expect("the object's record");
        db.flush().unwrap();
    }
    let engine = open(dir.path());
    engine
        .submit(vec![task(
            "t",
            "{call: {function: t.sum, args: {a: 1, b: 2}}, onSuccess: {function: t.echo, args: {run: 2}}}",
        )])
        .unwrap();
    let done = drive(&engine, &["t"], Duration::from_secs(10));
    assert_eq!(
        task_status(&done[0]).continuation.as_deref(),
        Some("t.on-success")
    );
    let cont = drive(&engine, &["t.on-success"], Duration::from_secs(10));
    assert_eq!(
        task_status(&cont[0]).result.as_ref().unwrap()["run"],
        2,
        "the name is this run's, not the earlier one's"
    );
}

#[test]
fn a_store_keeps_its_id_and_another_store_has_another() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let id = open(a.path()).store_id().to_string();
    assert!(id.starts_with("st-") && id.len() == 35, "{id}");
    assert_eq!(open(a.path()).store_id(), id, "the same after reopening");
    assert_ne!(open(b.path()).store_id(), id);
}

#[test]
fn statuses_carry_a_typed_phase() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    engine
        .submit(vec![task("p", "{call: {function: t.sum}, delay: 1s}")])
        .unwrap();
    assert_eq!(status(&engine, "p").phase(), Some(Phase::Pending));
    advance(&engine, Duration::from_secs(1));
    assert_eq!(status(&engine, "p").phase(), Some(Phase::Queued));
    let lease = lease_now(&engine, 1);
    assert_eq!(status(&engine, "p").phase(), Some(Phase::Running));
    assert!(!status(&engine, "p").is_final());
    engine
        .complete(vec![Completion {
            token: lease[0].token,
            outcome: Outcome::Success { value: json!(1) },
        }])
        .unwrap();
    assert_eq!(status(&engine, "p").phase(), Some(Phase::Succeeded));
    assert!(status(&engine, "p").is_final());
    let json = serde_json::to_value(task_status(&status(&engine, "p"))).unwrap();
    assert_eq!(json["phase"], "Succeeded");
}
