//! The engine's state machine: the in-memory state of everything unfinished
//! and every transition of a node or a tree. Active nodes and roots live
//! here (finished ones only on disk); each transition records its writes in
//! the [`Tx`] so the store changes atomically with memory. Nothing here
//! reads a clock: every decision gets its time in `Tx::now`.
//!
//! Which file holds what:
//!
//! | file | holds |
//! |---|---|
//! | `mod.rs` | [`State`] and its accessors, debounce and exclusive caches |
//! | `tx.rs` | [`Tx`]: the writes and side effects of one decision |
//! | `transition.rs` | the legal moves of nodes and trees (one table each) and `set_state` |
//! | `pools.rs` | per (namespace, pool): ready queue, timers, leases held, metrics counters; which pool a worker takes from next |
//! | `figures.rs` | the figures metrics read: per pool, per namespace |
//! | `queue.rs` | creating roots and nodes, moving them in and out of their pool, pool figures |
//! | `leases.rs` | taking work off the queue, attempts and leases, what a worker receives per body, heartbeats, splitting a running leaf |
//! | `children.rs` | engine work (map splits, parallel, sequence) and adding children |
//! | `outcomes.rs` | completions: success, failed attempts and retries, values rolled up to the parent, failure policy |
//! | `output.rs` | a tree's value written to an object by a worker (spec.output) before the tree finishes |
//! | `planning.rs` | a worker's plan of a source only workers read (a file): the map's size and shard width |
//! | `finishing.rs` | a tree's final outcome, cancellation of what is left, continuations |
//! | `links.rs` | objects that join another future's tree (parentRef) |
//! | `timers.rs` | due delays, expired leases and timeouts, deadlines |
//! | `recovery.rs` | rebuilding memory from the store at open |
//! | `release.rs` | leases handed back by a stopping worker: queued again, no attempt spent |
//!
//! A new kind of node: add its body to `records::Body`, say what a worker
//! receives for it in `leases.rs` (or, if the engine does it itself, what it
//! does in `children.rs`), how its value is formed in `outcomes.rs`, and how
//! `kontinuum tree` names it in `tree.rs`.

mod children;
mod figures;
mod finishing;
mod leases;
mod links;
mod outcomes;
mod output;
mod planning;
mod pools;
mod queue;
mod recovery;
mod release;
#[cfg(test)]
mod tests;
mod timers;
mod transition;
mod tx;

pub use finishing::{CONTINUATION_SUFFIXES, RootOutcome};
pub use leases::{LeaseInfo, LeaseKind};
pub use pools::Selector;
pub use tx::Tx;

use crate::error::EngineError;
use crate::feed::Subscribers;
use crate::records::{DebounceState, ExclusiveState, Node, Root};
use crate::store::Store;
use kontinuum_api::ObjectId;
use kontinuum_api::work::NodeId;
use pools::Pools;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

/// Maps and sets keyed by ids and tokens the engine makes itself: no one can
/// choose the keys, so a fast hash is safe, and SipHash showed in profiles.
pub type IdMap<K, V> = rustc_hash::FxHashMap<K, V>;
pub type IdSet<K> = rustc_hash::FxHashSet<K>;

#[derive(Default)]
pub struct State {
    pub next_id: NodeId,
    // Boxed: the maps grow by rehashing, which moves every value.
    pub nodes: IdMap<NodeId, Box<Node>>,
    pub roots: IdMap<NodeId, Box<Root>>,
    pub items: IdMap<NodeId, Arc<Vec<Value>>>,
    /// Ready queues, timers and lease counts per (namespace, pool).
    pub pools: Pools,
    pub leases: IdMap<u64, LeaseInfo>,
    /// Active objects that joined each active future's tree (parentRef):
    /// parent root → child roots, for the parent's live progress.
    pub linked: IdMap<NodeId, IdSet<NodeId>>,
    /// Roots touched since the change feed last heard, kept only while
    /// someone subscribed.
    touched: IdSet<NodeId>,
    /// Objects removed since the change feed last heard.
    removed: Vec<ObjectId>,
    pub feed: Subscribers,
    /// Active roots of HierarchicalFutures, for their metrics.
    pub futures: IdSet<NodeId>,
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

    /// Notes that a root's status may have changed, for the change feed.
    pub fn touch(&mut self, root: NodeId) {
        if !self.feed.is_empty() {
            self.touched.insert(root);
        }
    }

    /// Notes a removed object for the change feed.
    pub fn removed(&mut self, id: &ObjectId) {
        if !self.feed.is_empty() {
            self.removed.push(id.clone());
        }
    }

    /// Hands what changed in this decision to the change feed's
    /// subscribers: the objects touched (and the futures they joined, whose
    /// progress includes theirs) and the pools whose figures moved.
    pub fn publish(&mut self, tx: &Tx) {
        let slots = self.pools.take_changed();
        if self.feed.is_empty() {
            return;
        }
        let touched = std::mem::take(&mut self.touched);
        let removed = std::mem::take(&mut self.removed);
        let mut objects: Vec<&ObjectId> = removed.iter().collect();
        for id in touched {
            let mut at = Some(id);
            while let Some(root) = at.and_then(|r| {
                self.roots
                    .get(&r)
                    .map(|b| &**b)
                    .or_else(|| tx.final_root(r))
            }) {
                if let Some(object) = &root.object {
                    objects.push(object);
                }
                at = root.link.map(|l| l.parent);
            }
        }
        let pools: Vec<(&str, &str)> = slots
            .iter()
            .map(|&s| {
                let p = self.pools.get(s);
                (p.namespace.as_str(), p.name.as_str())
            })
            .collect();
        self.feed.publish(&objects, &pools);
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
