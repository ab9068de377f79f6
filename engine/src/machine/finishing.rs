//! A tree's final outcome: written once, what is left of the tree
//! cancelled, debounce and exclusive state released, the continuation
//! started in the same atomic write.

use super::{State, Tx};
use crate::error::EngineError;
use crate::records::{Body, Node, NodeState, Root, RootState};
use crate::store::Store;
use kontinuum_api::accumulator::Accumulator;
use kontinuum_api::common::{ErrorInfo, ErrorKind};
use kontinuum_api::reducer::Reducer;
use kontinuum_api::work::NodeId;
use kontinuum_api::{ObjectId, Phase};
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

/// A tree's value as users see it: a builtin reducer's accumulator
/// finished (a mean divided, a count without its sum). A value written to
/// an object (spec.output) was finished before it was written, and the
/// tree's value is then the reference to it.
pub(super) fn final_value(root: &Root, v: Value) -> Value {
    match root.map.as_ref().map(|m| &m.reducer) {
        Some(Reducer::Builtin(_)) if !root.output_pending => {
            Accumulator::from_value(&v).map(|a| a.finish()).unwrap_or(v)
        }
        _ => v,
    }
}

impl State {
    /// The tree's outcome is final: write it, cancel what is left (objects
    /// that joined it included), release debounce and exclusive state, start
    /// the continuation (in the same atomic write, so it runs exactly once),
    /// and hand the outcome to the future this object joined, if any.
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
        self.futures.remove(&id);
        self.count_finished(&root);
        match outcome {
            RootOutcome::Succeeded(v) => root.result = Some(final_value(&root, v)),
            RootOutcome::Failed(e) | RootOutcome::Cancelled(e) => root.error = Some(e),
        }
        let joined = self.cancel_leftovers(tx, &mut root)?;
        self.release_keys(tx, store, &root)?;
        self.start_continuation(tx, store, &mut root)?;
        let to_parent = root.link.map(|link| {
            let value = match (&root.error, state) {
                (Some(e), RootState::Failed | RootState::Cancelled) => Err(e.clone()),
                _ => Ok(root.result.clone().unwrap_or(Value::Null)),
            };
            (link, value)
        });
        self.touch(id);
        tx.root_done(root);
        self.shown_done.remove(&id);
        self.items.remove(&id);
        self.linked.remove(&id);
        for child in joined {
            let error = ErrorInfo {
                message: "cancelled: the future it joined (parentRef) ended first".into(),
                kind: ErrorKind::Cancelled,
                attempt: 0,
            };
            self.finish_root(tx, store, child, RootOutcome::Cancelled(error))?;
        }
        if let Some((link, value)) = to_parent {
            self.link_finished(tx, store, link, id, value)?;
        }
        Ok(())
    }

    /// Counts an object that reached its final phase (trees without an
    /// object, tasks the SDK spawned, are not objects).
    pub(crate) fn count_finished(&mut self, root: &Root) {
        if root.object.is_none() {
            return;
        }
        let phase = match root.state {
            RootState::Succeeded => Phase::Succeeded,
            RootState::Failed => Phase::Failed,
            RootState::Cancelled => Phase::Cancelled,
            RootState::Merged => Phase::Merged,
            RootState::Active => return,
        };
        // A merged root never went live, so it has no slot yet.
        let slot = if root.state == RootState::Merged {
            self.pools.slot(&root.namespace, &root.pool)
        } else {
            root.slot
        };
        self.pools
            .counters(slot)
            .finished(root.kind.object_kind(), phase);
    }

    /// Drops what is left of the tree: queued and delayed nodes leave their
    /// pool at once, running ones see it at their next heartbeat. Returns the
    /// objects that joined the tree (their links were among the leftovers).
    fn cancel_leftovers(
        &mut self,
        tx: &mut Tx,
        root: &mut Root,
    ) -> Result<Vec<NodeId>, EngineError> {
        let mut joined = Vec::new();
        if root.counts.pending + root.counts.running == 0 {
            return Ok(joined);
        }
        let leftover: Vec<NodeId> = self
            .nodes
            .values()
            .filter(|n| n.root == root.id)
            .map(|n| n.id)
            .collect();
        for nid in leftover {
            if let Some(mut n) = self.nodes.remove(&nid) {
                self.unqueue(root.slot, &n);
                if let Body::Linked { root: child, .. } = n.body {
                    joined.push(child);
                }
                n.state = n.state.to(NodeState::Cancelled)?;
                n.finished_ms = tx.now;
                tx.node_done(n);
            }
        }
        root.counts.cancelled += root.counts.pending + root.counts.running;
        root.counts.pending = 0;
        root.counts.running = 0;
        Ok(joined)
    }

    /// A finished root no longer holds its debounce key or exclusive
    /// section; the section's rerun, if one waits, may go.
    fn release_keys(&mut self, tx: &mut Tx, store: &Store, root: &Root) -> Result<(), EngineError> {
        let id = root.id;
        if let Some(key) = &root.debounce_key {
            let mut st = self.debounce_state(store, key)?;
            if st.pending == Some(id) {
                st.pending = None;
                self.set_debounce(tx, key, st)?;
            }
        }
        if let Some(ex) = &root.exclusive {
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
        Ok(())
    }

    /// onSuccess or onFailure as a new Task in the same namespace and pool.
    /// A named object's continuation is the object `NAME.on-success` (or
    /// `.on-failure`); removing the object removes it (objects.rs). A
    /// finished record of that name from an earlier run gives way; only a
    /// running one keeps the name, and then this one runs unnamed and the
    /// status names it by its root id.
    fn start_continuation(
        &mut self,
        tx: &mut Tx,
        store: &Store,
        root: &mut Root,
    ) -> Result<(), EngineError> {
        let (call, arg, value, suffix) = match (root.state, &root.error) {
            (RootState::Succeeded, _) => match &root.on_success {
                Some(f) => (
                    f,
                    "result",
                    root.result.clone().unwrap_or(Value::Null),
                    "on-success",
                ),
                None => return Ok(()),
            },
            (RootState::Failed, Some(e)) => match &root.on_failure {
                Some(f) => (
                    f,
                    "error",
                    serde_json::to_value(e).unwrap_or(Value::Null),
                    "on-failure",
                ),
                None => return Ok(()),
            },
            _ => return Ok(()),
        };
        let mut bound = call.clone();
        if let Err(e) = bound.bind_one(arg, value) {
            tracing::warn!(root = root.id, "continuation not started: {e}");
            return Ok(());
        }
        let mut object = root.object.as_ref().map(|o| continuation_id(o, suffix));
        if let Some(taken) = &object
            && let Some(earlier) = store.object(taken)?
        {
            // An earlier run's continuation, left by a version that did not
            // remove it with its object. A finished one gives way (this
            // run's takes its name); a running one keeps it.
            if earlier.root.state == RootState::Active {
                tracing::warn!(object = %taken, "continuation runs unnamed: an earlier run's continuation of this name is still running");
                object = None;
            } else {
                tx.writes.del_object(store, taken, earlier.root.id)?;
            }
        }
        let id = self.alloc_id(tx);
        let mut cont = Root::new_task(
            id,
            object.clone(),
            &root.namespace,
            &root.pool,
            bound.stable_id(),
            tx.now,
        );
        cont.retry = root.retry.clone();
        self.insert_root(cont);
        let node = Node::root_node(id, Body::Call { call: bound }, 1, NodeState::Queued, 0);
        self.insert_node(tx, node)?;
        root.continuation = Some(id);
        root.continuation_object = object;
        Ok(())
    }
}

/// `NS/task/NAME.on-success` for the object `NS/KIND/NAME`.
pub fn continuation_id(object: &ObjectId, suffix: &str) -> ObjectId {
    ObjectId::task(&object.namespace, format!("{}.{suffix}", object.name))
}

/// Names a continuation would take: refused for submitted objects.
pub const CONTINUATION_SUFFIXES: [&str; 2] = [".on-success", ".on-failure"];
