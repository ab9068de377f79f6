//! Handing leases back. A worker that stops (scaled down, or past its grace
//! after SIGTERM) returns the attempts it will not finish; they are queued
//! again at once as if never leased, instead of waiting for the lease to
//! expire and counting as a failed attempt (which spends retries and, with
//! `maxAttempts: 1`, would fail a task because a worker went away).

use super::{LeaseKind, State, Tx};
use crate::error::EngineError;
use crate::records::{NodeState, RootState};

impl State {
    /// `Ok(false)` when the token is no longer a live lease (stale).
    pub(crate) fn release_lease(&mut self, tx: &mut Tx, token: u64) -> Result<bool, EngineError> {
        let Some(lease) = self.leases.remove(&token) else {
            return Ok(false);
        };
        let expected = lease.kind.holding();
        let root_alive = self
            .roots
            .get(&lease.root)
            .is_some_and(|r| r.state == RootState::Active);
        let Some(node) = self.nodes.get_mut(&lease.node) else {
            return Ok(false);
        };
        if node.state != expected || !root_alive {
            return Ok(false);
        }
        node.attempts = node.attempts.saturating_sub(1);
        let (attempts, is_root_node) = (node.attempts, node.parent.is_none());
        if is_root_node && let Some(root) = self.roots.get_mut(&lease.root) {
            root.attempts = attempts;
        }
        if lease.kind == LeaseKind::Body {
            self.set_state(tx, lease.node, NodeState::Queued)?;
        }
        tx.dirty_nodes.insert(lease.node);
        self.enqueue(tx, lease.node);
        Ok(true)
    }
}
