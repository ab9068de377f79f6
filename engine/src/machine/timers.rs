//! What time alone decides: due delays, expired leases and attempt
//! timeouts, tree deadlines. The ticker (engine.rs) runs these.

use super::{RootOutcome, State, Tx};
use crate::error::EngineError;
use crate::observe::AttemptOutcome;
use crate::records::{NodeState, RootState};
use crate::store::Store;
use kontinuum_api::common::{ErrorInfo, ErrorKind};
use kontinuum_api::work::NodeId;

impl State {
    /// Moves due delayed nodes to the queue.
    pub fn release_due(&mut self, tx: &mut Tx) -> Result<(), EngineError> {
        for (_, id) in self.pools.pop_due(tx.now) {
            if self.nodes.get(&id).map(|n| n.state) == Some(NodeState::Waiting) {
                self.set_state(tx, id, NodeState::Queued)?;
                self.write_node(tx, id);
                self.enqueue(tx, id);
            }
        }
        Ok(())
    }

    /// Fails attempts whose lease or timeout ran out.
    pub fn expire_leases(&mut self, tx: &mut Tx, store: &Store) -> Result<(), EngineError> {
        let now = tx.now;
        let expired: Vec<(u64, bool)> = self
            .leases
            .iter()
            .filter_map(|(token, l)| {
                let timed_out = l.timeout_at_ms.is_some_and(|t| t <= now);
                (timed_out || l.expires_ms <= now).then_some((*token, timed_out))
            })
            .collect();
        for (token, timed_out) in expired {
            let Some(lease) = self.drop_lease(token) else {
                continue;
            };
            let holding = lease.kind.holding();
            if self.nodes.get(&lease.node).map(|n| n.state) != Some(holding) {
                // Its tree ended while it ran.
                self.count_attempt(&lease, AttemptOutcome::Cancelled, now);
                continue;
            }
            let message = if timed_out {
                "attempt exceeded its timeout".to_string()
            } else {
                "lease expired: the worker stopped heartbeating (crashed or lost)".to_string()
            };
            let error = ErrorInfo {
                message,
                kind: ErrorKind::Timeout,
                attempt: lease.attempt,
            };
            self.attempt_failed(tx, store, &lease, error, false)?;
            self.count_attempt(&lease, AttemptOutcome::Timeout, now);
        }
        Ok(())
    }

    /// Fails trees whose deadline passed.
    pub fn expire_deadlines(&mut self, tx: &mut Tx, store: &Store) -> Result<(), EngineError> {
        let now = tx.now;
        let late: Vec<NodeId> = self
            .roots
            .values()
            .filter(|r| r.state == RootState::Active && r.deadline_ms.is_some_and(|d| d <= now))
            .map(|r| r.id)
            .collect();
        for id in late {
            let error = ErrorInfo {
                message: "deadline exceeded".into(),
                kind: ErrorKind::Timeout,
                attempt: 0,
            };
            self.finish_root(tx, store, id, RootOutcome::Failed(error))?;
        }
        Ok(())
    }
}
