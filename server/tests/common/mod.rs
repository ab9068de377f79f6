//! A worker API server on a free loopback port over a fresh store, and a
//! client that sends it raw bodies and reads JSON answers.

#![allow(dead_code)]

use kontinuum_engine::{Engine, EngineConfig};
use kontinuum_server::{ServeError, Server};
use serde_json::{Value, json};
use std::net::SocketAddr;
use tokio::sync::oneshot;

pub struct Running {
    pub base: String,
    pub http: reqwest::Client,
    pub token: Option<String>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), ServeError>>,
    pub dir: tempfile::TempDir,
}

pub async fn start(token: Option<&str>) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), EngineConfig::default()).unwrap();
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let server = Server::bind(engine, addr, token.map(String::from))
        .await
        .unwrap();
    let addr = server.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async {
        let _ = rx.await;
    }));
    Running {
        base: format!("http://{addr}"),
        http: reqwest::Client::new(),
        token: token.map(String::from),
        stop: Some(tx),
        task,
        dir,
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
        self.stop_keeping_store().await;
    }

    /// Stops the server and hands back its store's directory.
    pub async fn stop_keeping_store(mut self) -> tempfile::TempDir {
        let _ = self.stop.take().unwrap().send(());
        let task = self.task;
        task.await.unwrap().unwrap();
        self.dir
    }
}

pub fn task(name: &str, call: Value) -> Value {
    json!({"apiVersion": "kontinuum.dev/v1alpha1", "kind": "Task",
           "metadata": {"name": name}, "spec": {"call": call}})
}
