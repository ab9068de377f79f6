//! Checks on what enters the engine from outside the validation layer (the
//! operator's resources, a remote worker's results, calls and tasks made
//! from code), with the validation layer's words: a value the engine stores
//! must be one it can read back.

use crate::error::EngineError;
use crate::public::{Submission, SubmissionBody};
use kontinuum_api::validate::spec_value_problems;
use kontinuum_api::{FnRef, TaskSpec};
use serde_json::Value;

fn spec_problem(
    name: &str,
    kind: &str,
    spec: serde_json::Result<Value>,
) -> Result<(), EngineError> {
    let spec =
        spec.map_err(|e| EngineError::Invalid(format!("{name}: cannot encode the spec: {e}")))?;
    match spec_value_problems(kind, spec).into_iter().next() {
        Some(problem) => Err(EngineError::Invalid(format!("{name}: {problem}"))),
        None => Ok(()),
    }
}

/// A submitted object: nesting, numbers, the shortest timeout.
pub fn submission(object: &Submission) -> Result<(), EngineError> {
    let name = object.id.to_string();
    match &object.body {
        SubmissionBody::Task(spec) => spec_problem(&name, "Task", serde_json::to_value(spec)),
        SubmissionBody::Future(spec) => {
            spec_problem(&name, "HierarchicalFuture", serde_json::to_value(spec))
        }
    }
}

/// A task started from a running one.
pub fn spawned(spec: &TaskSpec) -> Result<(), EngineError> {
    spec_problem("spawned task", "Task", serde_json::to_value(spec))
}

/// A child call added from code, checked as a document's call would be.
pub fn child_call(call: &FnRef) -> Result<(), EngineError> {
    let spec = serde_json::to_value(call).map(|call| serde_json::json!({ "call": call }));
    spec_problem("child call", "Task", spec)
}

/// Why a function's result cannot be taken, if it cannot: the attempt then
/// fails for good with this message instead of reaching the store.
pub fn result(value: &Value) -> Option<String> {
    kontinuum_api::limits::value_problem(value)
        .map(|problem| format!("the function's result was refused: {problem}"))
}
