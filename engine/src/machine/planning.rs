//! Maps over data only workers can read start with a plan. The engine never
//! opens users' files: in a cluster they are mounted in the workers' pods,
//! not in the operator's. So the root of such a map is first a `Plan` node,
//! leased to a worker of the future's pool like any work; the worker's
//! answer (a [`SourcePlan`]) gives the map its size and shard width, and
//! the root becomes the Split or Leaf it is for every other source. A
//! failed plan (no such file, no permission) fails the tree with the
//! worker's message through the usual retry path.

use super::{LeaseInfo, State, Tx, corrupt};
use crate::error::EngineError;
use crate::records::{Body, NodeState};
use crate::store::Store;
use kontinuum_api::common::{ErrorInfo, ErrorKind};
use kontinuum_api::work::{PLAN_FUNCTION, SourcePlan};
use serde_json::Value;

/// The map's first body once its size is known, and its shard width.
pub(super) fn planned_body(shard: u64, plan: &SourcePlan) -> (Body, u64) {
    let shard_units = shard.saturating_mul(plan.avg_line_bytes.max(1));
    let (start, end) = (0, plan.bytes);
    let body = if end <= shard_units {
        Body::Leaf { start, end }
    } else {
        Body::Split { start, end }
    };
    (body, shard_units)
}

impl State {
    /// A worker answered the plan of the lease's root node.
    pub(super) fn planned(
        &mut self,
        tx: &mut Tx,
        store: &Store,
        lease: &LeaseInfo,
        shard: u64,
        value: Value,
    ) -> Result<(), EngineError> {
        let plan: SourcePlan = match serde_json::from_value(value) {
            Ok(plan) => plan,
            Err(e) => {
                // A worker that answers a plan with anything else has a bug
                // that a retry on the same worker build repeats.
                let error = ErrorInfo {
                    message: format!(
                        "{PLAN_FUNCTION}: the worker's answer is not a plan \
                         ({{\"bytes\": N, \"avgLineBytes\": N}}): {e}"
                    ),
                    kind: ErrorKind::Permanent,
                    attempt: lease.attempt,
                };
                return self.attempt_failed(tx, store, lease, error, true).map(drop);
            }
        };
        let (body, shard_units) = planned_body(shard, &plan);
        let is_leaf = matches!(body, Body::Leaf { .. });
        let root = self.root_mut(lease.root)?;
        let map = root
            .map
            .as_mut()
            .ok_or_else(|| corrupt("root", "a plan without a map"))?;
        map.shard_units = shard_units;
        root.known_total += plan.bytes;
        if let Some(declared) = root.declared_total.as_mut() {
            *declared += plan.bytes;
        }
        let slot = root.slot;
        tx.dirty_roots.insert(lease.root);
        let node = self.node_mut(lease.node)?;
        node.body = body;
        node.weight = plan.bytes;
        // The plan was not an attempt of the map: its retries stay whole.
        node.attempts = 0;
        node.error = None;
        if is_leaf {
            self.pools.counters(slot).submitted += 1;
        }
        self.set_state(tx, lease.node, NodeState::Queued)?;
        self.write_node(tx, lease.node);
        self.enqueue(tx, lease.node);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_within_one_shard_is_one_leaf() {
        let plan = SourcePlan {
            bytes: 900,
            avg_line_bytes: 9,
        };
        let (body, width) = planned_body(100, &plan);
        assert_eq!(width, 900);
        assert_eq!(body, Body::Leaf { start: 0, end: 900 });
    }

    #[test]
    fn a_larger_source_is_split_by_lines_times_their_mean_length() {
        let plan = SourcePlan {
            bytes: 901,
            avg_line_bytes: 9,
        };
        let (body, width) = planned_body(100, &plan);
        assert_eq!(width, 900);
        assert_eq!(body, Body::Split { start: 0, end: 901 });
    }

    #[test]
    fn a_zero_mean_line_length_counts_as_one_byte() {
        let plan = SourcePlan {
            bytes: 10,
            avg_line_bytes: 0,
        };
        assert_eq!(planned_body(4, &plan).1, 4);
        let empty = SourcePlan {
            bytes: 0,
            avg_line_bytes: 1,
        };
        assert_eq!(planned_body(4, &empty).0, Body::Leaf { start: 0, end: 0 });
    }
}
