//! A fuzz target over the worker API's request bodies, run as an ordinary
//! test against a real server: `/v1/lease`, `/v1/heartbeat`, `/v1/complete`
//! (with tokens of real leases too) and `/v1/objects` (the examples, with a
//! part replaced by something hostile), plus byte-level damage. Every answer
//! is a JSON 2xx or 4xx (never a 5xx or a dropped connection), memory stays
//! bounded, and the store reopens with every object's status readable.
//! `PROPTEST_CASES=N` runs more cases.

mod common;

use common::{Running, start};
use kontinuum_engine::{Engine, EngineConfig};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::{Value, json};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

/// JSON text a hostile or careless client might send where a value goes.
fn hostile() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "1e400",
            "-1e400",
            "1e-400",
            "-0",
            "18446744073709551616",
            "18446744073709551615",
            "-1",
            "0.5",
            "1.7976931348623157e308",
            "123456789012345678901234567890",
            "\"\\u0000\"",
            "\"\\ud800\"",
            "\"ünï©ødé 𝄞\\u202e\"",
            "\"\"",
            "true",
            "null",
            "[]",
            "{}",
            "{\"a\": 1, \"a\": 2}",
            "{\"$fn\": {\"function\": \"std.echo\"}}",
            "\"std.su\\u0000m\"",
            "{\"status\": \"success\"}",
        ])
        .prop_map(String::from),
        (0usize..200).prop_map(|n| format!("{}1{}", "[".repeat(n), "]".repeat(n))),
        (0usize..130).prop_map(|n| format!("{}1{}", "{\"a\":".repeat(n), "}".repeat(n))),
        (1usize..3000).prop_map(|n| "9".repeat(n)),
        (1usize..2000).prop_map(|n| format!("[{}]", vec!["0"; n].join(","))),
        "\\PC{0,30}".prop_map(|s| Value::String(s).to_string()),
    ]
}

/// A valid value or a hostile one.
fn or_hostile(valid: impl Strategy<Value = String> + 'static) -> BoxedStrategy<String> {
    prop_oneof![2 => valid, 1 => hostile()].boxed()
}

#[derive(Clone, Debug)]
enum Request {
    /// A body for a route.
    Body(&'static str, String),
    /// A task is submitted and leased, then completed with this outcome.
    Complete(String),
}

fn lease_body() -> impl Strategy<Value = String> {
    (
        or_hostile(Just("\"w\"".to_string())),
        or_hostile(
            prop::sample::select(vec!["\"*\"", "\"default\"", "\"\""]).prop_map(String::from),
        ),
        or_hostile((0usize..5000).prop_map(|n| n.to_string())),
        // Never a long wait: an idle pool would hold the test for 30 s.
        (0u64..30).prop_map(|n| n.to_string()),
    )
        .prop_map(|(w, p, m, wait)| {
            format!(r#"{{"worker": {w}, "pool": {p}, "max": {m}, "waitMs": {wait}}}"#)
        })
}

fn heartbeat_body() -> impl Strategy<Value = String> {
    (
        or_hostile(any::<u64>().prop_map(|n| n.to_string())),
        or_hostile(Just("3".into())),
    )
        .prop_map(|(t, p)| format!(r#"{{"token": {t}, "progress": {p}}}"#))
}

fn outcome() -> impl Strategy<Value = String> {
    prop_oneof![
        hostile().prop_map(|v| format!(r#"{{"status": "success", "value": {v}}}"#)),
        (hostile(), or_hostile(Just("false".into()))).prop_map(|(m, p)| format!(
            r#"{{"status": "failure", "message": {m}, "permanent": {p}}}"#
        )),
        hostile(),
    ]
}

fn complete_body() -> impl Strategy<Value = String> {
    prop::collection::vec(
        (
            or_hostile(any::<u64>().prop_map(|n| n.to_string())),
            outcome(),
        ),
        0..4,
    )
    .prop_map(|items| {
        let items: Vec<String> = items
            .iter()
            .map(|(t, o)| format!(r#"{{"token": {t}, "outcome": {o}}}"#))
            .collect();
        format!(r#"{{"completions": [{}]}}"#, items.join(", "))
    })
}

/// The examples as JSON manifests.
fn examples() -> Vec<Value> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut docs = Vec::new();
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    for path in paths
        .iter()
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
    {
        let text = std::fs::read_to_string(path).unwrap();
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let mut value: Value = serde::Deserialize::deserialize(doc).unwrap();
            // The server reads `lines` files itself: make the path absolute.
            if let Some(Value::String(p)) = value.pointer_mut("/spec/map/source/lines/path") {
                *p = dir.join(&*p).display().to_string();
            }
            docs.push(value);
        }
    }
    docs
}

/// Every place in `value` a hostile value can go, as JSON pointers.
fn pointers(value: &Value, at: String, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => map
            .iter()
            .for_each(|(k, v)| pointers(v, format!("{at}/{k}"), out)),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .for_each(|(i, v)| pointers(v, format!("{at}/{i}"), out)),
        _ => {}
    }
    out.push(at);
}

/// An example with the value at one pointer replaced by `text`.
fn mutated(doc: &Value, at: usize, text: &str) -> String {
    const HOLE: &str = "\u{1}hole\u{1}";
    let mut places = Vec::new();
    pointers(doc, String::new(), &mut places);
    let mut doc = doc.clone();
    if let Some(slot) = doc.pointer_mut(&places[at % places.len()]) {
        *slot = Value::String(HOLE.into());
    }
    let hole = Value::String(HOLE.into()).to_string();
    doc.to_string().replace(&hole, text)
}

fn objects_body(examples: Vec<Value>) -> impl Strategy<Value = String> {
    let n = examples.len();
    (0..n, any::<usize>(), hostile(), 0usize..1000).prop_map(move |(which, at, text, unique)| {
        let doc = mutated(&examples[which], at, &text);
        // A fresh name most of the time, so accepted objects pile up.
        let doc = doc.replacen("\"name\":\"", &format!("\"name\":\"f{unique}-"), 1);
        format!(r#"{{"objects": [{doc}]}}"#)
    })
}

/// Byte-level damage to an otherwise plausible body.
fn damaged(body: impl Strategy<Value = String>) -> impl Strategy<Value = String> {
    (
        body,
        any::<usize>(),
        prop::sample::select(b"\0\x01{}[]\":,\\-e9 \xff".to_vec()),
        0u8..3,
    )
        .prop_map(|(body, at, byte, how)| {
            let mut bytes = body.into_bytes();
            let i = at % (bytes.len() + 1);
            match how {
                0 => bytes.insert(i, byte),
                1 if i < bytes.len() => bytes[i] = byte,
                _ => bytes.truncate(i),
            }
            String::from_utf8_lossy(&bytes).into_owned()
        })
}

fn request(examples: Vec<Value>) -> impl Strategy<Value = Request> {
    prop_oneof![
        2 => lease_body().prop_map(|b| Request::Body("/v1/lease", b)),
        2 => heartbeat_body().prop_map(|b| Request::Body("/v1/heartbeat", b)),
        2 => complete_body().prop_map(|b| Request::Body("/v1/complete", b)),
        3 => outcome().prop_map(Request::Complete),
        // Results about as deep as a body can carry: with the continuation
        // that wraps them once more, the depths that once made records the
        // store could not read back.
        2 => (96usize..128)
            .prop_map(|n| format!(r#"{{"status": "success", "value": {}1{}}}"#, "[".repeat(n), "]".repeat(n)))
            .prop_map(Request::Complete),
        4 => objects_body(examples.clone()).prop_map(|b| Request::Body("/v1/objects", b)),
        2 => damaged(objects_body(examples)).prop_map(|b| Request::Body("/v1/objects", b)),
        1 => damaged(complete_body()).prop_map(|b| Request::Body("/v1/complete", b)),
    ]
}

/// A JSON answer in 200..500 (a 4xx names its error).
fn answered(route: &str, status: u16, answer: &Value) -> Result<(), TestCaseError> {
    prop_assert!((200..500).contains(&status), "{route}: {status} {answer}");
    if status >= 400 {
        prop_assert!(answer["error"].is_string(), "{route}: {answer}");
    }
    Ok(())
}

async fn send(s: &Running, route: &str, body: String) -> Result<(u16, Value), TestCaseError> {
    let (status, answer) = s.send("POST", route, Some(body.into_bytes())).await;
    answered(route, status, &answer)?;
    Ok((status, answer))
}

/// Submits a task, leases it and completes it with `outcome`.
async fn complete_a_lease(s: &Running, n: usize, outcome: String) -> Result<(), TestCaseError> {
    let task = json!({"apiVersion": "kontinuum.dev/v1alpha1", "kind": "Task",
        "metadata": {"name": format!("c{n}")}, "spec": {"pool": "fuzz", "call": {"function": "std.echo"},
        "onSuccess": {"function": "std.echo"}}});
    let (status, answer) = send(s, "/v1/objects", json!({"objects": [task]}).to_string()).await?;
    prop_assert_eq!(status, 201, "{}", answer);
    let lease = json!({"worker": "f", "pool": "fuzz", "max": 1, "waitMs": 5000}).to_string();
    let (_, leases) = send(s, "/v1/lease", lease).await?;
    let token = &leases["leases"][0]["token"];
    prop_assert!(token.is_u64(), "{}", leases);
    let body = format!(r#"{{"completions": [{{"token": {token}, "outcome": {outcome}}}]}}"#);
    send(s, "/v1/complete", body).await?;
    let (status, object) = s
        .send("GET", &format!("/v1/objects/default/task/c{n}"), None)
        .await;
    prop_assert_eq!(status, 200, "{}", object);
    Ok(())
}

fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

#[test]
fn request_bodies_never_break_the_server_or_its_store() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let server = runtime.block_on(start(None));
    let cases = if std::env::var_os("PROPTEST_CASES").is_some() {
        Config::default().cases
    } else {
        160
    };
    let config = Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    };
    let rng = TestRng::deterministic_rng(RngAlgorithm::ChaCha);
    let mut runner = TestRunner::new_with_rng(config, rng);
    let counter = AtomicUsize::new(0);
    let result = runner.run(&request(examples()), |request| {
        let n = counter.fetch_add(1, Ordering::Relaxed);
        runtime.block_on(async {
            match request {
                Request::Body(route, body) => send(&server, route, body).await.map(drop),
                Request::Complete(outcome) => complete_a_lease(&server, n, outcome).await,
            }
        })
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    runtime.block_on(server.healthy());
    let dir = runtime.block_on(server.stop_keeping_store());
    drop(runtime);
    let engine = Engine::open(dir.path(), EngineConfig::default()).unwrap();
    let names = engine.objects().unwrap();
    assert!(names.len() >= 20, "few objects were accepted: {names:?}");
    for name in names {
        engine
            .status(&name)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    let peak = peak_rss();
    assert!(peak < 1 << 30, "peak RSS {} MB", peak >> 20);
}
