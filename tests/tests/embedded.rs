//! Cross-crate behaviour of the embedded engine with in-process workers
//! (no cluster needed): skewed maps rebalance by splitting running leaves.

use kontinuum_engine::{Engine, EngineConfig, ObjectStatus, Submission};
use kontinuum_worker::{Args, Ctx, Registry, start_in_process, std_registry};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Sleeps `item` tens of milliseconds, then returns the item: the cost of an
/// item is its value.
fn costly_registry() -> Registry {
    let mut registry = std_registry();
    registry.register("test.costly", |_ctx: Ctx, args: Args<'static>| async move {
        let item = args.get("item").and_then(Value::as_u64).unwrap_or(0);
        tokio::time::sleep(Duration::from_millis(item * 10)).await;
        Ok(json!(item))
    });
    registry
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_skewed_single_leaf_splits_and_uses_all_workers() {
    let dir = tempfile::tempdir().unwrap();
    let config = EngineConfig {
        lease: Duration::from_millis(600),
        split_after: Duration::from_millis(300),
        ..EngineConfig::default()
    };
    let engine = Engine::open(dir.path(), config).unwrap();
    // One leaf of 40 items costing 20 ms each: 800 ms alone on one worker
    // plus the costly tail below.
    let mut items: Vec<u64> = vec![2; 40];
    // Most of the cost sits in the last few items: 8 items of 250 ms.
    items.extend([25; 8]);
    let spec = serde_yaml::from_str(&format!(
        "map: {{source: {{items: {}}}, function: {{function: test.costly}}, shardSize: 1000, reduce: sum}}",
        serde_json::to_string(&items).unwrap()
    ))
    .unwrap();
    let sequential_ms: u64 = items.iter().map(|i| i * 10).sum();
    engine
        .submit(vec![Submission::future("default", "skew", spec)])
        .unwrap();
    let started = Instant::now();
    let workers = start_in_process(engine.clone(), Arc::new(costly_registry()), "*", 8);
    let status = loop {
        let s = engine
            .status(&kontinuum_api::ObjectId::future("default", "skew"))
            .unwrap();
        if s.is_final() {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "not finished: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let wall = started.elapsed();
    workers.shutdown().await;
    let ObjectStatus::Future(f) = status else {
        panic!("{status:?}")
    };
    assert_eq!(f.phase, Some(kontinuum_api::Phase::Succeeded), "{f:?}");
    assert_eq!(
        f.result,
        Some(json!(items.iter().sum::<u64>())),
        "each item counted exactly once"
    );
    assert_eq!(
        f.progress.as_ref().map(|p| (p.done, p.total)),
        Some((48, 48))
    );
    assert!(
        f.nodes > 1,
        "the leaf split into children: {} nodes",
        f.nodes
    );
    // Alone the leaf takes the sequential time; split, its tail runs in parallel.
    assert!(
        wall < Duration::from_millis(sequential_ms * 3 / 4),
        "took {wall:?}, sequential is {sequential_ms} ms"
    );
}
