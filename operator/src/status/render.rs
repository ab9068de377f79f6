//! The status a resource shows, computed from what the engine says (or from
//! why the engine never got it). Pure: the writer compares what this returns
//! with what it last wrote and patches only a difference.

use kontinuum_api::common::Condition;
use kontinuum_engine::ObjectStatus;
use serde_json::{Map, Value, json};

/// Longest message kept in a status field; a worker may fail with a
/// megabyte of stderr, the status stays small whatever it says.
pub const MESSAGE_LIMIT: usize = 1024;

/// Why an object has no engine status of its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Note {
    /// The CRD schema let it through, the engine's rules did not.
    Rejected { message: String, at: String },
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

/// No WorkerPool serves the object's pool in its namespace, and no
/// connected worker does: nothing will run it until one does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unserved {
    pub namespace: String,
    pub pool: String,
}

/// Condition reason (and Event reason) of a job nothing serves.
pub const NO_WORKER_POOL: &str = "NoWorkerPool";

/// Whether anything serves `pool` in a namespace: a WorkerPool of that
/// name there (at zero replicas too: it starts workers when work is
/// queued), or connected workers that take its work (confined to the
/// namespace, or on the shared token, which serves every namespace).
pub fn served(pool_exists: bool, connected_workers: u32) -> bool {
    pool_exists || connected_workers > 0
}

/// What a job nothing serves says, with the command that makes a pool.
pub fn unserved_message(u: &Unserved) -> String {
    let Unserved { namespace, pool } = u;
    format!(
        "no WorkerPool '{pool}' in namespace '{namespace}', and no connected worker, serves \
         pool '{pool}': nothing runs this until one does (workers serve their own namespace \
         only). Create one: echo '{{\"apiVersion\":\"kontinuum.dev/v1alpha1\",\
         \"kind\":\"WorkerPool\",\"metadata\":{{\"name\":\"{pool}\"}},\"spec\":{{}}}}' | \
         kubectl apply -n \
         {namespace} -f -"
    )
}

/// Marks a status that is not final as waiting for a pool (`Ready` False,
/// [`NO_WORKER_POOL`]); a final one is left as it is.
pub fn mark_unserved(status: &mut Value, u: &Unserved) {
    if is_final(status) {
        return;
    }
    let Some(obj) = status.as_object_mut() else {
        return;
    };
    let mut since = None;
    if let Some(Value::Array(cs)) = obj.get_mut("conditions") {
        if let Some(ready) = cs.iter().find(|c| c["type"] == "Ready") {
            since = ready
                .get("lastTransitionTime")
                .and_then(Value::as_str)
                .map(str::to_string);
        }
        cs.retain(|c| c["type"] != "Ready");
    }
    let observed_generation = obj.get("observedGeneration").and_then(Value::as_i64);
    push_condition(
        obj,
        Condition {
            type_: "Ready".into(),
            status: "False".into(),
            reason: NO_WORKER_POOL.into(),
            message: unserved_message(u),
            last_transition_time: since,
            observed_generation,
        },
    );
}

/// Condition reason of a run lost with a replaced store.
pub const STORE_REPLACED: &str = "StoreReplaced";
/// Condition reason while the engine's store has failed.
pub const ENGINE_STOPPED: &str = "EngineStopped";
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
pub fn from_engine(status: ObjectStatus, generation: Option<i64>, store_id: &str) -> Value {
    let mut value = match status {
        ObjectStatus::Task(s) => serde_json::to_value(s),
        ObjectStatus::Future(s) => serde_json::to_value(s),
    }
    .unwrap_or_else(|_| json!({}));
    let Some(obj) = value.as_object_mut() else {
        return value;
    };
    let accepted = Condition {
        type_: "Accepted".into(),
        status: "True".into(),
        reason: "Submitted".into(),
        message: "the engine holds this object".into(),
        last_transition_time: None,
        observed_generation: None,
    };
    push_condition(obj, accepted);
    // Exact for every client: kubectl reads `result`'s numbers as doubles.
    if let Some(result) = obj.get("result").filter(|r| !r.is_null()) {
        let text = kontinuum_api::common::result_text(result);
        obj.insert("resultText".into(), Value::String(text));
    }
    finish(obj, generation, store_id);
    value
}

/// The status of an object the engine does not hold. It names the store
/// `store_id`, but for a run lost with a replaced store: that names the
/// store that held it, so the run stays recognisably not this store's
/// (and the rerun annotation can tell).
pub fn from_note(note: &Note, is_future: bool, generation: Option<i64>, store_id: &str) -> Value {
    let mut obj = Map::new();
    let store_id = match note {
        Note::StoreReplaced { previous, .. } => previous.as_str(),
        _ => store_id,
    };
    match note {
        Note::Rejected { message, at }
        | Note::ParentFinished { message, at }
        | Note::StoreReplaced { message, at, .. } => {
            let reason = match note {
                Note::Rejected { .. } => "InvalidSpec",
                Note::StoreReplaced { .. } => STORE_REPLACED,
                _ => "ParentFinished",
            };
            obj.insert("phase".into(), json!("Failed"));
            obj.insert("finishedAt".into(), json!(at));
            // A future reports failures by node; a task has one error.
            if is_future {
                obj.insert(
                    "failures".into(),
                    json!([{"path": "/", "message": message}]),
                );
            } else {
                obj.insert(
                    "error".into(),
                    json!({"message": message, "kind": "permanent", "attempt": 0}),
                );
            }
            for (type_, status) in [("Accepted", "False"), ("Failed", "True")] {
                push_condition(
                    &mut obj,
                    Condition {
                        type_: type_.into(),
                        status: status.into(),
                        reason: reason.into(),
                        message: message.clone(),
                        last_transition_time: Some(at.clone()),
                        observed_generation: None,
                    },
                );
            }
        }
        Note::WaitingForParent { message } => {
            obj.insert("phase".into(), json!("Pending"));
            push_condition(
                &mut obj,
                Condition {
                    type_: "Accepted".into(),
                    status: "Unknown".into(),
                    reason: "WaitingForParent".into(),
                    message: message.clone(),
                    last_transition_time: None,
                    observed_generation: None,
                },
            );
        }
    }
    finish(&mut obj, generation, store_id);
    Value::Object(obj)
}

/// The last status written, marked as stopped: the engine's store failed
/// (`reason`), so nothing moves until the operator is restarted. None for
/// a final status, which the failure does not touch, or one marked so.
pub fn engine_stopped(written: &Value, reason: &str, at: &str) -> Option<Value> {
    if is_final(written) {
        return None;
    }
    let mut obj = written.as_object()?.clone();
    let conditions = obj.get("conditions").and_then(Value::as_array);
    if conditions.is_some_and(|cs| cs.iter().any(|c| c["reason"] == ENGINE_STOPPED)) {
        return None;
    }
    if let Some(Value::Array(cs)) = obj.get_mut("conditions") {
        cs.retain(|c| c["type"] != "Ready");
    }
    let mut message = format!(
        "the operator's store failed ({reason}); nothing moves until the operator restarts \
         (its liveness probe fails, so the kubelet restarts it); what was acknowledged is kept"
    );
    truncate(&mut message, MESSAGE_LIMIT);
    push_condition(
        &mut obj,
        Condition {
            type_: "Ready".into(),
            status: "False".into(),
            reason: ENGINE_STOPPED.into(),
            message,
            last_transition_time: Some(at.to_string()),
            observed_generation: None,
        },
    );
    Some(Value::Object(obj))
}

/// True when the status is an outcome that will not change again.
pub fn is_final(status: &Value) -> bool {
    matches!(
        status.get("phase").and_then(Value::as_str),
        Some("Succeeded" | "Failed" | "Cancelled" | "Merged")
    )
}

fn push_condition(obj: &mut Map<String, Value>, condition: Condition) {
    let list = obj
        .entry("conditions")
        .or_insert_with(|| Value::Array(Vec::new()));
    if let (Some(list), Ok(c)) = (list.as_array_mut(), serde_json::to_value(condition)) {
        list.insert(0, c);
    }
}

/// The store id, observedGeneration everywhere, and every message within
/// the limit.
fn finish(obj: &mut Map<String, Value>, generation: Option<i64>, store_id: &str) {
    obj.insert("storeId".into(), json!(store_id));
    if let Some(g) = generation {
        obj.insert("observedGeneration".into(), json!(g));
    }
    if let Some(Value::Array(conditions)) = obj.get_mut("conditions") {
        for c in conditions.iter_mut().filter_map(Value::as_object_mut) {
            if let Some(g) = generation {
                c.insert("observedGeneration".into(), json!(g));
            }
            bound_message(c, "message");
        }
    }
    if let Some(Value::Object(error)) = obj.get_mut("error") {
        bound_message(error, "message");
    }
    if let Some(Value::Array(failures)) = obj.get_mut("failures") {
        for f in failures.iter_mut().filter_map(Value::as_object_mut) {
            bound_message(f, "message");
        }
    }
}

fn bound_message(obj: &mut Map<String, Value>, key: &str) {
    if let Some(Value::String(s)) = obj.get_mut(key) {
        truncate(s, MESSAGE_LIMIT);
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
    use kontinuum_api::{FutureStatus, Phase, TaskStatus};

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
        let v = from_engine(ObjectStatus::Task(s), Some(3), STORE);
        assert_eq!(v["observedGeneration"], 3);
        assert_eq!(v["resultTruncated"], true);
        assert_eq!(v["conditions"][0]["type"], "Accepted");
        assert_eq!(v["conditions"][1]["type"], "Succeeded");
        assert_eq!(v["conditions"][1]["observedGeneration"], 3);
        assert!(is_final(&v));
    }

    #[test]
    fn a_result_beyond_two_to_the_53_has_an_exact_text() {
        let exact: Value = serde_json::from_str("333333283333335000000").unwrap();
        let s = FutureStatus {
            phase: Some(Phase::Succeeded),
            result: Some(exact.clone()),
            ..FutureStatus::default()
        };
        let v = from_engine(ObjectStatus::Future(s), None, STORE);
        assert_eq!(v["resultText"], "333333283333335000000");
        assert_eq!(v["result"], exact);
        // No result, no text.
        let running = from_engine(ObjectStatus::Future(FutureStatus::default()), None, STORE);
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
        let v = from_engine(ObjectStatus::Future(s), None, STORE);
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
        let v = from_engine(ObjectStatus::Task(t), None, STORE);
        assert!(v["error"]["message"].as_str().unwrap().len() <= MESSAGE_LIMIT);
    }

    #[test]
    fn rejection_is_failed_with_accepted_false_invalid_spec() {
        let note = Note::Rejected {
            message: "spec.map.shardSize: must be at least 1".into(),
            at: "2026-11-29T00:00:00.000Z".into(),
        };
        let v = from_note(&note, true, Some(1), STORE);
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
        assert!(is_final(&v));
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
                message: "m".into(),
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
                let v = from_note(note, *is_future, Some(1), STORE);
                for key in v.as_object().unwrap().keys() {
                    assert!(
                        fields.contains(key),
                        "{key} is not in the status schema (future: {is_future})"
                    );
                }
            }
        }
        let t = from_engine(
            ObjectStatus::Task(TaskStatus {
                phase: Some(Phase::Succeeded),
                result: Some(json!(9)),
                ..TaskStatus::default()
            }),
            Some(1),
            STORE,
        );
        assert!(t.get("resultText").is_some());
        for key in t.as_object().unwrap().keys() {
            assert!(kinds[0].1.contains(key), "{key}");
        }
        let f = from_engine(
            ObjectStatus::Future(FutureStatus {
                phase: Some(Phase::Succeeded),
                result: Some(json!(9)),
                ..FutureStatus::default()
            }),
            Some(1),
            STORE,
        );
        for key in f.as_object().unwrap().keys() {
            assert!(kinds[1].1.contains(key), "{key}");
        }
    }

    #[test]
    fn a_job_nothing_serves_is_not_ready_with_the_command_that_fixes_it() {
        let unserved = Unserved {
            namespace: "team-a".into(),
            pool: "gpu".into(),
        };
        let queued = from_engine(
            ObjectStatus::Task(TaskStatus {
                phase: Some(Phase::Pending),
                conditions: vec![Condition {
                    type_: "Ready".into(),
                    status: "False".into(),
                    reason: "Pending".into(),
                    last_transition_time: Some("2026-12-07T00:00:00.000Z".into()),
                    ..Condition::default()
                }],
                ..TaskStatus::default()
            }),
            Some(2),
            STORE,
        );
        let mut marked = queued.clone();
        mark_unserved(&mut marked, &unserved);
        let ready: Vec<_> = marked["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["type"] == "Ready")
            .collect();
        assert_eq!(ready.len(), 1, "{marked}");
        assert_eq!(ready[0]["status"], "False");
        assert_eq!(ready[0]["reason"], NO_WORKER_POOL);
        assert_eq!(ready[0]["observedGeneration"], 2);
        assert_eq!(ready[0]["lastTransitionTime"], "2026-12-07T00:00:00.000Z");
        let message = ready[0]["message"].as_str().unwrap();
        assert!(message.contains("no WorkerPool 'gpu' in namespace 'team-a'"));
        assert!(
            message.contains(r#""metadata":{"name":"gpu"},"spec":{}}"#),
            "{message}"
        );
        assert!(
            message.ends_with("| kubectl apply -n team-a -f -"),
            "{message}"
        );
        assert!(message.len() <= MESSAGE_LIMIT);
        assert_eq!(marked["phase"], queued["phase"]);
        // The same mark twice is the same status: no second patch.
        let mut twice = marked.clone();
        mark_unserved(&mut twice, &unserved);
        assert_eq!(twice, marked);
        // A final status is left alone.
        let done = from_engine(
            ObjectStatus::Task(TaskStatus {
                phase: Some(Phase::Succeeded),
                ..TaskStatus::default()
            }),
            None,
            STORE,
        );
        let mut still = done.clone();
        mark_unserved(&mut still, &unserved);
        assert_eq!(still, done);
    }

    #[test]
    fn waiting_for_parent_is_pending_not_final() {
        let v = from_note(
            &Note::WaitingForParent {
                message: "waiting for HierarchicalFuture parent".into(),
            },
            false,
            None,
            STORE,
        );
        assert_eq!(v["phase"], "Pending");
        assert!(!is_final(&v));
    }

    #[test]
    fn every_status_names_its_store() {
        let v = from_engine(ObjectStatus::Task(TaskStatus::default()), None, STORE);
        assert_eq!(v["storeId"], STORE);
        let waiting = Note::WaitingForParent {
            message: "m".into(),
        };
        assert_eq!(from_note(&waiting, true, None, STORE)["storeId"], STORE);
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
        let v = from_note(&note, false, Some(1), "st-new");
        assert_eq!(v["phase"], "Failed");
        assert_eq!(v["storeId"], "st-old", "the store that held the run");
        assert!(is_final(&v));
        let reasons: Vec<_> = v["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["type"].clone(), c["reason"].clone()))
            .collect();
        assert!(reasons.contains(&(json!("Accepted"), json!(STORE_REPLACED))));
        assert!(reasons.contains(&(json!("Failed"), json!(STORE_REPLACED))));
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
        let stopped = engine_stopped(&running, "no space left on device", at).unwrap();
        let ready: Vec<_> = stopped["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["type"] == "Ready")
            .collect();
        assert_eq!(ready.len(), 1, "{stopped}");
        assert_eq!(ready[0]["reason"], ENGINE_STOPPED);
        assert!(
            ready[0]["message"]
                .as_str()
                .unwrap()
                .contains("no space left")
        );
        assert_eq!(stopped["phase"], "Running");
        assert_eq!(engine_stopped(&stopped, "again", at), None, "marked once");
        let done = from_engine(
            ObjectStatus::Task(TaskStatus {
                phase: Some(Phase::Succeeded),
                ..TaskStatus::default()
            }),
            None,
            STORE,
        );
        assert_eq!(engine_stopped(&done, "x", at), None);
    }
}
