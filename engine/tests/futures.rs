//! Future trees: sharded maps, reducers, progress, parallel and sequence,
//! failure policy, cancellation, deadlines, runtime splitting, restarts.
//! Time is the engine's manual clock (common.rs).

mod common;

use common::*;
use kontinuum_api::Phase;
use kontinuum_api::work::{Completion, Outcome, Slice, Work};
use serde_json::json;
use std::time::Duration;

#[test]
fn map_over_a_range_sums_exactly_and_reports_progress() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    engine
        .submit(vec![future(
            "squares",
            "{map: {source: {range: {start: 0, end: 100000}}, function: {function: t.square}, shardSize: 1000, fanout: 4, reduce: sum}}",
        )])
        .unwrap();
    let statuses = drive(&engine, &["squares"], Duration::from_secs(30));
    let s = future_status(&statuses[0]);
    assert_eq!(s.phase, Some(Phase::Succeeded), "{s:#?}");
    let expected: i128 = (0..100000i128).map(|i| i * i).sum();
    assert_eq!(
        s.result,
        Some(serde_json::from_str(&expected.to_string()).unwrap())
    );
    let p = s.progress.as_ref().unwrap();
    assert_eq!((p.done, p.total, p.percent), (100000, 100000, 100));
    let counts = s.counts.as_ref().unwrap();
    assert_eq!(counts.failed + counts.pending + counts.running, 0);
    // 100 leaves of 1000 items under fanout 4.
    assert!(
        s.nodes > 100 && s.depth >= 4,
        "nodes {} depth {}",
        s.nodes,
        s.depth
    );
}

#[test]
fn map_over_items_collects_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    engine
        .submit(vec![future(
            "c",
            "{map: {source: {items: [3, 1, 4, 1, 5, 9, 2, 6]}, function: {function: t.square}, shardSize: 2, fanout: 2, reduce: collect}}",
        )])
        .unwrap();
    let statuses = drive(&engine, &["c"], Duration::from_secs(10));
    assert_eq!(
        future_status(&statuses[0]).result,
        Some(json!([9, 1, 16, 1, 25, 81, 4, 36]))
    );
}

#[test]
fn fnref_reducer_folds_on_workers() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    engine
        .submit(vec![future(
            "f",
            "{map: {source: {range: {start: 0, end: 20}}, function: {function: t.square}, shardSize: 3, reduce: {function: t.add}}}",
        )])
        .unwrap();
    let statuses = drive(&engine, &["f"], Duration::from_secs(10));
    let expected: i64 = (0..20i64).map(|i| i * i).sum();
    assert_eq!(future_status(&statuses[0]).result, Some(json!(expected)));
}

#[test]
fn parallel_and_sequence_values() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    engine
        .submit(vec![
            future("p", "{parallel: [{function: t.sum, args: {a: 1, b: 2}}, {function: t.sum, args: {a: 3, b: 4}}]}"),
            future("s", "{sequence: [{function: t.sum, args: {a: 1, b: 1}}, {function: t.echo, args: {x: 1}}]}"),
        ])
        .unwrap();
    let statuses = drive(&engine, &["p", "s"], Duration::from_secs(10));
    let p = future_status(&statuses[0]);
    assert_eq!(p.result, Some(json!([3, 7])));
    assert_eq!(p.progress.as_ref().map(|p| (p.done, p.total)), Some((2, 2)));
    let s = future_status(&statuses[1]);
    assert_eq!(s.result, Some(json!([2, {"x": 1, "previous": [2]}])));
}

#[test]
fn failure_policy_tolerates_then_fails_and_cancels_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    let spec = |max: u32| {
        format!(
            "{{map: {{source: {{range: {{start: 0, end: 10}}}}, function: {{function: t.fail_odd}}, shardSize: 1, reduce: sum}}, failurePolicy: {{maxFailedChildren: {max}}}, retry: {{maxAttempts: 1}}}}"
        )
    };
    engine
        .submit(vec![
            future("tolerant", &spec(5)),
            future("strict", &spec(2)),
        ])
        .unwrap();
    let statuses = drive(&engine, &["tolerant", "strict"], Duration::from_secs(10));
    let t = future_status(&statuses[0]);
    assert_eq!(t.phase, Some(Phase::Succeeded));
    assert_eq!(t.result, Some(json!(2 + 4 + 6 + 8)));
    assert_eq!(t.counts.as_ref().unwrap().failed, 5);
    assert_eq!(t.failures.len(), 5);
    assert_eq!(t.failures[0].message, "odd");
    let s = future_status(&statuses[1]);
    assert_eq!(s.phase, Some(Phase::Failed));
    assert!(
        s.conditions[0].message.contains("3 child(ren) failed"),
        "{:?}",
        s.conditions
    );
}

#[test]
fn cancel_drops_queued_work_and_tells_running_work() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    engine
        .submit(vec![future("big", "{map: {source: {range: {start: 0, end: 1000}}, function: {function: t.square}, shardSize: 10}}")])
        .unwrap();
    let leases = lease_now(&engine, 2);
    assert_eq!(leases.len(), 2);
    engine.cancel(&fid("big")).unwrap();
    let hb = engine.heartbeat(leases[0].token, Some(1)).unwrap();
    assert!(hb.cancelled);
    assert!(lease_now(&engine, 100).is_empty());
    let s = status(&engine, "big");
    let s = future_status(&s);
    assert_eq!(s.phase, Some(Phase::Cancelled));
    let c = s.counts.as_ref().unwrap();
    assert_eq!(c.pending + c.running, 0);
    assert!(c.cancelled > 0);
}

#[test]
fn deadline_fails_the_tree() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    engine
        .submit(vec![future(
            "d",
            "{call: {function: t.sum}, deadline: 100ms}",
        )])
        .unwrap();
    let _held = lease_now(&engine, 1);
    advance(&engine, Duration::from_millis(99));
    let s = future_status(&status(&engine, "d")).clone();
    assert_eq!(s.phase, Some(Phase::Running));
    advance(&engine, Duration::from_millis(1));
    let s = status(&engine, "d");
    let s = future_status(&s);
    assert_eq!(s.phase, Some(Phase::Failed));
    assert!(s.conditions[0].message.contains("deadline"));
}

#[test]
fn a_long_leaf_splits_when_workers_are_idle_and_counts_each_item_once() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    engine
        .submit(vec![future("skew", "{map: {source: {range: {start: 0, end: 100}}, function: {function: t.square}, shardSize: 100, reduce: sum}}")])
        .unwrap();
    let leases = lease_now(&engine, 1);
    let Work::MapLeaf {
        slice: Slice::Range { start, end },
        ..
    } = &leases[0].work
    else {
        panic!("{:?}", leases[0].work)
    };
    assert_eq!((*start, *end), (0, 100));
    // The leaf has done 10 items when, after split_after (200ms), the idle
    // queue asks it to split.
    advance(&engine, SPLIT_AFTER - Duration::from_millis(1));
    let hb = engine.heartbeat(leases[0].token, Some(10)).unwrap();
    assert!(!hb.split, "not before split_after");
    advance(&engine, Duration::from_millis(1));
    let hb = engine.heartbeat(leases[0].token, Some(10)).unwrap();
    assert!(hb.split, "idle workers and a long leaf: split");
    assert!(engine.split(leases[0].token, 10).unwrap());
    // The leaf finishes only its first 10 items.
    let mut acc = kontinuum_api::accumulator::Accumulator::new(kontinuum_api::BuiltinReducer::Sum);
    for i in 0..10 {
        acc.add(&json!(i * i)).unwrap();
    }
    engine
        .complete(vec![Completion {
            token: leases[0].token,
            outcome: Outcome::Success {
                value: acc.to_value(),
            },
        }])
        .unwrap();
    let statuses = drive(&engine, &["skew"], Duration::from_secs(10));
    let s = future_status(&statuses[0]);
    let expected: i64 = (0..100i64).map(|i| i * i).sum();
    assert_eq!(s.result, Some(json!(expected)));
    assert_eq!(
        s.progress.as_ref().map(|p| (p.done, p.total)),
        Some((100, 100))
    );
}

#[test]
fn a_tree_resumes_after_restart_without_double_counting() {
    let dir = tempfile::tempdir().unwrap();
    {
        let engine = open(dir.path());
        engine
            .submit(vec![future("m", "{map: {source: {range: {start: 0, end: 1000}}, function: {function: t.square}, shardSize: 10, reduce: sum}}")])
            .unwrap();
        // Finish some leaves, hold some, then stop without completing those.
        for _ in 0..5 {
            let leases = lease_now(&engine, 8);
            let done = leases
                .iter()
                .map(|l| Completion {
                    token: l.token,
                    outcome: execute(&l.work),
                })
                .collect();
            engine.complete(done).unwrap();
        }
        let _held = lease_now(&engine, 8);
        engine.close();
    }
    // A manual-clock engine has no ticker: dropping it closes the store.
    let engine = open(dir.path());
    let statuses = drive(&engine, &["m"], Duration::from_secs(20));
    let s = future_status(&statuses[0]);
    let expected: i64 = (0..1000i64).map(|i| i * i).sum();
    assert_eq!(s.result, Some(json!(expected)));
    assert_eq!(s.progress.as_ref().map(|p| p.done), Some(1000));
}

#[test]
fn tree_shows_every_node_with_its_progress() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    engine
        .submit(vec![future("t", "{map: {source: {range: {start: 0, end: 100}}, function: {function: t.square}, shardSize: 10, fanout: 4, reduce: sum}}")])
        .unwrap();
    // Before anything ran: one queued split node.
    let before = engine.tree(&fid("t"), 100).unwrap();
    assert_eq!(
        (
            before.root.kind.as_str(),
            before.root.state.as_str(),
            before.root.done
        ),
        ("split", "queued", 0)
    );
    drive(&engine, &["t"], Duration::from_secs(10));
    let view = engine.tree(&fid("t"), 1000).unwrap();
    assert!(!view.truncated);
    assert_eq!(view.root.state, "succeeded");
    assert_eq!((view.root.weight, view.root.done), (100, 100));
    assert_eq!(view.root.children.len(), 4);
    assert_eq!(view.root.children[1].path, "/1");
    fn leaves(n: &kontinuum_engine::TreeNode) -> u64 {
        if n.children.is_empty() {
            u64::from(n.kind == "leaf")
        } else {
            n.children.iter().map(leaves).sum()
        }
    }
    assert_eq!(leaves(&view.root), 10);
    let small = engine.tree(&fid("t"), 3).unwrap();
    assert!(small.truncated);
    assert_eq!(small.root.done, 100, "done still counts the nodes left out");
}

#[test]
fn a_cut_tree_keeps_the_top_levels() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    engine
        .submit(vec![future("w", "{map: {source: {range: {start: 0, end: 64}}, function: {function: t.square}, shardSize: 1, fanout: 4, reduce: sum}}")])
        .unwrap();
    drive(&engine, &["w"], Duration::from_secs(10));
    // Root plus its 4 children: breadth first, not a chain down one side.
    let view = engine.tree(&fid("w"), 5).unwrap();
    assert!(view.truncated);
    assert_eq!(view.root.children.len(), 4);
    assert!(view.root.children.iter().all(|c| c.children.is_empty()));
    assert_eq!(view.root.children.iter().map(|c| c.done).sum::<u64>(), 64);
}

/// The tasks a pool's queue will become are rebuilt with the queue when
/// the store is opened again: the splits no worker has taken count as
/// their leaves, whatever was running is queued again.
#[test]
fn queued_tasks_of_unsplit_maps_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let engine = open(dir.path());
        engine
            .submit(vec![future(
                "m",
                "{map: {source: {range: {start: 0, end: 100000}}, function: {function: t.square}, shardSize: 1000}}",
            )])
            .unwrap();
        let s = engine.pool_stats("default", "default");
        assert_eq!((s.queued, s.queued_tasks), (1, 100));
        // Three leases split the root and two of its parts on the way.
        let held = lease_now(&engine, 3);
        assert_eq!(held.len(), 3);
        let s = engine.pool_stats("default", "default");
        assert_eq!((s.queued_tasks, s.running), (97, 3));
        assert!(s.queued > 1 && s.queued < 97, "{s:?}");
        engine.close();
    }
    let engine = open(dir.path());
    let s = engine.pool_stats("default", "default");
    assert_eq!((s.queued_tasks, s.running), (100, 0), "{s:?}");
}
