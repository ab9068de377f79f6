//! Handing work to workers: popping the ready queue (engine work is done on
//! the way), starting an attempt, what a worker receives for each body, and
//! a running leaf giving up the rest of its slice.

use super::{Selector, State, Tx, corrupt};
use crate::error::EngineError;
use crate::observe::AttemptOutcome;
use crate::policy;
use crate::records::{Body, MapSourceKind, NodeState, RootState};
use crate::store::Store;
use kontinuum_api::reducer::Reducer;
use kontinuum_api::work::{
    HeartbeatReply, Lease, NodeId, OUTPUT_FUNCTION, ObjectPart, PLAN_FUNCTION, Slice, SourceRef,
    Work,
};
use serde_json::Value;
use std::sync::Arc;

/// Why a node holds a lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseKind {
    Body,
    Fold,
    /// The tree's value, written to spec.output (machine/output.rs).
    Output,
}

impl LeaseKind {
    /// The state a node holds while a lease of this kind runs.
    pub(super) fn holding(self) -> NodeState {
        match self {
            LeaseKind::Body => NodeState::Running,
            LeaseKind::Fold | LeaseKind::Output => NodeState::Folding,
        }
    }
}

#[derive(Clone, Debug)]
pub struct LeaseInfo {
    pub node: NodeId,
    pub root: NodeId,
    pub kind: LeaseKind,
    pub attempt: u32,
    /// The pool whose running count this lease is part of.
    pub slot: u32,
    pub expires_ms: u64,
    pub timeout_at_ms: Option<u64>,
    /// Units done so far in this attempt (heartbeats).
    pub progress: u64,
    pub last_split_ms: u64,
    /// The worker that holds it, as it named itself (in a cluster the pod):
    /// what makes busy pods costlier to delete on scale-down.
    pub worker: Option<std::sync::Arc<str>>,
    /// When the lease was handed out, and the function it runs (its
    /// pool's counter index): what an attempt's metrics are counted by.
    pub leased_ms: u64,
    pub function: u16,
}

impl State {
    /// Takes up to `max` runnable nodes of the pools `sel` covers, carrying
    /// out engine work (splits, parallel and sequence starts) on the way.
    pub fn take_leases(
        &mut self,
        tx: &mut Tx,
        store: &Store,
        sel: Selector<'_>,
        max: usize,
        lease_ms: u64,
    ) -> Result<Vec<Lease>, EngineError> {
        let mut out = Vec::new();
        while out.len() < max {
            let Some(id) = self.pop_ready(sel) else {
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

    pub(super) fn start_attempt(
        &mut self,
        tx: &mut Tx,
        store: &Store,
        id: NodeId,
        lease_ms: u64,
    ) -> Result<Lease, EngineError> {
        let now = tx.now;
        let folding = self.nodes.get(&id).map(|n| (n.state, n.root));
        let kind = match folding {
            Some((NodeState::Folding, root)) if self.root(root)?.output_pending => {
                LeaseKind::Output
            }
            Some((NodeState::Folding, _)) => LeaseKind::Fold,
            _ => LeaseKind::Body,
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
        let (timeout_ms, slot) = (root.timeout_ms, root.slot);
        let debounce_key = root.debounce_key.clone();
        let function = self.pools.counters(slot).function(work_function(&work));
        self.touch(root_id);
        // Debounce: this run has started, so a later call schedules a new one.
        if let Some(key) = debounce_key {
            let mut state = self.debounce_state(store, &key)?;
            if state.pending == Some(root_id) {
                state.pending = None;
            }
            state.last_run_ms = Some(now);
            self.set_debounce(tx, &key, state)?;
        }
        let token = self.new_token();
        self.pools.get_mut(slot).running += 1;
        self.leases.insert(
            token,
            LeaseInfo {
                node: id,
                root: root_id,
                kind,
                attempt,
                slot,
                expires_ms: now + lease_ms,
                timeout_at_ms: timeout_ms.map(|t| now + t),
                progress: 0,
                last_split_ms: now,
                worker: None,
                leased_ms: now,
                function,
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

    pub(super) fn work_for(
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
        if kind == LeaseKind::Output {
            let target = root
                .output
                .clone()
                .ok_or_else(|| corrupt("root", "an output pending with nowhere to write"))?;
            return Ok(Work::Output {
                store: target.store,
                key: target.key,
                value: node.own.clone().unwrap_or(Value::Null),
            });
        }
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
                    MapSourceKind::Items | MapSourceKind::Objects { lines: false, .. } => {
                        let items = self.items_of(store, root_id)?;
                        let (s, e) = (start as usize, (end as usize).min(items.len()));
                        Slice::Items {
                            offset: start,
                            items: items.get(s..e).unwrap_or_default().to_vec(),
                        }
                    }
                    MapSourceKind::Objects { store: objects, .. } => Slice::ObjectLines {
                        store: objects.clone(),
                        parts: object_parts(&self.items_of(store, root_id)?, start, end),
                        start,
                        end,
                    },
                };
                Ok(Work::MapLeaf {
                    function: map.function,
                    slice,
                    reducer: map.reducer,
                })
            }
            Body::Plan { .. } => {
                let source = match root.map.as_ref().map(|m| &m.source) {
                    Some(MapSourceKind::Lines { path }) => SourceRef::Lines { path: path.clone() },
                    Some(MapSourceKind::Objects { store, key, lines }) => SourceRef::Objects {
                        store: store.clone(),
                        key: key.clone(),
                        lines: *lines,
                    },
                    _ => return Err(corrupt("root", "a plan of a map with nothing to measure")),
                };
                Ok(Work::Plan { source })
            }
            other => Err(corrupt(
                "node",
                format!("engine body {other:?} handed to a worker"),
            )),
        }
    }

    pub(super) fn items_of(
        &mut self,
        store: &Store,
        root: NodeId,
    ) -> Result<Arc<Vec<Value>>, EngineError> {
        if let Some(items) = self.items.get(&root) {
            return Ok(items.clone());
        }
        let items = Arc::new(store.items(root)?);
        self.items.insert(root, items.clone());
        Ok(items)
    }

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

    /// Keeps a lease alive and takes the attempt's progress; tells the worker
    /// when its work was cancelled or its lease is gone, and asks a long map
    /// leaf to split while its pool has nothing queued.
    pub fn heartbeat(
        &mut self,
        now: u64,
        token: u64,
        progress: Option<u64>,
        lease_ms: u64,
        split_after_ms: u64,
    ) -> HeartbeatReply {
        let Some(lease) = self.leases.get(&token) else {
            return HeartbeatReply {
                lost: true,
                ..HeartbeatReply::default()
            };
        };
        let (node_id, root_id, kind) = (lease.node, lease.root, lease.kind);
        let node = self
            .nodes
            .get(&node_id)
            .filter(|n| matches!(n.state, NodeState::Running | NodeState::Folding));
        let root = self
            .roots
            .get(&root_id)
            .filter(|r| r.state == RootState::Active);
        let (Some(node), Some(root)) = (node, root) else {
            if let Some(lease) = self.drop_lease(token) {
                self.count_attempt(&lease, AttemptOutcome::Cancelled, now);
            }
            return HeartbeatReply {
                cancelled: true,
                ..HeartbeatReply::default()
            };
        };
        let idle = self.pools.get(root.slot).ready.is_empty();
        let units = match node.body {
            Body::Leaf { start, end } if kind == LeaseKind::Body => Some(end - start),
            _ => None,
        };
        let Some(l) = self.leases.get_mut(&token) else {
            return HeartbeatReply {
                lost: true,
                ..HeartbeatReply::default()
            };
        };
        l.expires_ms = now + lease_ms;
        if let Some(p) = progress
            && p > l.progress
        {
            l.progress = p;
            self.touch(root_id);
        }
        let Some(l) = self.leases.get(&token) else {
            return HeartbeatReply::default();
        };
        let split = units.is_some_and(|u| {
            policy::should_split(
                now.saturating_sub(l.last_split_ms),
                split_after_ms,
                u.saturating_sub(l.progress),
                idle,
            )
        });
        HeartbeatReply {
            split,
            ..HeartbeatReply::default()
        }
    }
}

/// The function a worker runs for this work: what attempts are counted by.
fn work_function(work: &Work) -> &str {
    match work {
        Work::Call { call } => &call.function,
        Work::MapLeaf { function, .. } => &function.function,
        Work::Fold { reducer, .. } => &reducer.function,
        Work::Plan { .. } => PLAN_FUNCTION,
        Work::Output { .. } => OUTPUT_FUNCTION,
    }
}

/// The objects of a listing (each item `{key, size, etag, start}`, in
/// position order) that positions `start..end` touch.
fn object_parts(listing: &[Value], start: u64, end: u64) -> Vec<ObjectPart> {
    let field = |v: &Value, k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0);
    // The first object whose bytes reach past `start`.
    let first = listing.partition_point(|o| field(o, "start") + field(o, "size") <= start);
    listing[first..]
        .iter()
        .take_while(|o| field(o, "start") < end)
        .map(|o| ObjectPart {
            key: o
                .get("key")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            etag: o
                .get("etag")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            size: field(o, "size"),
            base: field(o, "start"),
        })
        .collect()
}
