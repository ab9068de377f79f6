//! The status of a Task or HierarchicalFuture as the operator writes it,
//! typed. It becomes JSON only in the server-side apply patch.

use kontinuum_api::common::{Condition, ConditionType, ErrorInfo};
use kontinuum_api::future::NodeFailure;
use kontinuum_api::{FutureStatus, Phase, TaskStatus};
use serde::Serialize;

/// One resource's status. Untagged: each variant is written as the fields
/// of its own struct, so the kind of resource is not in the JSON. The
/// engine's statuses are boxed: a future's is several hundred bytes, and
/// statuses travel in channel messages and sit in the writer's index.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum JobStatus {
    /// What the engine says of a Task it holds.
    Task(Box<WithResultText<TaskStatus>>),
    /// What the engine says of a future it holds.
    Future(Box<WithResultText<FutureStatus>>),
    /// The operator's own word on an object the engine does not hold.
    Own(OwnStatus),
}

/// An engine status with `resultText` beside it. The engine's status types
/// leave that field out (only a cluster's clients need it), so it is added
/// here rather than in the API crate; the CRD schema has it through
/// `kontinuum_api::schema::with_result_text`.
///
/// A status read back from a resource has no `resultText` (the API types
/// drop it), so after an operator restart a final status with a result
/// differs from the rendered one and is written once more.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WithResultText<S> {
    #[serde(flatten)]
    pub status: S,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result_text: Option<String>,
}

impl<S> WithResultText<S> {
    pub fn new(status: S) -> Self {
        WithResultText {
            status,
            result_text: None,
        }
    }
}

/// A status the operator writes when the engine holds nothing: a refusal,
/// a wait for a parent, a run lost with its store, or the mark of a stopped
/// engine on an object that had no status yet. It has no counters
/// (`attempts`, `nodes`, `depth`): nothing ran, and the written JSON has
/// always left them out.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OwnStatus {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// A future reports failures by node; a task has one error.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<NodeFailure>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorInfo>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// The fields every status may have, read in one place so that the
/// renderer, the Events and the reconciler need not know the variant.
#[derive(Clone, Copy, Debug)]
pub struct View<'a> {
    pub phase: Option<Phase>,
    /// Attempts started (a task's; zero for the others).
    pub attempts: u32,
    pub started_at: Option<&'a str>,
    pub finished_at: Option<&'a str>,
    pub store_id: Option<&'a str>,
    pub observed_generation: Option<i64>,
    pub conditions: &'a [Condition],
    pub error: Option<&'a ErrorInfo>,
    pub failures: &'a [NodeFailure],
}

/// What the renderer changes in any status.
pub struct ViewMut<'a> {
    pub conditions: &'a mut Vec<Condition>,
    pub error: Option<&'a mut ErrorInfo>,
    pub failures: &'a mut [NodeFailure],
    pub store_id: &'a mut Option<String>,
    pub observed_generation: &'a mut Option<i64>,
}

impl JobStatus {
    /// The status a Task resource carries.
    pub fn task(status: TaskStatus) -> Self {
        JobStatus::Task(Box::new(WithResultText::new(status)))
    }

    /// The status a HierarchicalFuture resource carries.
    pub fn future(status: FutureStatus) -> Self {
        JobStatus::Future(Box::new(WithResultText::new(status)))
    }

    pub fn view(&self) -> View<'_> {
        match self {
            JobStatus::Task(t) => {
                let s = &t.status;
                View {
                    phase: s.phase,
                    attempts: s.attempts,
                    started_at: s.started_at.as_deref(),
                    finished_at: s.finished_at.as_deref(),
                    store_id: s.store_id.as_deref(),
                    observed_generation: s.observed_generation,
                    conditions: &s.conditions,
                    error: s.error.as_ref(),
                    failures: &[],
                }
            }
            JobStatus::Future(f) => {
                let s = &f.status;
                View {
                    phase: s.phase,
                    attempts: 0,
                    started_at: s.started_at.as_deref(),
                    finished_at: s.finished_at.as_deref(),
                    store_id: s.store_id.as_deref(),
                    observed_generation: s.observed_generation,
                    conditions: &s.conditions,
                    error: None,
                    failures: &s.failures,
                }
            }
            JobStatus::Own(s) => View {
                phase: s.phase,
                attempts: 0,
                started_at: None,
                finished_at: s.finished_at.as_deref(),
                store_id: s.store_id.as_deref(),
                observed_generation: s.observed_generation,
                conditions: &s.conditions,
                error: s.error.as_ref(),
                failures: &s.failures,
            },
        }
    }

    pub fn view_mut(&mut self) -> ViewMut<'_> {
        match self {
            JobStatus::Task(t) => {
                let s = &mut t.status;
                ViewMut {
                    conditions: &mut s.conditions,
                    error: s.error.as_mut(),
                    failures: &mut [],
                    store_id: &mut s.store_id,
                    observed_generation: &mut s.observed_generation,
                }
            }
            JobStatus::Future(f) => {
                let s = &mut f.status;
                ViewMut {
                    conditions: &mut s.conditions,
                    error: None,
                    failures: &mut s.failures,
                    store_id: &mut s.store_id,
                    observed_generation: &mut s.observed_generation,
                }
            }
            JobStatus::Own(s) => ViewMut {
                conditions: &mut s.conditions,
                error: s.error.as_mut(),
                failures: &mut s.failures,
                store_id: &mut s.store_id,
                observed_generation: &mut s.observed_generation,
            },
        }
    }

    pub fn phase(&self) -> Option<Phase> {
        self.view().phase
    }

    /// True when the status is an outcome that will not change again.
    pub fn is_final(&self) -> bool {
        self.phase().is_some_and(Phase::is_final)
    }

    /// The first condition of type `t`.
    pub fn condition(&self, t: ConditionType) -> Option<&Condition> {
        self.view().conditions.iter().find(|c| c.is(t))
    }
}

impl<'a> View<'a> {
    /// A task's error, or a future's first failures (path: message), at
    /// most three of them.
    pub fn error_message(&self) -> String {
        if let Some(error) = self.error {
            return error.message.clone();
        }
        let shown: Vec<String> = self
            .failures
            .iter()
            .take(3)
            .map(|f| format!("{}: {}", f.path, f.message))
            .collect();
        let more = self.failures.len() - shown.len();
        let mut text = shown.join("; ");
        if more > 0 {
            text.push_str(&format!("; and {more} more"));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kontinuum_api::common::ErrorKind;
    use serde_json::json;

    #[test]
    fn each_variant_is_written_as_its_own_fields() {
        let mut task = WithResultText::new(TaskStatus {
            phase: Some(Phase::Succeeded),
            attempts: 1,
            ..TaskStatus::default()
        });
        task.result_text = Some("9".into());
        assert_eq!(
            serde_json::to_value(JobStatus::Task(Box::new(task))).unwrap(),
            json!({"phase": "Succeeded", "attempts": 1, "resultText": "9"})
        );
        assert_eq!(
            serde_json::to_value(JobStatus::future(FutureStatus::default())).unwrap(),
            json!({"nodes": 0, "depth": 0})
        );
        let own = OwnStatus {
            phase: Some(Phase::Failed),
            error: Some(ErrorInfo {
                message: "m".into(),
                kind: ErrorKind::Permanent,
                attempt: 0,
            }),
            ..OwnStatus::default()
        };
        assert_eq!(
            serde_json::to_value(JobStatus::Own(own)).unwrap(),
            json!({"phase": "Failed", "error": {"message": "m", "kind": "permanent", "attempt": 0}})
        );
        assert_eq!(
            serde_json::to_value(JobStatus::Own(OwnStatus::default())).unwrap(),
            json!({})
        );
    }

    #[test]
    fn the_view_reads_every_variant_alike() {
        let task = JobStatus::task(TaskStatus {
            phase: Some(Phase::Running),
            attempts: 2,
            started_at: Some("t".into()),
            error: Some(ErrorInfo {
                message: "boom".into(),
                kind: ErrorKind::Retryable,
                attempt: 1,
            }),
            ..TaskStatus::default()
        });
        let v = task.view();
        assert_eq!(
            (v.phase, v.attempts, v.started_at),
            (Some(Phase::Running), 2, Some("t"))
        );
        assert_eq!(v.error_message(), "boom");
        assert!(!task.is_final());
        let failures = (0..5)
            .map(|i| NodeFailure {
                path: format!("/{i}"),
                message: "x".into(),
            })
            .collect();
        let future = JobStatus::future(FutureStatus {
            phase: Some(Phase::Failed),
            failures,
            ..FutureStatus::default()
        });
        assert!(future.is_final());
        assert_eq!(
            future.view().error_message(),
            "/0: x; /1: x; /2: x; and 2 more"
        );
        assert_eq!(
            JobStatus::Own(OwnStatus::default()).view().error_message(),
            ""
        );
    }
}
