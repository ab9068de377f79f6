//! The engine's public face: one lock around the state machine, atomic writes
//! per decision, group commit before anything is acknowledged, and a ticker
//! for timers.

use crate::build;
use crate::clock::Clock;
use crate::error::EngineError;
use crate::machine::{LeaseKind, RootOutcome, State, Tx};
use crate::public::{EngineConfig, ObjectStatus, PoolStats, Submission};
use crate::records::{Body, Node, Root, RootKind, RootState};
use crate::status;
use crate::store::{Store, StoredRoot};
use kontinuum_api::common::{ErrorInfo, ErrorKind};
use kontinuum_api::work::{Completion, CompletionAck, HeartbeatReply, Lease, NodeId};
use kontinuum_api::{FnRef, TaskSpec};
use parking_lot::{Condvar, Mutex, MutexGuard};
use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

const TICK: Duration = Duration::from_millis(10);

/// Objects per decision when a submission is applied.
const SUBMIT_CHUNK: usize = 1000;

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
    /// queued and running work is queued again, timers restart (with the
    /// wall clock; a manual clock has no ticker, see [`Engine::tick`]).
    pub fn open(path: &Path, config: EngineConfig) -> Result<Engine, EngineError> {
        let store = Store::open(path, config.cache_bytes)?;
        let token_base = rand::random::<u64>() << 32;
        let mut state = State::new(store.next_id()?, token_base);
        let mut tx = Tx::new(config.clock.now_ms());
        state.recover(&mut tx, &store)?;
        store.apply(tx.into_writes(&state)?)?;
        let manual = config.clock.is_manual();
        let inner = Arc::new(Inner {
            store,
            config,
            state: Mutex::new(state),
            submitting: Mutex::new(()),
            work_ready: Condvar::new(),
            closed: AtomicBool::new(false),
        });
        if !manual {
            let weak = Arc::downgrade(&inner);
            std::thread::Builder::new()
                .name("kontinuum-ticker".into())
                .spawn(move || ticker(weak))
                .map_err(|e| EngineError::Invalid(format!("cannot start the timer thread: {e}")))?;
        }
        Ok(Engine { inner })
    }

    fn now(&self) -> u64 {
        self.inner.config.clock.now_ms()
    }

    /// The clock the engine reads (the one its config gave it).
    pub fn clock(&self) -> &Clock {
        &self.inner.config.clock
    }

    /// Runs the timers once at the clock's present: due delays are queued,
    /// expired leases and attempt timeouts fail their attempt, trees past
    /// their deadline fail. The ticker calls this every 10 ms on the wall
    /// clock; with a manual clock, tests call it after moving the clock.
    pub fn tick(&self) -> Result<(), EngineError> {
        let mut st = self.inner.state.lock();
        self.decide(&mut st, |st, tx, store| {
            st.release_due(tx)?;
            st.expire_leases(tx, store)?;
            st.expire_deadlines(tx, store)
        })?;
        Ok(())
    }

    /// Runs one decision under the lock and applies its writes atomically.
    /// Returns the group-commit ticket to wait on before acknowledging.
    fn decide<R>(
        &self,
        st: &mut MutexGuard<'_, State>,
        f: impl FnOnce(&mut State, &mut Tx, &Store) -> Result<R, EngineError>,
    ) -> Result<(R, u64), EngineError> {
        self.inner.store.check()?;
        let mut tx = Tx::new(self.now());
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
        let now = self.now();
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
        // Decisions of SUBMIT_CHUNK objects: one sled batch of 50,000
        // records kept every intermediate page version alive until it was
        // done (330 MB for 22 MB of records). A crash between chunks keeps
        // a prefix; the client had no answer, and resubmitting is
        // idempotent (same names and specs), so nothing is lost or doubled.
        let mut plans = plans.into_iter().peekable();
        let mut ticket;
        loop {
            let chunk: Vec<_> = plans.by_ref().take(SUBMIT_CHUNK).collect();
            let mut st = self.inner.state.lock();
            ((), ticket) = self.decide(&mut st, |st, tx, store| {
                for (named, plan) in chunk {
                    match plan {
                        Plan::Task(p) => build::apply_task(st, tx, store, Some(named), *p)?,
                        Plan::Future(p) => build::apply_future(st, tx, Some(named), *p)?,
                    };
                }
                Ok(())
            })?;
            if plans.peek().is_none() {
                break;
            }
        }
        drop(guard);
        self.inner.store.wait_durable(ticket)
    }

    /// Names of every object ever submitted.
    pub fn objects(&self) -> Result<Vec<String>, EngineError> {
        self.inner.store.check()?;
        self.inner.store.objects()
    }

    /// One page of object names starting with `prefix` (`task/`, say),
    /// those after `after` in name order: at most `limit`, and whether more
    /// follow.
    pub fn objects_page(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<String>, bool), EngineError> {
        self.inner.store.check()?;
        let mut names = self
            .inner
            .store
            .objects_page(prefix, after, limit.saturating_add(1))?;
        let more = names.len() > limit;
        names.truncate(limit);
        Ok((names, more))
    }

    /// `Err(StoreFailed)` once a write failed: the engine then refuses
    /// every call until it is opened again (a restart).
    pub fn health(&self) -> Result<(), EngineError> {
        self.inner.store.check()
    }

    /// A named object's root record, the live copy while it runs.
    fn root_of(&self, st: &State, name: &str) -> Result<StoredRoot, EngineError> {
        // What memory holds after a failed write was never stored: showing
        // it would let progress run ahead of what a restart finds.
        self.inner.store.check()?;
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
                    self.now(),
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
    ) -> Result<crate::public::TreeView, EngineError> {
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
            st.finish_root(tx, store, root_id, RootOutcome::Cancelled(error))
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
        let lease_ms = self.inner.config.lease.as_millis() as u64;
        let split_after = self.inner.config.split_after.as_millis() as u64;
        let now = self.now();
        self.inner.store.check()?;
        let mut st = self.inner.state.lock();
        Ok(st.heartbeat(now, token, progress, lease_ms, split_after))
    }

    /// Records outcomes; a stale token's outcome is ignored. Durable before
    /// returning.
    pub fn complete(
        &self,
        completions: Vec<Completion>,
    ) -> Result<Vec<CompletionAck>, EngineError> {
        self.commit(|st, tx, store| {
            completions
                .into_iter()
                .map(|c| st.complete(tx, store, c))
                .collect()
        })
    }

    /// Hands leases back unfinished: each is queued again at once, without
    /// counting a failed attempt. A token that is no longer live is
    /// answered `Stale`, so a release can be repeated safely.
    pub fn release(&self, tokens: Vec<u64>) -> Result<Vec<CompletionAck>, EngineError> {
        self.commit(|st, tx, _| {
            tokens
                .into_iter()
                .map(|token| {
                    Ok(if st.release_lease(tx, token)? {
                        CompletionAck::Accepted
                    } else {
                        CompletionAck::Stale
                    })
                })
                .collect()
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
        let plan = build::plan_task(&spec, self.now())?;
        self.commit(|st, tx, store| {
            if !st.leases.contains_key(&token) {
                return Err(EngineError::StaleLease);
            }
            build::apply_task(st, tx, store, None, plan)
        })
    }

    /// Queued, running and delayed work of a pool.
    pub fn pool_stats(&self, pool: &str) -> PoolStats {
        self.inner.state.lock().pool_stats(pool)
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

/// Runs the timers every TICK of wall time while the engine is open. Also
/// the one to notice a failed store: it wakes long polls so that they
/// answer with the failure instead of waiting out their time.
fn ticker(inner: Weak<Inner>) {
    let mut failed = false;
    loop {
        std::thread::sleep(TICK);
        let Some(inner) = inner.upgrade() else { return };
        if inner.closed.load(Ordering::Relaxed) && Arc::strong_count(&inner) == 1 {
            return;
        }
        if let Err(e) = inner.store.check() {
            if !failed {
                failed = true;
                tracing::error!("{e}");
                // Under the lock: a waiter checks the store and starts
                // waiting without letting go of it, so none misses this.
                let _st = inner.state.lock();
                inner.work_ready.notify_all();
            }
            continue;
        }
        if let Err(e) = (Engine { inner }).tick() {
            tracing::error!("engine timer step failed: {e}");
        }
    }
}
