//! Engine work: bodies the engine carries out itself when it takes them off
//! the queue (map splits, parallel and sequence starts), and adding children
//! (map shards, calls, SDK children).

use super::{State, Tx, corrupt};
use crate::error::EngineError;
use crate::policy;
use crate::records::{Body, Node, NodeState};
use crate::store::Store;
use kontinuum_api::FnRef;
use kontinuum_api::work::NodeId;
use serde_json::{Map, Value};

impl State {
    pub(super) fn run_engine_work(
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
            Body::Call { .. } | Body::Leaf { .. } | Body::Plan { .. } | Body::Linked { .. } => {}
        }
        self.write_node(tx, id);
        self.maybe_finish_gathering(tx, store, id)
    }

    /// Children over positions `start..end` of the root's map.
    /// `runtime_split`: the rest of a running leaf, cut into `fanout` parts
    /// even below the shard size, so idle workers share it.
    pub(super) fn add_map_children(
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
        for (s, e) in policy::split_range(start, end, map.fanout, cut) {
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

    pub(super) fn add_child_node(
        &mut self,
        tx: &mut Tx,
        parent: NodeId,
        body: Body,
        weight: u64,
    ) -> Result<NodeId, EngineError> {
        self.add_child_in(tx, parent, body, weight, NodeState::Queued)
    }

    /// A new child of `parent` in `state` (a link starts Running).
    pub(super) fn add_child_in(
        &mut self,
        tx: &mut Tx,
        parent: NodeId,
        body: Body,
        weight: u64,
        state: NodeState,
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
            ..Node::root_node(id, body, weight, state, 0)
        };
        self.insert_node(tx, child)?;
        self.write_node(tx, parent);
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
}

/// `{previous: [...]}` bound into a sequence step.
pub(super) fn bind_previous(call: &FnRef, previous: Vec<Value>) -> FnRef {
    let mut extra = Map::new();
    extra.insert("previous".into(), Value::Array(previous));
    call.bind(&extra).unwrap_or_else(|_| call.clone())
}
