//! A job nothing serves: no WorkerPool of its pool in its namespace and no
//! connected worker that takes its work. Its status says so (`Ready` False,
//! [`Reason::NoWorkerPool`]) with the command that makes a pool.

use super::model::JobStatus;
use super::render::condition;
use kontinuum_api::common::{Condition, ConditionStatus, ConditionType, Reason};

/// No WorkerPool serves the object's pool in its namespace, and no
/// connected worker does: nothing will run it until one does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unserved {
    pub namespace: String,
    pub pool: String,
}

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
    let api_version = kontinuum_api::API_VERSION;
    format!(
        "no WorkerPool '{pool}' in namespace '{namespace}', and no connected worker, serves \
         pool '{pool}': nothing runs this until one does (workers serve their own namespace \
         only). Create one: echo '{{\"apiVersion\":\"{api_version}\",\
         \"kind\":\"WorkerPool\",\"metadata\":{{\"name\":\"{pool}\"}},\"spec\":{{}}}}' | \
         kubectl apply -n \
         {namespace} -f -"
    )
}

/// Marks a status that is not final as waiting for a pool (`Ready` False,
/// [`Reason::NoWorkerPool`]); a final one is left as it is.
pub fn mark_unserved(status: &mut JobStatus, u: &Unserved) {
    if status.is_final() {
        return;
    }
    // The transition is the one the engine dated: being unserved is why
    // the object is still not ready, not a new state of it.
    let since = status
        .condition(ConditionType::Ready)
        .and_then(|c| c.last_transition_time.clone());
    let observed_generation = status.view().observed_generation;
    let conditions = status.view_mut().conditions;
    conditions.retain(|c| !c.is(ConditionType::Ready));
    conditions.insert(
        0,
        Condition {
            observed_generation,
            ..condition(
                ConditionType::Ready,
                ConditionStatus::False,
                Reason::NoWorkerPool,
                unserved_message(u),
                since,
            )
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::render::{MESSAGE_LIMIT, from_engine};
    use kontinuum_api::{Phase, TaskStatus};
    use kontinuum_engine::ObjectStatus;
    use serde_json::Value;

    const STORE: &str = "st-0123456789abcdef0123456789abcdef";

    fn json(status: &JobStatus) -> Value {
        serde_json::to_value(status).unwrap()
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
        let mut typed = queued.clone();
        mark_unserved(&mut typed, &unserved);
        let (queued, marked) = (json(&queued), json(&typed));
        let ready: Vec<_> = marked["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["type"] == "Ready")
            .collect();
        assert_eq!(ready.len(), 1, "{marked}");
        assert_eq!(ready[0]["status"], "False");
        assert_eq!(ready[0]["reason"], Reason::NoWorkerPool.as_str());
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
        let mut twice = typed.clone();
        mark_unserved(&mut twice, &unserved);
        assert_eq!(twice, typed);
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
}
