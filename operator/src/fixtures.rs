//! Test fixtures: a scripted API server and a reconcile [`Context`] around
//! it, so the reconcilers' I/O paths run in `cargo test` without a cluster.
//!
//! The API server keeps objects by path and answers as the real one does
//! for what the reconcilers send: GET, DELETE, server-side apply of
//! metadata (finalizers and ownerReferences merged in), JSON patches (their
//! `test` operations can fail, 422), status patches, Event creates. A test
//! can put answers of its own in front ([`ScriptedApi::answer`]), e.g. a
//! 409 or a 500, and reads every request afterwards.

use crate::bridge::Bridge;
use crate::metrics::Metrics;
use crate::reconcile::Context;
use crate::status::{StatusHandle, StatusMsg};
use kontinuum_engine::{Engine, EngineConfig};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// One request the API server received.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub query: String,
    pub content_type: String,
    pub body: Value,
}

type Answer = Box<dyn FnMut(&Request) -> Option<(u16, Value)> + Send>;

#[derive(Clone, Default)]
pub struct ScriptedApi {
    pub requests: Arc<Mutex<Vec<Request>>>,
    objects: Arc<Mutex<BTreeMap<String, Value>>>,
    answers: Arc<Mutex<Vec<Answer>>>,
}

/// The API path of a namespaced kontinuum.dev object.
pub fn path(namespace: &str, plural: &str, name: &str) -> String {
    format!("/apis/kontinuum.dev/v1alpha1/namespaces/{namespace}/{plural}/{name}")
}

fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Status", "status": "Failure",
           "code": code, "reason": reason, "message": message})
}

impl ScriptedApi {
    /// Stores `object` under `path`.
    pub fn put(&self, path: &str, object: Value) {
        self.objects
            .lock()
            .unwrap()
            .insert(path.to_string(), object);
    }

    pub fn get(&self, path: &str) -> Option<Value> {
        self.objects.lock().unwrap().get(path).cloned()
    }

    /// Answers asked before the defaults; the first that answers wins.
    pub fn answer(&self, f: impl FnMut(&Request) -> Option<(u16, Value)> + Send + 'static) {
        self.answers.lock().unwrap().push(Box::new(f));
    }

    /// The requests so far, as `METHOD path` lines (Events left out).
    pub fn calls(&self) -> Vec<String> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| !r.path.contains("/events"))
            .map(|r| format!("{} {}", r.method, r.path))
            .collect()
    }

    pub fn client(&self) -> kube::Client {
        let api = self.clone();
        let service = tower::service_fn(move |req: http::Request<kube::client::Body>| {
            let api = api.clone();
            async move {
                let (parts, body) = req.into_parts();
                let bytes = http_body_util::BodyExt::collect(body)
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                let request = Request {
                    method: parts.method.to_string(),
                    path: parts.uri.path().to_string(),
                    query: parts.uri.query().unwrap_or_default().to_string(),
                    content_type: parts
                        .headers
                        .get(http::header::CONTENT_TYPE)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string(),
                    // Apply patches are sent as JSON too (JSON is YAML).
                    body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
                };
                api.requests.lock().unwrap().push(request.clone());
                let (code, value) = api.respond(&request);
                let mut response = http::Response::new(kube::client::Body::from(
                    serde_json::to_vec(&value).unwrap_or_default(),
                ));
                *response.status_mut() = http::StatusCode::from_u16(code).unwrap();
                response.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static("application/json"),
                );
                Ok::<_, std::io::Error>(response)
            }
        });
        kube::Client::new(service, "default")
    }

    fn respond(&self, r: &Request) -> (u16, Value) {
        for answer in self.answers.lock().unwrap().iter_mut() {
            if let Some(a) = answer(r) {
                return a;
            }
        }
        if r.path.ends_with("/events") && r.method == "POST" {
            return (201, r.body.clone());
        }
        let (object_path, subresource) = match r.path.strip_suffix("/status") {
            Some(p) => (p.to_string(), true),
            None => (r.path.clone(), false),
        };
        let mut objects = self.objects.lock().unwrap();
        // Server-side apply creates what is not there yet.
        if r.method == "PATCH"
            && !subresource
            && r.content_type.starts_with("application/apply-patch")
            && !objects.contains_key(&object_path)
        {
            let mut created = r.body.clone();
            created["metadata"]["uid"] = json!(format!("uid-{}", objects.len()));
            objects.insert(object_path, created.clone());
            return (201, created);
        }
        let Some(stored) = objects.get_mut(&object_path) else {
            return (404, status(404, "NotFound", "not found"));
        };
        match r.method.as_str() {
            "GET" => (200, stored.clone()),
            "DELETE" => {
                let gone = stored.clone();
                objects.remove(&object_path);
                (200, gone)
            }
            "PATCH" if subresource => {
                stored["status"] = r.body["status"].clone();
                (200, stored.clone())
            }
            "PATCH" if r.content_type.starts_with("application/json-patch") => {
                let Ok(patch) = serde_json::from_value::<json_patch::Patch>(r.body.clone()) else {
                    return (400, status(400, "BadRequest", "not a JSON patch"));
                };
                match json_patch::patch(stored, &patch) {
                    Ok(()) => (200, stored.clone()),
                    Err(e) => (422, status(422, "Invalid", &e.to_string())),
                }
            }
            "PATCH" => {
                // Server-side apply of metadata: lists merged as sets.
                let meta = &r.body["metadata"];
                for list in ["finalizers", "ownerReferences"] {
                    if let Some(items) = meta[list].as_array() {
                        let held = stored["metadata"][list].as_array().cloned();
                        let mut merged = held.unwrap_or_default();
                        for item in items {
                            if !merged.contains(item) {
                                merged.push(item.clone());
                            }
                        }
                        stored["metadata"][list] = Value::Array(merged);
                    }
                }
                (200, stored.clone())
            }
            _ => (405, status(405, "MethodNotAllowed", "not scripted")),
        }
    }
}

/// A reconcile context on the scripted API server, an engine in `dir`, no
/// cached resources, and the status writer's channel for the test to read.
pub async fn context(
    api: &ScriptedApi,
    dir: &std::path::Path,
) -> (Arc<Context>, mpsc::Receiver<StatusMsg>) {
    let engine = Engine::open(dir, EngineConfig::default()).unwrap();
    let server =
        kontinuum_server::Server::bind(engine.clone(), "127.0.0.1:0".parse().unwrap(), None)
            .await
            .unwrap();
    let (status, messages) = StatusHandle::channel(256);
    let context = Context {
        client: api.client(),
        bridge: Bridge::new(engine),
        status,
        metrics: Arc::new(Metrics::new()),
        tasks: vec![],
        futures: vec![],
        pools: vec![],
        roster: server.roster(),
        settling: Arc::new(crate::pool::settling::Settling::new(
            crate::feed::pool_channel(),
        )),
        leading_since: std::time::Instant::now(),
        backoff: Default::default(),
    };
    (Arc::new(context), messages)
}

/// A WorkerPool controller's context beside a job controller's `jobs`
/// (the same engine and API server), as run.rs makes them.
pub fn pool_context(api: &ScriptedApi, jobs: &Context) -> Arc<crate::pool::PoolContext> {
    Arc::new(crate::pool::PoolContext {
        client: api.client(),
        engine: jobs.bridge.engine().clone(),
        settings: crate::pool::deployment::WorkerSettings {
            image: "kontinuum.dev/kontinuum:test".into(),
            server: "http://kontinuum.test:7070".into(),
        },
        metrics: jobs.metrics.clone(),
        roster: jobs.roster.clone(),
        settling: jobs.settling.clone(),
        memory: Default::default(),
        backoff: Default::default(),
    })
}

/// A resource as the API server holds it.
pub fn resource(kind: &str, namespace: &str, name: &str, uid: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "kontinuum.dev/v1alpha1",
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace, "uid": uid,
                     "resourceVersion": "1", "generation": 1,
                     "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": spec,
    })
}
