//! A future whose value goes to an object (spec.output): once the root
//! node's value is known, the root waits in `Folding` with the value as its
//! own while a worker of the pool writes it (an `Output` lease, handing
//! out `Work::Output`; retried at once like a fold); the worker's answer, `{url, bytes, sha256}`, becomes the tree's
//! value, so the status, the continuation and `kontinuum get` carry the
//! reference and never the value itself.

use super::finishing::final_value;
use super::{LeaseInfo, State, Tx};
use crate::error::EngineError;
use crate::records::NodeState;
use crate::store::Store;
use kontinuum_api::work::{NodeId, OUTPUT_FUNCTION, OutputRef};
use serde_json::Value;

impl State {
    /// The root node `id` has its value, and it is still to be written.
    pub(super) fn needs_output(&self, id: NodeId) -> bool {
        let Some(node) = self.nodes.get(&id) else {
            return false;
        };
        node.parent.is_none()
            && self
                .roots
                .get(&node.root)
                .is_some_and(|r| r.output.is_some() && !r.output_pending)
    }

    /// Hands the value to a worker to write, instead of finishing the tree.
    pub(super) fn write_output(
        &mut self,
        tx: &mut Tx,
        id: NodeId,
        value: Value,
    ) -> Result<(), EngineError> {
        let root_id = self.node_mut(id)?.root;
        let root = self.root_mut(root_id)?;
        let value = final_value(root, value);
        root.output_pending = true;
        let node = self.node_mut(id)?;
        node.own = Some(value);
        let state = node.state;
        tx.dirty_roots.insert(root_id);
        // A tree whose value came from an FnRef fold is Folding already.
        if state != NodeState::Folding {
            self.set_state(tx, id, NodeState::Folding)?;
        }
        self.write_node(tx, id);
        self.enqueue(tx, id);
        Ok(())
    }

    /// A worker wrote the value: its reference finishes the tree. Any other
    /// answer is a worker's bug and fails it for good.
    pub(super) fn output_written(
        &mut self,
        tx: &mut Tx,
        store: &Store,
        lease: &LeaseInfo,
        value: Value,
    ) -> Result<(), EngineError> {
        match serde_json::from_value::<OutputRef>(value.clone()) {
            Ok(_) => self.node_succeeded(tx, store, lease.node, value),
            Err(e) => self.refuse_answer(
                tx,
                store,
                lease,
                format!(
                    "{OUTPUT_FUNCTION}: the worker's answer is not a written object \
                     ({{\"url\", \"bytes\", \"sha256\"}}): {e}"
                ),
            ),
        }
    }
}
