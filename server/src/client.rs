//! A small client for the CLI's endpoints (`kontinuum submit`, `get`,
//! `tree`, `cancel`): one call per method, errors typed, the server's JSON error
//! body kept so its field-naming messages reach the user unchanged.

use kontinuum_api::endpoints::{
    ErrorBody, Health, ObjectList, ObjectView, ResultView, SubmitRequest, SubmitResponse,
    WorkerList, WorkerView,
};
use kontinuum_api::{ObjectId, ObjectKind, Phase};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("bad server URL '{0}': expected http://HOST:PORT or https://HOST:PORT")]
    BadUrl(String),
    #[error("cannot reach the server: {0}")]
    Transport(#[from] reqwest::Error),
    /// The server answered with an error (4xx/5xx).
    #[error("{} ({status})", body.message)]
    Api { status: u16, body: ErrorBody },
    #[error("unexpected answer from the server: {0}")]
    Decode(String),
}

impl ClientError {
    /// True for 404 (no such object or route).
    pub fn is_not_found(&self) -> bool {
        matches!(self, ClientError::Api { status: 404, .. })
    }
}

/// The phases after which an object never changes.
pub fn is_final(view: &ObjectView) -> bool {
    view.status
        .get("phase")
        .and_then(|p| serde_json::from_value::<Phase>(p.clone()).ok())
        .is_some_and(Phase::is_final)
}

#[derive(Clone, Debug)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Client {
    /// `server`: `http://127.0.0.1:7070` (a trailing slash is fine).
    pub fn new(server: &str, token: Option<String>) -> Result<Client, ClientError> {
        let base = server.trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(ClientError::BadUrl(server.to_string()));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(60))
            // Below the server's HEADER_READ_TIMEOUT, which closes idle
            // connections: reusing one it is closing would fail.
            .pool_idle_timeout(Duration::from_secs(5))
            .build()?;
        Ok(Client { http, base, token })
    }

    /// Validates and accepts manifests (JSON documents), all or nothing.
    /// Returns their ids (`NS/task/NAME`, `NS/future/NAME`,
    /// `NS/workerpool/NAME`).
    pub async fn submit(&self, objects: Vec<Value>) -> Result<Vec<String>, ClientError> {
        let response: SubmitResponse = self
            .call(
                Method::POST,
                "/v1/objects",
                Some(&SubmitRequest { objects }),
            )
            .await?;
        Ok(response.names)
    }

    /// One object with its status.
    pub async fn get(&self, id: &ObjectId) -> Result<ObjectView, ClientError> {
        self.call::<(), _>(Method::GET, &format!("/v1/objects/{}", path_of(id)), None)
            .await
    }

    /// Every object, or those of one kind, or of one namespace, following
    /// the server's pages.
    pub async fn list(
        &self,
        kind: Option<ObjectKind>,
        namespace: Option<&str>,
    ) -> Result<Vec<ObjectView>, ClientError> {
        let mut items = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .list_page(kind, namespace, token.as_deref(), None)
                .await?;
            items.extend(page.items);
            match page.metadata.continue_token {
                Some(next) => token = Some(next),
                None => return Ok(items),
            }
        }
    }

    /// One page of [`Client::list`]: at most `limit` objects (the server's
    /// default when `None`) after the `continue` token of the last page.
    pub async fn list_page(
        &self,
        kind: Option<ObjectKind>,
        namespace: Option<&str>,
        continue_token: Option<&str>,
        limit: Option<usize>,
    ) -> Result<ObjectList, ClientError> {
        let mut query = Vec::new();
        if let Some(kind) = kind {
            query.push(format!("kind={kind}"));
        }
        if let Some(ns) = namespace {
            query.push(format!("namespace={}", encode(ns)));
        }
        if let Some(token) = continue_token {
            query.push(format!("continue={}", encode(token)));
        }
        if let Some(limit) = limit {
            query.push(format!("limit={limit}"));
        }
        let path = if query.is_empty() {
            "/v1/objects".to_string()
        } else {
            format!("/v1/objects?{}", query.join("&"))
        };
        self.call::<(), _>(Method::GET, &path, None).await
    }

    /// An object's tree with per-node state and progress, breadth first,
    /// at most `max_nodes` nodes.
    pub async fn tree(
        &self,
        id: &ObjectId,
        max_nodes: usize,
    ) -> Result<kontinuum_engine::TreeView, ClientError> {
        let path = format!("/v1/objects/{}/tree?maxNodes={max_nodes}", path_of(id));
        self.call::<(), _>(Method::GET, &path, None).await
    }

    /// The object's whole result (the status holds at most 4 KiB of it).
    pub async fn result(&self, id: &ObjectId) -> Result<Option<Value>, ClientError> {
        let path = format!("/v1/objects/{}/result", path_of(id));
        let view: ResultView = self.call::<(), _>(Method::GET, &path, None).await?;
        Ok(view.result)
    }

    /// Cancels an object's whole tree; returns its status after.
    pub async fn cancel(&self, id: &ObjectId) -> Result<ObjectView, ClientError> {
        let path = format!("/v1/objects/{}/cancel", path_of(id));
        self.call::<(), _>(Method::POST, &path, None).await
    }

    /// Polls until every object is final; returns them in order.
    pub async fn wait(
        &self,
        ids: &[ObjectId],
        every: Duration,
    ) -> Result<Vec<ObjectView>, ClientError> {
        let mut done: Vec<Option<ObjectView>> = vec![None; ids.len()];
        loop {
            for (slot, id) in done.iter_mut().zip(ids) {
                if slot.is_none() {
                    let view = self.get(id).await?;
                    if is_final(&view) {
                        *slot = Some(view);
                    }
                }
            }
            if done.iter().all(Option::is_some) {
                return Ok(done.into_iter().flatten().collect());
            }
            tokio::time::sleep(every).await;
        }
    }

    /// The workers the server has heard from lately.
    pub async fn workers(&self) -> Result<Vec<WorkerView>, ClientError> {
        let list: WorkerList = self.call::<(), _>(Method::GET, "/v1/workers", None).await?;
        Ok(list.workers)
    }

    pub async fn health(&self) -> Result<Health, ClientError> {
        self.call::<(), _>(Method::GET, "/healthz", None).await
    }

    async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, ClientError> {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            let bytes = serde_json::to_vec(body).map_err(|e| ClientError::Decode(e.to_string()))?;
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(bytes);
        }
        let response = request.send().await?;
        let status = response.status();
        let bytes = response.bytes().await?;
        decode(status, &bytes)
    }
}

/// A success body as `T`, or the server's error body as [`ClientError::Api`].
pub(crate) fn decode<T: DeserializeOwned>(
    status: StatusCode,
    bytes: &[u8],
) -> Result<T, ClientError> {
    if status.is_success() {
        return serde_json::from_slice(bytes).map_err(|e| ClientError::Decode(e.to_string()));
    }
    let body = serde_json::from_slice::<ErrorBody>(bytes).unwrap_or_else(|_| ErrorBody {
        error: "http".into(),
        message: format!(
            "HTTP {status}: {}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
        ),
        ..ErrorBody::default()
    });
    Err(ClientError::Api {
        status: status.as_u16(),
        body,
    })
}

/// `NS/KIND/NAME` as path segments, each percent-encoded.
fn path_of(id: &ObjectId) -> String {
    format!("{}/{}/{}", encode(&id.namespace), id.kind, encode(&id.name))
}

/// Percent-encodes all but the characters URLs leave as they are.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
