//! Creating nodes and keeping the ready queues: per pool, deeper nodes
//! first.

use super::{State, Tx};
use crate::error::EngineError;
use crate::public::PoolStats;
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

    /// The next node of `pool` ("*": the first of any pool).
    pub(super) fn pop_ready(&mut self, pool: &str) -> Option<NodeId> {
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

    /// What a pool holds: queued, running (leased) and delayed work.
    pub fn pool_stats(&self, pool: &str) -> PoolStats {
        let in_pool = |root: NodeId| self.roots.get(&root).is_some_and(|r| r.pool == pool);
        PoolStats {
            queued: self.queued_in(pool) as u64,
            running: self.leases.values().filter(|l| in_pool(l.root)).count() as u64,
            delayed: self
                .delayed
                .iter()
                .filter(|(_, id)| self.nodes.get(id).is_some_and(|n| in_pool(n.root)))
                .count() as u64,
        }
    }
}
