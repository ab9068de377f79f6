//! The legal moves of a node and of a tree, each in one table. Every state
//! change goes through [`NodeState::to`] or [`RootState::to`]; a move that is
//! not in the table is a bug in the engine and is refused with
//! [`EngineError::IllegalMove`] before anything is written.
//! [`State::set_state`] is the one place that moves a live node, so the
//! tree's counters follow every move.

use super::{State, Tx};
use crate::error::EngineError;
use crate::records::{NodeState, RootState};
use kontinuum_api::work::NodeId;

impl NodeState {
    /// `next` if a node may move there from `self`.
    pub fn to(self, next: NodeState) -> Result<NodeState, EngineError> {
        use NodeState::*;
        let legal = match (self, next) {
            // A delay or backoff ran out; an exclusive section came free.
            (Waiting | Blocked, Queued) => true,
            // A worker takes it; the engine does its own work (split,
            // parallel, sequence) and goes on to the children.
            (Queued, Running | Children) => true,
            // The body succeeded; a retry waits for its backoff; a restart
            // queues it again; no attempts left.
            (Running, Children | Waiting | Queued | Failed) => true,
            // Children done: fold on a worker, or the value is known, or
            // combining the values failed.
            (Children, Folding | Succeeded | Failed) => true,
            (Folding, Succeeded | Failed) => true,
            // The tree finished before this node did.
            (from, Cancelled) => !from.is_final(),
            _ => false,
        };
        if legal {
            Ok(next)
        } else {
            Err(EngineError::IllegalMove {
                what: "node",
                from: self.name(),
                to: next.name(),
            })
        }
    }
}

impl RootState {
    /// `next` if a tree may move there from `self`: only an active tree
    /// moves, and only to a final state.
    pub fn to(self, next: RootState) -> Result<RootState, EngineError> {
        use RootState::*;
        match (self, next) {
            (Active, Succeeded | Failed | Cancelled | Merged) => Ok(next),
            _ => Err(EngineError::IllegalMove {
                what: "tree",
                from: self.name(),
                to: next.name(),
            }),
        }
    }
}

impl State {
    /// Moves a live node to a new state, keeping the root's counters right.
    pub(super) fn set_state(
        &mut self,
        tx: &mut Tx,
        id: NodeId,
        state: NodeState,
    ) -> Result<(), EngineError> {
        let node = self.node_mut(id)?;
        let old = node.state;
        node.state = old.to(state)?;
        let root_id = node.root;
        if let Some(root) = self.roots.get_mut(&root_id) {
            *root.counts.slot(old.bucket()) -= 1;
            *root.counts.slot(state.bucket()) += 1;
        }
        self.touch(root_id);
        if state.is_final() || matches!(state, NodeState::Children | NodeState::Folding) {
            // Final and gathering states must survive a restart; moves between
            // waiting, queued and running need not (recovery queues them again).
            tx.dirty_roots.insert(root_id);
        }
        Ok(())
    }

    /// The node's record is written at the end of the decision.
    pub(super) fn write_node(&self, tx: &mut Tx, id: NodeId) {
        tx.dirty_nodes.insert(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NODE_STATES: [NodeState; 9] = [
        NodeState::Waiting,
        NodeState::Blocked,
        NodeState::Queued,
        NodeState::Running,
        NodeState::Children,
        NodeState::Folding,
        NodeState::Succeeded,
        NodeState::Failed,
        NodeState::Cancelled,
    ];

    #[test]
    fn node_moves_are_exactly_the_table() {
        use NodeState::*;
        let legal = [
            (Waiting, Queued),
            (Blocked, Queued),
            (Queued, Running),
            (Queued, Children),
            (Running, Children),
            (Running, Waiting),
            (Running, Queued),
            (Running, Failed),
            (Children, Folding),
            (Children, Succeeded),
            (Children, Failed),
            (Folding, Succeeded),
            (Folding, Failed),
            (Waiting, Cancelled),
            (Blocked, Cancelled),
            (Queued, Cancelled),
            (Running, Cancelled),
            (Children, Cancelled),
            (Folding, Cancelled),
        ];
        for from in NODE_STATES {
            for to in NODE_STATES {
                let expected = legal.contains(&(from, to));
                assert_eq!(from.to(to).is_ok(), expected, "{from:?} -> {to:?}");
            }
        }
    }

    #[test]
    fn a_final_node_never_moves_and_the_error_names_both_states() {
        let err = NodeState::Succeeded
            .to(NodeState::Cancelled)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("node") && err.contains("succeeded") && err.contains("cancelled"),
            "{err}"
        );
    }

    #[test]
    fn only_an_active_tree_moves() {
        use RootState::*;
        let all = [Active, Succeeded, Failed, Cancelled, Merged];
        for from in all {
            for to in all {
                let expected = from == Active && to != Active;
                assert_eq!(from.to(to).is_ok(), expected, "{from:?} -> {to:?}");
            }
        }
    }
}
