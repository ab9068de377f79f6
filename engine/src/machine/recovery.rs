//! Rebuilding memory from the store when the engine opens.

use super::{State, Tx};
use crate::error::EngineError;
use crate::records::{Body, NodeState};
use crate::store::Store;

impl State {
    /// Every unfinished node of an unfinished tree goes back where it
    /// belongs; attempts that were running when the process stopped are
    /// queued again.
    pub fn recover(&mut self, tx: &mut Tx, store: &Store) -> Result<(), EngineError> {
        for stored in store.active_roots()? {
            let mut root = stored.root;
            // Pending and running are recounted from the nodes: moves between
            // queued and running are not written, so the stored counts may lag.
            root.counts.pending = 0;
            root.counts.running = 0;
            let id = root.id;
            self.next_id = self.next_id.max(id + 1);
            if let Some(link) = root.link {
                self.linked.entry(link.parent).or_default().insert(id);
            }
            self.insert_root(root);
            tx.dirty_roots.insert(id);
            let nodes = stored.node.into_iter().chain(store.tree_nodes(id)?);
            for mut node in nodes {
                self.next_id = self.next_id.max(node.id + 1);
                if node.state.is_final() {
                    continue;
                }
                // A link runs as long as the object it stands for; it was
                // never handed to a worker.
                let linked = matches!(node.body, Body::Linked { .. });
                if node.state == NodeState::Running && !linked {
                    node.state = node.state.to(NodeState::Queued)?;
                    tx.dirty_nodes.insert(node.id);
                }
                if let Some(root) = self.roots.get_mut(&id) {
                    *root.counts.slot(node.state.bucket()) += 1;
                }
                let (nid, state, due) = (node.id, node.state, node.due_ms);
                self.nodes.insert(nid, Box::new(node));
                match state {
                    NodeState::Queued | NodeState::Folding => self.enqueue(tx, nid),
                    NodeState::Waiting => self.delay(nid, due),
                    _ => {}
                }
            }
        }
        Ok(())
    }
}
