//! The engine's own checks of a spec say what the validation layer says
//! about the same manifest, word for word.

use super::build::{plan_future, plan_task};
use crate::error::EngineError;
use kontinuum_api::validate::validate;
use kontinuum_api::{HierarchicalFutureSpec, TaskSpec};
use serde_json::{Value, json};

fn manifest(kind: &str, spec: &Value) -> Value {
    json!({
        "apiVersion": "kontinuum.dev/v1alpha1",
        "kind": kind,
        "metadata": {"name": "x"},
        "spec": spec,
    })
}

/// The validator's message about `field`, which it must refuse.
fn validator_says(kind: &str, spec: &Value, field: &str) -> String {
    let problems = validate(&manifest(kind, spec)).expect_err("the validator refuses it");
    problems
        .iter()
        .find(|p| p.field == field)
        .unwrap_or_else(|| panic!("no problem at {field}: {problems:?}"))
        .to_string()
}

fn engine_says(result: Result<impl Sized, EngineError>) -> String {
    match result {
        Err(EngineError::Invalid(message)) => message,
        Err(other) => panic!("not Invalid: {other:?}"),
        Ok(_) => panic!("the engine accepted it"),
    }
}

#[test]
fn task_checks_use_the_validators_words() {
    let call = json!({"function": "std.echo"});
    for (spec, field) in [
        (
            json!({"call": call, "retry": {"maxAttempts": 0}}),
            "spec.retry.maxAttempts",
        ),
        (
            json!({"call": call, "retry": {"backoff": {"factor": 0.5}}}),
            "spec.retry.backoff.factor",
        ),
        (json!({"call": call, "timeout": "0s"}), "spec.timeout"),
        (
            json!({"call": call, "delay": "1s", "notBefore": "2030-01-01T00:00:00Z"}),
            "spec.delay",
        ),
    ] {
        let typed: TaskSpec = serde_json::from_value(spec.clone()).unwrap();
        assert_eq!(
            engine_says(plan_task(&typed, 0)),
            validator_says("Task", &spec, field),
            "{spec}"
        );
    }
}

#[test]
fn future_checks_use_the_validators_words() {
    let f = json!({"function": "std.square"});
    let range = json!({"range": {"start": 0, "end": 10}});
    for (spec, field) in [
        (
            json!({"map": {"source": range, "function": f, "shardSize": 0}}),
            "spec.map.shardSize",
        ),
        (
            json!({"map": {"source": range, "function": f, "fanout": 1}}),
            "spec.map.fanout",
        ),
        (
            json!({"map": {"source": {"range": {"start": 5, "end": 1}}, "function": f}}),
            "spec.map.source.range.end",
        ),
        (
            json!({"map": {"source": {"range": {"start": 0, "end": 1}, "items": [1]}, "function": f}}),
            "spec.map.source",
        ),
        (json!({"call": f, "parallel": [f]}), "spec"),
        (json!({"call": f, "timeout": "0ms"}), "spec.timeout"),
    ] {
        let typed: HierarchicalFutureSpec = serde_json::from_value(spec.clone()).unwrap();
        assert_eq!(
            engine_says(plan_future(&typed, 0)),
            validator_says("HierarchicalFuture", &spec, field),
            "{spec}"
        );
    }
}
