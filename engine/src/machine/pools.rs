//! Work waiting per (namespace, pool): each pool's ready queue (deeper nodes
//! first), the tasks that queue will become, its delayed timers, and how
//! many leases its workers hold. Every change marks the pool, so the change
//! feed can say which pools moved.

use super::IdMap;
use crate::observe::PoolCounters;
use kontinuum_api::work::NodeId;
use std::collections::{BTreeSet, HashMap};

/// Queue order: deeper nodes first (finishing subtrees keeps the active set
/// small), then first come, first served.
pub type ReadyKey = (u32, u64, NodeId);

pub fn ready_key(depth: u32, seq: u64, id: NodeId) -> ReadyKey {
    (u32::MAX - depth, seq, id)
}

/// One (namespace, pool).
pub struct Pool {
    pub namespace: String,
    pub name: String,
    pub ready: BTreeSet<ReadyKey>,
    /// Queued nodes that become more than one task (a map range not yet
    /// split, a parallel not yet started), with how many; kept as nodes
    /// enter and leave `ready`, so the pool's demand is known without
    /// looking at a tree.
    heavy: IdMap<NodeId, u64>,
    /// Tasks beyond one per ready node: the sum of `heavy` less its length.
    extra: u64,
    /// (due, node) of nodes waiting for a delay or a backoff.
    pub delayed: BTreeSet<(u64, NodeId)>,
    /// Leases held by workers, including those of a tree that was cancelled
    /// and whose worker has not heard yet: the worker is busy until then.
    pub running: u64,
    /// What metrics count (observe.rs); changing them is not a change of
    /// the pool's figures.
    pub(crate) counters: PoolCounters,
    changed: bool,
}

impl Pool {
    /// Queues a node that will become `tasks` tasks (at least one).
    pub fn push_ready(&mut self, key: ReadyKey, tasks: u64) {
        if self.ready.insert(key) && tasks > 1 {
            let before = self.heavy.insert(key.2, tasks).unwrap_or(1);
            self.extra = self.extra.saturating_add(tasks) - before;
        }
    }

    /// Takes a node off the queue, with what it was counted for.
    pub fn remove_ready(&mut self, key: &ReadyKey) -> bool {
        let removed = self.ready.remove(key);
        if removed {
            self.forget(key.2);
        }
        removed
    }

    fn forget(&mut self, id: NodeId) {
        if let Some(tasks) = self.heavy.remove(&id) {
            self.extra = self.extra.saturating_sub(tasks - 1);
        }
    }

    /// The tasks the ready queue will become: one per node, a map range
    /// its leaves, a parallel its calls.
    pub fn queued_tasks(&self) -> u64 {
        (self.ready.len() as u64).saturating_add(self.extra)
    }
}

/// Which pools a worker takes work from.
#[derive(Clone, Copy, Debug)]
pub struct Selector<'a> {
    /// None: every pool.
    pub pool: Option<&'a str>,
    /// None: every namespace.
    pub namespace: Option<&'a str>,
}

impl Selector<'_> {
    fn takes(&self, pool: &Pool) -> bool {
        self.pool.is_none_or(|p| p == pool.name)
            && self.namespace.is_none_or(|ns| ns == pool.namespace)
    }
}

#[derive(Default)]
pub struct Pools {
    slots: Vec<Pool>,
    /// namespace → pool name → slot.
    index: HashMap<String, HashMap<String, u32>>,
    /// Where the next search for work starts, so that a worker serving
    /// several namespaces takes from each in turn.
    turn: usize,
    changed: Vec<u32>,
}

impl Pools {
    /// The slot of (namespace, pool), made on first use.
    pub fn slot(&mut self, namespace: &str, pool: &str) -> u32 {
        if let Some(slot) = self.find(namespace, pool) {
            return slot;
        }
        let slot = self.slots.len() as u32;
        self.slots.push(Pool {
            namespace: namespace.to_string(),
            name: pool.to_string(),
            ready: BTreeSet::new(),
            heavy: IdMap::default(),
            extra: 0,
            delayed: BTreeSet::new(),
            running: 0,
            counters: PoolCounters::default(),
            changed: false,
        });
        self.index
            .entry(namespace.to_string())
            .or_default()
            .insert(pool.to_string(), slot);
        slot
    }

    pub fn find(&self, namespace: &str, pool: &str) -> Option<u32> {
        self.index.get(namespace)?.get(pool).copied()
    }

    pub fn get(&self, slot: u32) -> &Pool {
        &self.slots[slot as usize]
    }

    /// The pool, marked as changed.
    pub fn get_mut(&mut self, slot: u32) -> &mut Pool {
        let pool = &mut self.slots[slot as usize];
        if !pool.changed {
            pool.changed = true;
            self.changed.push(slot);
        }
        pool
    }

    /// The pool's metrics counters, without marking the pool changed: the
    /// change feed reports work moving, not counting.
    pub(crate) fn counters(&mut self, slot: u32) -> &mut PoolCounters {
        &mut self.slots[slot as usize].counters
    }

    pub fn all(&self) -> &[Pool] {
        &self.slots
    }

    /// Pools changed since the last call.
    pub fn take_changed(&mut self) -> Vec<u32> {
        let changed = std::mem::take(&mut self.changed);
        for &slot in &changed {
            self.slots[slot as usize].changed = false;
        }
        changed
    }

    /// The next ready node for `sel`. Pools that `sel` covers take turns,
    /// so no namespace's queue starves another's.
    pub fn pop(&mut self, sel: Selector<'_>) -> Option<NodeId> {
        let n = self.slots.len();
        let slot = match (sel.pool, sel.namespace) {
            (Some(pool), Some(ns)) => self.find(ns, pool)?,
            _ => {
                let start = self.turn % n.max(1);
                let found = (0..n).map(|i| (start + i) % n).find(|&i| {
                    let p = &self.slots[i];
                    !p.ready.is_empty() && sel.takes(p)
                })?;
                self.turn = found + 1;
                found as u32
            }
        };
        let pool = self.get_mut(slot);
        let (_, _, id) = pool.ready.pop_first()?;
        pool.forget(id);
        Some(id)
    }

    /// Nodes whose time has come, from every pool, earliest first.
    pub fn pop_due(&mut self, now: u64) -> Vec<(u32, NodeId)> {
        let mut due = Vec::new();
        for slot in 0..self.slots.len() as u32 {
            while let Some(&(at, id)) = self.slots[slot as usize].delayed.first() {
                if at > now {
                    break;
                }
                self.get_mut(slot).delayed.pop_first();
                due.push((at, slot, id));
            }
        }
        due.sort_unstable();
        due.into_iter().map(|(_, slot, id)| (slot, id)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fill(pools: &mut Pools, ns: &str, pool: &str, ids: std::ops::Range<u64>) {
        let slot = pools.slot(ns, pool);
        for id in ids {
            pools.get_mut(slot).ready.insert(ready_key(1, id, id));
        }
    }

    #[test]
    fn a_worker_of_every_namespace_takes_from_each_in_turn() {
        let mut pools = Pools::default();
        fill(&mut pools, "big", "default", 0..100);
        fill(&mut pools, "small", "default", 1000..1003);
        fill(&mut pools, "small", "other", 2000..2003);
        let sel = Selector {
            pool: Some("default"),
            namespace: None,
        };
        let taken: Vec<NodeId> = (0..6).filter_map(|_| pools.pop(sel)).collect();
        assert_eq!(taken, [0, 1000, 1, 1001, 2, 1002]);
        let more: Vec<NodeId> = (0..3).filter_map(|_| pools.pop(sel)).collect();
        assert_eq!(more, [3, 4, 5], "the other pool is not served");
    }

    #[test]
    fn one_namespace_takes_only_its_own() {
        let mut pools = Pools::default();
        fill(&mut pools, "a", "default", 0..2);
        fill(&mut pools, "b", "default", 10..12);
        let sel = Selector {
            pool: Some("default"),
            namespace: Some("b"),
        };
        let taken: Vec<NodeId> = (0..5).filter_map(|_| pools.pop(sel)).collect();
        assert_eq!(taken, [10, 11]);
        assert!(
            pools
                .pop(Selector {
                    pool: Some("none"),
                    namespace: Some("a")
                })
                .is_none()
        );
    }

    #[test]
    fn changes_are_reported_once_per_pool() {
        let mut pools = Pools::default();
        fill(&mut pools, "a", "p", 0..5);
        let slot = pools.slot("b", "p");
        assert_eq!(pools.take_changed(), vec![0]);
        pools.get_mut(slot).running += 1;
        pools.get_mut(slot).running -= 1;
        assert_eq!(pools.take_changed(), vec![slot]);
        assert!(pools.take_changed().is_empty());
    }

    #[test]
    fn due_work_leaves_the_timers_of_every_pool() {
        let mut pools = Pools::default();
        let a = pools.slot("a", "p");
        let b = pools.slot("b", "p");
        pools.get_mut(a).delayed.insert((100, 1));
        pools.get_mut(b).delayed.insert((50, 2));
        pools.get_mut(b).delayed.insert((150, 3));
        assert_eq!(pools.pop_due(100), [(b, 2), (a, 1)]);
        assert_eq!(pools.get(b).delayed.len(), 1);
    }
}
