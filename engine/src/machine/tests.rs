//! The state machine on its own: every decision gets an explicit `now`, so
//! the timing rules are checked to the millisecond without a clock or a
//! thread. A real store sits underneath (in a temporary directory) because
//! decisions read child values and debounce state from it.

use super::{Selector, State, Tx};
use crate::build::{self, Named};
use crate::error::EngineError;
use crate::records::{NodeState, Root, RootState};
use crate::store::Store;
use kontinuum_api::common::ErrorKind;
use kontinuum_api::work::{Completion, CompletionAck, Lease, NodeId, Outcome, Work};
use kontinuum_api::{ObjectId, ObjectKind};
use serde_json::{Value, json};

/// Any fixed instant; the tests count from here.
const T: u64 = 1_800_000_000_000;
const LEASE_MS: u64 = 500;
const SPLIT_AFTER_MS: u64 = 200;

struct Machine {
    _dir: tempfile::TempDir,
    store: Store,
    st: State,
    /// Records written so far by the key's first byte: puts, their
    /// bytes, removals.
    written: std::collections::BTreeMap<char, (u64, u64, u64)>,
}

impl Machine {
    fn new() -> Machine {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 1 << 20).unwrap();
        Machine {
            _dir: dir,
            store,
            st: State::new(1, 0),
            written: Default::default(),
        }
    }

    /// One decision at `now`, its writes handed to the store as the engine
    /// does, then the counters checked against the nodes.
    fn decide<R>(
        &mut self,
        now: u64,
        f: impl FnOnce(&mut State, &mut Tx, &Store) -> Result<R, EngineError>,
    ) -> R {
        let mut tx = Tx::new(now);
        let out = f(&mut self.st, &mut tx, &self.store).unwrap();
        let writes = tx.into_writes(&self.st).unwrap();
        for (key, value) in writes.entries() {
            let slot = self.written.entry(char::from(key[0])).or_default();
            match value {
                Some(v) => {
                    slot.0 += 1;
                    slot.1 += v.len() as u64;
                }
                None => slot.2 += 1,
            }
        }
        self.store.apply(writes).unwrap();
        self.check_counts();
        out
    }

    fn task(&mut self, now: u64, name: &str, spec: &str) -> NodeId {
        let spec: kontinuum_api::TaskSpec = serde_yaml::from_str(spec).unwrap();
        let plan = build::plan_task(&spec, now).unwrap();
        let named = named(name);
        self.decide(now, |st, tx, store| {
            build::apply_task(st, tx, store, "default", Some(named), plan)
        })
    }

    fn future(&mut self, now: u64, name: &str, spec: &str) -> NodeId {
        let spec: kontinuum_api::HierarchicalFutureSpec = serde_yaml::from_str(spec).unwrap();
        let plan = build::plan_future(&spec, now).unwrap();
        let named = named(name);
        self.decide(now, |st, tx, _| build::apply_future(st, tx, named, plan))
    }

    fn lease(&mut self, now: u64, max: usize) -> Vec<Lease> {
        self.decide(now, |st, tx, store| {
            st.take_leases(tx, store, ANY, max, LEASE_MS)
        })
    }

    fn complete(&mut self, now: u64, token: u64, outcome: Outcome) -> CompletionAck {
        self.decide(now, |st, tx, store| {
            st.complete(tx, store, Completion { token, outcome })
        })
    }

    fn succeed(&mut self, now: u64, lease: &Lease, value: Value) {
        let ack = self.complete(now, lease.token, Outcome::Success { value });
        assert_eq!(ack, CompletionAck::Accepted);
    }

    fn fail(&mut self, now: u64, lease: &Lease, permanent: bool) {
        let outcome = Outcome::Failure {
            message: "boom".into(),
            permanent,
        };
        assert_eq!(
            self.complete(now, lease.token, outcome),
            CompletionAck::Accepted
        );
    }

    fn tick(&mut self, now: u64) {
        self.decide(now, |st, tx, store| {
            st.release_due(tx)?;
            st.expire_leases(tx, store)?;
            st.expire_deadlines(tx, store)
        })
    }

    /// The root record as it stands: in memory while active, else stored.
    fn root(&self, name: &str) -> Root {
        let stored = [ObjectKind::Task, ObjectKind::Future]
            .into_iter()
            .find_map(|kind| {
                let id = ObjectId::new("default", kind, name);
                self.store.object(&id).unwrap()
            })
            .expect("stored object");
        match self.st.roots.get(&stored.root.id) {
            Some(live) => Root::clone(live),
            None => stored.root,
        }
    }

    fn state_of(&self, id: NodeId) -> Option<NodeState> {
        self.st.nodes.get(&id).map(|n| n.state)
    }

    /// The invariant every decision keeps: an active tree's pending and
    /// running counters equal its live nodes in those states.
    fn check_counts(&self) {
        for root in self.st.roots.values() {
            let (mut pending, mut running) = (0, 0);
            for n in self.st.nodes.values().filter(|n| n.root == root.id) {
                match n.state {
                    NodeState::Waiting | NodeState::Blocked | NodeState::Queued => pending += 1,
                    NodeState::Running | NodeState::Children | NodeState::Folding => running += 1,
                    other => panic!("final node {} ({other:?}) still in memory", n.id),
                }
            }
            assert_eq!(
                (root.counts.pending, root.counts.running),
                (pending, running),
                "counters of root {}",
                root.id
            );
        }
        // Each pool's queued tasks equal what its ready nodes become,
        // counted here the slow way.
        for pool in self.st.pools.all() {
            let walked: u64 = pool
                .ready
                .iter()
                .map(|&(_, _, id)| {
                    let n = &self.st.nodes[&id];
                    let shard = self.st.roots[&n.root].map.as_ref();
                    match n.state {
                        NodeState::Queued => {
                            super::queue::tasks_of(&n.body, shard.map_or(0, |m| m.shard_units))
                        }
                        _ => 1,
                    }
                })
                .sum();
            assert_eq!(pool.queued_tasks(), walked, "queued tasks of {}", pool.name);
        }
    }

    fn queued_tasks(&self, now: u64) -> (u64, u64, u64) {
        let s = self.st.pool_stats("default", "default", now);
        (s.queued, s.queued_tasks, s.running)
    }
}

fn named(name: &str) -> Named {
    Named {
        id: ObjectId::task("default", name),
        uid: None,
        spec_hash: format!("hash-of-{name}"),
    }
}

const ANY: Selector<'static> = Selector {
    pool: None,
    namespace: None,
};

fn call_of(lease: &Lease) -> &kontinuum_api::FnRef {
    match &lease.work {
        Work::Call { call } => call,
        other => panic!("not a call: {other:?}"),
    }
}

#[test]
fn a_retry_waits_exactly_its_backoff_and_the_last_failure_runs_on_failure() {
    let mut m = Machine::new();
    let id = m.task(
        T,
        "flaky",
        "{call: {function: f}, retry: {maxAttempts: 3, backoff: {initial: 1s, factor: 2}}, onFailure: {function: g}}",
    );
    let first = m.lease(T, 10);
    assert_eq!(first[0].attempt, 1);
    m.fail(T + 10, &first[0], false);
    assert_eq!(m.state_of(id), Some(NodeState::Waiting));
    m.tick(T + 1_009);
    assert!(m.lease(T + 1_009, 10).is_empty(), "1 s backoff not over");
    m.tick(T + 1_010);
    let second = m.lease(T + 1_010, 10);
    assert_eq!(second[0].attempt, 2);
    m.fail(T + 1_020, &second[0], false);
    m.tick(T + 3_019);
    assert!(m.lease(T + 3_019, 10).is_empty(), "2 s backoff not over");
    m.tick(T + 3_020);
    let third = m.lease(T + 3_020, 10);
    assert_eq!(third[0].attempt, 3);
    m.fail(T + 3_030, &third[0], false);
    let root = m.root("flaky");
    assert_eq!(root.state, RootState::Failed);
    assert_eq!((root.attempts, root.finished_ms), (3, T + 3_030));
    let error = root.error.expect("error");
    assert_eq!((error.attempt, error.kind), (3, ErrorKind::Retryable));
    // The continuation is queued in the same decision, with the error bound.
    let cont = m.lease(T + 3_030, 10);
    assert_eq!(call_of(&cont[0]).function, "g");
    assert_eq!(call_of(&cont[0]).args["error"]["attempt"], json!(3));
}

#[test]
fn a_permanent_failure_skips_the_retries() {
    let mut m = Machine::new();
    m.task(T, "once", "{call: {function: f}, retry: {maxAttempts: 5}}");
    let lease = m.lease(T, 1);
    m.fail(T + 1, &lease[0], true);
    let root = m.root("once");
    assert_eq!((root.state, root.attempts), (RootState::Failed, 1));
    assert!(m.lease(T + 1_000_000, 1).is_empty());
}

#[test]
fn a_delay_and_not_before_hold_a_task_until_the_millisecond_it_is_due() {
    let mut m = Machine::new();
    let delayed = m.task(T, "later", "{call: {function: f}, delay: 300ms}");
    let at = chrono::DateTime::from_timestamp_millis((T + 500) as i64)
        .unwrap()
        .to_rfc3339();
    let scheduled = m.task(
        T,
        "at",
        &format!("{{call: {{function: g}}, notBefore: '{at}'}}"),
    );
    assert_eq!(m.state_of(delayed), Some(NodeState::Waiting));
    assert_eq!(m.state_of(scheduled), Some(NodeState::Waiting));
    m.tick(T + 299);
    assert!(m.lease(T + 299, 10).is_empty());
    m.tick(T + 300);
    let now_due = m.lease(T + 300, 10);
    assert_eq!(now_due.len(), 1);
    assert_eq!(call_of(&now_due[0]).function, "f");
    m.tick(T + 499);
    assert!(m.lease(T + 499, 10).is_empty());
    m.tick(T + 500);
    assert_eq!(call_of(&m.lease(T + 500, 10)[0]).function, "g");
}

#[test]
fn a_lease_expires_without_heartbeats_and_its_late_completion_is_stale() {
    let mut m = Machine::new();
    let id = m.task(
        T,
        "t",
        "{call: {function: f}, retry: {maxAttempts: 2, backoff: {initial: 100ms}}}",
    );
    let first = m.lease(T, 1);
    let hb =
        m.st.heartbeat(T + 400, first[0].token, None, LEASE_MS, SPLIT_AFTER_MS);
    assert!(!hb.lost && !hb.cancelled);
    // The heartbeat at T+400 moved the expiry to T+900.
    m.tick(T + 899);
    assert_eq!(m.state_of(id), Some(NodeState::Running));
    m.tick(T + 900);
    assert_eq!(m.state_of(id), Some(NodeState::Waiting));
    let error = m.st.nodes[&id].error.clone().unwrap();
    assert_eq!(error.kind, ErrorKind::Timeout);
    assert!(error.message.contains("lease expired"), "{}", error.message);
    m.tick(T + 1_000);
    let second = m.lease(T + 1_000, 1);
    assert_eq!(second[0].attempt, 2);
    let late = m.complete(
        T + 1_001,
        first[0].token,
        Outcome::Success { value: json!(1) },
    );
    assert_eq!(late, CompletionAck::Stale);
    m.succeed(T + 1_002, &second[0], json!(2));
    assert_eq!(m.root("t").result, Some(json!(2)));
}

#[test]
fn an_attempt_timeout_fails_it_even_while_heartbeats_arrive() {
    let mut m = Machine::new();
    m.task(
        T,
        "slow",
        "{call: {function: f}, timeout: 100ms, retry: {maxAttempts: 1}}",
    );
    let lease = m.lease(T, 1);
    assert_eq!(lease[0].timeout_ms, Some(100));
    for at in [T + 30, T + 60, T + 99] {
        m.st.heartbeat(at, lease[0].token, None, LEASE_MS, SPLIT_AFTER_MS);
        m.tick(at);
    }
    assert_eq!(m.root("slow").state, RootState::Active);
    m.tick(T + 100);
    let root = m.root("slow");
    assert_eq!(root.state, RootState::Failed);
    assert_eq!(root.error.unwrap().kind, ErrorKind::Timeout);
}

#[test]
fn a_deadline_fails_the_tree_and_cancels_what_is_left() {
    let mut m = Machine::new();
    m.future(
        T,
        "d",
        "{map: {source: {range: {start: 0, end: 100}}, function: {function: f}, shardSize: 10}, deadline: 400ms}",
    );
    let held = m.lease(T, 2);
    assert_eq!(held.len(), 2);
    m.tick(T + 399);
    assert_eq!(m.root("d").state, RootState::Active);
    m.tick(T + 400);
    let root = m.root("d");
    assert_eq!(root.state, RootState::Failed);
    assert!(root.error.unwrap().message.contains("deadline"));
    assert_eq!(root.counts.pending + root.counts.running, 0);
    assert!(root.counts.cancelled > 0);
    let hb =
        m.st.heartbeat(T + 401, held[0].token, Some(1), LEASE_MS, SPLIT_AFTER_MS);
    assert!(
        hb.cancelled,
        "running work hears of it at its next heartbeat"
    );
    assert!(m.st.nodes.is_empty(), "nothing of the tree stays in memory");
}

#[test]
fn debounce_folds_calls_into_the_scheduled_run_and_spaces_runs_by_repeat() {
    let mut m = Machine::new();
    let spec = |who: &str| {
        format!(
            "{{call: {{function: f, args: {{who: {who}}}}}, debounce: {{initial: 200ms, repeat: 1s}}}}"
        )
    };
    m.task(T, "a1", &spec("a"));
    m.task(T + 50, "a2", &spec("a"));
    m.task(T + 60, "b1", &spec("b"));
    let a2 = m.root("a2");
    assert_eq!(a2.state, RootState::Merged);
    assert_eq!(a2.merged_into_name.as_deref(), Some("a1"));
    m.tick(T + 199);
    assert!(m.lease(T + 199, 10).is_empty());
    m.tick(T + 200);
    let run = m.lease(T + 200, 10);
    assert_eq!(run.len(), 1, "a1 only; b1 is due at T+260");
    m.succeed(T + 210, &run[0], json!(null));
    // After a run started, the next waits for repeat since that start.
    m.task(T + 300, "a3", &spec("a"));
    m.tick(T + 1_199);
    let early: Vec<String> = m
        .lease(T + 1_199, 10)
        .iter()
        .map(|l| call_of(l).args["who"].to_string())
        .collect();
    assert_eq!(early, ["\"b\""], "only b1 ran before T+1200");
    m.tick(T + 1_200);
    let a3 = m.lease(T + 1_200, 10);
    assert_eq!(call_of(&a3[0]).args["who"], json!("a"));
}

#[test]
fn an_exclusive_section_admits_one_run_and_collapses_the_rest_into_one_rerun() {
    let mut m = Machine::new();
    let spec = "{call: {function: f}, exclusive: {rerunOnSkip: true}}";
    m.task(T, "x0", spec);
    let holder = m.lease(T, 10);
    assert_eq!(holder.len(), 1);
    let rerun = m.task(T + 1, "x1", spec);
    m.task(T + 2, "x2", spec);
    assert_eq!(m.state_of(rerun), Some(NodeState::Blocked));
    assert_eq!(m.root("x2").merged_into_name.as_deref(), Some("x1"));
    assert!(
        m.lease(T + 3, 10).is_empty(),
        "nobody runs beside the holder"
    );
    m.succeed(T + 4, &holder[0], json!(1));
    assert_eq!(m.state_of(rerun), Some(NodeState::Queued));
    assert_eq!(m.lease(T + 5, 10).len(), 1);
}

#[test]
fn a_long_leaf_is_asked_to_split_after_split_after_while_its_pool_is_idle() {
    let mut m = Machine::new();
    m.future(
        T,
        "skew",
        "{map: {source: {range: {start: 0, end: 100}}, function: {function: f}, shardSize: 100}}",
    );
    let leaf = m.lease(T, 1);
    let token = leaf[0].token;
    let hb =
        m.st.heartbeat(T + 199, token, Some(10), LEASE_MS, SPLIT_AFTER_MS);
    assert!(!hb.split, "not yet split_after");
    let hb =
        m.st.heartbeat(T + 200, token, Some(10), LEASE_MS, SPLIT_AFTER_MS);
    assert!(hb.split);
    let split = m.decide(T + 201, |st, tx, _| st.split_leaf(tx, token, 10));
    assert!(split);
    // The split restarts the clock: no second split at once.
    let hb =
        m.st.heartbeat(T + 202, token, Some(10), LEASE_MS, SPLIT_AFTER_MS);
    assert!(!hb.split);
    assert_eq!(m.root("skew").counts.pending, 8, "the rest in fanout parts");
}

#[test]
fn a_fold_whose_lease_expires_is_folded_again() {
    let mut m = Machine::new();
    let id = m.future(
        T,
        "f",
        "{map: {source: {range: {start: 0, end: 4}}, function: {function: f}, shardSize: 2, reduce: {function: add}}}",
    );
    let leaves = m.lease(T, 10);
    assert_eq!(leaves.len(), 2);
    for l in &leaves {
        m.succeed(T + 1, l, json!(1));
    }
    let fold = m.lease(T + 2, 10);
    assert!(
        matches!(fold[0].work, Work::Fold { .. }),
        "{:?}",
        fold[0].work
    );
    assert_eq!(m.state_of(id), Some(NodeState::Folding));
    // The worker holding the fold disappears.
    m.tick(T + 2 + LEASE_MS);
    let again = m.lease(T + 3 + LEASE_MS, 10);
    assert_eq!(again.len(), 1, "the fold is handed out again");
    assert!(matches!(again[0].work, Work::Fold { .. }));
    m.succeed(T + 4 + LEASE_MS, &again[0], json!(2));
    assert_eq!(m.root("f").result, Some(json!(2)));
}

#[test]
fn a_map_not_yet_split_counts_as_the_leaves_it_becomes() {
    let mut m = Machine::new();
    m.future(
        T,
        "big",
        "{map: {source: {range: {start: 0, end: 100000}}, function: {function: f}, shardSize: 1000, fanout: 8}}",
    );
    assert_eq!(m.queued_tasks(T), (1, 100, 0), "one node, 100 leaves ahead");
    // Every lease splits on the way; the leaves ahead plus those running
    // stay 100 until one finishes.
    let mut held = Vec::new();
    for i in 0..100u64 {
        held.extend(m.lease(T + 1 + i, 1));
        let (_, ahead, running) = m.queued_tasks(T + 1 + i);
        assert_eq!(
            (ahead + running, running),
            (100, i + 1),
            "after {} leases",
            i + 1
        );
    }
    assert_eq!(m.queued_tasks(T + 200), (0, 0, 100));
    m.succeed(T + 201, &held[0], json!(1));
    assert_eq!(m.queued_tasks(T + 201), (0, 0, 99));
}

#[test]
fn a_parallel_counts_its_calls_a_sequence_its_next_step_and_a_fold_itself() {
    let mut m = Machine::new();
    m.future(
        T,
        "par",
        "{parallel: [{function: a}, {function: b}, {function: c}]}",
    );
    assert_eq!(m.queued_tasks(T), (1, 3, 0));
    m.future(
        T,
        "seq",
        "{sequence: [{function: a}, {function: b}, {function: c}]}",
    );
    assert_eq!(m.queued_tasks(T), (2, 4, 0));
    let mut m = Machine::new();
    m.future(
        T,
        "odd",
        "{map: {source: {range: {start: 0, end: 5}}, function: {function: f}, shardSize: 2, reduce: {function: add}}}",
    );
    assert_eq!(m.queued_tasks(T), (1, 3, 0), "ceil(5 / 2) leaves");
    let leaves = m.lease(T, 10);
    assert_eq!(leaves.len(), 3);
    for l in &leaves {
        m.succeed(T + 1, l, json!(1));
    }
    assert_eq!(
        m.queued_tasks(T + 1),
        (1, 1, 0),
        "the split node's fold is one lease"
    );
}

/// What a scaler counts before a future is submitted is what the pool
/// counts once it is.
#[test]
fn tasks_ahead_of_a_spec_are_what_its_pool_counts_once_submitted() {
    for spec in [
        "{map: {source: {range: {start: 0, end: 100000}}, function: {function: f}}}",
        "{map: {source: {range: {start: -7, end: 5}}, function: {function: f}, shardSize: 5}}",
        "{map: {source: {range: {start: 0, end: 3}}, function: {function: f}, shardSize: 10}}",
        "{map: {source: {items: [1, 2, 3, 4, 5]}, function: {function: f}, shardSize: 2}}",
        "{map: {source: {lines: {path: /data/x.txt}}, function: {function: f}}}",
        "{parallel: [{function: a}, {function: b}]}",
        "{sequence: [{function: a}, {function: b}]}",
        "{call: {function: a}}",
    ] {
        let mut m = Machine::new();
        m.future(T, "f", spec);
        let parsed: kontinuum_api::HierarchicalFutureSpec = serde_yaml::from_str(spec).unwrap();
        assert_eq!(crate::tasks_ahead(&parsed), m.queued_tasks(T).1, "{spec}");
    }
}

/// What one no-op Task and one map leaf cost the store, in records: the
/// figures docs/benchmarks.md quotes (sled's inserts are the engine's
/// largest single cost), kept from growing unnoticed.
#[test]
fn records_written_per_task_and_per_map_leaf() {
    let mut m = Machine::new();
    let n = 200u64;
    for i in 0..n {
        m.task(
            T,
            &format!("t{i}"),
            "{call: {function: std.echo, args: {x: 1}}}",
        );
    }
    let leases = m.lease(T + 1, n as usize);
    assert_eq!(leases.len(), n as usize);
    for l in &leases {
        m.succeed(T + 2, l, json!({"x": 1}));
    }
    // A Task: its root record when accepted and when finished, nothing
    // when leased (recovery queues running work again). The next-id record
    // is one per decision, and the benchmark submits 2,000 per decision.
    let roots = m.written.get(&'o').copied().unwrap_or_default();
    assert_eq!((roots.0, roots.2), (2 * n, 0), "{:?}", m.written);
    assert_eq!(m.written.len(), 2, "{:?}", m.written);

    let mut m = Machine::new();
    m.future(
        T,
        "map",
        "{map: {source: {range: {start: 0, end: 1000}}, function: {function: f}, shardSize: 1, fanout: 8, reduce: sum}}",
    );
    let mut now = T + 1;
    loop {
        let leases = m.lease(now, 64);
        if leases.is_empty() {
            break;
        }
        for l in &leases {
            m.succeed(now, l, json!({"reducer": "sum", "count": 1, "sum": 1}));
        }
        now += 1;
    }
    assert_eq!(m.root("map").result, Some(json!(1000)));
    // One completion per decision here, the worst case: a leaf's node is
    // written when created and when finished, its parent's on every
    // completion, the root record on every decision, and the value it
    // hands up is written and removed once its parent is done.
    let records: u64 = m.written.values().map(|(puts, _, dels)| puts + dels).sum();
    assert!(records <= 9 * 1000, "{records} records: {:?}", m.written);
    eprintln!("a map of 1,000 one-item leaves wrote {:?}", m.written);
}
