//! The engine's public face: one lock around the state machine, atomic writes
//! per decision, group commit before anything is acknowledged, and a ticker
//! for timers.

use crate::build;
use crate::machine::{LeaseKind, State, Tx};
use crate::model::{Body, MapSourceKind, Node, NodeState, Root, RootKind, RootState};
use crate::status;
use crate::store::{Store, StoredRoot};
use crate::types::{EngineConfig, EngineError, ObjectStatus, PoolStats, Submission};
use kontinuum_api::common::{ErrorInfo, ErrorKind};
use kontinuum_api::limits::ATTEMPT_TIMED_OUT;
use kontinuum_api::work::{Completion, CompletionAck, HeartbeatReply, Lease, NodeId, Outcome};
use kontinuum_api::{FnRef, TaskSpec};
use parking_lot::{Condvar, Mutex, MutexGuard};
use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

const TICK: Duration = Duration::from_millis(10);

struct Inner {
    store: Store,
    config: EngineConfig,
    state: Mutex<State>,
    /// One submission at a time between its name checks and its decision,
    /// so two submissions of one name cannot both find it free.
    submitting: Mutex<()>,
    work_ready: Condvar,
    closed: AtomicBool,
}

/// The durable engine. Cheap to clone; all clones share one store.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

impl Engine {
    /// Opens (or creates) the store at `path` and resumes what it holds:
    /// queued and running work is queued again, timers restart.
    pub fn open(path: &Path, config: EngineConfig) -> Result<Engine, EngineError> {
        let store = Store::open(path, config.cache_bytes)?;
        let token_base = rand::random::<u64>() << 32;
        let mut state = State::new(store.next_id()?, token_base);
        let mut tx = Tx::new(now_ms());
        recover(&mut state, &mut tx, &store)?;
        store.apply(tx.into_writes(&state)?)?;
        let inner = Arc::new(Inner {
            store,
            config,
            state: Mutex::new(state),
            submitting: Mutex::new(()),
            work_ready: Condvar::new(),
            closed: AtomicBool::new(false),
        });
        let weak = Arc::downgrade(&inner);
        std::thread::Builder::new()
            .name("kontinuum-ticker".into())
            .spawn(move || ticker(weak))
            .map_err(|e| EngineError::Invalid(format!("cannot start the timer thread: {e}")))?;
        Ok(Engine { inner })
    }

    /// Runs one decision under the lock and applies its writes atomically.
    /// Returns the group-commit ticket to wait on before acknowledging.
    fn decide<R>(
        &self,
        st: &mut MutexGuard<'_, State>,
        f: impl FnOnce(&mut State, &mut Tx, &Store) -> Result<R, EngineError>,
    ) -> Result<(R, u64), EngineError> {
        let mut tx = Tx::new(now_ms());
        let out = f(st, &mut tx, &self.inner.store)?;
        let wake = tx.work_ready;
        let ticket = self.inner.store.apply(tx.into_writes(st)?)?;
        if wake {
            self.inner.work_ready.notify_all();
        }
        Ok((out, ticket))
    }

    /// A decision whose outcome is acknowledged: durable before returning.
    fn commit<R>(
        &self,
        f: impl FnOnce(&mut State, &mut Tx, &Store) -> Result<R, EngineError>,
    ) -> Result<R, EngineError> {
        let (out, ticket) = {
            let mut st = self.inner.state.lock();
            self.decide(&mut st, f)?
        };
        self.inner.store.wait_durable(ticket)?;
        Ok(out)
    }

    /// Accepts objects; they are on disk when this returns. Resubmitting a
    /// name with the identical spec is a no-op (a rerun resumes); another
    /// spec under the same name is refused. All or nothing.
    pub fn submit(&self, objects: Vec<Submission>) -> Result<(), EngineError> {
        let now = now_ms();
        let mut plans = Vec::with_capacity(objects.len());
        let mut seen = HashSet::with_capacity(objects.len());
        for object in &objects {
            crate::guard::submission(object)?;
        }
        let guard = self.inner.submitting.lock();
        for object in &objects {
            let (name, hash) = match object {
                Submission::Task { name, spec } => (name, build::spec_hash("Task", spec)),
                Submission::Future { name, spec } => {
                    (name, build::spec_hash("HierarchicalFuture", spec))
                }
            };
            if !seen.insert(name.as_str()) {
                return Err(EngineError::Invalid(format!(
                    "object '{name}' appears twice in one submission"
                )));
            }
            if let Some(existing) = self.inner.store.object(name)? {
                if existing.root.spec_hash.as_deref() != Some(hash.as_str()) {
                    return Err(EngineError::Conflict { name: name.clone() });
                }
                continue;
            }
            let plan = match object {
                Submission::Task { spec, .. } => Plan::Task(Box::new(build::plan_task(spec, now)?)),
                Submission::Future { spec, .. } => {
                    Plan::Future(Box::new(build::plan_future(spec, now)?))
                }
            };
            let named = build::Named {
                name: name.clone(),
                spec_hash: hash,
            };
            plans.push((named, plan));
        }
        let ((), ticket) = {
            let mut st = self.inner.state.lock();
            self.decide(&mut st, |st, tx, store| {
                for (named, plan) in plans {
                    match plan {
                        Plan::Task(p) => build::apply_task(st, tx, store, Some(named), *p)?,
                        Plan::Future(p) => build::apply_future(st, tx, Some(named), *p)?,
                    };
                }
                Ok(())
            })?
        };
        drop(guard);
        self.inner.store.wait_durable(ticket)
    }

    /// Names of every object ever submitted.
    pub fn objects(&self) -> Result<Vec<String>, EngineError> {
        self.inner.store.objects()
    }

    /// A named object's root record, the live copy while it runs.
    fn root_of(&self, st: &State, name: &str) -> Result<StoredRoot, EngineError> {
        let mut stored = self
            .inner
            .store
            .object(name)?
            .ok_or_else(|| EngineError::NotFound(name.to_string()))?;
        if let Some(live) = st.roots.get(&stored.root.id) {
            stored.root = Root::clone(live);
            stored.node = st.nodes.get(&live.id).map(|n| Node::clone(n));
        }
        Ok(stored)
    }

    pub fn status(&self, name: &str) -> Result<ObjectStatus, EngineError> {
        let mut st = self.inner.state.lock();
        let StoredRoot { root, node } = self.root_of(&st, name)?;
        match root.kind {
            RootKind::Task => Ok(ObjectStatus::Task(status::task_status(
                &root,
                node.as_ref(),
                root.merged_into_name.clone(),
            ))),
            RootKind::Future => {
                let live: u64 = st
                    .leases
                    .values()
                    .filter(|l| l.root == root.id)
                    .map(|l| l.progress)
                    .sum();
                let computed = if root.state == RootState::Active {
                    root.done + live
                } else {
                    root.done
                };
                let shown = st.shown_done.entry(root.id).or_insert(0);
                *shown = (*shown).max(computed);
                let done = *shown;
                if root.state != RootState::Active {
                    st.shown_done.remove(&root.id);
                }
                Ok(ObjectStatus::Future(status::future_status(
                    &root,
                    done,
                    now_ms(),
                )))
            }
        }
    }

    /// The object's tree with per-node state and progress, at most
    /// `max_nodes` nodes (breadth first).
    pub fn tree(
        &self,
        name: &str,
        max_nodes: usize,
    ) -> Result<crate::types::TreeView, EngineError> {
        let st = self.inner.state.lock();
        let StoredRoot { root, node } = self.root_of(&st, name)?;
        crate::tree::view(&st, &self.inner.store, &root, node, max_nodes)
    }

    /// The whole result of an object, also when it is too large for the
    /// status (which then carries only `resultRef`).
    pub fn result(&self, name: &str) -> Result<Option<serde_json::Value>, EngineError> {
        let st = self.inner.state.lock();
        Ok(self.root_of(&st, name)?.root.result)
    }

    /// Cancels an object's whole tree: queued work is dropped, running work
    /// sees it at its next heartbeat.
    pub fn cancel(&self, name: &str) -> Result<(), EngineError> {
        let root_id = self
            .inner
            .store
            .object(name)?
            .ok_or_else(|| EngineError::NotFound(name.to_string()))?
            .root
            .id;
        self.commit(|st, tx, store| {
            let error = ErrorInfo {
                message: "cancelled".into(),
                kind: ErrorKind::Cancelled,
                attempt: 0,
            };
            st.finish_root(tx, store, root_id, RootState::Cancelled, None, Some(error))
        })
    }

    /// Up to `max` leases for `pool` ("*": any pool), waiting up to `wait`
    /// for the first.
    pub fn lease(
        &self,
        pool: &str,
        _worker: &str,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Lease>, EngineError> {
        let deadline = Instant::now() + wait;
        let lease_ms = self.inner.config.lease.as_millis() as u64;
        let mut st = self.inner.state.lock();
        loop {
            let (leases, _) = self.decide(&mut st, |st, tx, store| {
                st.take_leases(tx, store, pool, max, lease_ms)
            })?;
            if !leases.is_empty() || self.inner.closed.load(Ordering::Relaxed) {
                return Ok(leases);
            }
            if self
                .inner
                .work_ready
                .wait_until(&mut st, deadline)
                .timed_out()
            {
                let (leases, _) = self.decide(&mut st, |st, tx, store| {
                    st.take_leases(tx, store, pool, max, lease_ms)
                })?;
                return Ok(leases);
            }
        }
    }

    /// Keeps a lease alive and reports progress (units done in this attempt).
    pub fn heartbeat(
        &self,
        token: u64,
        progress: Option<u64>,
    ) -> Result<HeartbeatReply, EngineError> {
        let now = now_ms();
        let lease_ms = self.inner.config.lease.as_millis() as u64;
        let split_after = self.inner.config.split_after.as_millis() as u64;
        let mut st = self.inner.state.lock();
        let Some(lease) = st.leases.get(&token).cloned() else {
            return Ok(HeartbeatReply {
                lost: true,
                ..HeartbeatReply::default()
            });
        };
        let node_alive = st
            .nodes
            .get(&lease.node)
            .is_some_and(|n| matches!(n.state, NodeState::Running | NodeState::Folding));
        let root_alive = st
            .roots
            .get(&lease.root)
            .is_some_and(|r| r.state == RootState::Active);
        if !node_alive || !root_alive {
            st.leases.remove(&token);
            return Ok(HeartbeatReply {
                cancelled: true,
                ..HeartbeatReply::default()
            });
        }
        let pool = st
            .roots
            .get(&lease.root)
            .map(|r| r.pool.clone())
            .unwrap_or_default();
        let idle = st.queued_in(&pool) == 0;
        let units = match st.nodes.get(&lease.node).map(|n| &n.body) {
            Some(Body::Leaf { start, end }) if lease.kind == LeaseKind::Body => Some(end - start),
            _ => None,
        };
        let Some(l) = st.leases.get_mut(&token) else {
            return Ok(HeartbeatReply {
                lost: true,
                ..Default::default()
            });
        };
        l.expires_ms = now + lease_ms;
        if let Some(p) = progress {
            l.progress = l.progress.max(p);
        }
        let split = units.is_some_and(|u| {
            crate::decide::should_split(
                now.saturating_sub(l.last_split_ms),
                split_after,
                u.saturating_sub(l.progress),
                idle,
            )
        });
        Ok(HeartbeatReply {
            split,
            ..HeartbeatReply::default()
        })
    }

    /// Records outcomes; a stale token's outcome is ignored. Durable before
    /// returning.
    pub fn complete(
        &self,
        completions: Vec<Completion>,
    ) -> Result<Vec<CompletionAck>, EngineError> {
        self.commit(|st, tx, store| {
            let mut acks = Vec::with_capacity(completions.len());
            for c in completions {
                let Some(lease) = st.leases.remove(&c.token) else {
                    acks.push(CompletionAck::Stale);
                    continue;
                };
                let expected = if lease.kind == LeaseKind::Fold {
                    NodeState::Folding
                } else {
                    NodeState::Running
                };
                let live = st
                    .nodes
                    .get(&lease.node)
                    .is_some_and(|n| n.state == expected)
                    && st
                        .roots
                        .get(&lease.root)
                        .is_some_and(|r| r.state == RootState::Active);
                if !live {
                    acks.push(CompletionAck::Stale);
                    continue;
                }
                let outcome = match c.outcome {
                    Outcome::Success { value } => match crate::guard::result(&value) {
                        Some(message) => Outcome::Failure {
                            message,
                            permanent: true,
                        },
                        None => Outcome::Success { value },
                    },
                    failure => failure,
                };
                match outcome {
                    Outcome::Success { value } => st.succeed(tx, store, &lease, value)?,
                    // Past its timeout, a failure is the timeout, whichever
                    // side noticed first: one kind and one message.
                    Outcome::Failure { .. } if lease.timeout_at_ms.is_some_and(|t| t <= tx.now) => {
                        let error = ErrorInfo {
                            message: ATTEMPT_TIMED_OUT.to_string(),
                            kind: ErrorKind::Timeout,
                            attempt: lease.attempt,
                        };
                        st.attempt_failed(tx, store, &lease, error, false)?;
                    }
                    Outcome::Failure { message, permanent } => {
                        let kind = if permanent {
                            ErrorKind::Permanent
                        } else {
                            ErrorKind::Retryable
                        };
                        let error = ErrorInfo {
                            message,
                            kind,
                            attempt: lease.attempt,
                        };
                        st.attempt_failed(tx, store, &lease, error, permanent)?;
                    }
                }
                acks.push(CompletionAck::Accepted);
            }
            Ok(acks)
        })
    }

    /// A map leaf gives up its slice from `at` on (an absolute integer for a
    /// range, an item index, or a byte offset for lines); the engine makes
    /// new children for it. Ok(true) when accepted: process only up to `at`.
    pub fn split(&self, token: u64, at: i64) -> Result<bool, EngineError> {
        self.commit(|st, tx, _| st.split_leaf(tx, token, at))
    }

    /// SDK: adds a child future node under the running call's node.
    pub fn add_child(&self, token: u64, call: FnRef, weight: u64) -> Result<NodeId, EngineError> {
        crate::guard::child_call(&call)?;
        self.commit(|st, tx, _| {
            let lease = st
                .leases
                .get(&token)
                .cloned()
                .ok_or(EngineError::StaleLease)?;
            let is_call = st
                .nodes
                .get(&lease.node)
                .is_some_and(|n| matches!(n.body, Body::Call { .. }));
            if !is_call || lease.kind != LeaseKind::Body {
                return Err(EngineError::Invalid(
                    "only a running call can add children".into(),
                ));
            }
            st.add_sdk_child(tx, lease.node, call, weight.max(1))
        })
    }

    /// SDK: starts an independent task from a running task.
    pub fn spawn(&self, token: u64, spec: TaskSpec) -> Result<NodeId, EngineError> {
        crate::guard::spawned(&spec)?;
        let plan = build::plan_task(&spec, now_ms())?;
        self.commit(|st, tx, store| {
            if !st.leases.contains_key(&token) {
                return Err(EngineError::StaleLease);
            }
            build::apply_task(st, tx, store, None, plan)
        })
    }

    pub fn pool_stats(&self, pool: &str) -> PoolStats {
        let st = self.inner.state.lock();
        let in_pool = |root: NodeId| st.roots.get(&root).is_some_and(|r| r.pool == pool);
        PoolStats {
            queued: st.queued_in(pool) as u64,
            running: st.leases.values().filter(|l| in_pool(l.root)).count() as u64,
            delayed: st
                .delayed
                .iter()
                .filter(|(_, id)| st.nodes.get(id).is_some_and(|n| in_pool(n.root)))
                .count() as u64,
        }
    }

    /// Stops handing out leases and wakes every waiter (for shutdown).
    pub fn close(&self) {
        self.inner.closed.store(true, Ordering::Relaxed);
        self.inner.work_ready.notify_all();
    }
}

enum Plan {
    Task(Box<build::TaskPlan>),
    Future(Box<build::FuturePlan>),
}

/// Timers: due delays, expired leases and timeouts, tree deadlines.
fn ticker(inner: Weak<Inner>) {
    loop {
        std::thread::sleep(TICK);
        let Some(inner) = inner.upgrade() else { return };
        if inner.closed.load(Ordering::Relaxed) && Arc::strong_count(&inner) == 1 {
            return;
        }
        let engine = Engine { inner };
        let result = {
            let mut st = engine.inner.state.lock();
            engine.decide(&mut st, |st, tx, store| {
                st.release_due(tx)?;
                st.expire_leases(tx, store)?;
                st.expire_deadlines(tx, store)
            })
        };
        if let Err(e) = result {
            tracing::error!("engine timer step failed: {e}");
        }
    }
}

/// Rebuilds memory from the store: every unfinished node of an unfinished
/// tree goes back where it belongs; attempts that were running when the
/// process stopped are queued again. A tree with a record that cannot be
/// read fails alone (its status says why); the others recover.
fn recover(st: &mut State, tx: &mut Tx, store: &Store) -> Result<(), EngineError> {
    for stored in store.active_roots()? {
        let id = stored.root.id;
        st.next_id = st.next_id.max(id + 1);
        if stored.root.state != RootState::Active {
            // A stand-in for a root record that does not decode (salvage.rs).
            continue;
        }
        let nodes = match readable_tree(store, &stored) {
            Ok(nodes) => nodes,
            Err((what, detail)) => {
                tracing::error!(
                    root = id,
                    "a {what} record cannot be read ({detail}); its object is failed"
                );
                fail_unreadable(st, tx, store, stored, crate::salvage::error(what, &detail))?;
                continue;
            }
        };
        let mut root = stored.root;
        // Pending and running are recounted from the nodes: moves between
        // queued and running are not written, so the stored counts may lag.
        root.counts.pending = 0;
        root.counts.running = 0;
        st.roots.insert(id, Box::new(root));
        tx.dirty_roots.insert(id);
        for mut node in stored.node.into_iter().chain(nodes) {
            st.next_id = st.next_id.max(node.id + 1);
            if node.state.is_final() {
                continue;
            }
            if node.state == NodeState::Running {
                node.state = NodeState::Queued;
                tx.dirty_nodes.insert(node.id);
            }
            if let Some(root) = st.roots.get_mut(&id) {
                *root.counts.slot(node.state.bucket()) += 1;
            }
            let (nid, state, due) = (node.id, node.state, node.due_ms);
            st.nodes.insert(nid, Box::new(node));
            match state {
                NodeState::Queued | NodeState::Folding => st.enqueue(tx, nid),
                NodeState::Waiting => {
                    st.delayed.insert((due, nid));
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// A tree's nodes other than its root node, once every record it will read
/// while it runs has been read once: items, values of unfinished nodes'
/// children, debounce and exclusive state. Else which record failed, and why.
fn readable_tree(store: &Store, stored: &StoredRoot) -> Result<Vec<Node>, (&'static str, String)> {
    let detail = |e: EngineError| match e {
        EngineError::Corrupt { detail, .. } => detail,
        other => other.to_string(),
    };
    let root = &stored.root;
    let nodes = store.tree_nodes(root.id).map_err(|e| ("node", detail(e)))?;
    if matches!(
        root.map.as_ref().map(|m| &m.source),
        Some(MapSourceKind::Items)
    ) {
        store.items(root.id).map_err(|e| ("items", detail(e)))?;
    }
    for node in stored.node.iter().chain(&nodes) {
        if node.children > 0 && !node.state.is_final() {
            store
                .child_values(node.id)
                .map_err(|e| ("child value", detail(e)))?;
        }
    }
    if let Some(key) = &root.debounce_key {
        store.debounce(key).map_err(|e| ("debounce", detail(e)))?;
    }
    if let Some(ex) = &root.exclusive {
        store
            .exclusive(&ex.key)
            .map_err(|e| ("exclusive", detail(e)))?;
    }
    Ok(nodes)
}

/// Fails a tree whose records cannot all be read, as any failed tree ends:
/// its continuation runs, its debounce and exclusive state are released
/// (unless those are the records that cannot be read).
fn fail_unreadable(
    st: &mut State,
    tx: &mut Tx,
    store: &Store,
    stored: StoredRoot,
    error: ErrorInfo,
) -> Result<(), EngineError> {
    let StoredRoot { mut root, node } = stored;
    let id = root.id;
    if root
        .debounce_key
        .as_ref()
        .is_some_and(|k| store.debounce(k).is_err())
    {
        root.debounce_key = None;
    }
    if root
        .exclusive
        .as_ref()
        .is_some_and(|e| store.exclusive(&e.key).is_err())
    {
        root.exclusive = None;
    }
    root.counts.pending = 0;
    root.counts.running = 0;
    st.roots.insert(id, Box::new(root));
    if let Some(mut node) = node {
        node.state = NodeState::Failed;
        node.error = Some(error.clone());
        node.finished_ms = tx.now;
        tx.node_done(node);
    }
    st.finish_root(tx, store, id, RootState::Failed, None, Some(error))
}
