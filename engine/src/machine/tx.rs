//! The record of one decision: which records it touched (encoded once at the
//! end), child values it wrote before the store shows them, and whether new
//! work became ready.

use super::{IdMap, IdSet, State};
use crate::error::EngineError;
use crate::records::{Node, Root};
use crate::store::{Store, WriteSet};
use kontinuum_api::work::NodeId;
use serde_json::Value;
use std::collections::BTreeMap;

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

    /// A root this decision finished (and took out of memory).
    pub fn final_root(&self, id: NodeId) -> Option<&Root> {
        self.final_roots.get(&id).map(|r| &**r)
    }

    pub fn final_root_mut(&mut self, id: NodeId) -> Option<&mut Root> {
        self.final_roots.get_mut(&id).map(|r| &mut **r)
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

    pub(super) fn put_value(
        &mut self,
        parent: NodeId,
        index: u32,
        value: &Value,
    ) -> Result<(), EngineError> {
        self.writes.put_value(parent, index, value)?;
        self.values.insert((parent, index), Some(value.clone()));
        Ok(())
    }

    pub(super) fn del_value(&mut self, parent: NodeId, index: u32) {
        self.writes.del_value(parent, index);
        self.values.insert((parent, index), None);
    }

    /// Child values of `parent` in order, as they will be once applied.
    pub(super) fn child_values(
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
