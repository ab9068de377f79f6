//! Objects that join another future's tree (`parentRef`). The parent's root
//! node gets a link child standing for the object: its weight is the
//! object's, it runs while the object does, and it takes the object's value
//! or failure, so the parent's reducer and failure policy treat it like any
//! child, and the parent is not final while the object is active.
//! Cancelling (or failing) the parent cancels the objects that joined it
//! (finishing.rs).

use super::{State, Tx};
use crate::error::EngineError;
use crate::records::{Body, Link, NodeState, Root};
use crate::store::Store;
use kontinuum_api::common::ErrorInfo;
use kontinuum_api::work::NodeId;
use serde_json::Value;

impl State {
    /// Joins the root `child`, created in this decision, to the active
    /// future whose root is `parent`.
    pub fn link(
        &mut self,
        tx: &mut Tx,
        store: &Store,
        parent: NodeId,
        child: NodeId,
    ) -> Result<(), EngineError> {
        let (weight, object) = match self.roots.get(&child) {
            Some(c) => (c.total().max(1), c.object.clone()),
            None => (1, tx.final_root(child).and_then(|r| r.object.clone())),
        };
        let Some(object) = object else {
            return Err(EngineError::Invalid(
                "only a submitted object can join a future's tree".into(),
            ));
        };
        let body = Body::Linked {
            root: child,
            object,
        };
        let node = self.add_child_in(tx, parent, body, weight, NodeState::Running)?;
        self.node_mut(parent)?.linked += 1;
        let root = self.root_mut(parent)?;
        root.known_total += weight;
        tx.dirty_roots.insert(parent);
        let link = Link { parent, node };
        match self.roots.get_mut(&child) {
            Some(c) => {
                c.link = Some(link);
                tx.dirty_roots.insert(child);
                self.linked.entry(parent).or_default().insert(child);
                Ok(())
            }
            // Merged on arrival (debounce, exclusive section): final at once,
            // a success without a value of its own.
            None => {
                if let Some(merged) = tx.final_root_mut(child) {
                    merged.link = Some(link);
                }
                self.link_finished(tx, store, link, child, Ok(Value::Null))
            }
        }
    }

    /// The object that joined through `link` is final: its link node takes
    /// its value, or fails with its error.
    pub(super) fn link_finished(
        &mut self,
        tx: &mut Tx,
        store: &Store,
        link: Link,
        child: NodeId,
        outcome: Result<Value, ErrorInfo>,
    ) -> Result<(), EngineError> {
        if let Some(set) = self.linked.get_mut(&link.parent) {
            set.remove(&child);
            if set.is_empty() {
                self.linked.remove(&link.parent);
            }
        }
        let running = self
            .nodes
            .get(&link.node)
            .is_some_and(|n| n.state == NodeState::Running);
        if !running || !self.roots.contains_key(&link.parent) {
            // The parent ended first and cancelled the link with it.
            return Ok(());
        }
        match outcome {
            Ok(value) => {
                let node = self.node_mut(link.node)?;
                node.own = Some(value);
                let units = node.weight;
                self.root_mut(link.parent)?.done += units;
                tx.dirty_roots.insert(link.parent);
                self.set_state(tx, link.node, NodeState::Children)?;
                self.write_node(tx, link.node);
                self.maybe_finish_gathering(tx, store, link.node)
            }
            Err(error) => self.node_failed(tx, store, link.node, error),
        }
    }

    /// Units done in a live tree: finished work, progress reported by its
    /// running leases, and the objects that joined it (each up to its link's
    /// weight).
    pub fn live_done(&self, root: &Root) -> u64 {
        let leased: u64 = self
            .leases
            .values()
            .filter(|l| l.root == root.id)
            .map(|l| l.progress)
            .sum();
        let joined: u64 = self.linked.get(&root.id).map_or(0, |children| {
            children
                .iter()
                .filter_map(|c| {
                    let child = self.roots.get(c)?;
                    let weight = self.nodes.get(&child.link?.node)?.weight;
                    Some(self.live_done(child).min(weight))
                })
                .sum()
        });
        root.done + leased + joined
    }
}
