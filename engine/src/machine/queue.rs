//! Creating nodes and keeping the ready queues: per pool, deeper nodes
//! first.

use super::{State, Tx};
use crate::error::EngineError;
use crate::records::{Node, NodeState};
use kontinuum_api::work::NodeId;

impl State {
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
}
