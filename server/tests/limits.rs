//! The input limits over HTTP: the same rule and words as `kontinuum run`,
//! a 400 naming the field, and a store that stays readable.

mod common;

use common::{start, task};
use kontinuum_api::limits::{self, MAX_BODY_NESTING};
use kontinuum_engine::{Engine, EngineConfig};
use serde_json::json;
use std::time::Duration;

/// `{"a": ... 1}` as JSON text, `levels` deep.
fn nested(levels: usize) -> String {
    format!("{}1{}", r#"{"a":"#.repeat(levels), "}".repeat(levels))
}

fn submit_body(args: &str) -> Vec<u8> {
    format!(
        r#"{{"objects": [{{"apiVersion": "kontinuum.dev/v1alpha1", "kind": "Task",
            "metadata": {{"name": "deep"}},
            "spec": {{"call": {{"function": "std.echo", "args": {{"x": {args}}}}}}}}}]}}"#
    )
    .into_bytes()
}

/// Depth 121 passed validation and then broke the store; 122 and more hit
/// serde_json's own limit with other words. Now every depth past the limit
/// is refused: by validation naming the field, or, for a body too deep to
/// parse, in a sentence that states the same limit.
#[tokio::test]
async fn a_manifest_nested_too_deeply_is_a_400_at_any_depth() {
    let s = start(None).await;
    for levels in [61, 62, 100, 114, 115, 121, 122, 125, 500] {
        let (status, body) = s
            .send("POST", "/v1/objects", Some(submit_body(&nested(levels))))
            .await;
        assert_eq!(status, 400, "{levels}: {body}");
        let message = body["message"].as_str().unwrap();
        if 2 + 4 + levels <= MAX_BODY_NESTING {
            assert_eq!(
                body["problems"][0]["field"], "spec.call.args",
                "{levels}: {body}"
            );
            assert_eq!(
                body["problems"][0]["message"],
                limits::too_deep(),
                "{levels}"
            );
        } else {
            assert_eq!(message, limits::body_too_deep(), "{levels}: {body}");
        }
    }
    let (status, body) = s
        .send("POST", "/v1/objects", Some(submit_body(&nested(60))))
        .await;
    assert_eq!(status, 201, "{body}");
    let dir = s.stop_keeping_store().await;
    let engine = Engine::open(dir.path(), EngineConfig::default()).unwrap();
    let deep = kontinuum_api::ObjectId::task("default", "deep");
    assert_eq!(engine.objects().unwrap(), std::slice::from_ref(&deep));
    engine.status(&deep).unwrap();
}

#[tokio::test]
async fn a_number_beyond_a_double_is_a_400_naming_the_field() {
    let s = start(None).await;
    let (status, body) = s
        .send("POST", "/v1/objects", Some(submit_body(r#"[1, 1e400]"#)))
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["problems"][0]["field"], "spec.call.args.x[1]",
        "{body}"
    );
    assert_eq!(body["problems"][0]["message"], limits::not_finite("1e+400"));
    s.healthy().await;
    s.stop().await;
}

/// A remote worker's result is the other way in: too deep (or a number out
/// of range) fails the task, and the store reopens.
#[tokio::test]
async fn a_result_the_store_could_not_read_back_fails_the_task() {
    let s = start(None).await;
    for (name, value) in [("deep", nested(100)), ("huge", "[1e400]".to_string())] {
        let (status, body) = s
            .post(
                "/v1/objects",
                json!({"objects": [task(name, json!({"function": "std.echo"}))]}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        let (_, leases) = s
            .post(
                "/v1/lease",
                json!({"worker": "w", "pool": "*", "max": 1, "waitMs": 5000}),
            )
            .await;
        let token = &leases["leases"][0]["token"];
        let complete = format!(
            r#"{{"completions": [{{"token": {token}, "outcome": {{"status": "success", "value": {value}}}}}]}}"#
        );
        let (status, body) = s
            .send("POST", "/v1/complete", Some(complete.into_bytes()))
            .await;
        assert_eq!(
            (status, &body["acks"][0]),
            (200, &json!("accepted")),
            "{body}"
        );
        let (_, object) = s
            .send("GET", &format!("/v1/objects/default/task/{name}"), None)
            .await;
        assert_eq!(object["status"]["phase"], "Failed", "{object}");
        let message = object["status"]["error"]["message"].as_str().unwrap();
        assert!(
            message.starts_with("the function's result was refused: "),
            "{message}"
        );
    }
    let dir = s.stop_keeping_store().await;
    tokio::time::sleep(Duration::from_millis(10)).await;
    let engine = Engine::open(dir.path(), EngineConfig::default()).unwrap();
    assert_eq!(engine.objects().unwrap().len(), 2);
}
