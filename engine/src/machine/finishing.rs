//! A tree's final outcome: written once, what is left of the tree
//! cancelled, debounce and exclusive state released, the continuation
//! started in the same atomic write.

use super::{State, Tx};
use crate::error::EngineError;
use crate::records::{Body, Node, NodeState, RetrySettings, Root, RootState};
use crate::store::Store;
use kontinuum_api::FnRef;
use kontinuum_api::accumulator::Accumulator;
use kontinuum_api::common::ErrorInfo;
use kontinuum_api::reducer::Reducer;
use kontinuum_api::work::NodeId;
use serde_json::Value;

/// How a tree ends (debounce and exclusive sections merge a tree when it is
/// submitted, see build.rs; that is the only other end).
#[derive(Clone, Debug, PartialEq)]
pub enum RootOutcome {
    /// The root node's value: the tree's result.
    Succeeded(Value),
    Failed(ErrorInfo),
    Cancelled(ErrorInfo),
}

impl RootOutcome {
    fn state(&self) -> RootState {
        match self {
            RootOutcome::Succeeded(_) => RootState::Succeeded,
            RootOutcome::Failed(_) => RootState::Failed,
            RootOutcome::Cancelled(_) => RootState::Cancelled,
        }
    }
}

impl State {
    /// The tree's outcome is final: write it, cancel what is left, release
    /// debounce and exclusive state, and start the continuation (in the same
    /// atomic write, so it runs exactly once).
    pub fn finish_root(
        &mut self,
        tx: &mut Tx,
        store: &Store,
        id: NodeId,
        outcome: RootOutcome,
    ) -> Result<(), EngineError> {
        // Finished trees are not in memory: a second end (a deadline after a
        // cancel, say) finds nothing to do.
        let Some(root) = self.roots.get(&id) else {
            return Ok(());
        };
        let state = root.state.to(outcome.state())?;
        let Some(mut root) = self.roots.remove(&id) else {
            return Ok(());
        };
        root.state = state;
        root.finished_ms = tx.now;
        match outcome {
            RootOutcome::Succeeded(v) => {
                root.result = Some(match root.map.as_ref().map(|m| &m.reducer) {
                    Some(Reducer::Builtin(_)) => {
                        Accumulator::from_value(&v).map(|a| a.finish()).unwrap_or(v)
                    }
                    _ => v,
                });
            }
            RootOutcome::Failed(e) | RootOutcome::Cancelled(e) => root.error = Some(e),
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
                    n.state = n.state.to(NodeState::Cancelled)?;
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
                    self.write_node(tx, next);
                    self.enqueue(tx, next);
                }
            }
            self.set_exclusive(tx, &ex.key, st)?;
        }
        let continuation = match (state, &root.result, &root.error) {
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
        retry: RetrySettings,
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
