//! The SDK's engine calls over HTTP: `ctx.child` (/v1/children),
//! `ctx.spawn` (/v1/spawn) and a map leaf's runtime split (/v1/split),
//! with the worker runtime in this process on a `RemoteSource`.

use kontinuum_api::{FnRef, ObjectId};
use kontinuum_engine::EngineConfig;
use kontinuum_server::Client;
use kontinuum_testkit::{ServerOptions, TestServer};
use kontinuum_worker::{RemoteConfig, RemoteSource, Runtime, RuntimeConfig, std_registry};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

struct Setup {
    client: Client,
    runtime: Option<Runtime<RemoteSource>>,
    _server: TestServer,
}

async fn setup(config: EngineConfig, concurrency: usize) -> Setup {
    let server = TestServer::with(ServerOptions::default().engine(config)).await;
    let url = server.url().to_string();
    let mut registry = std_registry();
    registry.register("test.fanout", |ctx, args| async move {
        let n = args.require("n")?.as_u64().unwrap_or(0);
        for i in 1..=n {
            let square = FnRef::new("std.square").arg("item", i);
            ctx.child(square, 1).await?;
        }
        let echo = FnRef::new("std.echo").arg("spawned", true);
        ctx.spawn_call(&echo).await?;
        Ok(Value::Null)
    });
    let source = Arc::new(RemoteSource::new(RemoteConfig::new(&url)).unwrap());
    let runtime = Runtime::start(
        source,
        Arc::new(registry),
        RuntimeConfig::new("*", concurrency),
    );
    Setup {
        client: server.client(),
        runtime: Some(runtime),
        _server: server,
    }
}

fn future(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "kontinuum.dev/v1alpha1", "kind": "HierarchicalFuture",
           "metadata": {"name": name}, "spec": spec})
}

async fn finish(s: &Setup, name: &str) -> Value {
    let names = [ObjectId::parse_in(name, "default").unwrap()];
    let views = tokio::time::timeout(
        Duration::from_secs(30),
        s.client.wait(&names, Duration::from_millis(10)),
    )
    .await
    .unwrap()
    .unwrap();
    views[0].status.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_and_spawns_go_over_http() {
    let mut s = setup(EngineConfig::default(), 4).await;
    s.client
        .submit(vec![future(
            "fan",
            json!({"call": {"function": "test.fanout", "args": {"n": 4}}}),
        )])
        .await
        .unwrap();
    let status = finish(&s, "future/fan").await;
    assert_eq!(status["phase"], "Succeeded", "{status}");
    assert_eq!(
        status["nodes"], 5,
        "the call and its four children: {status}"
    );
    let text = status["result"].to_string();
    for square in ["1", "4", "9", "16"] {
        assert!(text.contains(square), "{text}");
    }
    // The spawned task is an engine task of its own: the pool drains.
    s.runtime.take().unwrap().shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_map_leaf_splits_over_http() {
    let config = EngineConfig {
        lease: Duration::from_millis(600),
        split_after: Duration::from_millis(200),
        ..EngineConfig::default()
    };
    let mut s = setup(config, 4).await;
    s.client
        .submit(vec![future(
            "skewed",
            json!({"map": {"source": {"items": (0..20).collect::<Vec<_>>()},
                "function": {"function": "std.sleep", "args": {"ms": 100}},
                "shardSize": 20, "reduce": "count"}}),
        )])
        .await
        .unwrap();
    let status = finish(&s, "future/skewed").await;
    assert_eq!(status["phase"], "Succeeded", "{status}");
    assert_eq!(status["result"], 20, "each item counted exactly once");
    let nodes = status["nodes"].as_u64().unwrap();
    assert!(nodes > 1, "the single leaf never split: {status}");
    s.runtime.take().unwrap().shutdown().await;
}
