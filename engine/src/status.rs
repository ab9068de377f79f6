//! Statuses as users see them, computed from a tree's root record.

use crate::records::{Node, NodeState, Root, RootState};
use kontinuum_api::common::{Condition, inline_result};
use kontinuum_api::duration::format_duration;
use kontinuum_api::future::{NodeCounts, NodeFailure, Progress};
use kontinuum_api::{FutureStatus, Phase, TaskStatus};
use std::time::Duration;

pub fn rfc3339(ms: u64) -> Option<String> {
    if ms == 0 {
        return None;
    }
    chrono::DateTime::from_timestamp_millis(ms as i64)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

fn final_phase(state: RootState) -> Option<Phase> {
    match state {
        RootState::Active => None,
        RootState::Succeeded => Some(Phase::Succeeded),
        RootState::Failed => Some(Phase::Failed),
        RootState::Cancelled => Some(Phase::Cancelled),
        RootState::Merged => Some(Phase::Merged),
    }
}

/// A Task's phase: final from its root, else from its one node.
pub fn task_phase(root: &Root, node: Option<&Node>) -> Phase {
    final_phase(root.state).unwrap_or(match node.map(|n| (n.state, n.attempts)) {
        Some((NodeState::Waiting, 0)) | Some((NodeState::Blocked, _)) | None => Phase::Pending,
        Some((NodeState::Waiting | NodeState::Queued, _)) => Phase::Queued,
        Some(_) => Phase::Running,
    })
}

/// A future's phase: Running once anything in it started.
pub fn future_phase(root: &Root) -> Phase {
    final_phase(root.state).unwrap_or(if root.started_ms == 0 {
        Phase::Pending
    } else {
        Phase::Running
    })
}

/// What the status calls the continuation: its object's name, or the root
/// id of one that runs unnamed.
fn continuation(root: &Root) -> Option<String> {
    match &root.continuation_object {
        Some(object) => Some(object.name.clone()),
        None => root.continuation.map(|c| c.to_string()),
    }
}

fn conditions(root: &Root) -> Vec<Condition> {
    let (type_, status, reason) = match root.state {
        RootState::Active => (
            "Ready",
            "False",
            if root.started_ms == 0 {
                "Pending"
            } else {
                "Running"
            },
        ),
        RootState::Succeeded => ("Succeeded", "True", "Succeeded"),
        RootState::Failed => ("Failed", "True", "Failed"),
        RootState::Cancelled => ("Failed", "True", "Cancelled"),
        RootState::Merged => ("Succeeded", "True", "Merged"),
    };
    let message = root
        .error
        .as_ref()
        .map(|e| e.message.clone())
        .unwrap_or_default();
    let at = if root.finished_ms > 0 {
        root.finished_ms
    } else {
        root.accepted_ms
    };
    vec![Condition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message,
        last_transition_time: rfc3339(at),
        observed_generation: None,
    }]
}

fn result_fields(root: &Root) -> (Option<serde_json::Value>, Option<String>) {
    match &root.result {
        Some(v) => inline_result(v, || format!("store:result/{}", root.id)),
        None => (None, None),
    }
}

pub fn task_status(root: &Root, node: Option<&Node>) -> TaskStatus {
    let phase = task_phase(root, node);
    let (result, result_ref) = result_fields(root);
    let error = root
        .error
        .clone()
        .or_else(|| node.and_then(|n| n.error.clone()));
    TaskStatus {
        phase: Some(phase),
        stable_id: Some(root.stable_id.clone()),
        attempts: root.attempts,
        result,
        result_truncated: result_ref.is_some(),
        result_ref,
        error,
        started_at: rfc3339(root.started_ms),
        finished_at: rfc3339(root.finished_ms),
        continuation: continuation(root),
        merged_into: root
            .merged_into_name
            .clone()
            .or_else(|| root.merged_into.map(|m| m.to_string())),
        conditions: conditions(root),
        observed_generation: None,
        store_id: None,
    }
}

/// `done` is the progress to show (already made monotonic by the caller).
pub fn future_status(root: &Root, done: u64, now_ms: u64) -> FutureStatus {
    let phase = future_phase(root);
    let total = root.total().max(done);
    let end = if root.finished_ms > 0 {
        root.finished_ms
    } else {
        now_ms
    };
    let elapsed_s = end.saturating_sub(root.started_ms) as f64 / 1000.0;
    let throughput = (root.started_ms > 0 && elapsed_s > 0.0)
        .then(|| (done as f64 / elapsed_s * 10.0).round() / 10.0);
    let eta = match throughput {
        Some(t) if t > 0.0 && root.state == RootState::Active => Some(format_duration(
            Duration::from_secs_f64(((total - done) as f64 / t).ceil()),
        )),
        _ => None,
    };
    let (result, result_ref) = result_fields(root);
    let c = &root.counts;
    FutureStatus {
        phase: Some(phase),
        progress: Some(Progress::new(done, total)),
        counts: Some(NodeCounts {
            pending: c.pending,
            running: c.running,
            succeeded: c.succeeded,
            failed: c.failed,
            cancelled: c.cancelled,
        }),
        nodes: root.nodes,
        depth: root.depth,
        result,
        result_truncated: result_ref.is_some(),
        result_ref,
        failures: root
            .failures
            .iter()
            .map(|(path, message)| NodeFailure {
                path: path.clone(),
                message: message.clone(),
            })
            .collect(),
        throughput,
        eta,
        started_at: rfc3339(root.started_ms),
        finished_at: rfc3339(root.finished_ms),
        continuation: continuation(root),
        conditions: conditions(root),
        observed_generation: None,
        store_id: None,
    }
}
