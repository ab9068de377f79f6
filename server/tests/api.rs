//! The worker API over real HTTP: bad input of every kind gets the right
//! 4xx JSON answer and the server keeps serving; the lease/complete cycle
//! and the CLI endpoints work end to end.

mod common;

use common::{start, task};
use kontinuum_api::endpoints::MAX_BODY_BYTES;
use kontinuum_api::{ObjectId, ObjectKind};
use kontinuum_engine::{Engine, EngineConfig};
use kontinuum_server::{Client, ServeError, Server};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

#[tokio::test]
async fn malformed_and_mistyped_bodies_are_400_naming_the_field() {
    let s = start(None).await;
    let (status, body) = s
        .send("POST", "/v1/lease", Some(b"{\"worker\": ".to_vec()))
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "bad_request");
    assert!(
        body["message"].as_str().unwrap().contains("malformed JSON"),
        "{body}"
    );

    let (status, body) = s
        .post(
            "/v1/lease",
            json!({"worker": "w", "pool": "p", "max": "ten"}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["field"], "max", "{body}");

    let (status, body) = s
        .post(
            "/v1/complete",
            json!({"completions": [
            {"token": 1, "outcome": {"status": "success", "value": 1}},
            {"token": -4, "outcome": {"status": "success", "value": 1}}]}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["field"], "completions[1].token", "{body}");

    let (status, body) = s
        .post("/v1/heartbeat", json!({"token": 1, "extra": 2}))
        .await;
    assert_eq!(status, 400);
    assert!(
        body["message"].as_str().unwrap().contains("extra"),
        "{body}"
    );

    let (status, _) = s.send("POST", "/v1/heartbeat", Some(Vec::new())).await;
    assert_eq!(status, 400);
    let (status, _) = s
        .post("/v1/lease", json!({"worker": "w", "pool": "p", "max": 0}))
        .await;
    assert_eq!(status, 400);
    let (status, _) = s
        .send("POST", "/v1/heartbeat", Some(b"{\"token\":1} x".to_vec()))
        .await;
    assert_eq!(status, 400);
    s.healthy().await;
    s.stop().await;
}

#[tokio::test]
async fn unknown_routes_and_methods_are_json() {
    let s = start(None).await;
    let (status, body) = s.send("GET", "/v2/nothing", None).await;
    assert_eq!((status, body["error"].as_str()), (404, Some("not_found")));
    let (status, body) = s.send("GET", "/v1/lease", None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (405, Some("method_not_allowed"))
    );
    let (status, body) = s
        .send("GET", "/v1/objects/default/task/missing", None)
        .await;
    assert_eq!((status, body["error"].as_str()), (404, Some("not_found")));
    let (status, _) = s.send("GET", "/v1/objects/default/widget/x", None).await;
    assert_eq!(status, 404);
    let (status, _) = s.send("GET", "/v1/objects/task/sum", None).await;
    assert_eq!(status, 404, "the namespace is part of the path");
    let (status, body) = s.send("GET", "/v1/objects/default/task/%FF", None).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("bad_request")));
    let (status, body) = s
        .send("POST", "/v1/objects/default/task/%C3%28/cancel", None)
        .await;
    assert_eq!((status, body["error"].as_str()), (400, Some("bad_request")));
    let (status, body) = s.send("GET", "/v1/objects?kind=a&kind=b", None).await;
    assert_eq!(
        (status, body["field"].as_str()),
        (400, Some("kind")),
        "{body}"
    );
    s.healthy().await;
    s.stop().await;
}

#[tokio::test]
async fn a_100_mb_body_is_413_and_the_server_keeps_serving() {
    let s = start(None).await;
    let huge = vec![b' '; 100 << 20];
    let (status, body) = s.send("POST", "/v1/complete", Some(huge)).await;
    assert_eq!((status, body["error"].as_str()), (413, Some("too_large")));
    // Just over the limit: read, then refused.
    let mut over = b"{\"completions\": [], \"x\": \"".to_vec();
    over.resize(MAX_BODY_BYTES + 10, b'a');
    over.extend_from_slice(b"\"}");
    let (status, _) = s.send("POST", "/v1/complete", Some(over)).await;
    assert_eq!(status, 413);
    s.healthy().await;
    s.stop().await;
}

#[tokio::test]
async fn a_chunked_body_over_the_limit_is_413() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = start(None).await;
    let addr = s.base.trim_start_matches("http://").to_string();
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = "POST /v1/complete HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n";
    tcp.write_all(head.as_bytes()).await.unwrap();
    let chunk = vec![b' '; 1 << 20];
    for _ in 0..12 {
        let frame = format!("{:x}\r\n", chunk.len());
        if tcp.write_all(frame.as_bytes()).await.is_err()
            || tcp.write_all(&chunk).await.is_err()
            || tcp.write_all(b"\r\n").await.is_err()
        {
            break;
        }
    }
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut answer)).await;
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(text.contains("too_large"), "{text}");
    s.healthy().await;
    s.stop().await;
}

#[tokio::test]
async fn tokens_are_required_and_checked() {
    let mut s = start(Some("s3cret")).await;
    s.healthy().await; // probes need no token
    let (status, _) = s.send("GET", "/v1/objects", None).await;
    assert_eq!(status, 200);
    s.token = None;
    let (status, body) = s.send("GET", "/v1/objects", None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("unauthorized"))
    );
    s.token = Some("s3cres".into());
    let (status, _) = s.post("/v1/heartbeat", json!({"token": 1})).await;
    assert_eq!(status, 401);
    // Unauthenticated garbage is refused before it is read.
    let (status, _) = s.send("POST", "/v1/lease", Some(b"{{{".to_vec())).await;
    assert_eq!(status, 401);
    s.token = Some("s3cret".into());
    let (status, _) = s.post("/v1/heartbeat", json!({"token": 1})).await;
    assert_eq!(status, 200);
    s.stop().await;
}

#[tokio::test]
async fn no_token_beyond_loopback_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), EngineConfig::default()).unwrap();
    let any: SocketAddr = "0.0.0.0:0".parse().unwrap();
    let err = Server::bind(engine.clone(), any, None).await.err().unwrap();
    assert!(matches!(err, ServeError::TokenRequired(_)), "{err}");
    let err = Server::bind(engine.clone(), any, Some(String::new()))
        .await
        .err()
        .unwrap();
    assert!(matches!(err, ServeError::BadToken), "{err}");
    assert!(Server::bind(engine, any, Some("t".into())).await.is_ok());
}

#[tokio::test]
async fn stale_tokens_get_per_item_answers() {
    let s = start(None).await;
    let (status, body) = s
        .post(
            "/v1/complete",
            json!({"completions": [
            {"token": 12345, "outcome": {"status": "success", "value": 1}}]}),
        )
        .await;
    assert_eq!((status, body), (200, json!({"acks": ["stale"]})));
    let (status, body) = s.post("/v1/heartbeat", json!({"token": 12345})).await;
    assert_eq!((status, body["lost"].as_bool()), (200, Some(true)));
    let (status, body) = s.post("/v1/split", json!({"token": 12345, "at": 10})).await;
    assert_eq!((status, body["error"].as_str()), (409, Some("stale_lease")));
    let (status, body) = s
        .post(
            "/v1/children",
            json!({"token": 12345, "call": {"function": "std.echo"}}),
        )
        .await;
    assert_eq!((status, body["error"].as_str()), (409, Some("stale_lease")));
    let (status, body) = s
        .post(
            "/v1/spawn",
            json!({"token": 12345, "spec": {"call": {"function": "std.echo"}}}),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (409, Some("stale_lease")),
        "{body}"
    );
    s.healthy().await;
    s.stop().await;
}

#[tokio::test]
async fn submit_lease_complete_get_cancel() {
    let s = start(Some("t0k")).await;
    let client = Client::new(&s.base, Some("t0k".into())).unwrap();

    // Server-side validation names the object and the field.
    let bad = json!({"apiVersion": "kontinuum.dev/v1alpha1", "kind": "HierarchicalFuture",
        "metadata": {"name": "m"}, "spec": {"map": {"source": {"range": {"start": 0, "end": 9}},
        "function": {"function": "std.square"}, "shardSize": 0}}});
    let (status, body) = s
        .post(
            "/v1/objects",
            json!({"objects": [task("ok", json!({"function": "std.echo"})), bad]}),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid")),
        "{body}"
    );
    assert_eq!(body["problems"][0]["object"], 1);
    assert_eq!(body["problems"][0]["field"], "spec.map.shardSize");
    assert!(
        client.get(&id("ok")).await.unwrap_err().is_not_found(),
        "all or nothing"
    );

    let names = client
        .submit(vec![task(
            "sum",
            json!({"function": "std.sum", "args": {"a": 4, "b": 5}}),
        )])
        .await
        .unwrap();
    assert_eq!(names, vec!["default/task/sum".to_string()]);
    // The same spec again is a no-op; another spec under the name conflicts.
    client
        .submit(vec![task(
            "sum",
            json!({"function": "std.sum", "args": {"a": 4, "b": 5}}),
        )])
        .await
        .unwrap();
    let (status, body) = s
        .post(
            "/v1/objects",
            json!({"objects": [task("sum", json!({"function": "std.echo"}))]}),
        )
        .await;
    assert_eq!((status, body["error"].as_str()), (409, Some("conflict")));

    let (status, body) = s
        .post(
            "/v1/lease",
            json!({"worker": "w1", "pool": "*", "max": 10, "waitMs": 1000}),
        )
        .await;
    assert_eq!(status, 200);
    let leases = body["leases"].as_array().unwrap();
    assert_eq!(leases.len(), 1, "{body}");
    assert_eq!(leases[0]["work"]["call"]["function"], "std.sum");
    let token = leases[0]["token"].as_u64().unwrap();
    let (_, beat) = s
        .post("/v1/heartbeat", json!({"token": token, "progress": 0}))
        .await;
    assert_eq!(
        beat,
        json!({"cancelled": false, "lost": false, "split": false})
    );
    let done =
        json!({"completions": [{"token": token, "outcome": {"status": "success", "value": 9}}]});
    let (_, acks) = s.post("/v1/complete", done.clone()).await;
    assert_eq!(acks, json!({"acks": ["accepted"]}));
    let (_, acks) = s.post("/v1/complete", done).await;
    assert_eq!(
        acks,
        json!({"acks": ["stale"]}),
        "a repeated batch is stale, not counted twice"
    );

    let view = client.get(&id("sum")).await.unwrap();
    assert_eq!(view.kind, "Task");
    assert_eq!(
        (
            view.metadata.namespace.as_str(),
            view.metadata.name.as_str()
        ),
        ("default", "sum")
    );
    assert_eq!(view.status["phase"], "Succeeded");
    assert_eq!(view.status["result"], 9);
    let all = client.list(Some(ObjectKind::Task), None).await.unwrap();
    assert_eq!(all.len(), 1);
    let futures = client.list(Some(ObjectKind::Future), None).await.unwrap();
    assert!(futures.is_empty());

    let long = task(
        "nap",
        json!({"function": "std.sleep", "args": {"ms": 60000}}),
    );
    client.submit(vec![long]).await.unwrap();
    let view = client.cancel(&id("nap")).await.unwrap();
    assert_eq!(view.status["phase"], "Cancelled");
    let waited = client
        .wait(&[id("sum"), id("nap")], Duration::from_millis(10))
        .await
        .unwrap();
    assert_eq!(waited.len(), 2);
    s.stop().await;
}

#[tokio::test]
async fn a_long_poll_waits_for_work_and_wakes_on_it() {
    let s = start(None).await;
    let t0 = Instant::now();
    let (status, body) = s
        .post(
            "/v1/lease",
            json!({"worker": "w", "pool": "*", "max": 4, "waitMs": 600}),
        )
        .await;
    // A worker that never registered is asked to, on every answer.
    assert_eq!(
        (status, body),
        (200, json!({"leases": [], "register": true}))
    );
    assert!(
        t0.elapsed() >= Duration::from_millis(550),
        "{:?}",
        t0.elapsed()
    );

    let poll = s.post(
        "/v1/lease",
        json!({"worker": "w", "pool": "*", "max": 4, "waitMs": 20000}),
    );
    let submit = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let client = Client::new(&s.base, None).unwrap();
        client
            .submit(vec![task("e", json!({"function": "std.echo"}))])
            .await
            .unwrap();
    };
    let t0 = Instant::now();
    let ((status, body), ()) = tokio::join!(poll, submit);
    assert_eq!(status, 200);
    assert_eq!(body["leases"].as_array().unwrap().len(), 1);
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    // Shutdown is not held up by a poll in flight.
    let base = s.base.clone();
    let url = format!("{base}/v1/lease");
    let poll = async move {
        let body = json!({"worker": "w", "pool": "*", "max": 4, "waitMs": 30000});
        let resp = reqwest::Client::new()
            .post(url)
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), ())
    };
    let t0 = Instant::now();
    let stopper = async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        s.stop().await;
    };
    let ((status, _), ()) = tokio::join!(poll, stopper);
    assert_eq!(status, 200);
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    assert!(reqwest::get(format!("{base}/healthz")).await.is_err());
}

#[tokio::test]
async fn register_answers_the_limits() {
    let s = start(None).await;
    let (status, body) = s
        .post(
            "/v1/workers/register",
            json!({"worker": "w-1", "pool": "default",
            "functions": ["std.echo"], "concurrency": 4}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["worker"], "w-1");
    assert_eq!(body["maxBodyBytes"], MAX_BODY_BYTES);
    // A worker that leases without registering is listed too.
    let (_, body) = s
        .post("/v1/lease", json!({"worker": "w-2", "pool": "p", "max": 1}))
        .await;
    assert_eq!(body, json!({"leases": [], "register": true}));
    let workers = Client::new(&s.base, None).unwrap().workers().await.unwrap();
    let seen: Vec<_> = workers
        .iter()
        .map(|w| (w.worker.as_str(), w.functions.len()))
        .collect();
    assert_eq!(seen, vec![("w-1", 1), ("w-2", 0)]);
    let (status, body) = s
        .post("/v1/workers/register", json!({"worker": "w", "pool": ""}))
        .await;
    assert_eq!((status, body["field"].as_str()), (400, Some("pool")));
    s.stop().await;
}

#[test]
fn token_files_are_trimmed_and_must_hold_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    std::fs::write(&path, "abc123\n").unwrap();
    assert_eq!(kontinuum_server::token_from_file(&path).unwrap(), "abc123");
    std::fs::write(&path, " \n").unwrap();
    let err = kontinuum_server::token_from_file(&path).unwrap_err();
    assert!(matches!(err, ServeError::BadToken), "{err}");
    let err = kontinuum_server::token_from_file(&dir.path().join("missing")).unwrap_err();
    assert!(matches!(err, ServeError::TokenFile { .. }), "{err}");
}

/// Garbage and truncated bodies on every POST route: always a 4xx JSON
/// answer, never a 5xx or a dropped connection, and the server stays up.
#[tokio::test]
async fn garbage_on_every_route_is_a_4xx_json_answer() {
    let s = start(None).await;
    let routes = [
        "/v1/workers/register",
        "/v1/lease",
        "/v1/heartbeat",
        "/v1/complete",
        "/v1/split",
        "/v1/children",
        "/v1/spawn",
        "/v1/objects",
    ];
    let valid = json!({"completions": [{"token": 1, "outcome": {"status": "failure",
        "message": "x", "permanent": false}}], "objects": [task("t", json!({"function": "f"}))],
        "token": 5, "at": 3, "call": {"function": "std.echo"}, "pool": "p", "max": 2})
    .to_string();
    // A small deterministic generator: the same bodies on every run.
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for route in routes {
        for round in 0..25 {
            let body: Vec<u8> = match round % 3 {
                0 => (0..next() % 64).map(|_| next() as u8).collect(),
                1 => valid.as_bytes()[..(next() as usize % valid.len())].to_vec(),
                _ => {
                    let mut b = valid.as_bytes().to_vec();
                    let at = next() as usize % b.len();
                    b[at] = b"{}[]\":,0-e\\ x"[next() as usize % 13];
                    b
                }
            };
            let (status, answer) = s.send("POST", route, Some(body)).await;
            assert!((200..500).contains(&status), "{route}: {status} {answer}");
            if status >= 400 {
                assert!(answer["error"].is_string(), "{route}: {answer}");
            }
        }
    }
    s.healthy().await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listings_come_in_pages_that_the_client_follows() {
    let r = start(None).await;
    let mut objects: Vec<Value> = (0..1203)
        .map(|i| task(&format!("t{i:04}"), json!({"function": "std.echo"})))
        .collect();
    objects.push(
        json!({"apiVersion": "kontinuum.dev/v1alpha1", "kind": "HierarchicalFuture",
        "metadata": {"name": "f"}, "spec": {"parallel": [{"function": "std.echo"}]}}),
    );
    let body = serde_json::to_vec(&json!({"objects": objects})).unwrap();
    assert_eq!(r.send("POST", "/v1/objects", Some(body)).await.0, 201);

    // No limit: the default page, and a token for the rest.
    let (code, first) = r.send("GET", "/v1/objects", None).await;
    assert_eq!(code, 200, "{first}");
    assert_eq!(first["items"].as_array().unwrap().len(), 500);
    assert!(
        first["metadata"]["continue"].is_string(),
        "{}",
        first["metadata"]
    );

    // Small pages of one kind, in name order, each object once.
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let path = match &token {
            Some(t) => format!("/v1/objects?kind=task&limit=100&continue={t}"),
            None => "/v1/objects?kind=task&limit=100".to_string(),
        };
        let (code, page) = r.send("GET", &path, None).await;
        assert_eq!(code, 200, "{page}");
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 100);
        seen.extend(
            items
                .iter()
                .map(|o| o["metadata"]["name"].as_str().unwrap().to_string()),
        );
        match page["metadata"]["continue"].as_str() {
            Some(t) => token = Some(t.to_string()),
            None => break,
        }
    }
    let expected: Vec<String> = (0..1203).map(|i| format!("t{i:04}")).collect();
    assert_eq!(seen, expected);

    let client = Client::new(&r.base, None).unwrap();
    assert_eq!(client.list(None, None).await.unwrap().len(), 1204);
    assert_eq!(
        client
            .list(Some(ObjectKind::Future), None)
            .await
            .unwrap()
            .len(),
        1
    );

    for bad in [
        "limit=0",
        "limit=5001",
        "limit=x",
        "kind=future&continue=default/task/t0001",
    ] {
        let (code, body) = r.send("GET", &format!("/v1/objects?{bad}"), None).await;
        assert_eq!(code, 400, "{bad}: {body}");
        assert_eq!(body["error"], "bad_request", "{bad}: {body}");
    }
}

/// A Task in the namespace "default".
fn id(name: &str) -> ObjectId {
    ObjectId::task("default", name)
}

#[tokio::test]
async fn objects_live_in_namespaces() {
    let s = start(None).await;
    let client = Client::new(&s.base, None).unwrap();
    let in_ns = |ns: &str, a: i64| {
        json!({"apiVersion": "kontinuum.dev/v1alpha1", "kind": "Task",
            "metadata": {"name": "sum", "namespace": ns},
            "spec": {"call": {"function": "std.sum", "args": {"a": a, "b": 1}}}})
    };
    let names = client
        .submit(vec![in_ns("team-a", 1), in_ns("team-b", 2)])
        .await
        .unwrap();
    assert_eq!(names, ["team-a/task/sum", "team-b/task/sum"]);
    let only_b = client.list(None, Some("team-b")).await.unwrap();
    assert_eq!(only_b.len(), 1);
    assert_eq!(only_b[0].metadata.namespace, "team-b");
    let (status, body) = s.send("GET", "/v1/objects/team-a/kt/sum", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["metadata"],
        json!({"name": "sum", "namespace": "team-a"})
    );
    assert!(client.get(&id("sum")).await.unwrap_err().is_not_found());
    s.stop().await;
}
