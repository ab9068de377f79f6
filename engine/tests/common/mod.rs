//! A tiny synchronous worker for engine tests: it evaluates a handful of
//! functions itself so the engine is tested without the worker crate.

#![allow(dead_code)]

use kontinuum_api::accumulator::Accumulator;
use kontinuum_api::reducer::Reducer;
use kontinuum_api::work::{Completion, Lease, Outcome, Slice, Work};
use kontinuum_engine::{Engine, EngineConfig, ObjectStatus, Submission};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

pub fn open(dir: &std::path::Path) -> Engine {
    let config = EngineConfig {
        lease: Duration::from_millis(500),
        split_after: Duration::from_millis(200),
        ..Default::default()
    };
    Engine::open(dir, config).expect("open engine")
}

pub fn yaml<T: serde::de::DeserializeOwned>(text: &str) -> T {
    serde_yaml::from_str(text).expect("test yaml")
}

pub fn task(name: &str, spec: &str) -> Submission {
    Submission::Task {
        name: name.into(),
        spec: yaml(spec),
    }
}

pub fn future(name: &str, spec: &str) -> Submission {
    Submission::Future {
        name: name.into(),
        spec: yaml(spec),
    }
}

/// What the test functions compute.
pub fn call(
    function: &str,
    args: &serde_json::Map<String, Value>,
) -> Result<Value, (String, bool)> {
    let num = |k: &str| args.get(k).and_then(Value::as_i64).unwrap_or(0);
    match function {
        "t.sum" => Ok(json!(num("a") + num("b"))),
        "t.echo" => Ok(Value::Object(args.clone())),
        "t.square" => Ok(json!(num("item") * num("item"))),
        "t.fail" => Err((
            args.get("message")
                .and_then(Value::as_str)
                .unwrap_or("failed")
                .to_string(),
            true,
        )),
        "t.flaky" => Err(("try again".into(), false)),
        "t.fail_odd" => {
            if num("item") % 2 == 1 {
                Err(("odd".into(), true))
            } else {
                Ok(json!(num("item")))
            }
        }
        other => Err((format!("no function {other}"), true)),
    }
}

pub fn execute(work: &Work) -> Outcome {
    let result = match work {
        Work::Call { call: f } => call(&f.function, &f.args),
        Work::MapLeaf {
            function,
            slice,
            reducer,
        } => map_leaf(function, slice, reducer),
        Work::Fold { values, .. } => Ok(json!(
            values.iter().map(|v| v.as_i64().unwrap_or(0)).sum::<i64>()
        )),
    };
    match result {
        Ok(value) => Outcome::Success { value },
        Err((message, permanent)) => Outcome::Failure { message, permanent },
    }
}

fn map_leaf(
    function: &kontinuum_api::FnRef,
    slice: &Slice,
    reducer: &Reducer,
) -> Result<Value, (String, bool)> {
    let items: Vec<Value> = match slice {
        Slice::Range { start, end } => (*start..*end).map(|i| json!(i)).collect(),
        Slice::Items { items, .. } => items.clone(),
        Slice::Lines { .. } => {
            return Err(("lines not supported in this test worker".into(), true));
        }
    };
    let Reducer::Builtin(b) = reducer else {
        let mut total = 0i64;
        for item in items {
            let mut f = function.clone();
            f.args.insert("item".into(), item);
            total += call(&f.function, &f.args)?.as_i64().unwrap_or(0);
        }
        return Ok(json!(total));
    };
    let mut acc = Accumulator::new(*b);
    for item in items {
        let mut f = function.clone();
        f.args.insert("item".into(), item);
        let v = call(&f.function, &f.args)?;
        acc.add(&v).map_err(|e| (e.to_string(), true))?;
    }
    Ok(acc.to_value())
}

/// Leases and completes until every named object is final or time runs out.
pub fn drive(engine: &Engine, names: &[&str], limit: Duration) -> Vec<ObjectStatus> {
    let start = Instant::now();
    loop {
        let leases: Vec<Lease> = engine
            .lease("*", "test", 64, Duration::from_millis(20))
            .expect("lease");
        if !leases.is_empty() {
            let completions = leases
                .iter()
                .map(|l| Completion {
                    token: l.token,
                    outcome: execute(&l.work),
                })
                .collect();
            engine.complete(completions).expect("complete");
        }
        let statuses: Vec<ObjectStatus> = names
            .iter()
            .map(|n| engine.status(n).expect("status"))
            .collect();
        if statuses.iter().all(ObjectStatus::is_final) {
            return statuses;
        }
        assert!(
            start.elapsed() < limit,
            "not finished in {limit:?}: {statuses:#?}"
        );
    }
}

pub fn task_status(s: &ObjectStatus) -> &kontinuum_api::TaskStatus {
    match s {
        ObjectStatus::Task(t) => t,
        other => panic!("not a task: {other:?}"),
    }
}

pub fn future_status(s: &ObjectStatus) -> &kontinuum_api::FutureStatus {
    match s {
        ObjectStatus::Future(f) => f,
        other => panic!("not a future: {other:?}"),
    }
}
