//! The runtime against the in-memory source: batching, limits, panics,
//! cancellation, lost leases, timeouts, the split protocol, shutdown.

use crate::registry::Registry;
use crate::runtime::Runtime;
use crate::shared::RuntimeConfig;
use crate::std_fns::std_registry;
use crate::testing::{FakeSource, lease};
use kontinuum_api::accumulator::Accumulator;
use kontinuum_api::work::{HeartbeatReply, Outcome, Slice, Work};
use kontinuum_api::{BuiltinReducer, FnRef, Reducer};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

fn call(function: &str, args: Value) -> Work {
    let mut f = FnRef::new(function);
    f.args = args.as_object().cloned().unwrap_or_default();
    Work::Call { call: f }
}

fn start(source: &Arc<FakeSource>, registry: Registry, concurrency: usize) -> Runtime<FakeSource> {
    let mut config = RuntimeConfig::new("p", concurrency);
    config.lease_wait = Duration::from_millis(20);
    config.shutdown_grace = Duration::from_millis(200);
    Runtime::start(source.clone(), Arc::new(registry), config)
}

fn failure(outcome: &Outcome) -> (&str, bool) {
    match outcome {
        Outcome::Failure { message, permanent } => (message, *permanent),
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_calls_and_batches_leases_and_completions() {
    let source = Arc::new(FakeSource::default());
    for t in 0..2000 {
        source.push(lease(t, call("std.echo", json!({"n": t})), 10_000));
    }
    let rt = start(&source, std_registry(), 64);
    let done = source.wait_completions(2000).await;
    for c in &done {
        assert_eq!(
            c.outcome,
            Outcome::Success {
                value: json!({"n": c.token})
            }
        );
    }
    assert!(source.lease_sizes.lock().iter().all(|&n| n <= 64));
    let batches = source.complete_batches.lock().len();
    assert!(batches < 1000, "{batches} complete calls for 2000 tasks");
    rt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_runs_more_than_concurrency_tasks() {
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let mut registry = Registry::new();
    let (r, p) = (running.clone(), peak.clone());
    registry.register("test.busy", move |_, _| {
        let (r, p) = (r.clone(), p.clone());
        async move {
            let now = r.fetch_add(1, Ordering::SeqCst) + 1;
            p.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(2)).await;
            r.fetch_sub(1, Ordering::SeqCst);
            Ok(Value::Null)
        }
    });
    let source = Arc::new(FakeSource::default());
    for t in 0..100 {
        source.push(lease(t, call("test.busy", json!({})), 10_000));
    }
    let rt = start(&source, registry, 5);
    source.wait_completions(100).await;
    assert_eq!(peak.load(Ordering::SeqCst), 5);
    rt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panics_fail_the_task_not_the_worker() {
    let mut registry = std_registry();
    registry.register_sync("test.panic", |_, _| panic!("kaboom"));
    registry.register("test.panic_async", |_, _| async move {
        tokio::task::yield_now().await;
        panic!("async kaboom {}", 7)
    });
    let source = Arc::new(FakeSource::default());
    source.push(lease(1, call("test.panic", json!({})), 10_000));
    source.push(lease(2, call("test.panic_async", json!({})), 10_000));
    source.push(lease(3, call("nope", json!({})), 10_000));
    source.push(lease(4, call("std.echo", json!({"ok": true})), 10_000));
    let rt = start(&source, registry, 2);
    source.wait_completions(4).await;
    let c = source.completion(1).unwrap();
    assert_eq!(
        failure(&c.outcome),
        ("function 'test.panic' panicked: kaboom", true)
    );
    let c = source.completion(2).unwrap();
    assert_eq!(
        failure(&c.outcome),
        ("function 'test.panic_async' panicked: async kaboom 7", true)
    );
    let c = source.completion(3).unwrap();
    assert_eq!(
        failure(&c.outcome),
        (
            "function 'nope' is not registered by the workers of pool 'p'",
            true
        )
    );
    assert_eq!(
        source.completion(4).unwrap().outcome,
        Outcome::Success {
            value: json!({"ok": true})
        }
    );
    rt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancellation_and_lost_leases_stop_tasks() {
    let source = Arc::new(FakeSource::default());
    let cancelled = HeartbeatReply {
        cancelled: true,
        ..Default::default()
    };
    let lost = HeartbeatReply {
        lost: true,
        ..Default::default()
    };
    source.replies.lock().insert(1, cancelled);
    source.replies.lock().insert(2, lost);
    // 30 ms leases: the first heartbeat goes after 10 ms.
    source.push(lease(1, call("std.sleep", json!({"ms": 60_000})), 30));
    source.push(lease(2, call("std.sleep", json!({"ms": 60_000})), 30));
    let rt = start(&source, std_registry(), 2);
    let t = Instant::now();
    let done = source.wait_completions(1).await;
    assert_eq!(failure(&done[0].outcome), ("cancelled", true));
    // The lost task reports nothing, and both slots come back.
    source.push(lease(3, call("std.echo", json!({})), 10_000));
    source.push(lease(4, call("std.echo", json!({})), 10_000));
    source.wait_completions(3).await;
    assert!(t.elapsed() < Duration::from_secs(5));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(source.completion(2).is_none());
    assert_eq!(rt.running(), 0);
    rt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_fail_the_attempt() {
    let source = Arc::new(FakeSource::default());
    let mut l = lease(1, call("std.sleep", json!({"ms": 60_000})), 10_000);
    l.timeout_ms = Some(30);
    source.push(l);
    let rt = start(&source, std_registry(), 1);
    let done = source.wait_completions(1).await;
    assert_eq!(failure(&done[0].outcome), ("timed out after 30 ms", false));
    rt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_carry_progress_of_long_tasks_only() {
    let mut registry = std_registry();
    registry.register("test.report", |ctx, _| async move {
        ctx.progress(42);
        tokio::time::sleep(Duration::from_millis(60)).await;
        Ok(Value::Null)
    });
    let source = Arc::new(FakeSource::default());
    source.push(lease(1, call("test.report", json!({})), 30));
    source.push(lease(2, call("std.echo", json!({})), 30));
    let rt = start(&source, registry, 2);
    source.wait_completions(2).await;
    let beats = source.heartbeats.lock().clone();
    assert!(beats.contains(&(1, Some(42))), "{beats:?}");
    assert!(beats.iter().all(|(t, _)| *t == 1), "{beats:?}");
    rt.shutdown().await;
}

fn slow_registry() -> Registry {
    let mut registry = std_registry();
    // 20 µs per item: a 100,000-item leaf would take seconds.
    registry.register_sync("test.slow_id", |_, args| {
        std::thread::sleep(Duration::from_micros(20));
        Ok(args.require("item")?.clone())
    });
    registry
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_requests_cut_the_leaf_at_the_next_position() {
    let source = Arc::new(FakeSource::default());
    source.accept_splits.store(true, Ordering::SeqCst);
    let split = HeartbeatReply {
        split: true,
        ..Default::default()
    };
    source.replies.lock().insert(1, split.clone());
    source.replies.lock().insert(2, split);
    let sum = Reducer::Builtin(BuiltinReducer::Sum);
    let range = Slice::Range {
        start: 10,
        end: 100_010,
    };
    source.push(lease(
        1,
        Work::MapLeaf {
            function: FnRef::new("test.slow_id"),
            slice: range,
            reducer: sum.clone(),
        },
        30,
    ));
    let items: Vec<Value> = (0..100_000).map(|i| json!(i)).collect();
    let items = Slice::Items { offset: 500, items };
    source.push(lease(
        2,
        Work::MapLeaf {
            function: FnRef::new("test.slow_id"),
            slice: items,
            reducer: sum,
        },
        30,
    ));
    let rt = start(&source, slow_registry(), 2);
    source.wait_completions(2).await;
    let splits = source.splits.lock().clone();
    for (token, base, first) in [(1u64, 10i64, 10i128), (2, 500, 0)] {
        let at = splits
            .iter()
            .find(|(t, _)| *t == token)
            .map(|(_, at)| *at)
            .unwrap();
        assert!(
            at > base && at < base + 100_000,
            "token {token} split at {at}"
        );
        let Outcome::Success { value } = source.completion(token).unwrap().outcome else {
            panic!()
        };
        let acc = Accumulator::from_value(&value).unwrap();
        // Exactly the items before the cut were processed.
        let n = (at - base) as i128;
        assert_eq!(acc.count() as i128, n);
        assert_eq!(acc.finish(), json!((first..first + n).sum::<i128>()));
    }
    rt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_split_runs_the_leaf_to_its_end() {
    let source = Arc::new(FakeSource::default());
    source.replies.lock().insert(
        1,
        HeartbeatReply {
            split: true,
            ..Default::default()
        },
    );
    let count = Reducer::Builtin(BuiltinReducer::Count);
    let range = Slice::Range {
        start: 0,
        end: 3000,
    };
    source.push(lease(
        1,
        Work::MapLeaf {
            function: FnRef::new("test.slow_id"),
            slice: range,
            reducer: count,
        },
        30,
    ));
    let rt = start(&source, slow_registry(), 1);
    let done = source.wait_completions(1).await;
    assert_eq!(source.splits.lock().len(), 1);
    let Outcome::Success { value } = &done[0].outcome else {
        panic!()
    };
    assert_eq!(Accumulator::from_value(value).unwrap().count(), 3000);
    let beats = source.heartbeats.lock().clone();
    assert!(
        beats
            .iter()
            .any(|(_, p)| p.is_some_and(|p| p > 0 && p <= 3000)),
        "{beats:?}"
    );
    rt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_quick_work_and_hands_back_the_rest() {
    let source = Arc::new(FakeSource::default());
    source.push(lease(1, call("std.sleep", json!({"ms": 20})), 10_000));
    source.push(lease(2, call("std.sleep", json!({"ms": 60_000})), 10_000));
    let rt = start(&source, std_registry(), 2);
    while source.lease_sizes.lock().iter().sum::<usize>() < 2 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let t = Instant::now();
    rt.shutdown().await;
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert_eq!(
        source.completion(1).unwrap().outcome,
        Outcome::Success { value: Value::Null }
    );
    assert!(source.completion(2).is_none(), "handed back, not failed");
    assert_eq!(source.released.lock().clone(), vec![2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_cannot_overtake_an_outcome_on_its_way() {
    // The task's outcome is slow to reach the flusher (a busy machine, made
    // certain here): shutdown must still deliver it before stopping.
    let source = Arc::new(FakeSource::default());
    source.push(lease(1, call("std.sleep", json!({"ms": 50})), 10_000));
    let rt = start(&source, std_registry(), 1);
    *rt.shared.report_delay.lock() = Duration::from_secs(1);
    while rt.running() == 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    rt.shutdown().await;
    let c = source.completion(1);
    assert_eq!(
        c.map(|c| c.outcome),
        Some(Outcome::Success { value: Value::Null }),
        "the outcome was lost: the task would stay Running until its lease expired"
    );
    assert!(source.released.lock().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_and_inline_calls_reach_the_source() {
    let mut registry = std_registry();
    registry.register("test.parent", |ctx, args| async move {
        let f = args.fnref("f")?;
        let node = ctx.child(f.clone(), 5).await?;
        let inline = ctx.call_inline(&f).await?;
        ctx.spawn_call(&f).await?;
        Ok(json!({"node": node, "inline": inline}))
    });
    let source = Arc::new(FakeSource::default());
    let f = FnRef::new("std.sum").arg("a", 2).arg("b", 3);
    source.push(lease(
        9,
        call("test.parent", json!({"f": f.to_value()})),
        10_000,
    ));
    let rt = start(&source, registry, 1);
    let done = source.wait_completions(1).await;
    assert_eq!(
        done[0].outcome,
        Outcome::Success {
            value: json!({"node": 1000, "inline": 5})
        }
    );
    assert_eq!(source.children.lock().clone(), vec![(9, f.clone(), 5)]);
    let spawned = source.spawned.lock().clone();
    assert_eq!((spawned[0].pool.as_str(), &spawned[0].call), ("p", &f));
    rt.shutdown().await;
}

/// A kernel-path function slow enough to be asked to split.
struct SlowKernel;

impl crate::ctx::Function for SlowKernel {
    fn invoke(&self, _: &crate::Ctx, args: crate::Args<'_>) -> crate::Invocation {
        crate::Invocation::Ready(args.require("item").cloned())
    }
    fn int_kernel(&self, _: &serde_json::Map<String, Value>) -> Option<crate::ctx::IntKernel<'_>> {
        Some(Box::new(|i| {
            std::thread::sleep(Duration::from_micros(20));
            Ok(crate::invocation::Scalar::Int(i128::from(i)))
        }))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kernel_path_splits_too() {
    let mut registry = std_registry();
    registry.register_function("test.slow_kernel", Arc::new(SlowKernel));
    let source = Arc::new(FakeSource::default());
    source.accept_splits.store(true, Ordering::SeqCst);
    let split = HeartbeatReply {
        split: true,
        ..Default::default()
    };
    source.replies.lock().insert(1, split);
    let sum = Reducer::Builtin(BuiltinReducer::Sum);
    let range = Slice::Range {
        start: -50,
        end: 99_950,
    };
    let work = Work::MapLeaf {
        function: FnRef::new("test.slow_kernel"),
        slice: range,
        reducer: sum,
    };
    source.push(lease(1, work, 30));
    let rt = start(&source, registry, 1);
    let done = source.wait_completions(1).await;
    let at = source.splits.lock()[0].1;
    assert!(at > -50 && at < 99_950, "split at {at}");
    let Outcome::Success { value } = &done[0].outcome else {
        panic!()
    };
    let acc = Accumulator::from_value(value).unwrap();
    assert_eq!(acc.count() as i64, at + 50);
    assert_eq!(acc.finish(), json!((-50..at as i128).sum::<i128>()));
    rt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_with_every_slot_busy_still_ends_after_the_grace() {
    let source = Arc::new(FakeSource::default());
    source.push(lease(1, call("std.sleep", json!({"ms": 60_000})), 10_000));
    let rt = start(&source, std_registry(), 1);
    while rt.running() == 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let t = Instant::now();
    rt.shutdown().await;
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert!(source.completion(1).is_none());
    assert_eq!(source.released.lock().clone(), vec![1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lines_leaf_splits_at_a_line_start_and_loses_no_line() {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    let expected: Vec<Value> = (0..5000)
        .map(|i| json!(format!("line {i} {}", "x".repeat(i % 9))))
        .collect();
    for line in &expected {
        std::io::Write::write_all(
            &mut file,
            format!("{}\n", line.as_str().unwrap()).as_bytes(),
        )
        .unwrap();
    }
    let path = file.path().to_str().unwrap().to_string();
    let len = std::fs::metadata(&path).unwrap().len();
    let source = Arc::new(FakeSource::default());
    source.accept_splits.store(true, Ordering::SeqCst);
    source.replies.lock().insert(
        1,
        HeartbeatReply {
            split: true,
            ..Default::default()
        },
    );
    let collect = Reducer::Builtin(BuiltinReducer::Collect);
    let slice = Slice::Lines {
        path: path.clone(),
        start: 0,
        end: len,
    };
    let work = Work::MapLeaf {
        function: FnRef::new("test.slow_id"),
        slice,
        reducer: collect.clone(),
    };
    source.push(lease(1, work, 30));
    let rt = start(&source, slow_registry(), 1);
    let done = source.wait_completions(1).await;
    rt.shutdown().await;
    let at = source.splits.lock()[0].1;
    let bytes = std::fs::read(&path).unwrap();
    assert!(
        at > 0 && (at as u64) < len && bytes[at as usize - 1] == b'\n',
        "split at {at}"
    );
    let Outcome::Success { value } = &done[0].outcome else {
        panic!()
    };
    let mut got = Accumulator::from_value(value)
        .unwrap()
        .finish()
        .as_array()
        .unwrap()
        .clone();
    // The rest, as the engine's new children would read it.
    let rest = Slice::Lines {
        path,
        start: at as u64,
        end: len,
    };
    let rest = Work::MapLeaf {
        function: FnRef::new("std.echo"),
        slice: rest,
        reducer: collect,
    };
    let ctx = crate::Ctx::detached(Arc::new(std_registry()));
    let rest = crate::execute(&ctx, rest).await.unwrap();
    let rest = Accumulator::from_value(&rest).unwrap().finish();
    got.extend(rest.as_array().unwrap().iter().map(|o| o["item"].clone()));
    assert_eq!(got, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fast_functions_do_not_lease_ahead_of_slow_deliveries() {
    let source = Arc::new(FakeSource::default());
    *source.complete_delay.lock() = Duration::from_millis(30);
    let tasks = 3_000;
    for t in 0..tasks {
        source.push(lease(t, call("std.echo", json!({})), 10_000));
    }
    let mut config = RuntimeConfig::new("p", 8);
    config.max_batch = 16;
    config.lease_wait = Duration::from_millis(20);
    let rt = Runtime::start(source.clone(), Arc::new(std_registry()), config);
    // Leased and not yet delivered: at most every slot plus the batches on
    // their way (4 of 16).
    let bound = 8 + crate::completions::IN_FLIGHT * 16;
    let mut worst = 0;
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        // Delivered first: read the other way round, a delivery in between
        // could outnumber the leases read.
        let delivered = source.completions.lock().len();
        let leased: usize = source.lease_sizes.lock().iter().sum();
        worst = worst.max(leased - delivered);
        if delivered == tasks as usize {
            break;
        }
        assert!(Instant::now() < until, "only {delivered} delivered");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert!(
        worst <= bound,
        "{worst} tasks leased ahead of delivery (bound {bound})"
    );
    rt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_tasks_by_function_and_outcome_and_free_their_slots() {
    let metrics = Arc::new(crate::WorkerMetrics::new("p", 4));
    let source = Arc::new(FakeSource::default());
    for t in 0..10 {
        source.push(lease(t, call("std.echo", json!({"n": t})), 10_000));
    }
    for t in 10..13 {
        source.push(lease(t, call("std.fail", json!({"message": "no"})), 10_000));
    }
    let mut config = RuntimeConfig::new("p", 4);
    config.lease_wait = Duration::from_millis(20);
    config.metrics = Some(metrics.clone());
    let rt = Runtime::start(source.clone(), Arc::new(std_registry()), config);
    source.wait_completions(13).await;
    rt.shutdown().await;
    let text = metrics.render();
    for line in [
        "kontinuum_worker_tasks_total{function=\"std.echo\",outcome=\"succeeded\",pool=\"p\"} 10",
        "kontinuum_worker_tasks_total{function=\"std.fail\",outcome=\"failed\",pool=\"p\"} 3",
        "kontinuum_worker_task_duration_seconds_count{function=\"std.echo\",pool=\"p\"} 10",
        "kontinuum_worker_slots_busy{pool=\"p\"} 0",
        "kontinuum_worker_slots{pool=\"p\"} 4",
    ] {
        assert!(text.contains(line), "{line} missing:\n{text}");
    }
}
