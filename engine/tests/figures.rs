//! What the engine counts for metrics: attempts by outcome and function
//! with their durations, tasks submitted, objects finished, queue depth,
//! active futures and their units, the store's fsyncs and size.

mod common;

use common::*;
use kontinuum_api::work::{Completion, Outcome};
use kontinuum_api::{ObjectKind, Phase};
use kontinuum_engine::{
    AttemptOutcome, EngineFigures, MAX_FUNCTIONS_PER_POOL, NamespaceFigures, OTHER_FUNCTION,
    PoolFigures, Submission,
};
use serde_json::json;
use std::time::Duration;

fn pool<'a>(f: &'a EngineFigures, ns: &str, name: &str) -> &'a PoolFigures {
    f.pools
        .iter()
        .find(|p| p.namespace == ns && p.pool == name)
        .unwrap_or_else(|| panic!("no pool {ns}/{name} in {:?}", f.pools))
}

/// Attempts of `function` in the pool with `outcome`.
fn attempts(p: &PoolFigures, function: &str, outcome: AttemptOutcome) -> u64 {
    let at = AttemptOutcome::ALL
        .iter()
        .position(|o| *o == outcome)
        .unwrap();
    p.functions
        .iter()
        .find(|f| f.function == function)
        .map_or(0, |f| f.outcomes[at])
}

fn namespace<'a>(f: &'a EngineFigures, ns: &str) -> Option<&'a NamespaceFigures> {
    f.namespaces.iter().find(|n| n.namespace == ns)
}

fn finished(f: &EngineFigures, ns: &str, kind: ObjectKind, phase: Phase) -> u64 {
    namespace(f, ns)
        .and_then(|n| {
            n.finished
                .iter()
                .find(|(k, p, _)| *k == kind && *p == phase)
        })
        .map_or(0, |(_, _, n)| *n)
}

#[test]
fn attempts_are_counted_by_outcome_with_their_duration() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    engine
        .submit(vec![
            task("ok", "{call: {function: t.sum, args: {a: 1, b: 2}}}"),
            task(
                "flaky",
                "{call: {function: t.flaky}, retry: {maxAttempts: 2, backoff: {initial: 10ms}}}",
            ),
        ])
        .unwrap();
    let f = engine.figures();
    let p = pool(&f, "default", "default");
    assert_eq!(p.submitted, 2);
    assert_eq!(p.stats.queued, 2);
    assert!(p.functions.is_empty(), "nothing ran yet: {:?}", p.functions);

    // Both leased; 250 ms of engine time pass before the outcomes arrive.
    let leases = lease_now(&engine, 10);
    assert_eq!(leases.len(), 2);
    let f = engine.figures();
    assert_eq!(pool(&f, "default", "default").stats.running, 2);
    assert_eq!(pool(&f, "default", "default").workers, ["test"]);
    manual_advance(&engine, Duration::from_millis(250));
    complete_all(&engine, &leases);
    let f = engine.figures();
    let p = pool(&f, "default", "default");
    assert_eq!(attempts(p, "t.sum", AttemptOutcome::Succeeded), 1);
    assert_eq!(attempts(p, "t.flaky", AttemptOutcome::Retried), 1);
    assert_eq!(p.stats.delayed, 1, "the retry waits for its backoff");
    let sum = p.functions.iter().find(|f| f.function == "t.sum").unwrap();
    assert_eq!(sum.duration.count, 1);
    assert!((sum.duration.sum - 0.25).abs() < 1e-9, "{:?}", sum.duration);
    // 0.25 s falls in the bucket whose bound is 0.25 and in every later one.
    let le = |bound: f64| {
        let i = sum
            .duration
            .bounds
            .iter()
            .position(|b| *b == bound)
            .unwrap();
        sum.duration.cumulative()[i]
    };
    assert_eq!((le(0.1), le(0.25), le(600.0)), (0, 1, 1));
    assert_eq!(
        finished(&f, "default", ObjectKind::Task, Phase::Succeeded),
        1
    );

    drive(&engine, &["flaky"], Duration::from_secs(10));
    let f = engine.figures();
    let p = pool(&f, "default", "default");
    assert_eq!(attempts(p, "t.flaky", AttemptOutcome::Failed), 1);
    assert_eq!(attempts(p, "t.flaky", AttemptOutcome::Retried), 1);
    assert_eq!(p.submitted, 2, "a retry is not a new task");
    assert_eq!(finished(&f, "default", ObjectKind::Task, Phase::Failed), 1);
    assert_eq!(
        (p.stats.queued, p.stats.running, p.stats.delayed),
        (0, 0, 0)
    );
}

/// Moves the manual clock without running the timers (a lease would
/// expire on the next tick otherwise).
fn manual_advance(engine: &kontinuum_engine::Engine, by: Duration) {
    match engine.clock() {
        kontinuum_engine::Clock::Manual(m) => m.advance(by),
        kontinuum_engine::Clock::Wall => unreachable!(),
    }
}

#[test]
fn expired_and_cancelled_attempts_are_counted_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    engine
        .submit(vec![
            task("lost", "{call: {function: t.sum}}"),
            task("stopped", "{call: {function: t.echo}}"),
        ])
        .unwrap();
    let leases = lease_now(&engine, 10);
    assert_eq!(leases.len(), 2);
    engine.cancel(&tid("stopped")).unwrap();
    // The worker of the cancelled task hears of it at its heartbeat.
    let stopped = leases
        .iter()
        .find(|l| matches!(&l.work, kontinuum_api::work::Work::Call { call } if call.function == "t.echo"))
        .unwrap();
    assert!(engine.heartbeat(stopped.token, None).unwrap().cancelled);
    // The other worker goes silent: its lease expires.
    advance(&engine, LEASE + Duration::from_millis(10));
    let f = engine.figures();
    let p = pool(&f, "default", "default");
    assert_eq!(attempts(p, "t.echo", AttemptOutcome::Cancelled), 1);
    assert_eq!(attempts(p, "t.sum", AttemptOutcome::Timeout), 1);
    assert_eq!(
        finished(&f, "default", ObjectKind::Task, Phase::Cancelled),
        1
    );
    // A late answer for either is stale and not counted again.
    engine
        .complete(
            leases
                .iter()
                .map(|l| Completion {
                    token: l.token,
                    outcome: Outcome::Success { value: json!(1) },
                })
                .collect(),
        )
        .unwrap();
    let f = engine.figures();
    let p = pool(&f, "default", "default");
    let total: u64 = p.functions.iter().flat_map(|f| f.outcomes).sum();
    assert_eq!(total, 2, "{:?}", p.functions);
}

#[test]
fn function_names_beyond_the_cap_count_as_other() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    let n = MAX_FUNCTIONS_PER_POOL + 8;
    let tasks: Vec<Submission> = (0..n)
        .map(|i| {
            task(
                &format!("t{i}"),
                &format!("{{call: {{function: gen.f{i}}}}}"),
            )
        })
        .collect();
    engine.submit(tasks).unwrap();
    let names: Vec<String> = (0..n).map(|i| format!("t{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    drive(&engine, &names, Duration::from_secs(10));
    let f = engine.figures();
    let p = pool(&f, "default", "default");
    assert_eq!(p.functions.len(), MAX_FUNCTIONS_PER_POOL + 1);
    let other = p
        .functions
        .iter()
        .find(|f| f.function == OTHER_FUNCTION)
        .expect("an `other` entry");
    // Unknown functions fail for good in the test worker.
    assert_eq!(other.outcomes.iter().sum::<u64>(), 8);
}

#[test]
fn active_futures_show_their_units_per_namespace_and_leave_when_final() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    engine
        .submit(vec![
            Submission::future(
                "team-a",
                "squares",
                yaml("{map: {source: {range: {start: 0, end: 40}}, function: {function: t.square}, shardSize: 10, reduce: sum}}"),
            ),
            Submission::task("team-b", "one", yaml("{call: {function: t.sum}}")),
        ])
        .unwrap();
    let f = engine.figures();
    let a = namespace(&f, "team-a").unwrap();
    assert_eq!((a.futures_active, a.units_done, a.units_total), (1, 0, 40));
    let b = namespace(&f, "team-b").unwrap();
    assert_eq!(b.futures_active, 0);

    // Leaves run; one reports progress before it ends.
    let mut done_leaves = 0;
    while done_leaves < 2 {
        let leases = lease_now(&engine, 1);
        let Some(lease) = leases.first() else {
            advance(&engine, Duration::from_millis(10));
            continue;
        };
        if matches!(lease.work, kontinuum_api::work::Work::MapLeaf { .. }) {
            done_leaves += 1;
        }
        complete_all(&engine, &leases);
    }
    let leaf = loop {
        let leases = lease_now(&engine, 1);
        match leases.into_iter().next() {
            Some(l) if matches!(l.work, kontinuum_api::work::Work::MapLeaf { .. }) => break l,
            Some(l) => complete_all(&engine, &[l]),
            None => advance(&engine, Duration::from_millis(10)),
        }
    };
    engine.heartbeat(leaf.token, Some(4)).unwrap();
    let f = engine.figures();
    let a = namespace(&f, "team-a").unwrap();
    assert_eq!((a.futures_active, a.units_done, a.units_total), (1, 24, 40));

    complete_all(&engine, &[leaf]);
    drive_ids(
        &engine,
        &[kontinuum_api::ObjectId::future("team-a", "squares")],
        Duration::from_secs(10),
    );
    let f = engine.figures();
    let a = namespace(&f, "team-a").unwrap();
    assert_eq!((a.futures_active, a.units_done, a.units_total), (0, 0, 0));
    assert_eq!(
        finished(&f, "team-a", ObjectKind::Future, Phase::Succeeded),
        1
    );
    assert_eq!(pool(&f, "team-a", "default").submitted, 4, "four leaves");
}

#[test]
fn the_store_reports_its_fsyncs_and_size() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    engine
        .submit(vec![task("ok", "{call: {function: t.sum}}")])
        .unwrap();
    let f = engine.figures();
    assert!(f.fsync.count >= 1, "{:?}", f.fsync);
    assert_eq!(f.fsync.counts.iter().sum::<u64>(), f.fsync.count);
    assert!(f.store_bytes.is_some_and(|b| b > 0), "{:?}", f.store_bytes);
}
