//! The engine's in-memory state and every transition of a node. Active nodes
//! and roots live here (finished ones only on disk); each transition records
//! its writes in the [`Tx`] so the store changes atomically with memory.

use crate::decide::{self, AfterFailure};
use crate::model::{
    Body, DebounceState, ExclusiveState, MapSourceKind, Node, NodeState, Root, RootState,
};
use crate::store::{Store, WriteSet};
use crate::types::EngineError;
use kontinuum_api::FnRef;
use kontinuum_api::accumulator::Accumulator;
use kontinuum_api::common::{ErrorInfo, ErrorKind};
use kontinuum_api::reducer::{BuiltinReducer, Reducer};
use kontinuum_api::work::{Lease, NodeId, Slice, Work};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

/// Maps and sets keyed by ids and tokens the engine makes itself: no one can
/// choose the keys, so a fast hash is safe, and SipHash showed in profiles.
pub type IdMap<K, V> = rustc_hash::FxHashMap<K, V>;
pub type IdSet<K> = rustc_hash::FxHashSet<K>;

/// The writes and side effects of one decision.
pub struct Tx {
    pub writes: WriteSet,
    pub now: u64,
    /// New work became ready: wake lease waiters.
    pub work_ready: bool,
    /// Child values written or removed by this decision, which the store
    /// does not show until the writes are applied.
    values: BTreeMap<(NodeId, u32), Option<Value>>,
    /// Records touched by this decision, encoded once at the end.
    pub dirty_nodes: IdSet<NodeId>,
    pub dirty_roots: IdSet<NodeId>,
    final_nodes: IdMap<NodeId, Box<Node>>,
    final_roots: IdMap<NodeId, Box<Root>>,
    pub next_id: Option<NodeId>,
}

impl Tx {
    pub fn new(now: u64) -> Tx {
        Tx {
            writes: WriteSet::default(),
            now,
            work_ready: false,
            values: BTreeMap::new(),
            dirty_nodes: IdSet::default(),
            dirty_roots: IdSet::default(),
            final_nodes: IdMap::default(),
            final_roots: IdMap::default(),
            next_id: None,
        }
    }

    /// A node that left memory with a final outcome.
    pub fn node_done(&mut self, node: impl Into<Box<Node>>) {
        let node = node.into();
        self.dirty_nodes.remove(&node.id);
        if node.parent.is_none() {
            self.dirty_roots.insert(node.root);
        }
        self.final_nodes.insert(node.id, node);
    }

    /// A root that left memory with a final outcome.
    pub fn root_done(&mut self, root: impl Into<Box<Root>>) {
        let root = root.into();
        self.dirty_roots.insert(root.id);
        self.final_roots.insert(root.id, root);
    }

    /// Encodes every record this decision touched, once each.
    pub fn into_writes(mut self, st: &State) -> Result<WriteSet, EngineError> {
        for id in &self.dirty_nodes {
            match st.nodes.get(id) {
                Some(n) if n.parent.is_none() => {
                    self.dirty_roots.insert(n.root);
                }
                Some(n) => self.writes.put_node(n)?,
                None => {}
            }
        }
        for node in self.final_nodes.values() {
            if node.parent.is_some() {
                self.writes.put_node(node)?;
            }
        }
        for id in &self.dirty_roots {
            let root = self.final_roots.get(id).or_else(|| st.roots.get(id));
            let node = st.nodes.get(id).or_else(|| self.final_nodes.get(id));
            if let Some(root) = root {
                self.writes.put_root(root, node.map(|n| &**n))?;
            }
        }
        if let Some(next) = self.next_id {
            self.writes.put_next_id(next);
        }
        Ok(self.writes)
    }

    fn put_value(&mut self, parent: NodeId, index: u32, value: &Value) -> Result<(), EngineError> {
        self.writes.put_value(parent, index, value)?;
        self.values.insert((parent, index), Some(value.clone()));
        Ok(())
    }

    fn del_value(&mut self, parent: NodeId, index: u32) {
        self.writes.del_value(parent, index);
        self.values.insert((parent, index), None);
    }

    /// Child values of `parent` in order, as they will be once applied.
    fn child_values(
        &self,
        store: &Store,
        parent: NodeId,
    ) -> Result<Vec<(u32, Value)>, EngineError> {
        let mut merged: BTreeMap<u32, Value> = store.child_values(parent)?.into_iter().collect();
        for ((_, index), value) in self.values.range((parent, 0)..=(parent, u32::MAX)) {
            match value {
                Some(v) => merged.insert(*index, v.clone()),
                None => merged.remove(index),
            };
        }
        Ok(merged.into_iter().collect())
    }
}

/// Why a node holds a lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseKind {
    Body,
    Fold,
}

#[derive(Clone, Debug)]
pub struct LeaseInfo {
    pub node: NodeId,
    pub root: NodeId,
    pub kind: LeaseKind,
    pub attempt: u32,
    pub expires_ms: u64,
    pub timeout_at_ms: Option<u64>,
    /// Units done so far in this attempt (heartbeats).
    pub progress: u64,
    pub last_split_ms: u64,
}

/// Queue order: deeper nodes first (finishing subtrees keeps the active set
/// small), then first come, first served.
type ReadyKey = (u32, u64, NodeId);

#[derive(Default)]
pub struct State {
    pub next_id: NodeId,
    // Boxed: the maps grow by rehashing, which moves every value.
    pub nodes: IdMap<NodeId, Box<Node>>,
    pub roots: IdMap<NodeId, Box<Root>>,
    pub items: IdMap<NodeId, Arc<Vec<Value>>>,
    pub ready: HashMap<String, BTreeSet<ReadyKey>>,
    pub delayed: BTreeSet<(u64, NodeId)>,
    pub leases: IdMap<u64, LeaseInfo>,
    /// The largest `done` shown per root, so progress never goes back.
    pub shown_done: IdMap<NodeId, u64>,
    debounce: HashMap<String, DebounceState>,
    exclusive: HashMap<String, ExclusiveState>,
    seq: u64,
    token_base: u64,
    token_seq: u64,
}

fn corrupt(what: &str, detail: impl Into<String>) -> EngineError {
    EngineError::Corrupt {
        what: what.to_string(),
        detail: detail.into(),
    }
}

impl State {
    pub fn new(next_id: NodeId, token_base: u64) -> State {
        State {
            next_id,
            token_base,
            ..State::default()
        }
    }

    pub fn alloc_id(&mut self, tx: &mut Tx) -> NodeId {
        let id = self.next_id;
        self.next_id += 1;
        tx.next_id = Some(self.next_id);
        id
    }

    fn new_token(&mut self) -> u64 {
        self.token_seq += 1;
        // A random high half per engine start keeps tokens of an earlier
        // process from matching leases of this one.
        self.token_base ^ self.token_seq
    }

    pub fn root(&self, id: NodeId) -> Result<&Root, EngineError> {
        self.roots
            .get(&id)
            .map(|r| &**r)
            .ok_or_else(|| corrupt("root", format!("root {id} is not active")))
    }

    fn root_mut(&mut self, id: NodeId) -> Result<&mut Root, EngineError> {
        self.roots
            .get_mut(&id)
            .map(|r| &mut **r)
            .ok_or_else(|| corrupt("root", format!("root {id} is not active")))
    }

    fn node_mut(&mut self, id: NodeId) -> Result<&mut Node, EngineError> {
        self.nodes
            .get_mut(&id)
            .map(|n| &mut **n)
            .ok_or_else(|| corrupt("node", format!("node {id} is not active")))
    }

    /// Debounce state of a key, as this process last wrote it.
    pub fn debounce_state(
        &mut self,
        store: &Store,
        key: &str,
    ) -> Result<DebounceState, EngineError> {
        cached(&mut self.debounce, key, || store.debounce(key))
    }

    pub fn set_debounce(
        &mut self,
        tx: &mut Tx,
        key: &str,
        st: DebounceState,
    ) -> Result<(), EngineError> {
        tx.writes.put_debounce(key, &st)?;
        self.debounce.insert(key.to_string(), st);
        Ok(())
    }

    pub fn exclusive_state(
        &mut self,
        store: &Store,
        key: &str,
    ) -> Result<ExclusiveState, EngineError> {
        cached(&mut self.exclusive, key, || store.exclusive(key))
    }

    pub fn set_exclusive(
        &mut self,
        tx: &mut Tx,
        key: &str,
        st: ExclusiveState,
    ) -> Result<(), EngineError> {
        tx.writes.put_exclusive(key, &st)?;
        if st.holder.is_none() && st.rerun.is_none() {
            self.exclusive.remove(key);
        } else {
            self.exclusive.insert(key.to_string(), st);
        }
        Ok(())
    }

    pub fn pool_of(&self, node: &Node) -> String {
        self.roots
            .get(&node.root)
            .map(|r| r.pool.clone())
            .unwrap_or_default()
    }

    // ---- creating and queueing ----

    /// Adds a new node (not yet in any queue unless its state says so).
    pub fn insert_node(&mut self, tx: &mut Tx, node: Node) -> Result<(), EngineError> {
        let root = self.root_mut(node.root)?;
        *root.counts.slot(node.state.bucket()) += 1;
        root.nodes += 1;
        root.depth = root.depth.max(node.depth + 1);
        tx.dirty_roots.insert(node.root);
        tx.dirty_nodes.insert(node.id);
        let (id, state, due) = (node.id, node.state, node.due_ms);
        self.nodes.insert(id, Box::new(node));
        match state {
            NodeState::Queued | NodeState::Folding => self.enqueue(tx, id),
            NodeState::Waiting => {
                self.delayed.insert((due, id));
            }
            _ => {}
        }
        Ok(())
    }

    pub fn enqueue(&mut self, tx: &mut Tx, id: NodeId) {
        let Some(node) = self.nodes.get(&id) else {
            return;
        };
        let pool = self.pool_of(node);
        self.seq += 1;
        let key = (u32::MAX - node.depth, self.seq, id);
        self.ready.entry(pool).or_default().insert(key);
        tx.work_ready = true;
    }

    /// Moves a node to a new state, keeping the root's counters right.
    fn set_state(&mut self, tx: &mut Tx, id: NodeId, state: NodeState) -> Result<(), EngineError> {
        let node = self.node_mut(id)?;
        let old = node.state.bucket();
        node.state = state;
        let root_id = node.root;
        if let Some(root) = self.roots.get_mut(&root_id) {
            *root.counts.slot(old) -= 1;
            *root.counts.slot(state.bucket()) += 1;
        }
        if state.is_final() || matches!(state, NodeState::Children | NodeState::Folding) {
            // Final and gathering states must survive a restart; moves between
            // waiting, queued and running need not (recovery queues them again).
            tx.dirty_roots.insert(root_id);
        }
        Ok(())
    }

    fn write_node(&self, tx: &mut Tx, id: NodeId) -> Result<(), EngineError> {
        tx.dirty_nodes.insert(id);
        Ok(())
    }

    // ---- timers ----

    /// Moves due delayed nodes to the queue.
    pub fn release_due(&mut self, tx: &mut Tx) -> Result<(), EngineError> {
        while let Some(&(due, id)) = self.delayed.first() {
            if due > tx.now {
                break;
            }
            self.delayed.pop_first();
            if self.nodes.get(&id).map(|n| n.state) == Some(NodeState::Waiting) {
                self.set_state(tx, id, NodeState::Queued)?;
                self.write_node(tx, id)?;
                self.enqueue(tx, id);
            }
        }
        Ok(())
    }

    /// Fails attempts whose lease or timeout ran out.
    pub fn expire_leases(&mut self, tx: &mut Tx, store: &Store) -> Result<(), EngineError> {
        let now = tx.now;
        let expired: Vec<(u64, bool)> = self
            .leases
            .iter()
            .filter_map(|(token, l)| {
                let timed_out = l.timeout_at_ms.is_some_and(|t| t <= now);
                (timed_out || l.expires_ms <= now).then_some((*token, timed_out))
            })
            .collect();
        for (token, timed_out) in expired {
            let Some(lease) = self.leases.remove(&token) else {
                continue;
            };
            if self.nodes.get(&lease.node).map(|n| n.state) != Some(NodeState::Running) {
                continue;
            }
            let message = if timed_out {
                kontinuum_api::limits::ATTEMPT_TIMED_OUT.to_string()
            } else {
                "lease expired: the worker stopped heartbeating (crashed or lost)".to_string()
            };
            let error = ErrorInfo {
                message,
                kind: ErrorKind::Timeout,
                attempt: lease.attempt,
            };
            self.attempt_failed(tx, store, &lease, error, false)?;
        }
        Ok(())
    }

    /// Fails trees whose deadline passed.
    pub fn expire_deadlines(&mut self, tx: &mut Tx, store: &Store) -> Result<(), EngineError> {
        let now = tx.now;
        let late: Vec<NodeId> = self
            .roots
            .values()
            .filter(|r| r.state == RootState::Active && r.deadline_ms.is_some_and(|d| d <= now))
            .map(|r| r.id)
            .collect();
        for id in late {
            let error = ErrorInfo {
                message: "deadline exceeded".into(),
                kind: ErrorKind::Timeout,
                attempt: 0,
            };
            self.finish_root(tx, store, id, RootState::Failed, None, Some(error))?;
        }
        Ok(())
    }

    // ---- leasing ----

    /// Takes up to `max` runnable nodes of `pool` ("*": any), carrying out
    /// engine work (splits, parallel and sequence starts) on the way.
    pub fn take_leases(
        &mut self,
        tx: &mut Tx,
        store: &Store,
        pool: &str,
        max: usize,
        lease_ms: u64,
    ) -> Result<Vec<Lease>, EngineError> {
        let mut out = Vec::new();
        while out.len() < max {
            let Some(id) = self.pop_ready(pool) else {
                break;
            };
            let Some(node) = self.nodes.get(&id) else {
                continue;
            };
            let state = node.state;
            if !matches!(state, NodeState::Queued | NodeState::Folding) {
                continue;
            }
            if self
                .roots
                .get(&node.root)
                .is_none_or(|r| r.state != RootState::Active)
            {
                continue;
            }
            if state == NodeState::Queued && node.body.is_engine_work() {
                self.run_engine_work(tx, store, id)?;
                continue;
            }
            out.push(self.start_attempt(tx, store, id, lease_ms)?);
        }
        Ok(out)
    }

    fn pop_ready(&mut self, pool: &str) -> Option<NodeId> {
        let pool_name = if pool == "*" {
            self.ready
                .iter()
                .filter_map(|(name, set)| set.first().map(|k| (*k, name.clone())))
                .min()?
                .1
        } else {
            pool.to_string()
        };
        self.ready
            .get_mut(&pool_name)?
            .pop_first()
            .map(|(_, _, id)| id)
    }

    pub fn queued_in(&self, pool: &str) -> usize {
        self.ready.get(pool).map_or(0, |s| s.len())
    }

    fn start_attempt(
        &mut self,
        tx: &mut Tx,
        store: &Store,
        id: NodeId,
        lease_ms: u64,
    ) -> Result<Lease, EngineError> {
        let now = tx.now;
        let kind = if self.nodes.get(&id).map(|n| n.state) == Some(NodeState::Folding) {
            LeaseKind::Fold
        } else {
            LeaseKind::Body
        };
        if kind == LeaseKind::Body {
            self.set_state(tx, id, NodeState::Running)?;
        }
        let work = self.work_for(tx, store, id, kind)?;
        let node = self.node_mut(id)?;
        node.attempts += 1;
        if node.started_ms == 0 {
            node.started_ms = now;
        }
        let (attempt, root_id, is_root_node) = (node.attempts, node.root, node.parent.is_none());
        let root = self.root_mut(root_id)?;
        if root.started_ms == 0 {
            root.started_ms = now;
        }
        if is_root_node {
            root.attempts = attempt;
        }
        let timeout_ms = root.timeout_ms;
        // Debounce: this run has started, so a later call schedules a new one.
        if let Some(key) = root.debounce_key.clone() {
            let mut state = self.debounce_state(store, &key)?;
            if state.pending == Some(root_id) {
                state.pending = None;
            }
            state.last_run_ms = Some(now);
            self.set_debounce(tx, &key, state)?;
        }
        let token = self.new_token();
        self.leases.insert(
            token,
            LeaseInfo {
                node: id,
                root: root_id,
                kind,
                attempt,
                expires_ms: now + lease_ms,
                timeout_at_ms: timeout_ms.map(|t| now + t),
                progress: 0,
                last_split_ms: now,
            },
        );
        Ok(Lease {
            token,
            node: id,
            attempt,
            work,
            timeout_ms,
            lease_ms,
        })
    }

    fn work_for(
        &mut self,
        tx: &Tx,
        store: &Store,
        id: NodeId,
        kind: LeaseKind,
    ) -> Result<Work, EngineError> {
        let node = self
            .nodes
            .get(&id)
            .ok_or_else(|| corrupt("node", "leased node vanished"))?;
        let root = self.root(node.root)?;
        if kind == LeaseKind::Fold {
            let Some(Reducer::Function(reducer)) = root.map.as_ref().map(|m| m.reducer.clone())
            else {
                return Err(corrupt("node", "fold without an FnRef reducer"));
            };
            let mut values: Vec<Value> =
                node.own.iter().filter(|v| !v.is_null()).cloned().collect();
            values.extend(
                tx.child_values(store, id)?
                    .into_iter()
                    .map(|(_, v)| v)
                    .filter(|v| !v.is_null()),
            );
            return Ok(Work::Fold { reducer, values });
        }
        match &node.body {
            Body::Call { call } => Ok(Work::Call { call: call.clone() }),
            Body::Leaf { start, end } => {
                let (start, end, root_id) = (*start, *end, node.root);
                let map = root
                    .map
                    .clone()
                    .ok_or_else(|| corrupt("root", "map leaf without map"))?;
                let slice = match &map.source {
                    MapSourceKind::Range { start: base } => Slice::Range {
                        start: base + start as i64,
                        end: base + end as i64,
                    },
                    MapSourceKind::Lines { path } => Slice::Lines {
                        path: path.clone(),
                        start,
                        end,
                    },
                    MapSourceKind::Items => {
                        let items = self.items_of(store, root_id)?;
                        let (s, e) = (start as usize, (end as usize).min(items.len()));
                        Slice::Items {
                            offset: start,
                            items: items.get(s..e).unwrap_or_default().to_vec(),
                        }
                    }
                };
                Ok(Work::MapLeaf {
                    function: map.function,
                    slice,
                    reducer: map.reducer,
                })
            }
            other => Err(corrupt(
                "node",
                format!("engine body {other:?} handed to a worker"),
            )),
        }
    }

    fn items_of(&mut self, store: &Store, root: NodeId) -> Result<Arc<Vec<Value>>, EngineError> {
        if let Some(items) = self.items.get(&root) {
            return Ok(items.clone());
        }
        let items = Arc::new(store.items(root)?);
        self.items.insert(root, items.clone());
        Ok(items)
    }

    // ---- engine work ----

    fn run_engine_work(
        &mut self,
        tx: &mut Tx,
        store: &Store,
        id: NodeId,
    ) -> Result<(), EngineError> {
        let node = self
            .nodes
            .get(&id)
            .ok_or_else(|| corrupt("node", "vanished"))?;
        let body = node.body.clone();
        let root_id = node.root;
        self.set_state(tx, id, NodeState::Children)?;
        let now = tx.now;
        if let Some(n) = self.nodes.get_mut(&id) {
            n.started_ms = now;
        }
        if let Some(r) = self.roots.get_mut(&root_id)
            && r.started_ms == 0
        {
            r.started_ms = now;
        }
        match body {
            Body::Split { start, end } => self.add_map_children(tx, id, start, end, false)?,
            Body::Parallel { calls } => {
                for call in calls {
                    self.add_call_child(tx, id, call, 1)?;
                }
            }
            Body::Sequence { calls } => {
                if let Some(first) = calls.first() {
                    let call = bind_previous(first, Vec::new());
                    self.add_call_child(tx, id, call, 1)?;
                }
            }
            Body::Call { .. } | Body::Leaf { .. } => {}
        }
        self.write_node(tx, id)?;
        self.maybe_finish_gathering(tx, store, id)
    }

    /// Children over positions `start..end` of the root's map.
    /// `runtime_split`: the rest of a running leaf, cut into `fanout` parts
    /// even below the shard size, so idle workers share it.
    fn add_map_children(
        &mut self,
        tx: &mut Tx,
        parent: NodeId,
        start: u64,
        end: u64,
        runtime_split: bool,
    ) -> Result<(), EngineError> {
        let p = self
            .nodes
            .get(&parent)
            .ok_or_else(|| corrupt("node", "vanished"))?;
        let map = self
            .root(p.root)?
            .map
            .clone()
            .ok_or_else(|| corrupt("root", "split without map"))?;
        let cut = if runtime_split {
            (end - start)
                .div_ceil(u64::from(map.fanout))
                .min(map.shard_units)
        } else {
            map.shard_units
        };
        for (s, e) in decide::split_range(start, end, map.fanout, cut) {
            let body = if e - s <= map.shard_units {
                Body::Leaf { start: s, end: e }
            } else {
                Body::Split { start: s, end: e }
            };
            self.add_child_node(tx, parent, body, e - s)?;
        }
        Ok(())
    }

    pub fn add_call_child(
        &mut self,
        tx: &mut Tx,
        parent: NodeId,
        call: FnRef,
        weight: u64,
    ) -> Result<NodeId, EngineError> {
        self.add_child_node(tx, parent, Body::Call { call }, weight)
    }

    fn add_child_node(
        &mut self,
        tx: &mut Tx,
        parent: NodeId,
        body: Body,
        weight: u64,
    ) -> Result<NodeId, EngineError> {
        let id = self.alloc_id(tx);
        let p = self.node_mut(parent)?;
        let index = p.children;
        p.children += 1;
        let (root, depth) = (p.root, p.depth + 1);
        let child = Node {
            parent: Some(parent),
            root,
            index,
            depth,
            ..Node::root_node(id, body, weight, NodeState::Queued, 0)
        };
        self.insert_node(tx, child)?;
        self.write_node(tx, parent)?;
        Ok(id)
    }

    /// SDK children add to the known total; map children do not (their
    /// parent's weight already counts them).
    pub fn add_sdk_child(
        &mut self,
        tx: &mut Tx,
        parent: NodeId,
        call: FnRef,
        weight: u64,
    ) -> Result<NodeId, EngineError> {
        let root_id = self
            .nodes
            .get(&parent)
            .map(|n| n.root)
            .ok_or_else(|| corrupt("node", "vanished"))?;
        let id = self.add_call_child(tx, parent, call, weight)?;
        let root = self.root_mut(root_id)?;
        root.known_total += weight;
        tx.dirty_roots.insert(root_id);
        Ok(id)
    }

    // ---- heartbeats and splitting ----

    /// Splits the rest of a running leaf, from position `at`, into children.
    pub fn split_leaf(
        &mut self,
        tx: &mut Tx,
        token: u64,
        at_value: i64,
    ) -> Result<bool, EngineError> {
        let Some(lease) = self.leases.get(&token).cloned() else {
            return Err(EngineError::StaleLease);
        };
        let node = self.nodes.get(&lease.node).ok_or(EngineError::StaleLease)?;
        let Body::Leaf { start, end } = node.body else {
            return Ok(false);
        };
        let root = self.root(lease.root)?;
        let at = match root.map.as_ref().map(|m| &m.source) {
            Some(MapSourceKind::Range { start: base }) => at_value.saturating_sub(*base),
            _ => at_value,
        };
        if at <= start as i64 || at >= end as i64 {
            return Ok(false);
        }
        let at = at as u64;
        self.node_mut(lease.node)?.body = Body::Leaf { start, end: at };
        self.add_map_children(tx, lease.node, at, end, true)?;
        if let Some(l) = self.leases.get_mut(&token) {
            l.last_split_ms = tx.now;
        }
        Ok(true)
    }

    // ---- outcomes ----

    /// A worker reported success for the lease.
    pub fn succeed(
        &mut self,
        tx: &mut Tx,
        store: &Store,
        lease: &LeaseInfo,
        value: Value,
    ) -> Result<(), EngineError> {
        if lease.kind == LeaseKind::Fold {
            return self.node_succeeded(tx, store, lease.node, value);
        }
        let node = self.node_mut(lease.node)?;
        let units = match node.body {
            Body::Leaf { start, end } => end - start,
            Body::Call { .. } => node.weight,
            _ => 0,
        };
        node.own = Some(value);
        let root_id = node.root;
        let root = self.root_mut(root_id)?;
        root.done += units;
        tx.dirty_roots.insert(root_id);
        self.set_state(tx, lease.node, NodeState::Children)?;
        self.write_node(tx, lease.node)?;
        self.maybe_finish_gathering(tx, store, lease.node)
    }

    /// A failed attempt: retry after backoff, or fail the node.
    pub fn attempt_failed(
        &mut self,
        tx: &mut Tx,
        store: &Store,
        lease: &LeaseInfo,
        error: ErrorInfo,
        permanent: bool,
    ) -> Result<(), EngineError> {
        let retry = self.root(lease.root)?.retry.clone();
        match decide::after_failure(&retry, lease.attempt, permanent, tx.now) {
            AfterFailure::GiveUp => self.node_failed(tx, store, lease.node, error),
            AfterFailure::RetryAt(due) => {
                let node = self.node_mut(lease.node)?;
                node.error = Some(error);
                node.due_ms = due;
                if lease.kind == LeaseKind::Fold {
                    // The fold is retried at once; its inputs are all there.
                    self.enqueue(tx, lease.node);
                } else {
                    self.set_state(tx, lease.node, NodeState::Waiting)?;
                    self.delayed.insert((due, lease.node));
                }
                self.write_node(tx, lease.node)
            }
        }
    }

    /// A node whose body is done finishes once all its children have.
    fn maybe_finish_gathering(
        &mut self,
        tx: &mut Tx,
        store: &Store,
        id: NodeId,
    ) -> Result<(), EngineError> {
        let Some(node) = self.nodes.get(&id) else {
            return Ok(());
        };
        if node.state != NodeState::Children || node.finished_children < node.children {
            return Ok(());
        }
        let map_reducer = if matches!(node.body, Body::Leaf { .. } | Body::Split { .. }) {
            self.root(node.root)?
                .map
                .as_ref()
                .map(|m| m.reducer.clone())
        } else {
            None
        };
        if node.children == 0 {
            let value = node.own.clone().unwrap_or(Value::Null);
            return self.node_succeeded(tx, store, id, value);
        }
        let children: Vec<Value> = tx
            .child_values(store, id)?
            .into_iter()
            .map(|(_, v)| v)
            .collect();
        let combined = match map_reducer {
            Some(Reducer::Function(_)) => {
                // An FnRef reducer runs on a worker: hand the values to a fold.
                self.set_state(tx, id, NodeState::Folding)?;
                self.write_node(tx, id)?;
                self.enqueue(tx, id);
                return Ok(());
            }
            Some(Reducer::Builtin(b)) => combine(Some(b), node.own.as_ref(), &children),
            None => combine(None, node.own.as_ref(), &children),
        };
        match combined {
            Ok(value) => self.node_succeeded(tx, store, id, value),
            Err(message) => {
                let attempt = node.attempts;
                let error = ErrorInfo {
                    message,
                    kind: ErrorKind::Permanent,
                    attempt,
                };
                self.node_failed(tx, store, id, error)
            }
        }
    }

    /// The node's value is final: hand it to the parent (or finish the root).
    fn node_succeeded(
        &mut self,
        tx: &mut Tx,
        store: &Store,
        id: NodeId,
        value: Value,
    ) -> Result<(), EngineError> {
        self.set_state(tx, id, NodeState::Succeeded)?;
        let mut node = self
            .nodes
            .remove(&id)
            .ok_or_else(|| corrupt("node", "vanished"))?;
        node.finished_ms = tx.now;
        // The children's values are folded in; the node's own record keeps
        // only its outcome, not the value (the parent holds that).
        for index in 0..node.children {
            tx.del_value(id, index);
        }
        node.own = None;
        let (parent_of, root_of, index_of) = (node.parent, node.root, node.index);
        tx.node_done(node);
        match parent_of {
            None => self.finish_root(tx, store, root_of, RootState::Succeeded, Some(value), None),
            Some(parent) => {
                tx.put_value(parent, index_of, &value)?;
                self.child_finished(tx, store, parent, index_of, Some(value))
            }
        }
    }

    /// The node failed for good: count it against the tree's failure policy.
    fn node_failed(
        &mut self,
        tx: &mut Tx,
        store: &Store,
        id: NodeId,
        error: ErrorInfo,
    ) -> Result<(), EngineError> {
        let path = self.path_of(id);
        self.set_state(tx, id, NodeState::Failed)?;
        let mut node = self
            .nodes
            .remove(&id)
            .ok_or_else(|| corrupt("node", "vanished"))?;
        node.finished_ms = tx.now;
        node.error = Some(error.clone());
        let units = match node.body {
            Body::Leaf { start, end } => end - start,
            _ => node.weight,
        };
        let (parent_of, root_id, index) = (node.parent, node.root, node.index);
        tx.node_done(node);
        let Some(parent) = parent_of else {
            return self.finish_root(tx, store, root_id, RootState::Failed, None, Some(error));
        };
        let root = self.root_mut(root_id)?;
        root.failed_leaves += 1;
        root.done += units;
        if root.failures.len() < 10 {
            root.failures.push((path.clone(), error.message.clone()));
        }
        let over = root.failed_leaves > root.max_failed_children;
        let failed = root.failed_leaves;
        tx.dirty_roots.insert(root_id);
        if over {
            let message = format!(
                "{failed} child(ren) failed (failurePolicy.maxFailedChildren allows fewer); first at {path}: {}",
                error.message
            );
            let tree_error = ErrorInfo {
                message,
                kind: error.kind,
                attempt: error.attempt,
            };
            return self.finish_root(
                tx,
                store,
                root_id,
                RootState::Failed,
                None,
                Some(tree_error),
            );
        }
        // Tolerated: the parent goes on without this child's value.
        self.child_finished(tx, store, parent, index, None)
    }

    fn child_finished(
        &mut self,
        tx: &mut Tx,
        store: &Store,
        parent: NodeId,
        index: u32,
        value: Option<Value>,
    ) -> Result<(), EngineError> {
        let p = self.node_mut(parent)?;
        p.finished_children += 1;
        if let Body::Sequence { calls } = &p.body {
            let next = index as usize + 1;
            if let Some(call) = calls.get(next).cloned() {
                // The previous results, with null for a tolerated failure.
                let mut previous: Vec<Value> = vec![Value::Null; next];
                for (i, v) in tx.child_values(store, parent)? {
                    if let Some(slot) = previous.get_mut(i as usize) {
                        *slot = v;
                    }
                }
                if let (Some(slot), Some(v)) = (previous.get_mut(index as usize), value) {
                    *slot = v;
                }
                self.add_call_child(tx, parent, bind_previous(&call, previous), 1)?;
            }
        }
        self.write_node(tx, parent)?;
        self.maybe_finish_gathering(tx, store, parent)
    }

    /// `/2/0/5`: child indexes from the root down.
    fn path_of(&self, id: NodeId) -> String {
        let mut parts = Vec::new();
        let mut at = self.nodes.get(&id);
        while let Some(node) = at {
            if node.parent.is_none() {
                break;
            }
            parts.push(node.index);
            at = node.parent.and_then(|p| self.nodes.get(&p));
        }
        let mut path = String::new();
        for part in parts.iter().rev() {
            path.push('/');
            path.push_str(&part.to_string());
        }
        if path.is_empty() { "/".into() } else { path }
    }

    // ---- finishing a tree ----

    /// The tree's outcome is final: write it, cancel what is left, release
    /// debounce and exclusive state, and start the continuation (in the same
    /// atomic write, so it runs exactly once).
    pub fn finish_root(
        &mut self,
        tx: &mut Tx,
        store: &Store,
        id: NodeId,
        state: RootState,
        value: Option<Value>,
        error: Option<ErrorInfo>,
    ) -> Result<(), EngineError> {
        let Some(mut root) = self.roots.remove(&id) else {
            return Ok(());
        };
        if root.state != RootState::Active {
            return Ok(());
        }
        root.state = state;
        root.finished_ms = tx.now;
        root.error = error.clone();
        if let Some(v) = value {
            root.result = Some(match root.map.as_ref().map(|m| &m.reducer) {
                Some(Reducer::Builtin(_)) => {
                    Accumulator::from_value(&v).map(|a| a.finish()).unwrap_or(v)
                }
                _ => v,
            });
        }
        if root.counts.pending + root.counts.running > 0 {
            // Drop what is left of the tree: queued entries are skipped when
            // popped, running ones see it at their next heartbeat.
            let leftover: Vec<NodeId> = self
                .nodes
                .values()
                .filter(|n| n.root == id)
                .map(|n| n.id)
                .collect();
            for nid in leftover {
                if let Some(mut n) = self.nodes.remove(&nid) {
                    n.state = NodeState::Cancelled;
                    n.finished_ms = tx.now;
                    tx.node_done(n);
                }
            }
            root.counts.cancelled += root.counts.pending + root.counts.running;
            root.counts.pending = 0;
            root.counts.running = 0;
        }
        if let Some(key) = root.debounce_key.clone() {
            let mut st = self.debounce_state(store, &key)?;
            if st.pending == Some(id) {
                st.pending = None;
                self.set_debounce(tx, &key, st)?;
            }
        }
        if let Some(ex) = root.exclusive.clone() {
            let mut st = self.exclusive_state(store, &ex.key)?;
            if st.rerun == Some(id) {
                st.rerun = None;
            }
            if st.holder == Some(id) {
                st.holder = st.rerun.take();
                if let Some(next) = st.holder
                    && self.nodes.get(&next).map(|n| n.state) == Some(NodeState::Blocked)
                {
                    self.set_state(tx, next, NodeState::Queued)?;
                    self.write_node(tx, next)?;
                    self.enqueue(tx, next);
                }
            }
            self.set_exclusive(tx, &ex.key, st)?;
        }
        let continuation = match (state, &root.result, &error) {
            (RootState::Succeeded, result, _) => root
                .on_success
                .clone()
                .map(|f| (f, "result", result.clone().unwrap_or(Value::Null))),
            (RootState::Failed, _, Some(e)) => root
                .on_failure
                .clone()
                .map(|f| (f, "error", serde_json::to_value(e).unwrap_or(Value::Null))),
            _ => None,
        };
        if let Some((call, name, value)) = continuation {
            let mut bound = call.clone();
            match bound.bind_one(name, value) {
                Ok(()) => {
                    let cid =
                        self.new_call_root(tx, &root.pool, bound, root.retry.clone(), None)?;
                    root.continuation = Some(cid);
                }
                Err(e) => tracing::warn!(root = id, "continuation not started: {e}"),
            }
        }
        tx.root_done(root);
        self.shown_done.remove(&id);
        self.items.remove(&id);
        Ok(())
    }

    /// A new tree of one call: continuations, spawned tasks, and Tasks.
    pub fn new_call_root(
        &mut self,
        tx: &mut Tx,
        pool: &str,
        call: FnRef,
        retry: crate::model::RetrySettings,
        timeout_ms: Option<u64>,
    ) -> Result<NodeId, EngineError> {
        let id = self.alloc_id(tx);
        let root = Root::new_task(id, None, pool, call.stable_id(), retry, timeout_ms, tx.now);
        self.roots.insert(id, Box::new(root));
        let node = Node::root_node(id, Body::Call { call }, 1, NodeState::Queued, 0);
        self.insert_node(tx, node)?;
        Ok(id)
    }
}

/// Per-key state read from the store once, then kept (this process is the
/// only writer, so the kept copy is the latest).
fn cached<T: Clone>(
    cache: &mut HashMap<String, T>,
    key: &str,
    load: impl FnOnce() -> Result<T, EngineError>,
) -> Result<T, EngineError> {
    if let Some(st) = cache.get(key) {
        return Ok(st.clone());
    }
    let st = load()?;
    cache.insert(key.to_string(), st.clone());
    Ok(st)
}

/// `{previous: [...]}` bound into a sequence step.
pub fn bind_previous(call: &FnRef, previous: Vec<Value>) -> FnRef {
    let mut extra = Map::new();
    extra.insert("previous".into(), Value::Array(previous));
    call.bind(&extra).unwrap_or_else(|_| call.clone())
}

/// The value of a node from its own value and its children's, in order.
pub fn combine(
    reducer: Option<BuiltinReducer>,
    own: Option<&Value>,
    children: &[Value],
) -> Result<Value, String> {
    match reducer {
        // Map nodes: everything is an accumulator.
        Some(b) => {
            let mut acc = Accumulator::new(b);
            for v in own.into_iter().chain(children.iter()) {
                let other = Accumulator::from_value(v).map_err(|e| e.to_string())?;
                acc.merge(&other).map_err(|e| e.to_string())?;
            }
            Ok(acc.to_value())
        }
        // Call, parallel and sequence nodes: the list of results.
        None => {
            let mut list: Vec<Value> = own.filter(|v| !v.is_null()).cloned().into_iter().collect();
            list.extend(children.iter().cloned());
            Ok(Value::Array(list))
        }
    }
}
