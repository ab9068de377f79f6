//! The engine's public face: one lock around the state machine, atomic writes
//! per decision, group commit before anything is acknowledged, and a ticker
//! for timers.

use crate::build;
use crate::clock::Clock;
use crate::error::EngineError;
use crate::feed::ChangeFeed;
use crate::machine::{LeaseKind, Selector, State, Tx};
use crate::observe::EngineFigures;
use crate::public::{EngineConfig, PoolStats};
use crate::records::Body;
use crate::store::Store;
use kontinuum_api::work::{Completion, CompletionAck, HeartbeatReply, Lease, NodeId};
use kontinuum_api::{FnRef, TaskSpec};
use parking_lot::{Condvar, Mutex, MutexGuard};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

const TICK: Duration = Duration::from_millis(10);

pub(crate) struct Inner {
    pub(crate) store: Store,
    config: EngineConfig,
    pub(crate) state: Mutex<State>,
    /// One submission (or removal) at a time between its checks of the
    /// store and its decision, so two submissions of one name cannot both
    /// find it free.
    pub(crate) submitting: Mutex<()>,
    work_ready: Condvar,
    closed: AtomicBool,
}

/// The durable engine. Cheap to clone; all clones share one store.
#[derive(Clone)]
pub struct Engine {
    pub(crate) inner: Arc<Inner>,
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

    pub(crate) fn now(&self) -> u64 {
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
    pub(crate) fn decide<R>(
        &self,
        st: &mut MutexGuard<'_, State>,
        f: impl FnOnce(&mut State, &mut Tx, &Store) -> Result<R, EngineError>,
    ) -> Result<(R, u64), EngineError> {
        self.inner.store.check()?;
        let mut tx = Tx::new(self.now());
        let out = f(st, &mut tx, &self.inner.store)?;
        st.publish(&tx);
        let wake = tx.work_ready;
        let ticket = self.inner.store.apply(tx.into_writes(st)?)?;
        if wake {
            self.inner.work_ready.notify_all();
        }
        Ok((out, ticket))
    }

    /// A decision whose outcome is acknowledged: durable before returning.
    pub(crate) fn commit<R>(
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

    /// Up to `max` leases from `pool` ("*": every pool) in `namespace`
    /// (None: every namespace, each served in turn so that none starves
    /// another), waiting up to `wait` for the first.
    pub fn lease(
        &self,
        pool: &str,
        namespace: Option<&str>,
        worker: &str,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Lease>, EngineError> {
        let worker: std::sync::Arc<str> = worker.into();
        let held_by = |st: &mut State, leases: &[Lease]| {
            for lease in leases {
                if let Some(info) = st.leases.get_mut(&lease.token) {
                    info.worker = Some(worker.clone());
                }
            }
        };
        let deadline = Instant::now() + wait;
        let lease_ms = self.inner.config.lease.as_millis() as u64;
        let sel = Selector {
            pool: (pool != "*").then_some(pool),
            namespace,
        };
        let mut st = self.inner.state.lock();
        loop {
            let (leases, _) = self.decide(&mut st, |st, tx, store| {
                st.take_leases(tx, store, sel, max, lease_ms)
            })?;
            held_by(&mut st, &leases);
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
                    st.take_leases(tx, store, sel, max, lease_ms)
                })?;
                held_by(&mut st, &leases);
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
        let reply = st.heartbeat(now, token, progress, lease_ms, split_after);
        st.publish(&Tx::new(now));
        Ok(reply)
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

    /// SDK: starts an independent task from a running task, in the
    /// running task's namespace.
    pub fn spawn(&self, token: u64, spec: TaskSpec) -> Result<NodeId, EngineError> {
        crate::guard::spawned(&spec)?;
        let plan = build::plan_task(&spec, self.now())?;
        self.commit(|st, tx, store| {
            let lease = st.leases.get(&token).ok_or(EngineError::StaleLease)?;
            let namespace = st.root(lease.root)?.namespace.clone();
            build::apply_task(st, tx, store, &namespace, None, plan)
        })
    }

    /// What the pool `pool` of `namespace` holds now.
    pub fn pool_stats(&self, namespace: &str, pool: &str) -> PoolStats {
        let now = self.now();
        self.inner.state.lock().pool_stats(namespace, pool, now)
    }

    /// Leases held per worker in the pool `pool` of `namespace` (workers
    /// holding none are absent).
    pub fn running_by_worker(&self, namespace: &str, pool: &str) -> BTreeMap<String, u64> {
        self.inner.state.lock().running_by_worker(namespace, pool)
    }

    /// Leases held per worker, all pools together.
    pub fn leases_by_worker(&self) -> BTreeMap<String, u64> {
        let st = self.inner.state.lock();
        let mut out = BTreeMap::new();
        for info in st.leases.values() {
            if let Some(worker) = &info.worker {
                *out.entry(worker.to_string()).or_insert(0) += 1;
            }
        }
        out
    }

    /// The namespace of the object a live lease works for: what a worker
    /// confined to one namespace may touch.
    pub fn lease_namespace(&self, token: u64) -> Option<String> {
        let st = self.inner.state.lock();
        let root = st.leases.get(&token)?.root;
        st.roots.get(&root).map(|r| r.namespace.clone())
    }

    /// Every (namespace, pool) that has or had work since the engine
    /// opened, with what it holds now.
    pub fn pools(&self) -> Vec<(String, String, PoolStats)> {
        let now = self.now();
        self.inner.state.lock().every_pool(now)
    }

    /// What metrics show: per pool its queue, attempts and the workers
    /// holding its leases; per namespace its active futures and finished
    /// objects; the store's fsync times and size. Takes the engine's lock
    /// once, for a walk over what is in flight (not over the store).
    pub fn figures(&self) -> EngineFigures {
        let now = self.now();
        let (pools, namespaces) = self.inner.state.lock().figures(now);
        EngineFigures {
            pools,
            namespaces,
            fsync: self.inner.store.fsync_times(),
            store_bytes: self.inner.store.size_on_disk(),
        }
    }

    /// A feed of what changes from now on: objects whose status may have
    /// changed and pools whose figures moved, coalesced until read.
    pub fn subscribe(&self) -> ChangeFeed {
        self.inner.state.lock().feed.subscribe()
    }

    /// The store's identity: made when the store was first opened, the same
    /// at every later opening, different for every other store.
    pub fn store_id(&self) -> &str {
        self.inner.store.id()
    }

    /// The reason the store stopped taking writes, once it has (a full
    /// disk, say): the engine then refuses every decision until reopened.
    pub fn failure(&self) -> Option<String> {
        match self.inner.store.check() {
            Ok(()) => None,
            Err(EngineError::StoreFailed(reason)) => Some(reason),
            Err(other) => Some(other.to_string()),
        }
    }

    /// Stops handing out leases and wakes every waiter (for shutdown).
    pub fn close(&self) {
        self.inner.closed.store(true, Ordering::Relaxed);
        self.inner.work_ready.notify_all();
    }
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
