//! Rebuilding memory from the store when the engine opens.

use super::{RootOutcome, State, Tx};
use crate::error::EngineError;
use crate::records::{Body, MapSourceKind, Node, NodeState, RootState};
use crate::store::{Store, StoredRoot};
use kontinuum_api::common::ErrorInfo;

impl State {
    /// Every unfinished node of an unfinished tree goes back where it
    /// belongs; attempts that were running when the process stopped are
    /// queued again. A tree with a record that cannot be read fails alone
    /// (its status says why); the others recover.
    pub fn recover(&mut self, tx: &mut Tx, store: &Store) -> Result<(), EngineError> {
        for stored in store.active_roots()? {
            let id = stored.root.id;
            self.next_id = self.next_id.max(id + 1);
            if stored.root.state != RootState::Active {
                // A stand-in for a root record that does not decode (salvage.rs).
                continue;
            }
            let nodes = match readable_tree(store, &stored) {
                Ok(nodes) => nodes,
                Err((what, detail)) => {
                    tracing::error!(
                        root = id,
                        "a {what} record cannot be read ({detail}); its object is failed"
                    );
                    self.fail_unreadable(tx, store, stored, crate::salvage::error(what, &detail))?;
                    continue;
                }
            };
            let mut root = stored.root;
            // Pending and running are recounted from the nodes: moves between
            // queued and running are not written, so the stored counts may lag.
            root.counts.pending = 0;
            root.counts.running = 0;
            if let Some(link) = root.link {
                self.linked.entry(link.parent).or_default().insert(id);
            }
            self.insert_root(root);
            tx.dirty_roots.insert(id);
            for mut node in stored.node.into_iter().chain(nodes) {
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

impl State {
    /// Fails a tree whose records cannot all be read, as any failed tree
    /// ends: its continuation runs, its debounce and exclusive state are
    /// released (unless those are the records that cannot be read).
    fn fail_unreadable(
        &mut self,
        tx: &mut Tx,
        store: &Store,
        stored: StoredRoot,
        error: ErrorInfo,
    ) -> Result<(), EngineError> {
        let StoredRoot { mut root, node } = stored;
        let id = root.id;
        if root
            .debounce_key
            .as_ref()
            .is_some_and(|k| store.debounce(k).is_err())
        {
            root.debounce_key = None;
        }
        if root
            .exclusive
            .as_ref()
            .is_some_and(|e| store.exclusive(&e.key).is_err())
        {
            root.exclusive = None;
        }
        root.counts.pending = 0;
        root.counts.running = 0;
        if let Some(link) = root.link {
            self.linked.entry(link.parent).or_default().insert(id);
        }
        self.insert_root(root);
        if let Some(mut node) = node {
            // Not through NodeState::to: this node never went live, it is
            // written once as failed so the tree reads back consistently.
            node.state = NodeState::Failed;
            node.error = Some(error.clone());
            node.finished_ms = tx.now;
            tx.node_done(node);
        }
        self.finish_root(tx, store, id, RootOutcome::Failed(error))
    }
}

/// A tree's nodes other than its root node, once every record it will read
/// while it runs has been read once: items, values of unfinished nodes'
/// children, debounce and exclusive state. Else which record failed, and why.
fn readable_tree(store: &Store, stored: &StoredRoot) -> Result<Vec<Node>, (&'static str, String)> {
    let detail = |e: EngineError| match e {
        EngineError::Corrupt { detail, .. } => detail,
        other => other.to_string(),
    };
    let root = &stored.root;
    let nodes = store.tree_nodes(root.id).map_err(|e| ("node", detail(e)))?;
    if matches!(
        root.map.as_ref().map(|m| &m.source),
        Some(MapSourceKind::Items)
    ) {
        store.items(root.id).map_err(|e| ("items", detail(e)))?;
    }
    for node in stored.node.iter().chain(&nodes) {
        if node.children > 0 && !node.state.is_final() {
            store
                .child_values(node.id)
                .map_err(|e| ("child value", detail(e)))?;
        }
    }
    if let Some(key) = &root.debounce_key {
        store.debounce(key).map_err(|e| ("debounce", detail(e)))?;
    }
    if let Some(ex) = &root.exclusive {
        store
            .exclusive(&ex.key)
            .map_err(|e| ("exclusive", detail(e)))?;
    }
    Ok(nodes)
}
