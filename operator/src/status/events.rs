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

use serde_json::Value;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventSpec {
    pub warning: bool,
    pub reason: &'static str,
    pub note: String,
}

fn phase(status: Option<&Value>) -> &str {
    status
        .and_then(|s| s.get("phase"))
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn attempts(status: Option<&Value>) -> u64 {
    status
        .and_then(|s| s.get("attempts"))
        .and_then(Value::as_u64)
        .unwrap_or(0)
}

/// A task's error, or a future's first failures (path: message), at most
/// three of them.
fn error_message(status: &Value) -> String {
    if let Some(message) = status.pointer("/error/message").and_then(Value::as_str) {
        return message.to_string();
    }
    let failures = status.get("failures").and_then(Value::as_array);
    let shown: Vec<String> = failures
        .into_iter()
        .flatten()
        .take(3)
        .map(|f| {
            format!(
                "{}: {}",
                f["path"].as_str().unwrap_or("/"),
                f["message"].as_str().unwrap_or("")
            )
        })
        .collect();
    let more = failures.map_or(0, Vec::len).saturating_sub(shown.len());
    let mut text = shown.join("; ");
    if more > 0 {
        text.push_str(&format!("; and {more} more"));
    }
    text
}

/// The Warning a running object gets when the engine's store fails.
pub fn engine_stopped(reason: &str) -> EventSpec {
    EventSpec {
        warning: true,
        reason: "EngineStopped",
        note: format!(
            "the operator's store failed: {reason}; nothing moves until the operator restarts"
        ),
    }
}

/// The `Ready` condition's reason and message, if it has one.
fn ready(status: Option<&Value>) -> Option<(&str, &str)> {
    let conditions = status?.get("conditions")?.as_array()?;
    let c = conditions.iter().find(|c| c["type"] == "Ready")?;
    Some((
        c["reason"].as_str().unwrap_or(""),
        c["message"].as_str().unwrap_or(""),
    ))
}

/// The `Ready` message of a status that says nothing serves its pool.
fn unserved(status: Option<&Value>) -> Option<(&str, &str)> {
    ready(status).filter(|(reason, _)| *reason == crate::status::render::NO_WORKER_POOL)
}

pub fn between(before: Option<&Value>, after: &Value) -> Vec<EventSpec> {
    let (was, now) = (phase(before), phase(Some(after)));
    let mut out = Vec::new();
    // Nothing serves its pool: said once, when the status first says so.
    if let (false, Some((_, message))) = (unserved(before).is_some(), unserved(Some(after))) {
        out.push(EventSpec {
            warning: true,
            reason: crate::status::render::NO_WORKER_POOL,
            note: message.to_string(),
        });
    }
    let started = |p: &str| matches!(p, "Running" | "Succeeded" | "Failed" | "Cancelled");
    let has_started_at = |s: Option<&Value>| s.and_then(|s| s.get("startedAt")).is_some();
    let ended = matches!(now, "Succeeded" | "Failed" | "Cancelled" | "Merged");
    // Seen for the first time already ended: the final event says it all.
    let first_sight_ended = ended && before.is_none();
    let was_started = started(was) || has_started_at(before);
    if !was_started && !first_sight_ended && (started(now) || has_started_at(Some(after))) {
        out.push(EventSpec {
            warning: false,
            reason: "Started",
            note: "a worker started running it".into(),
        });
    }
    // A task's attempt count grew while it is not final: a retry is under way.
    let (a0, a1) = (attempts(before), attempts(Some(after)));
    if a1 > a0 && a0 > 0 && !matches!(now, "Succeeded" | "Failed" | "Cancelled" | "Merged") {
        let why = error_message(after);
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
    if was != now {
        match now {
            "Succeeded" => out.push(EventSpec {
                warning: false,
                reason: "Succeeded",
                note: "finished successfully".into(),
            }),
            "Failed" => out.push(EventSpec {
                warning: true,
                reason: "Failed",
                note: error_message(after),
            }),
            "Cancelled" => out.push(EventSpec {
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
    use serde_json::json;

    fn reasons(before: Option<Value>, after: Value) -> Vec<&'static str> {
        between(before.as_ref(), &after)
            .iter()
            .map(|e| e.reason)
            .collect::<Vec<_>>()
    }

    #[test]
    fn first_sight_of_a_finished_task_gives_its_final_event_only() {
        let after = json!({"phase": "Succeeded", "attempts": 1, "startedAt": "t"});
        assert_eq!(reasons(None, after), ["Succeeded"]);
        let failed = json!({"phase": "Failed", "attempts": 1, "startedAt": "t"});
        assert_eq!(reasons(None, failed), ["Failed"]);
        // Seen queued first, then ended: it did start, and says so.
        let q = json!({"phase": "Queued"});
        let done = json!({"phase": "Succeeded", "attempts": 1, "startedAt": "t"});
        assert_eq!(reasons(Some(q), done), ["Started", "Succeeded"]);
    }

    #[test]
    fn queued_to_running_is_started_once() {
        let q = json!({"phase": "Queued"});
        let r = json!({"phase": "Running", "attempts": 1, "startedAt": "t"});
        assert_eq!(reasons(Some(q), r.clone()), ["Started"]);
        assert!(reasons(Some(r.clone()), r).is_empty());
    }

    #[test]
    fn a_second_attempt_is_retrying_with_the_error_and_a_final_failure_is_failed() {
        let r1 = json!({"phase": "Running", "attempts": 1, "startedAt": "t"});
        let r2 = json!({"phase": "Queued", "attempts": 2, "startedAt": "t", "error": {"message": "boom"}});
        let events = between(Some(&r1), &r2);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].reason, "Retrying");
        assert!(events[0].note.contains("boom") && events[0].warning);
        let failed = json!({"phase": "Failed", "attempts": 3, "startedAt": "t", "error": {"message": "boom"}});
        assert_eq!(reasons(Some(r2), failed), ["Failed"]);
    }

    #[test]
    fn a_restart_that_finds_the_status_written_repeats_nothing() {
        let s = json!({"phase": "Succeeded", "attempts": 1, "startedAt": "t"});
        assert!(reasons(Some(s.clone()), s).is_empty());
    }

    #[test]
    fn a_failed_future_says_which_nodes_failed_and_why() {
        let r = json!({"phase": "Running", "startedAt": "t"});
        let failed = json!({"phase": "Failed", "startedAt": "t", "failures": [
            {"path": "/0/3", "message": "boom"},
            {"path": "/1", "message": "bang"},
            {"path": "/2", "message": "c"},
            {"path": "/4", "message": "d"},
        ]});
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
            json!({"phase": "Pending", "conditions": [
                {"type": "Ready", "status": "False", "reason": reason, "message": "m"}]})
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
    fn cancelled_is_reported() {
        let r = json!({"phase": "Running", "startedAt": "t"});
        assert_eq!(
            reasons(Some(r), json!({"phase": "Cancelled", "startedAt": "t"})),
            ["Cancelled"]
        );
    }
}
