//! Events a status change deserves: Started, Retrying, Succeeded, Failed,
//! Cancelled, and NoWorkerPool (a Warning when nothing serves the job's
//! pool). Pure: derived from the status written before and the one about
//! to be written, so an operator restart (which finds the status already on
//! the resource) repeats none of them.
//!
//! `Started` marks a status that shows the object running. One that ran and
//! ended before its first status was written gets its final event only:
//! a Started event would say nothing the final one does not, and would cost
//! the API server a write per short task.

use super::model::JobStatus;
use kontinuum_api::Phase;
use kontinuum_api::common::{ConditionType, Reason};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventSpec {
    pub warning: bool,
    pub reason: &'static str,
    pub note: String,
}

/// The Warning a running object gets when the engine's store fails.
pub fn engine_stopped(reason: &str) -> EventSpec {
    EventSpec {
        warning: true,
        reason: Reason::EngineStopped.as_str(),
        note: format!(
            "the operator's store failed: {reason}; nothing moves until the operator restarts"
        ),
    }
}

/// The `Ready` message of a status that says nothing serves its pool.
fn unserved(status: Option<&JobStatus>) -> Option<&str> {
    let ready = status?.condition(ConditionType::Ready)?;
    (ready.reason == Reason::NoWorkerPool.as_str()).then_some(ready.message.as_str())
}

pub fn between(before: Option<&JobStatus>, after: &JobStatus) -> Vec<EventSpec> {
    let (was, now) = (before.map(JobStatus::view), after.view());
    let (was_phase, now_phase) = (was.and_then(|v| v.phase), now.phase);
    let mut out = Vec::new();
    // Nothing serves its pool: said once, when the status first says so.
    if let (None, Some(message)) = (unserved(before), unserved(Some(after))) {
        out.push(EventSpec {
            warning: true,
            reason: Reason::NoWorkerPool.as_str(),
            note: message.to_string(),
        });
    }
    // Merged never ran: the run it was folded into did.
    let started = |p: Option<Phase>| {
        matches!(
            p,
            Some(Phase::Running | Phase::Succeeded | Phase::Failed | Phase::Cancelled)
        )
    };
    let ended = now_phase.is_some_and(Phase::is_final);
    // Seen for the first time already ended: the final event says it all.
    let first_sight_ended = ended && before.is_none();
    let was_started = started(was_phase) || was.is_some_and(|v| v.started_at.is_some());
    if !was_started && !first_sight_ended && (started(now_phase) || now.started_at.is_some()) {
        out.push(EventSpec {
            warning: false,
            reason: "Started",
            note: "a worker started running it".into(),
        });
    }
    // A task's attempt count grew while it is not final: a retry is under way.
    let (a0, a1) = (was.map_or(0, |v| v.attempts), now.attempts);
    if a1 > a0 && a0 > 0 && !ended {
        let why = now.error_message();
        out.push(EventSpec {
            warning: true,
            reason: "Retrying",
            note: if why.is_empty() {
                format!("attempt {a1}")
            } else {
                format!("attempt {a1} after: {why}")
            },
        });
    }
    if was_phase != now_phase {
        match now_phase {
            Some(Phase::Succeeded) => out.push(EventSpec {
                warning: false,
                reason: "Succeeded",
                note: "finished successfully".into(),
            }),
            Some(Phase::Failed) => out.push(EventSpec {
                warning: true,
                reason: "Failed",
                note: now.error_message(),
            }),
            Some(Phase::Cancelled) => out.push(EventSpec {
                warning: false,
                reason: "Cancelled",
                note: "cancelled".into(),
            }),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    /// A task's status, given as the JSON the resource shows.
    fn task(status: Value) -> JobStatus {
        JobStatus::task(serde_json::from_value(status).unwrap())
    }

    fn future(status: Value) -> JobStatus {
        JobStatus::future(serde_json::from_value(status).unwrap())
    }

    fn reasons(before: Option<JobStatus>, after: JobStatus) -> Vec<&'static str> {
        between(before.as_ref(), &after)
            .iter()
            .map(|e| e.reason)
            .collect::<Vec<_>>()
    }

    #[test]
    fn first_sight_of_a_finished_task_gives_its_final_event_only() {
        let after = task(json!({"phase": "Succeeded", "attempts": 1, "startedAt": "t"}));
        assert_eq!(reasons(None, after), ["Succeeded"]);
        let failed = task(json!({"phase": "Failed", "attempts": 1, "startedAt": "t"}));
        assert_eq!(reasons(None, failed), ["Failed"]);
        // Seen queued first, then ended: it did start, and says so.
        let q = task(json!({"phase": "Queued"}));
        let done = task(json!({"phase": "Succeeded", "attempts": 1, "startedAt": "t"}));
        assert_eq!(reasons(Some(q), done), ["Started", "Succeeded"]);
    }

    #[test]
    fn queued_to_running_is_started_once() {
        let q = task(json!({"phase": "Queued"}));
        let r = task(json!({"phase": "Running", "attempts": 1, "startedAt": "t"}));
        assert_eq!(reasons(Some(q), r.clone()), ["Started"]);
        assert!(reasons(Some(r.clone()), r).is_empty());
    }

    #[test]
    fn a_second_attempt_is_retrying_with_the_error_and_a_final_failure_is_failed() {
        let r1 = task(json!({"phase": "Running", "attempts": 1, "startedAt": "t"}));
        let r2 = task(
            json!({"phase": "Queued", "attempts": 2, "startedAt": "t", "error": {"message": "boom", "kind": "retryable"}}),
        );
        let events = between(Some(&r1), &r2);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].reason, "Retrying");
        assert!(events[0].note.contains("boom") && events[0].warning);
        let failed = task(
            json!({"phase": "Failed", "attempts": 3, "startedAt": "t", "error": {"message": "boom", "kind": "retryable"}}),
        );
        assert_eq!(reasons(Some(r2), failed), ["Failed"]);
    }

    #[test]
    fn a_restart_that_finds_the_status_written_repeats_nothing() {
        let s = task(json!({"phase": "Succeeded", "attempts": 1, "startedAt": "t"}));
        assert!(reasons(Some(s.clone()), s).is_empty());
    }

    #[test]
    fn a_failed_future_says_which_nodes_failed_and_why() {
        let r = future(json!({"phase": "Running", "startedAt": "t"}));
        let failed = future(json!({"phase": "Failed", "startedAt": "t", "failures": [
            {"path": "/0/3", "message": "boom"},
            {"path": "/1", "message": "bang"},
            {"path": "/2", "message": "c"},
            {"path": "/4", "message": "d"},
        ]}));
        let events = between(Some(&r), &failed);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].reason, "Failed");
        assert_eq!(
            events[0].note, "/0/3: boom; /1: bang; /2: c; and 1 more",
            "{events:?}"
        );
    }

    #[test]
    fn a_job_nothing_serves_gets_one_warning() {
        let waiting = |reason: &str| {
            task(json!({"phase": "Pending", "conditions": [
                {"type": "Ready", "status": "False", "reason": reason, "message": "m"}]}))
        };
        let events = between(Some(&waiting("Pending")), &waiting("NoWorkerPool"));
        assert_eq!(events.len(), 1, "{events:?}");
        assert!(events[0].warning);
        assert_eq!(events[0].reason, "NoWorkerPool");
        assert_eq!(events[0].note, "m");
        // First sight, too; but not again while it stays so, nor after a
        // restart that finds it written.
        assert_eq!(reasons(None, waiting("NoWorkerPool")), ["NoWorkerPool"]);
        assert!(reasons(Some(waiting("NoWorkerPool")), waiting("NoWorkerPool")).is_empty());
        // Served again: nothing to warn of.
        assert!(reasons(Some(waiting("NoWorkerPool")), waiting("Pending")).is_empty());
    }

    #[test]
    fn a_refused_resource_is_failed_with_the_refusal() {
        use crate::bridge::Refusal;
        use crate::status::render::{Note, from_note};
        let note = Note::Rejected {
            refusal: Refusal::NotAJob,
            at: "t".into(),
        };
        for is_future in [false, true] {
            let events = between(None, &from_note(&note, is_future, None, "st"));
            assert_eq!(events.len(), 1, "{events:?}");
            assert_eq!(events[0].reason, "Failed");
            let expected = if is_future {
                "/: a WorkerPool is not a job"
            } else {
                "a WorkerPool is not a job"
            };
            assert_eq!(events[0].note, expected);
        }
    }

    #[test]
    fn cancelled_is_reported() {
        let r = task(json!({"phase": "Running", "startedAt": "t"}));
        assert_eq!(
            reasons(
                Some(r),
                task(json!({"phase": "Cancelled", "startedAt": "t"}))
            ),
            ["Cancelled"]
        );
    }
}
