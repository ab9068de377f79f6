//! Workers confined to a namespace by their token (in a cluster, a
//! ServiceAccount token checked by TokenReview; here a scripted
//! authenticator): they lease, complete and read only their own
//! namespace's work, get 403 for anything else, and the refusals name
//! nothing of the other namespace. The shared token still reaches all.

use kontinuum_engine::{Engine, EngineConfig};
use kontinuum_server::Server;
use kontinuum_server::auth::{AuthError, AuthFuture, Authenticator, Caller};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

const SHARED: &str = "shared-secret";

/// `tok-NS` is a worker of namespace NS; `expired` and anything else are
/// refused, `human` is valid but not a ServiceAccount.
struct Scripted {
    calls: AtomicUsize,
}

impl Authenticator for Scripted {
    fn authenticate<'a>(&'a self, token: &'a str) -> AuthFuture<'a> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            match token.strip_prefix("tok-") {
                Some(ns) => Ok(Caller::Namespace {
                    namespace: ns.to_string(),
                    subject: format!("system:serviceaccount:{ns}:default"),
                }),
                None if token == "human" => {
                    Err(AuthError::Forbidden("not a ServiceAccount".into()))
                }
                None => Err(AuthError::Rejected(
                    "the token was not accepted (expired)".into(),
                )),
            }
        })
    }
}

struct Api {
    base: String,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Api {
    async fn call(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(serde_json::to_vec(&b).unwrap());
        }
        let resp = req.send().await.unwrap();
        let code = resp.status().as_u16();
        let bytes = resp.bytes().await.unwrap();
        (code, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }
}

async fn start() -> (Api, Arc<Scripted>) {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), EngineConfig::default()).unwrap();
    let auth = Arc::new(Scripted {
        calls: AtomicUsize::new(0),
    });
    let server = Server::bind_with(
        engine,
        "127.0.0.1:0".parse().unwrap(),
        Some(SHARED.into()),
        Some(auth.clone()),
    )
    .await
    .unwrap();
    let addr = server.local_addr().unwrap();
    tokio::spawn(server.run(std::future::pending()));
    (
        Api {
            base: format!("http://{addr}"),
            http: reqwest::Client::new(),
            _dir: dir,
        },
        auth,
    )
}

fn task(ns: &str, name: &str, secret: &str) -> Value {
    json!({"apiVersion": "kontinuum.dev/v1alpha1", "kind": "Task",
           "metadata": {"name": name, "namespace": ns},
           "spec": {"pool": "p", "call": {"function": "std.echo", "args": {"secret": secret}}}})
}

fn no_word_of_a(body: &Value) {
    let text = body.to_string();
    for word in ["team-a", "alpha-secret", "job-a"] {
        assert!(!text.contains(word), "the refusal leaks '{word}': {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_of_namespace_b_cannot_touch_namespace_a() {
    let (api, _) = start().await;
    let (code, body) = api
        .call(
            SHARED,
            "POST",
            "/v1/objects",
            Some(json!({"objects": [
                task("team-a", "job-a", "alpha-secret"),
                task("team-b", "job-b", "beta")
            ]})),
        )
        .await;
    assert_eq!(code, 201, "{body}");

    // b leases from pool p: only b's task, however often it asks.
    let lease = json!({"worker": "wb", "pool": "p", "max": 10, "waitMs": 0});
    let (code, body) = api
        .call("tok-team-b", "POST", "/v1/lease", Some(lease.clone()))
        .await;
    assert_eq!(code, 200, "{body}");
    let leases = body["leases"].as_array().unwrap().clone();
    assert_eq!(leases.len(), 1, "{body}");
    assert_eq!(leases[0]["work"]["call"]["args"]["secret"], "beta");
    let (_, again) = api
        .call("tok-team-b", "POST", "/v1/lease", Some(lease))
        .await;
    assert_eq!(again["leases"], json!([]), "{again}");

    // a's lease, taken by a's worker, is out of b's reach.
    let (_, body) = api
        .call(
            "tok-team-a",
            "POST",
            "/v1/lease",
            Some(json!({"worker": "wa", "pool": "p", "max": 10})),
        )
        .await;
    let a_token = body["leases"][0]["token"].as_u64().expect("a's lease");
    let attempts = [
        ("POST", "/v1/heartbeat", json!({"token": a_token})),
        (
            "POST",
            "/v1/complete",
            json!({"completions": [
            {"token": a_token, "outcome": {"status": "success", "value": "forged"}}]}),
        ),
        ("POST", "/v1/release", json!({"tokens": [a_token]})),
        ("POST", "/v1/split", json!({"token": a_token, "at": 1})),
    ];
    for (method, path, body) in attempts {
        let (code, answer) = api.call("tok-team-b", method, path, Some(body)).await;
        assert_eq!(code, 403, "{path}: {answer}");
        assert_eq!(answer["error"], "forbidden", "{path}: {answer}");
        assert!(
            answer["message"].as_str().unwrap().contains("team-b"),
            "{answer}"
        );
        no_word_of_a(&answer);
    }
    // Reading, listing, cancelling, submitting into a: refused or invisible.
    for (method, path) in [
        ("GET", "/v1/objects/team-a/task/job-a"),
        ("GET", "/v1/objects/team-a/task/job-a/result"),
        ("GET", "/v1/objects/team-a/task/job-a/tree"),
        ("POST", "/v1/objects/team-a/task/job-a/cancel"),
        ("GET", "/v1/objects?namespace=team-a"),
    ] {
        let (code, answer) = api.call("tok-team-b", method, path, None).await;
        assert_eq!(code, 403, "{path}: {answer}");
        no_word_of_a(&answer);
    }
    let (code, answer) = api
        .call(
            "tok-team-b",
            "POST",
            "/v1/objects",
            Some(json!({"objects": [task("team-a", "x", "y")]})),
        )
        .await;
    assert_eq!(code, 403, "{answer}");
    let (code, list) = api.call("tok-team-b", "GET", "/v1/objects", None).await;
    assert_eq!(code, 200);
    no_word_of_a(&list);
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "{list}");
    let (_, workers) = api.call("tok-team-b", "GET", "/v1/workers", None).await;
    assert_eq!(workers["workers"].as_array().unwrap().len(), 1, "{workers}");
    assert_eq!(workers["workers"][0]["worker"], "wb");

    // a's task is untouched: a's worker completes it.
    let (code, body) = api
        .call(
            "tok-team-a",
            "POST",
            "/v1/complete",
            Some(json!({"completions": [
            {"token": a_token, "outcome": {"status": "success", "value": "done"}}]})),
        )
        .await;
    assert_eq!(
        (code, body["acks"][0].clone()),
        (200, json!("accepted")),
        "{body}"
    );
    let (_, a) = api
        .call(SHARED, "GET", "/v1/objects/team-a/task/job-a", None)
        .await;
    assert_eq!(a["status"]["result"], "done", "{a}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_are_refused_and_refusals_are_not_remembered() {
    let (api, auth) = start().await;
    let (code, body) = api.call("expired", "GET", "/v1/workers", None).await;
    assert_eq!(code, 401, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("expired"),
        "{body}"
    );
    let (code, body) = api.call("human", "GET", "/v1/workers", None).await;
    assert_eq!(
        (code, body["error"].as_str()),
        (403, Some("forbidden")),
        "{body}"
    );
    let before = auth.calls.load(Ordering::SeqCst);
    let (code, _) = api.call("expired", "GET", "/v1/workers", None).await;
    assert_eq!(code, 401);
    assert_eq!(auth.calls.load(Ordering::SeqCst), before + 1, "asked again");
    // The shared token never reaches the authenticator.
    let (code, _) = api.call(SHARED, "GET", "/v1/workers", None).await;
    assert_eq!(code, 200);
    assert_eq!(auth.calls.load(Ordering::SeqCst), before + 1);
}
