//! The status a resource shows, computed from what the engine says (or from
//! why the engine never got it). Pure: the writer compares what this returns
//! with what it last wrote and patches only a difference.

use super::model::{JobStatus, OwnStatus, WithResultText};
use crate::bridge::Refusal;
use kontinuum_api::Phase;
use kontinuum_api::common::{
    Condition, ConditionStatus, ConditionType, ErrorInfo, ErrorKind, Reason,
};
use kontinuum_api::future::NodeFailure;
use kontinuum_engine::ObjectStatus;

/// Longest message kept in a status field; a worker may fail with a
/// megabyte of stderr, the status stays small whatever it says.
pub const MESSAGE_LIMIT: usize = 1024;

/// Why an object has no engine status of its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Note {
    /// The CRD schema let it through, the engine's rules did not.
    Rejected { refusal: Refusal, at: String },
    /// `spec.parentRef` names a future that does not exist (yet).
    WaitingForParent { message: String },
    /// `spec.parentRef` names a future that already finished.
    ParentFinished { message: String, at: String },
    /// Its status names another store (`previous`), which held its run:
    /// the work went with that store and is not run again unless asked.
    StoreReplaced {
        previous: String,
        message: String,
        at: String,
    },
}

/// Annotation asking for a run lost with a replaced store to run again:
/// its value must be the id of the store that is to run it.
pub const RERUN_ANNOTATION: &str = "kontinuum.dev/rerun";

/// What a resource's status says of a run lost with the store `previous`,
/// and how to run it again on the store `current`.
pub fn store_replaced_message(kind: &str, name: &str, previous: &str, current: &str) -> String {
    format!(
        "its run was held by store {previous}, which this operator does not have (its store is \
         {current}): the work was lost with that store, and is not run again on its own because \
         it may have run in part. To run it again, delete and re-create it, or `kubectl annotate \
         {kind}/{name} {RERUN_ANNOTATION}={current}`"
    )
}

/// The status of an object the engine holds, in the store `store_id`.
pub fn from_engine(status: ObjectStatus, generation: Option<i64>, store_id: &str) -> JobStatus {
    // Exact for every client: kubectl reads `result`'s numbers as doubles.
    let text = |result: &Option<serde_json::Value>| {
        result
            .as_ref()
            .filter(|r| !r.is_null())
            .map(kontinuum_api::common::result_text)
    };
    let mut status = match status {
        ObjectStatus::Task(s) => JobStatus::Task(Box::new(WithResultText {
            result_text: text(&s.result),
            status: s,
        })),
        ObjectStatus::Future(s) => JobStatus::Future(Box::new(WithResultText {
            result_text: text(&s.result),
            status: s,
        })),
    };
    let accepted = condition(
        ConditionType::Accepted,
        ConditionStatus::True,
        Reason::Submitted,
        "the engine holds this object".into(),
        None,
    );
    status.view_mut().conditions.insert(0, accepted);
    finish(&mut status, generation, store_id);
    status
}

/// The status of an object the engine does not hold. It names the store
/// `store_id`, but for a run lost with a replaced store: that names the
/// store that held it, so the run stays recognisably not this store's
/// (and the rerun annotation can tell).
pub fn from_note(
    note: &Note,
    is_future: bool,
    generation: Option<i64>,
    store_id: &str,
) -> JobStatus {
    let (own, store_id) = match note {
        Note::Rejected { refusal, at } => (
            failed(refusal.to_string(), at, Reason::InvalidSpec, is_future),
            store_id,
        ),
        Note::ParentFinished { message, at } => (
            failed(message.clone(), at, Reason::ParentFinished, is_future),
            store_id,
        ),
        Note::StoreReplaced {
            previous,
            message,
            at,
        } => (
            failed(message.clone(), at, Reason::StoreReplaced, is_future),
            previous.as_str(),
        ),
        Note::WaitingForParent { message } => {
            let waiting = condition(
                ConditionType::Accepted,
                ConditionStatus::Unknown,
                Reason::WaitingForParent,
                message.clone(),
                None,
            );
            let own = OwnStatus {
                phase: Some(Phase::Pending),
                conditions: vec![waiting],
                ..OwnStatus::default()
            };
            (own, store_id)
        }
    };
    let mut status = JobStatus::Own(own);
    finish(&mut status, generation, store_id);
    status
}

/// A failure the engine never saw, at `at`: `Failed` True and `Accepted`
/// False, both for `reason`.
fn failed(message: String, at: &str, reason: Reason, is_future: bool) -> OwnStatus {
    // A future reports failures by node; a task has one error.
    let (failures, error) = if is_future {
        let root = NodeFailure {
            path: "/".into(),
            message: message.clone(),
        };
        (vec![root], None)
    } else {
        let error = ErrorInfo {
            message: message.clone(),
            kind: ErrorKind::Permanent,
            attempt: 0,
        };
        (Vec::new(), Some(error))
    };
    let dated =
        |type_, status| condition(type_, status, reason, message.clone(), Some(at.to_string()));
    OwnStatus {
        phase: Some(Phase::Failed),
        finished_at: Some(at.to_string()),
        failures,
        error,
        // Newest first, as every condition list here is.
        conditions: vec![
            dated(ConditionType::Failed, ConditionStatus::True),
            dated(ConditionType::Accepted, ConditionStatus::False),
        ],
        ..OwnStatus::default()
    }
}

/// The last status written (if any), marked as stopped: the engine's store
/// failed (`reason`), so nothing moves until the operator is restarted.
/// None for a final status, which the failure does not touch, or one marked
/// so.
pub fn engine_stopped(written: Option<&JobStatus>, reason: &str, at: &str) -> Option<JobStatus> {
    let mut status = written
        .cloned()
        .unwrap_or_else(|| JobStatus::Own(OwnStatus::default()));
    let stopped = Reason::EngineStopped.as_str();
    if status.is_final() || status.view().conditions.iter().any(|c| c.reason == stopped) {
        return None;
    }
    let mut message = format!(
        "the operator's store failed ({reason}); nothing moves until the operator restarts \
         (its liveness probe fails, so the kubelet restarts it); what was acknowledged is kept"
    );
    truncate(&mut message, MESSAGE_LIMIT);
    let conditions = status.view_mut().conditions;
    conditions.retain(|c| !c.is(ConditionType::Ready));
    conditions.insert(
        0,
        condition(
            ConditionType::Ready,
            ConditionStatus::False,
            Reason::EngineStopped,
            message,
            Some(at.to_string()),
        ),
    );
    Some(status)
}

pub(super) fn condition(
    type_: ConditionType,
    status: ConditionStatus,
    reason: Reason,
    message: String,
    last_transition_time: Option<String>,
) -> Condition {
    Condition {
        type_: type_.as_str().into(),
        status: status.as_str().into(),
        reason: reason.as_str().into(),
        message,
        last_transition_time,
        observed_generation: None,
    }
}

/// The store id, observedGeneration everywhere, and every message within
/// the limit.
fn finish(status: &mut JobStatus, generation: Option<i64>, store_id: &str) {
    let fields = status.view_mut();
    *fields.store_id = Some(store_id.to_string());
    if generation.is_some() {
        *fields.observed_generation = generation;
    }
    for c in fields.conditions.iter_mut() {
        if generation.is_some() {
            c.observed_generation = generation;
        }
        truncate(&mut c.message, MESSAGE_LIMIT);
    }
    if let Some(error) = fields.error {
        truncate(&mut error.message, MESSAGE_LIMIT);
    }
    for f in fields.failures.iter_mut() {
        truncate(&mut f.message, MESSAGE_LIMIT);
    }
}

/// Cuts `s` to at most `limit` bytes on a character boundary, saying so.
pub fn truncate(s: &mut String, limit: usize) {
    if s.len() <= limit {
        return;
    }
    const MARK: &str = " … (truncated)";
    let mut cut = limit.saturating_sub(MARK.len());
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    s.truncate(cut);
    s.push_str(MARK);
}

#[cfg(test)]
mod tests {
    use super::*;
    use kontinuum_api::common::ErrorInfo;
    use kontinuum_api::validate::FieldError;
    use kontinuum_api::{FutureStatus, TaskStatus};
    use serde_json::{Value, json};

    /// The status as the patch carries it.
    fn json(status: &JobStatus) -> Value {
        serde_json::to_value(status).unwrap()
    }

    const STORE: &str = "st-0123456789abcdef0123456789abcdef";

    #[test]
    fn engine_status_gets_accepted_condition_generation_and_truncation_flag() {
        let s = TaskStatus {
            phase: Some(Phase::Succeeded),
            result_ref: Some("store:result/7".into()),
            result_truncated: true,
            conditions: vec![Condition {
                type_: "Succeeded".into(),
                status: "True".into(),
                ..Condition::default()
            }],
            ..TaskStatus::default()
        };
        let status = from_engine(ObjectStatus::Task(s), Some(3), STORE);
        let v = json(&status);
        assert_eq!(v["observedGeneration"], 3);
        assert_eq!(v["resultTruncated"], true);
        assert_eq!(v["conditions"][0]["type"], "Accepted");
        assert_eq!(v["conditions"][1]["type"], "Succeeded");
        assert_eq!(v["conditions"][1]["observedGeneration"], 3);
        assert!(status.is_final());
    }

    #[test]
    fn a_result_beyond_two_to_the_53_has_an_exact_text() {
        let exact: Value = serde_json::from_str("333333283333335000000").unwrap();
        let s = FutureStatus {
            phase: Some(Phase::Succeeded),
            result: Some(exact.clone()),
            ..FutureStatus::default()
        };
        let v = json(&from_engine(ObjectStatus::Future(s), None, STORE));
        assert_eq!(v["resultText"], "333333283333335000000");
        assert_eq!(v["result"], exact);
        // No result, no text.
        let running = json(&from_engine(
            ObjectStatus::Future(FutureStatus::default()),
            None,
            STORE,
        ));
        assert!(running.get("resultText").is_none());
    }

    #[test]
    fn huge_messages_are_cut_on_a_char_boundary() {
        let s = FutureStatus {
            phase: Some(Phase::Failed),
            failures: (0..10)
                .map(|i| kontinuum_api::future::NodeFailure {
                    path: format!("/{i}"),
                    message: "é".repeat(100_000),
                })
                .collect(),
            ..FutureStatus::default()
        };
        let v = json(&from_engine(ObjectStatus::Future(s), None, STORE));
        let size = serde_json::to_string(&v).unwrap().len();
        assert!(size < 16 * 1024, "status is {size} bytes");
        let first = v["failures"][0]["message"].as_str().unwrap();
        assert!(first.len() <= MESSAGE_LIMIT && first.ends_with("(truncated)"));
        let t = TaskStatus {
            phase: Some(Phase::Failed),
            error: Some(ErrorInfo {
                message: "x".repeat(1 << 20),
                kind: kontinuum_api::common::ErrorKind::Permanent,
                attempt: 1,
            }),
            ..TaskStatus::default()
        };
        let v = json(&from_engine(ObjectStatus::Task(t), None, STORE));
        assert!(v["error"]["message"].as_str().unwrap().len() <= MESSAGE_LIMIT);
    }

    #[test]
    fn rejection_is_failed_with_accepted_false_invalid_spec() {
        let note = Note::Rejected {
            refusal: Refusal::Fields(vec![FieldError {
                field: "spec.map.shardSize".into(),
                message: "must be at least 1".into(),
            }]),
            at: "2026-11-29T00:00:00.000Z".into(),
        };
        let status = from_note(&note, true, Some(1), STORE);
        let v = json(&status);
        assert_eq!(v["phase"], "Failed");
        assert_eq!(v["conditions"][0]["type"], "Failed");
        let accepted = v["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Accepted")
            .unwrap();
        assert_eq!(accepted["status"], "False");
        assert_eq!(accepted["reason"], "InvalidSpec");
        assert!(
            accepted["message"]
                .as_str()
                .unwrap()
                .contains("spec.map.shardSize")
        );
        assert!(status.is_final());
    }

    /// The fields a kind's status schema declares (the API server refuses
    /// a server-side apply with any other).
    fn declared(
        crd: k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
    ) -> Vec<String> {
        let v = serde_json::to_value(crd).unwrap();
        v.pointer("/spec/versions/0/schema/openAPIV3Schema/properties/status/properties")
            .and_then(Value::as_object)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    #[test]
    fn every_rendered_field_is_declared_in_the_crd() {
        use kube::CustomResourceExt;
        let at = "2026-11-29T00:00:00.000Z".to_string();
        let notes = [
            Note::Rejected {
                refusal: Refusal::NotAJob,
                at: at.clone(),
            },
            Note::ParentFinished {
                message: "m".into(),
                at,
            },
            Note::WaitingForParent {
                message: "m".into(),
            },
            Note::StoreReplaced {
                previous: "st-old".into(),
                message: "m".into(),
                at: "2026-11-29T00:00:00.000Z".into(),
            },
        ];
        let kinds = [
            (false, declared(kontinuum_api::Task::crd())),
            (true, declared(kontinuum_api::HierarchicalFuture::crd())),
        ];
        for (is_future, fields) in &kinds {
            for note in &notes {
                let v = json(&from_note(note, *is_future, Some(1), STORE));
                for key in v.as_object().unwrap().keys() {
                    assert!(
                        fields.contains(key),
                        "{key} is not in the status schema (future: {is_future})"
                    );
                }
            }
        }
        let t = json(&from_engine(
            ObjectStatus::Task(TaskStatus {
                phase: Some(Phase::Succeeded),
                result: Some(json!(9)),
                ..TaskStatus::default()
            }),
            Some(1),
            STORE,
        ));
        assert!(t.get("resultText").is_some());
        for key in t.as_object().unwrap().keys() {
            assert!(kinds[0].1.contains(key), "{key}");
        }
        let f = json(&from_engine(
            ObjectStatus::Future(FutureStatus {
                phase: Some(Phase::Succeeded),
                result: Some(json!(9)),
                ..FutureStatus::default()
            }),
            Some(1),
            STORE,
        ));
        for key in f.as_object().unwrap().keys() {
            assert!(kinds[1].1.contains(key), "{key}");
        }
    }

    /// The operator's own statuses, whole: no counters (`attempts`, `nodes`,
    /// `depth`), which nothing that ran could have set.
    #[test]
    fn the_operators_own_statuses_are_written_as_they_always_were() {
        let at = "2026-11-29T00:00:00.000Z";
        let rejected = Note::Rejected {
            refusal: Refusal::NotAJob,
            at: at.into(),
        };
        let condition = |type_: &str, status: &str| {
            json!({"type": type_, "status": status, "reason": "InvalidSpec",
                "message": "a WorkerPool is not a job", "lastTransitionTime": at,
                "observedGeneration": 2})
        };
        let failed_and_refused =
            json!([condition("Failed", "True"), condition("Accepted", "False")]);
        assert_eq!(
            json(&from_note(&rejected, false, Some(2), STORE)),
            json!({"phase": "Failed", "finishedAt": at,
                "error": {"message": "a WorkerPool is not a job", "kind": "permanent", "attempt": 0},
                "conditions": failed_and_refused, "storeId": STORE, "observedGeneration": 2})
        );
        assert_eq!(
            json(&from_note(&rejected, true, Some(2), STORE)),
            json!({"phase": "Failed", "finishedAt": at,
                "failures": [{"path": "/", "message": "a WorkerPool is not a job"}],
                "conditions": failed_and_refused, "storeId": STORE, "observedGeneration": 2})
        );
        let waiting = Note::WaitingForParent {
            message: "m".into(),
        };
        assert_eq!(
            json(&from_note(&waiting, true, None, STORE)),
            json!({"phase": "Pending", "storeId": STORE, "conditions": [
                {"type": "Accepted", "status": "Unknown", "reason": "WaitingForParent", "message": "m"}]})
        );
        // Nothing written yet when the engine stopped: the mark alone.
        let stopped = json(&engine_stopped(None, "disk", at).unwrap());
        assert_eq!(stopped.as_object().unwrap().len(), 1, "{stopped}");
        assert_eq!(stopped["conditions"][0]["reason"], "EngineStopped");
        assert_eq!(stopped["conditions"][0]["lastTransitionTime"], at);
    }

    #[test]
    fn waiting_for_parent_is_pending_not_final() {
        let status = from_note(
            &Note::WaitingForParent {
                message: "waiting for HierarchicalFuture parent".into(),
            },
            false,
            None,
            STORE,
        );
        assert_eq!(json(&status)["phase"], "Pending");
        assert!(!status.is_final());
    }

    #[test]
    fn every_status_names_its_store() {
        let v = json(&from_engine(
            ObjectStatus::Task(TaskStatus::default()),
            None,
            STORE,
        ));
        assert_eq!(v["storeId"], STORE);
        let waiting = Note::WaitingForParent {
            message: "m".into(),
        };
        assert_eq!(
            json(&from_note(&waiting, true, None, STORE))["storeId"],
            STORE
        );
    }

    #[test]
    fn a_run_lost_with_its_store_is_failed_and_says_how_to_run_it_again() {
        let message = store_replaced_message("task", "sum", "st-old", "st-new");
        assert!(message.contains("kontinuum.dev/rerun=st-new"), "{message}");
        assert!(message.contains("delete and re-create"), "{message}");
        let note = Note::StoreReplaced {
            previous: "st-old".into(),
            message,
            at: "2026-12-07T00:00:00.000Z".into(),
        };
        let status = from_note(&note, false, Some(1), "st-new");
        let v = json(&status);
        assert_eq!(v["phase"], "Failed");
        assert_eq!(v["storeId"], "st-old", "the store that held the run");
        assert!(status.is_final());
        let reasons: Vec<_> = v["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["type"].clone(), c["reason"].clone()))
            .collect();
        let replaced = json!(Reason::StoreReplaced.as_str());
        assert!(reasons.contains(&(json!("Accepted"), replaced.clone())));
        assert!(reasons.contains(&(json!("Failed"), replaced)));
        assert!(v["error"]["message"].as_str().unwrap().contains("st-old"));
    }

    #[test]
    fn a_stopped_engine_marks_running_statuses_once_and_leaves_final_ones() {
        let running = from_engine(
            ObjectStatus::Task(TaskStatus {
                phase: Some(Phase::Running),
                conditions: vec![Condition {
                    type_: "Ready".into(),
                    status: "False".into(),
                    reason: "Running".into(),
                    ..Condition::default()
                }],
                ..TaskStatus::default()
            }),
            Some(1),
            STORE,
        );
        let at = "2026-12-07T00:00:00.000Z";
        let typed = engine_stopped(Some(&running), "no space left on device", at).unwrap();
        let stopped = json(&typed);
        let ready: Vec<_> = stopped["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["type"] == "Ready")
            .collect();
        assert_eq!(ready.len(), 1, "{stopped}");
        assert_eq!(ready[0]["reason"], Reason::EngineStopped.as_str());
        assert!(
            ready[0]["message"]
                .as_str()
                .unwrap()
                .contains("no space left")
        );
        assert_eq!(stopped["phase"], "Running");
        assert_eq!(
            engine_stopped(Some(&typed), "again", at),
            None,
            "marked once"
        );
        let done = from_engine(
            ObjectStatus::Task(TaskStatus {
                phase: Some(Phase::Succeeded),
                ..TaskStatus::default()
            }),
            None,
            STORE,
        );
        assert_eq!(engine_stopped(Some(&done), "x", at), None);
    }
}
