//! The shared test server (kontinuum-testkit) with a client that sends it
//! raw bodies and reads JSON answers.

#![allow(dead_code)]

use kontinuum_testkit::{ServerOptions, TestServer};
use serde_json::{Value, json};

pub struct Running {
    pub base: String,
    pub http: reqwest::Client,
    /// The token requests carry; tests change it to try wrong ones.
    pub token: Option<String>,
    server: TestServer,
}

pub async fn start(token: Option<&str>) -> Running {
    let mut options = ServerOptions::default();
    if let Some(t) = token {
        options = options.token(t);
    }
    let server = TestServer::with(options).await;
    Running {
        base: server.url().to_string(),
        http: reqwest::Client::new(),
        token: token.map(String::from),
        server,
    }
}

impl Running {
    pub async fn send(&self, method: &str, path: &str, body: Option<Vec<u8>>) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.unwrap();
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&bytes)));
        (status, value)
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send("POST", path, Some(serde_json::to_vec(&body).unwrap()))
            .await
    }

    pub async fn healthy(&self) {
        let (status, body) = self.send("GET", "/healthz", None).await;
        assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
    }

    pub async fn stop(self) {
        self.server.stop().await;
    }

    /// Stops the server and hands back its store's directory.
    pub async fn stop_keeping_store(self) -> tempfile::TempDir {
        self.server
            .stop_keeping_store()
            .await
            .expect("a fresh store is handed back")
    }
}

pub fn task(name: &str, call: Value) -> Value {
    json!({"apiVersion": "kontinuum.dev/v1alpha1", "kind": "Task",
           "metadata": {"name": name}, "spec": {"call": call}})
}
