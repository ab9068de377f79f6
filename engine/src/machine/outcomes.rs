//! Outcomes of nodes: a worker's success or failed attempt, retries, a
//! gathering node finishing once its children have, values handed to the
//! parent, and the tree's failure policy.

use super::children::bind_previous;
use super::{LeaseInfo, LeaseKind, RootOutcome, State, Tx, corrupt};
use crate::error::EngineError;
use crate::observe::AttemptOutcome;
use crate::policy::{self, AfterFailure};
use crate::records::{Body, NodeState, RootState};
use crate::store::Store;
use kontinuum_api::accumulator::Accumulator;
use kontinuum_api::common::{ErrorInfo, ErrorKind};
use kontinuum_api::reducer::{BuiltinReducer, Reducer};
use kontinuum_api::work::{Completion, CompletionAck, NodeId, Outcome};
use serde_json::Value;

impl State {
    /// One outcome a worker reported. A token this process did not hand
    /// out, or whose node or tree has moved on, is answered stale.
    pub fn complete(
        &mut self,
        tx: &mut Tx,
        store: &Store,
        completion: Completion,
    ) -> Result<CompletionAck, EngineError> {
        let Some(lease) = self.drop_lease(completion.token) else {
            return Ok(CompletionAck::Stale);
        };
        let expected = lease.kind.holding();
        let live = self
            .nodes
            .get(&lease.node)
            .is_some_and(|n| n.state == expected)
            && self
                .roots
                .get(&lease.root)
                .is_some_and(|r| r.state == RootState::Active);
        if !live {
            // Its tree ended while it ran.
            self.count_attempt(&lease, AttemptOutcome::Cancelled, tx.now);
            return Ok(CompletionAck::Stale);
        }
        // A result the store could not hold (too deep, a number out of
        // range) fails the attempt for good: running it again gives the same.
        let outcome = match completion.outcome {
            Outcome::Success { value } => match crate::guard::result(&value) {
                Some(message) => Outcome::Failure {
                    message,
                    permanent: true,
                },
                None => Outcome::Success { value },
            },
            failure => failure,
        };
        let counted = match outcome {
            Outcome::Success { value } => {
                self.succeed(tx, store, &lease, value)?;
                AttemptOutcome::Succeeded
            }
            // Past its timeout, a failure is the timeout, whichever side
            // noticed first: one kind and one message.
            Outcome::Failure { .. } if lease.timeout_at_ms.is_some_and(|t| t <= tx.now) => {
                let error = ErrorInfo {
                    message: kontinuum_api::limits::ATTEMPT_TIMED_OUT.to_string(),
                    kind: ErrorKind::Timeout,
                    attempt: lease.attempt,
                };
                self.attempt_failed(tx, store, &lease, error, false)?;
                AttemptOutcome::Timeout
            }
            Outcome::Failure { message, permanent } => {
                let kind = if permanent {
                    ErrorKind::Permanent
                } else {
                    ErrorKind::Retryable
                };
                let error = ErrorInfo {
                    message,
                    kind,
                    attempt: lease.attempt,
                };
                if self.attempt_failed(tx, store, &lease, error, permanent)? {
                    AttemptOutcome::Retried
                } else {
                    AttemptOutcome::Failed
                }
            }
        };
        self.count_attempt(&lease, counted, tx.now);
        Ok(CompletionAck::Accepted)
    }

    /// A worker reported success for the lease.
    pub fn succeed(
        &mut self,
        tx: &mut Tx,
        store: &Store,
        lease: &LeaseInfo,
        value: Value,
    ) -> Result<(), EngineError> {
        match lease.kind {
            LeaseKind::Output => return self.output_written(tx, store, lease, value),
            LeaseKind::Fold => return self.node_succeeded(tx, store, lease.node, value),
            LeaseKind::Body => {}
        }
        let node = self.node_mut(lease.node)?;
        if let Body::Plan { shard } = node.body {
            return self.planned(tx, store, lease, shard, value);
        }
        let units = match node.body {
            Body::Leaf { start, end } => end - start,
            Body::Call { .. } => node.weight,
            _ => 0,
        };
        node.own = Some(value);
        let root_id = node.root;
        let root = self.root_mut(root_id)?;
        root.done += units;
        tx.dirty_roots.insert(root_id);
        self.set_state(tx, lease.node, NodeState::Children)?;
        self.write_node(tx, lease.node);
        self.maybe_finish_gathering(tx, store, lease.node)
    }

    /// A worker's answer the engine cannot take (a plan or an output that is
    /// not one): a bug of that worker build that a retry repeats, so the
    /// attempt fails for good with `message`.
    pub(super) fn refuse_answer(
        &mut self,
        tx: &mut Tx,
        store: &Store,
        lease: &LeaseInfo,
        message: String,
    ) -> Result<(), EngineError> {
        let error = ErrorInfo {
            message,
            kind: ErrorKind::Permanent,
            attempt: lease.attempt,
        };
        self.attempt_failed(tx, store, lease, error, true).map(drop)
    }

    /// A failed attempt: retry after backoff (true), or fail the node.
    pub fn attempt_failed(
        &mut self,
        tx: &mut Tx,
        store: &Store,
        lease: &LeaseInfo,
        error: ErrorInfo,
        permanent: bool,
    ) -> Result<bool, EngineError> {
        let retry = self.root(lease.root)?.retry.clone();
        match policy::after_failure(&retry, lease.attempt, permanent, tx.now) {
            AfterFailure::GiveUp => self
                .node_failed(tx, store, lease.node, error)
                .map(|()| false),
            AfterFailure::RetryAt(due) => {
                let node = self.node_mut(lease.node)?;
                node.error = Some(error);
                node.due_ms = due;
                if lease.kind != LeaseKind::Body {
                    // A fold or an output is retried at once; its inputs
                    // are all there.
                    self.enqueue(tx, lease.node);
                } else {
                    self.set_state(tx, lease.node, NodeState::Waiting)?;
                    self.delay(lease.node, due);
                }
                self.touch(lease.root);
                self.write_node(tx, lease.node);
                Ok(true)
            }
        }
    }

    /// A node whose body is done finishes once all its children have.
    pub(super) fn maybe_finish_gathering(
        &mut self,
        tx: &mut Tx,
        store: &Store,
        id: NodeId,
    ) -> Result<(), EngineError> {
        let Some(node) = self.nodes.get(&id) else {
            return Ok(());
        };
        if node.state != NodeState::Children || node.finished_children < node.children {
            return Ok(());
        }
        let map_reducer = if matches!(node.body, Body::Leaf { .. } | Body::Split { .. }) {
            self.root(node.root)?
                .map
                .as_ref()
                .map(|m| m.reducer.clone())
        } else {
            None
        };
        if node.children == 0 {
            let value = node.own.clone().unwrap_or(Value::Null);
            return self.node_succeeded(tx, store, id, value);
        }
        let children: Vec<Value> = tx
            .child_values(store, id)?
            .into_iter()
            .map(|(_, v)| v)
            .collect();
        let combined = match map_reducer {
            Some(Reducer::Function(_)) => {
                // An FnRef reducer runs on a worker: hand the values to a fold.
                self.set_state(tx, id, NodeState::Folding)?;
                self.write_node(tx, id);
                self.enqueue(tx, id);
                return Ok(());
            }
            Some(Reducer::Builtin(b)) => combine(Some(b), node.own.as_ref(), &children),
            None => combine(None, node.own.as_ref(), &children),
        };
        match combined {
            Ok(value) => self.node_succeeded(tx, store, id, value),
            Err(message) => {
                let attempt = node.attempts;
                let error = ErrorInfo {
                    message,
                    kind: ErrorKind::Permanent,
                    attempt,
                };
                self.node_failed(tx, store, id, error)
            }
        }
    }

    /// The node's value is final: hand it to the parent (or finish the root).
    pub(super) fn node_succeeded(
        &mut self,
        tx: &mut Tx,
        store: &Store,
        id: NodeId,
        value: Value,
    ) -> Result<(), EngineError> {
        if self.needs_output(id) {
            return self.write_output(tx, id, value);
        }
        self.set_state(tx, id, NodeState::Succeeded)?;
        let mut node = self
            .nodes
            .remove(&id)
            .ok_or_else(|| corrupt("node", "vanished"))?;
        node.finished_ms = tx.now;
        // The children's values are folded in; the node's own record keeps
        // only its outcome, not the value (the parent holds that).
        for index in 0..node.children {
            tx.del_value(id, index);
        }
        node.own = None;
        let (parent_of, root_of, index_of) = (node.parent, node.root, node.index);
        let step = !matches!(node.body, Body::Linked { .. });
        tx.node_done(node);
        match parent_of {
            None => self.finish_root(tx, store, root_of, RootOutcome::Succeeded(value)),
            Some(parent) => {
                tx.put_value(parent, index_of, &value)?;
                self.child_finished(tx, store, parent, index_of, Some(value), step)
            }
        }
    }

    /// The node failed for good: count it against the tree's failure policy.
    pub(super) fn node_failed(
        &mut self,
        tx: &mut Tx,
        store: &Store,
        id: NodeId,
        error: ErrorInfo,
    ) -> Result<(), EngineError> {
        let path = self.path_of(id);
        self.set_state(tx, id, NodeState::Failed)?;
        let mut node = self
            .nodes
            .remove(&id)
            .ok_or_else(|| corrupt("node", "vanished"))?;
        node.finished_ms = tx.now;
        node.error = Some(error.clone());
        let units = match node.body {
            Body::Leaf { start, end } => end - start,
            _ => node.weight,
        };
        let (parent_of, root_id, index) = (node.parent, node.root, node.index);
        let step = !matches!(node.body, Body::Linked { .. });
        tx.node_done(node);
        let Some(parent) = parent_of else {
            return self.finish_root(tx, store, root_id, RootOutcome::Failed(error));
        };
        let root = self.root_mut(root_id)?;
        root.failed_leaves += 1;
        root.done += units;
        if root.failures.len() < 10 {
            root.failures.push((path.clone(), error.message.clone()));
        }
        let over = root.failed_leaves > root.max_failed_children;
        let failed = root.failed_leaves;
        tx.dirty_roots.insert(root_id);
        if over {
            let message = format!(
                "{failed} child(ren) failed (failurePolicy.maxFailedChildren allows fewer); first at {path}: {}",
                error.message
            );
            let tree_error = ErrorInfo {
                message,
                kind: error.kind,
                attempt: error.attempt,
            };
            return self.finish_root(tx, store, root_id, RootOutcome::Failed(tree_error));
        }
        // Tolerated: the parent goes on without this child's value.
        self.child_finished(tx, store, parent, index, None, step)
    }

    /// `step`: the child was one of the parent's own (not an object that
    /// joined through parentRef), so a sequence moves on to its next call.
    pub(super) fn child_finished(
        &mut self,
        tx: &mut Tx,
        store: &Store,
        parent: NodeId,
        index: u32,
        value: Option<Value>,
        step: bool,
    ) -> Result<(), EngineError> {
        let p = self.node_mut(parent)?;
        p.finished_children += 1;
        let (started, children) = ((p.children - p.linked) as usize, p.children as usize);
        if let Body::Sequence { calls } = &p.body
            && step
            && let Some(call) = calls.get(started).cloned()
        {
            // Every child's result so far in creation order (objects that
            // joined included), null for a tolerated failure or one that
            // has not finished.
            let mut previous: Vec<Value> = vec![Value::Null; children];
            for (i, v) in tx.child_values(store, parent)? {
                if let Some(slot) = previous.get_mut(i as usize) {
                    *slot = v;
                }
            }
            if let (Some(slot), Some(v)) = (previous.get_mut(index as usize), value) {
                *slot = v;
            }
            self.add_call_child(tx, parent, bind_previous(&call, previous), 1)?;
        }
        self.write_node(tx, parent);
        self.maybe_finish_gathering(tx, store, parent)
    }

    /// `/2/0/5`: child indexes from the root down.
    pub(super) fn path_of(&self, id: NodeId) -> String {
        let mut parts = Vec::new();
        let mut at = self.nodes.get(&id);
        while let Some(node) = at {
            if node.parent.is_none() {
                break;
            }
            parts.push(node.index);
            at = node.parent.and_then(|p| self.nodes.get(&p));
        }
        let mut path = String::new();
        for part in parts.iter().rev() {
            path.push('/');
            path.push_str(&part.to_string());
        }
        if path.is_empty() { "/".into() } else { path }
    }
}

/// The value of a node from its own value and its children's, in order.
fn combine(
    reducer: Option<BuiltinReducer>,
    own: Option<&Value>,
    children: &[Value],
) -> Result<Value, String> {
    match reducer {
        // Map nodes: everything is an accumulator.
        Some(b) => {
            let mut acc = Accumulator::new(b);
            for v in own.into_iter().chain(children.iter()) {
                let other = Accumulator::from_value(v).map_err(|e| e.to_string())?;
                acc.merge(&other).map_err(|e| e.to_string())?;
            }
            Ok(acc.to_value())
        }
        // Call, parallel and sequence nodes: the list of results.
        None => {
            let mut list: Vec<Value> = own.filter(|v| !v.is_null()).cloned().into_iter().collect();
            list.extend(children.iter().cloned());
            Ok(Value::Array(list))
        }
    }
}
