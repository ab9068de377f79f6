//! A tiny synchronous worker for engine tests: it evaluates a handful of
//! functions itself so the engine is tested without the worker crate. The
//! engines run on a manual clock: time moves only when a test moves it, so
//! a slow machine cannot expire a lease or reorder timers behind a test's back.

#![allow(dead_code)]

use kontinuum_api::ObjectId;
use kontinuum_api::accumulator::Accumulator;
use kontinuum_api::reducer::Reducer;
use kontinuum_api::work::{Completion, Lease, Outcome, Slice, SourceRef, Work};
use kontinuum_engine::{Clock, Engine, EngineConfig, ManualClock, ObjectStatus, Submission};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

pub const LEASE: Duration = Duration::from_millis(500);
pub const SPLIT_AFTER: Duration = Duration::from_millis(200);

/// An engine on a manual clock (no ticker: [`advance`] moves time and runs
/// the timers).
pub fn open(dir: &std::path::Path) -> Engine {
    let config = EngineConfig {
        lease: LEASE,
        split_after: SPLIT_AFTER,
        clock: ManualClock::starting_now().into(),
        ..Default::default()
    };
    Engine::open(dir, config).expect("open engine")
}

/// An engine on the wall clock, with its ticker.
pub fn open_wall(dir: &std::path::Path) -> Engine {
    let config = EngineConfig {
        lease: LEASE,
        split_after: SPLIT_AFTER,
        ..Default::default()
    };
    Engine::open(dir, config).expect("open engine")
}

fn manual(engine: &Engine) -> &ManualClock {
    match engine.clock() {
        Clock::Manual(m) => m,
        Clock::Wall => panic!("the test engine runs on a manual clock"),
    }
}

/// The engine's time (ms since the epoch).
pub fn now(engine: &Engine) -> u64 {
    engine.clock().now_ms()
}

/// Moves the engine's clock on and runs its timers, as the ticker would.
pub fn advance(engine: &Engine, by: Duration) {
    manual(engine).advance(by);
    engine.tick().expect("timers");
}

/// Leases what is queued right now, without waiting.
pub fn lease_now(engine: &Engine, max: usize) -> Vec<Lease> {
    engine
        .lease("*", None, "test", max, Duration::ZERO)
        .expect("lease")
}

pub fn yaml<T: serde::de::DeserializeOwned>(text: &str) -> T {
    serde_yaml::from_str(text).expect("test yaml")
}

/// A Task in the namespace "default".
pub fn task(name: &str, spec: &str) -> Submission {
    Submission::task("default", name, yaml(spec))
}

/// A HierarchicalFuture in the namespace "default".
pub fn future(name: &str, spec: &str) -> Submission {
    Submission::future("default", name, yaml(spec))
}

pub fn tid(name: &str) -> ObjectId {
    ObjectId::task("default", name)
}

pub fn fid(name: &str) -> ObjectId {
    ObjectId::future("default", name)
}

/// The status of the Task or future `name` in "default".
pub fn status(engine: &Engine, name: &str) -> ObjectStatus {
    match engine.status(&tid(name)) {
        Ok(s) => s,
        Err(_) => engine.status(&fid(name)).expect("status"),
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
        "t.len" => Ok(json!(
            args.get("item").and_then(Value::as_str).map_or(0, str::len)
        )),
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
        Work::Plan { source } => plan(source),
        Work::Output { store, key, value } => write_output(store, key, value),
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
        Slice::Lines { path, start, end } => lines_of(path, *start, *end)?,
        Slice::ObjectLines {
            store,
            parts,
            start,
            end,
        } => object_lines(store, parts, *start, *end)?,
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

/// Where the test worker keeps a bucket's objects: files named by key
/// (listed by plain prefix: a stand-in for a store, not its semantics).
pub fn bucket_dir(bucket: &str) -> std::path::PathBuf {
    std::env::temp_dir()
        .join("kontinuum-engine-test-buckets")
        .join(bucket)
}

/// The test worker's plan: a file's length, or a bucket's listing, and 8
/// bytes a line (the test files' lines are all "line NN\n").
fn plan(source: &SourceRef) -> Result<Value, (String, bool)> {
    match source {
        SourceRef::Lines { path } => match std::fs::metadata(path) {
            Ok(meta) => Ok(json!({"bytes": meta.len(), "avgLineBytes": 8})),
            Err(e) => Err((format!("lines source '{path}': {e}"), true)),
        },
        SourceRef::Objects { store, key, .. } => {
            let dir = bucket_dir(&store.bucket);
            let mut objects = Vec::new();
            for entry in std::fs::read_dir(&dir).map_err(|e| (format!("bucket: {e}"), true))? {
                let entry = entry.map_err(|e| (e.to_string(), true))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with(key.as_str()) {
                    let size = entry.metadata().map_err(|e| (e.to_string(), true))?.len();
                    objects.push(json!({"key": name, "size": size, "etag": "e"}));
                }
            }
            objects.sort_by(|a, b| a["key"].as_str().cmp(&b["key"].as_str()));
            let bytes: u64 = objects
                .iter()
                .map(|o| o["size"].as_u64().unwrap_or(0))
                .sum();
            Ok(json!({"bytes": bytes, "avgLineBytes": 8, "objects": objects}))
        }
    }
}

/// The test worker's output: the value as JSON in the bucket's directory.
fn write_output(
    store: &kontinuum_api::work::StoreRef,
    key: &str,
    value: &Value,
) -> Result<Value, (String, bool)> {
    use sha2::Digest;
    let bytes = serde_json::to_vec(value).map_err(|e| (e.to_string(), true))?;
    let path = bucket_dir(&store.bucket).join(key);
    std::fs::write(&path, &bytes).map_err(|e| (format!("{}: {e}", path.display()), false))?;
    let digest: String = sha2::Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(json!({"url": store.url(key), "bytes": bytes.len(), "sha256": digest}))
}

/// The lines a leaf over objects reads: in each part, those whose first
/// byte (at the part's base + offset) lies in `start..end`.
fn object_lines(
    store: &kontinuum_api::work::StoreRef,
    parts: &[kontinuum_api::work::ObjectPart],
    start: u64,
    end: u64,
) -> Result<Vec<Value>, (String, bool)> {
    let mut items = Vec::new();
    for part in parts {
        let path = bucket_dir(&store.bucket).join(&part.key);
        let (from, to) = (
            start.saturating_sub(part.base),
            end.saturating_sub(part.base),
        );
        items.extend(lines_of(&path.display().to_string(), from, to)?);
    }
    Ok(items)
}

/// The lines whose first byte is in `start..end`, each as a string item.
fn lines_of(path: &str, start: u64, end: u64) -> Result<Vec<Value>, (String, bool)> {
    let text = std::fs::read(path).map_err(|e| (format!("lines source '{path}': {e}"), false))?;
    let mut items = Vec::new();
    let mut at = 0u64;
    for line in text.split_inclusive(|&b| b == b'\n') {
        if (start..end).contains(&at) {
            let line = String::from_utf8_lossy(line);
            items.push(json!(line.trim_end_matches('\n')));
        }
        at += line.len() as u64;
    }
    Ok(items)
}

/// Leases and completes until every named object is final. When nothing is
/// queued, the clock moves on by 10 ms (so delays and backoff run out);
/// `limit` bounds the engine's time, and the wall time as a safety net.
pub fn drive(engine: &Engine, names: &[&str], limit: Duration) -> Vec<ObjectStatus> {
    drive_with(engine, limit, || {
        names.iter().map(|n| status(engine, n)).collect()
    })
}

/// `drive` for objects of any namespace.
pub fn drive_ids(engine: &Engine, ids: &[ObjectId], limit: Duration) -> Vec<ObjectStatus> {
    drive_with(engine, limit, || {
        ids.iter()
            .map(|id| engine.status(id).expect("status"))
            .collect()
    })
}

/// Completes these leases with what the test functions compute.
pub fn complete_all(engine: &Engine, leases: &[Lease]) {
    let completions = leases
        .iter()
        .map(|l| Completion {
            token: l.token,
            outcome: execute(&l.work),
        })
        .collect();
    engine.complete(completions).expect("complete");
}

fn drive_with(
    engine: &Engine,
    limit: Duration,
    statuses: impl Fn() -> Vec<ObjectStatus>,
) -> Vec<ObjectStatus> {
    let start = Instant::now();
    let engine_start = now(engine);
    loop {
        let leases = lease_now(engine, 64);
        if leases.is_empty() {
            advance(engine, Duration::from_millis(10));
        } else {
            complete_all(engine, &leases);
        }
        let statuses = statuses();
        if statuses.iter().all(ObjectStatus::is_final) {
            return statuses;
        }
        let engine_time = Duration::from_millis(now(engine) - engine_start);
        assert!(
            engine_time < limit && start.elapsed() < Duration::from_secs(120),
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
