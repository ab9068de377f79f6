//! Creating roots and nodes, and moving nodes in and out of their pool's
//! ready queue and timers (pools.rs keeps those per namespace and pool).

use super::pools::{Pool, Selector, ready_key};
use super::{LeaseInfo, State, Tx};
use crate::error::EngineError;
use crate::observe::AttemptOutcome;
use crate::public::PoolStats;
use crate::records::{Body, Node, NodeState, Root, RootKind, RootState};
use kontinuum_api::work::NodeId;

impl State {
    /// Makes a root live; its pool is looked up (or made) once, here.
    pub fn insert_root(&mut self, mut root: Root) {
        root.slot = self.pools.slot(&root.namespace, &root.pool);
        if root.kind == RootKind::Future && root.state == RootState::Active {
            self.futures.insert(root.id);
        }
        self.touch(root.id);
        self.roots.insert(root.id, Box::new(root));
    }

    /// Adds a new node (not yet in any queue unless its state says so).
    pub fn insert_node(&mut self, tx: &mut Tx, node: Node) -> Result<(), EngineError> {
        let root = self.root_mut(node.root)?;
        *root.counts.slot(node.state.bucket()) += 1;
        root.nodes += 1;
        root.depth = root.depth.max(node.depth + 1);
        let slot = root.slot;
        if matches!(node.body, Body::Call { .. } | Body::Leaf { .. }) {
            self.pools.counters(slot).submitted += 1;
        }
        tx.dirty_roots.insert(node.root);
        tx.dirty_nodes.insert(node.id);
        self.touch(node.root);
        let (id, state, due) = (node.id, node.state, node.due_ms);
        self.nodes.insert(id, Box::new(node));
        match state {
            NodeState::Queued | NodeState::Folding => self.enqueue(tx, id),
            NodeState::Waiting => self.delay(id, due),
            _ => {}
        }
        Ok(())
    }

    fn slot_of(&self, id: NodeId) -> Option<u32> {
        let node = self.nodes.get(&id)?;
        Some(self.roots.get(&node.root)?.slot)
    }

    pub fn enqueue(&mut self, tx: &mut Tx, id: NodeId) {
        let Some(slot) = self.slot_of(id) else {
            return;
        };
        self.seq += 1;
        let seq = self.seq;
        let Some(node) = self.nodes.get_mut(&id) else {
            return;
        };
        node.queued_seq = seq;
        let key = ready_key(node.depth, seq, id);
        let tasks = match node.state {
            NodeState::Queued => {
                let shard = self.roots.get(&node.root).and_then(|r| r.map.as_ref());
                tasks_of(&node.body, shard.map_or(0, |m| m.shard_units))
            }
            // A fold (or an output) is one lease whatever the body.
            _ => 1,
        };
        self.pools.get_mut(slot).push_ready(key, tasks);
        tx.work_ready = true;
    }

    /// Puts a waiting node on its pool's timers, due at `due`.
    pub(super) fn delay(&mut self, id: NodeId, due: u64) {
        if let Some(slot) = self.slot_of(id) {
            self.pools.get_mut(slot).delayed.insert((due, id));
        }
    }

    /// Takes a node that left memory out of its pool's queue and timers.
    pub(super) fn unqueue(&mut self, slot: u32, node: &Node) {
        if node.queued_seq != 0 {
            let key = ready_key(node.depth, node.queued_seq, node.id);
            self.pools.get_mut(slot).remove_ready(&key);
        }
        if node.state == NodeState::Waiting {
            self.pools
                .get_mut(slot)
                .delayed
                .remove(&(node.due_ms, node.id));
        }
    }

    /// The next queued node for `sel`.
    pub(super) fn pop_ready(&mut self, sel: Selector<'_>) -> Option<NodeId> {
        let id = self.pools.pop(sel)?;
        if let Some(node) = self.nodes.get_mut(&id) {
            node.queued_seq = 0;
        }
        Some(id)
    }

    /// A lease leaves: answered, expired, or given up on a cancelled tree.
    pub(super) fn drop_lease(&mut self, token: u64) -> Option<LeaseInfo> {
        let lease = self.leases.remove(&token)?;
        let pool = self.pools.get_mut(lease.slot);
        pool.running = pool.running.saturating_sub(1);
        Some(lease)
    }

    /// Counts an attempt that ended, by its pool, function and outcome,
    /// with the time from lease to `now`.
    pub(super) fn count_attempt(&mut self, lease: &LeaseInfo, outcome: AttemptOutcome, now: u64) {
        let seconds = now.saturating_sub(lease.leased_ms) as f64 / 1000.0;
        self.pools
            .counters(lease.slot)
            .attempt(lease.function, outcome, seconds);
    }

    /// What a pool holds at `now`.
    pub fn pool_stats(&self, namespace: &str, pool: &str, now: u64) -> PoolStats {
        self.pools
            .find(namespace, pool)
            .map_or_else(PoolStats::default, |slot| {
                stats_of(self.pools.get(slot), now)
            })
    }

    /// Leases held per worker in one pool. Walks the live leases: called
    /// before a scale-down, not per decision.
    pub fn running_by_worker(
        &self,
        namespace: &str,
        pool: &str,
    ) -> std::collections::BTreeMap<String, u64> {
        let mut out = std::collections::BTreeMap::new();
        let Some(slot) = self.pools.find(namespace, pool) else {
            return out;
        };
        for info in self.leases.values() {
            if info.slot == slot
                && let Some(worker) = &info.worker
            {
                *out.entry(worker.to_string()).or_insert(0) += 1;
            }
        }
        out
    }

    /// Every pool that has or had work since the engine opened.
    pub fn every_pool(&self, now: u64) -> Vec<(String, String, PoolStats)> {
        self.pools
            .all()
            .iter()
            .map(|p| (p.namespace.clone(), p.name.clone(), stats_of(p, now)))
            .collect()
    }
}

/// The tasks a queued node becomes: a map range not yet split the leaves
/// its shards make (`policy::split_range` cuts whole shards at every level,
/// so however the fanout nests them, they end as one leaf per shard), a
/// parallel its calls, anything else itself (a sequence runs one step at a
/// time; a map still to be planned is one plan until a worker sizes it).
pub(super) fn tasks_of(body: &Body, shard_units: u64) -> u64 {
    match body {
        Body::Split { start, end } => end
            .saturating_sub(*start)
            .div_ceil(shard_units.max(1))
            .max(1),
        Body::Parallel { calls } => (calls.len() as u64).max(1),
        _ => 1,
    }
}

pub(super) fn stats_of(pool: &Pool, now: u64) -> PoolStats {
    PoolStats {
        queued: pool.ready.len() as u64,
        queued_tasks: pool.queued_tasks(),
        running: pool.running,
        delayed: pool.delayed.len() as u64,
        delayed_due: pool.delayed.range(..=(now, NodeId::MAX)).count() as u64,
    }
}
