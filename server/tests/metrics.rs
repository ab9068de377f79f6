//! The worker API's metrics over real HTTP: requests counted by route
//! template (never the raw path) and status; the engine's series and the
//! workers connected per pool, scraped from `serve_metrics`.

use kontinuum_engine::{Engine, EngineConfig};
use kontinuum_server::Server;
use kontinuum_server::metrics::{sample as value, serve_metrics};
use prometheus::Registry;
use serde_json::{Value, json};
use std::net::SocketAddr;

struct Setup {
    api: String,
    metrics: String,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

const TOKEN: &str = "metrics-test";

async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), EngineConfig::default()).unwrap();
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let server = Server::bind(engine, any, Some(TOKEN.into())).await.unwrap();
    let registry = Registry::new();
    server.register_metrics(&registry).unwrap();
    assert!(
        server.register_metrics(&registry).is_err(),
        "a second registration is refused, not doubled"
    );
    let api = format!("http://{}", server.local_addr().unwrap());
    tokio::spawn(server.run(std::future::pending()));
    let metrics = serve_metrics(any, registry, std::future::pending())
        .await
        .unwrap();
    Setup {
        api,
        metrics: format!("http://{metrics}/metrics"),
        http: reqwest::Client::new(),
        _dir: dir,
    }
}

impl Setup {
    async fn call(&self, method: &str, path: &str, body: Option<Value>, auth: bool) -> u16 {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self.http.request(method, format!("{}{path}", self.api));
        if auth {
            req = req.bearer_auth(TOKEN);
        }
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        req.send().await.unwrap().status().as_u16()
    }

    async fn scrape(&self) -> String {
        let resp = self.http.get(&self.metrics).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        resp.text().await.unwrap()
    }
}

#[tokio::test]
async fn requests_are_counted_by_route_template_and_status() {
    let s = setup().await;
    for name in ["a", "b", "c"] {
        let path = format!("/v1/objects/default/task/{name}");
        assert_eq!(s.call("GET", &path, None, true).await, 404);
    }
    assert_eq!(s.call("GET", "/no/such/route", None, true).await, 404);
    assert_eq!(s.call("GET", "/v1/workers", None, false).await, 401);
    assert_eq!(s.call("GET", "/v1/workers", None, true).await, 200);
    assert_eq!(s.call("GET", "/healthz", None, false).await, 200);
    let text = s.scrape().await;
    let requests = |route: &str, code: &str| {
        value(
            &text,
            "kontinuum_http_requests_total",
            &[("route", route), ("code", code)],
        )
    };
    assert_eq!(
        requests("/v1/objects/{namespace}/{kind}/{name}", "404"),
        Some(3.0),
        "{text}"
    );
    assert_eq!(requests("unmatched", "404"), Some(1.0));
    assert_eq!(requests("/v1/workers", "401"), Some(1.0));
    assert_eq!(requests("/v1/workers", "200"), Some(1.0));
    assert_eq!(requests("/healthz", "200"), Some(1.0));
    assert!(
        !text.contains("task/a"),
        "a raw path leaked into a label:\n{text}"
    );
}

#[tokio::test]
async fn engine_series_and_connected_workers_per_pool() {
    let s = setup().await;
    let tasks: Vec<Value> = ["team-a", "team-b"]
        .iter()
        .map(|ns| {
            json!({"apiVersion": "kontinuum.dev/v1alpha1", "kind": "Task",
                   "metadata": {"name": "one", "namespace": ns},
                   "spec": {"call": {"function": "std.echo"}}})
        })
        .collect();
    assert_eq!(
        s.call("POST", "/v1/objects", Some(json!({"objects": tasks})), true)
            .await,
        201
    );
    let text = s.scrape().await;
    for ns in ["team-a", "team-b"] {
        let pool = [("namespace", ns), ("pool", "default")];
        assert_eq!(
            value(&text, "kontinuum_tasks_submitted_total", &pool),
            Some(1.0)
        );
        assert_eq!(value(&text, "kontinuum_pool_workers", &pool), Some(0.0));
        let queued = [("namespace", ns), ("pool", "default"), ("state", "queued")];
        assert_eq!(value(&text, "kontinuum_queue_depth", &queued), Some(1.0));
        assert_eq!(
            value(&text, "kontinuum_futures_active", &[("namespace", ns)]),
            Some(0.0)
        );
    }
    assert!(value(&text, "kontinuum_store_size_bytes", &[]).is_some_and(|b| b > 0.0));
    assert!(
        value(&text, "kontinuum_store_fsync_duration_seconds_count", &[]).is_some_and(|n| n >= 1.0)
    );

    // One worker of pool "default", given the shared token: it serves the
    // pool in both namespaces.
    let register =
        json!({"worker": "w1", "pool": "default", "functions": ["std.echo"], "concurrency": 2});
    assert_eq!(
        s.call("POST", "/v1/workers/register", Some(register), true)
            .await,
        200
    );
    let lease = json!({"worker": "w1", "pool": "default", "max": 2, "waitMs": 1000});
    let resp = s
        .http
        .post(format!("{}/v1/lease", s.api))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(lease.to_string())
        .send()
        .await
        .unwrap();
    let resp: Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
    let leases = resp["leases"].as_array().unwrap();
    assert!(!leases.is_empty(), "{resp}");
    let completions: Vec<Value> = leases
        .iter()
        .map(|l| json!({"token": l["token"], "outcome": {"status": "failure", "message": "no", "permanent": true}}))
        .collect();
    let done = json!({"completions": completions});
    assert_eq!(s.call("POST", "/v1/complete", Some(done), true).await, 200);
    let text = s.scrape().await;
    for ns in ["team-a", "team-b"] {
        let pool = [("namespace", ns), ("pool", "default")];
        assert_eq!(
            value(&text, "kontinuum_pool_workers", &pool),
            Some(1.0),
            "{text}"
        );
    }
    let failed: f64 = ["team-a", "team-b"]
        .iter()
        .filter_map(|ns| {
            value(
                &text,
                "kontinuum_tasks_completed_total",
                &[
                    ("namespace", ns),
                    ("function", "std.echo"),
                    ("outcome", "failed"),
                ],
            )
        })
        .sum();
    assert_eq!(failed, leases.len() as f64, "{text}");
    // Every outcome of a function that ran is there, at zero if need be.
    assert!(text.contains("outcome=\"timeout\""), "{text}");
    assert!(text.contains("kontinuum_task_duration_seconds_bucket{"));
}
