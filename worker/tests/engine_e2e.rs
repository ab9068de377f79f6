//! std functions end to end through the real engine with in-process workers.

use kontinuum_api::{FutureStatus, ObjectId, Phase, TaskStatus};
use kontinuum_engine::{Engine, EngineConfig, ObjectStatus, Submission};
use kontinuum_worker::{Registry, start_in_process, std_registry};
use serde_json::{Value, json};
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn open(dir: &std::path::Path) -> Engine {
    let config = EngineConfig {
        lease: Duration::from_millis(900),
        split_after: Duration::from_millis(200),
        ..Default::default()
    };
    Engine::open(dir, config).unwrap()
}

fn task(name: &str, spec: &str) -> Submission {
    Submission::task("default", name, serde_yaml::from_str(spec).unwrap())
}

fn future(name: &str, spec: &str) -> Submission {
    Submission::future("default", name, serde_yaml::from_str(spec).unwrap())
}

/// The Task or future `name` in "default".
fn status(engine: &Engine, name: &str) -> ObjectStatus {
    engine
        .status(&ObjectId::task("default", name))
        .or_else(|_| engine.status(&ObjectId::future("default", name)))
        .unwrap()
}

async fn wait_final(engine: &Engine, names: &[&str]) -> Vec<ObjectStatus> {
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let statuses: Vec<ObjectStatus> = names.iter().map(|n| status(engine, n)).collect();
        if statuses.iter().all(ObjectStatus::is_final) {
            return statuses;
        }
        assert!(Instant::now() < until, "not final in time: {statuses:#?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn task_status(s: &ObjectStatus) -> &TaskStatus {
    match s {
        ObjectStatus::Task(t) => t,
        other => panic!("not a task: {other:?}"),
    }
}

fn future_status(s: &ObjectStatus) -> &FutureStatus {
    match s {
        ObjectStatus::Future(f) => f,
        other => panic!("not a future: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn std_tasks_and_maps_run_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    let mut text = tempfile::NamedTempFile::new().unwrap();
    for i in 0..500 {
        writeln!(text, "The quick fox {i}, the lazy dog.").unwrap();
    }
    let path = text.path().to_str().unwrap();
    engine
        .submit(vec![
            task("sum", "{call: {function: std.sum, args: {a: 4, b: 5}}}"),
            task("exec", r#"{call: {function: std.exec, args: {command: [sh, -c, "echo '{\"x\": 1}'"]}}}"#),
            task("fail", "{call: {function: std.fail, args: {message: no luck, permanent: true}}}"),
            task("unknown", "{call: {function: my.missing}, retry: {maxAttempts: 1}}"),
            task("panic", "{call: {function: test.panic}}"),
            future(
                "squares",
                "{map: {source: {range: {start: 0, end: 200000}}, function: {function: std.square}, shardSize: 1000, reduce: sum}}",
            ),
            future(
                "words",
                &format!("{{map: {{source: {{lines: {{path: '{path}'}}}}, function: {{function: std.wordcount}}, shardSize: 4096, reduce: merge}}}}"),
            ),
            // Only the workers look for the file: the engine took it.
            future(
                "nowhere",
                "{map: {source: {lines: {path: /no/such/corpus.txt}}, function: {function: std.wordcount}, reduce: merge}}",
            ),
        ])
        .unwrap();
    let mut registry: Registry = std_registry();
    registry.register_sync("test.panic", |_, _| panic!("deliberate"));
    let workers = start_in_process(engine.clone(), Arc::new(registry), "*", 4);
    let names = [
        "sum", "exec", "fail", "unknown", "panic", "squares", "words", "nowhere",
    ];
    let s = wait_final(&engine, &names).await;
    workers.shutdown().await;

    assert_eq!(task_status(&s[0]).result, Some(json!(9)));
    assert_eq!(task_status(&s[1]).result, Some(json!({"x": 1})));
    let fail = task_status(&s[2]);
    assert_eq!(fail.phase, Some(Phase::Failed));
    assert_eq!(
        fail.error.as_ref().map(|e| e.message.as_str()),
        Some("no luck")
    );
    assert_eq!(fail.attempts, 1, "permanent errors are not retried");
    let unknown = task_status(&s[3]).error.as_ref().map(|e| e.message.clone());
    assert_eq!(
        unknown.as_deref(),
        Some("function 'my.missing' is not registered by the workers of pool '*'")
    );
    let panic = task_status(&s[4]).error.as_ref().map(|e| e.message.clone());
    assert_eq!(
        panic.as_deref(),
        Some("function 'test.panic' panicked: deliberate")
    );

    let squares = future_status(&s[5]);
    let expected: i128 = (0..200_000i128).map(|i| i * i).sum();
    assert_eq!(
        squares.result.as_ref().map(Value::to_string),
        Some(expected.to_string())
    );
    let words = future_status(&s[6]);
    let result = words.result.clone().unwrap();
    assert_eq!(
        (
            result["the"].clone(),
            result["fox"].clone(),
            result["7"].clone()
        ),
        (json!(1000), json!(500), json!(1))
    );
    let nowhere = future_status(&s[7]);
    assert_eq!(nowhere.phase, Some(Phase::Failed));
    assert_eq!(
        nowhere
            .conditions
            .iter()
            .find(|c| c.type_ == "Failed")
            .map(|c| c.message.as_str()),
        Some(
            "spec.map.source.lines.path: lines source '/no/such/corpus.txt': \
             No such file or directory (os error 2)"
        ),
        "{nowhere:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_leaf_splits_for_idle_workers_and_counts_each_item_once() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    // One leaf of 20,000 items at 50 µs each: ~1 s alone, so after
    // split_after (200 ms) with idle workers the engine asks it to split.
    engine
        .submit(vec![future(
            "skew",
            "{map: {source: {range: {start: 0, end: 20000}}, function: {function: test.slow}, shardSize: 20000, reduce: sum}}",
        )])
        .unwrap();
    let mut registry = std_registry();
    registry.register_sync("test.slow", |_, args| {
        std::thread::sleep(Duration::from_micros(50));
        Ok(args.require("item")?.clone())
    });
    let workers = start_in_process(engine.clone(), Arc::new(registry), "*", 4);
    let s = wait_final(&engine, &["skew"]).await;
    workers.shutdown().await;
    let f = future_status(&s[0]);
    assert_eq!(f.result, Some(json!((0..20_000i64).sum::<i64>())));
    assert!(f.nodes > 1, "the leaf was never split: {f:?}");
    assert_eq!(
        f.progress.as_ref().map(|p| (p.done, p.total)),
        Some((20_000, 20_000))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_stops_running_work_at_its_next_heartbeat() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    engine
        .submit(vec![task(
            "nap",
            "{call: {function: std.sleep, args: {ms: 60000}}}",
        )])
        .unwrap();
    let workers = start_in_process(engine.clone(), Arc::new(std_registry()), "*", 1);
    while workers.running() == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let t = Instant::now();
    engine.cancel(&ObjectId::task("default", "nap")).unwrap();
    let s = wait_final(&engine, &["nap"]).await;
    assert_eq!(task_status(&s[0]).phase, Some(Phase::Cancelled));
    // The lease is 900 ms, so a heartbeat comes within ~300 ms.
    while workers.running() > 0 {
        assert!(
            t.elapsed() < Duration::from_secs(3),
            "still running after cancel"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The freed slot takes new work.
    engine
        .submit(vec![task(
            "after",
            "{call: {function: std.sum, args: {a: 1, b: 2}}}",
        )])
        .unwrap();
    let s = wait_final(&engine, &["after"]).await;
    assert_eq!(task_status(&s[0]).result, Some(json!(3)));
    workers.shutdown().await;
}
