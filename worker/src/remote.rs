//! A [`WorkSource`] over the server's HTTP/JSON API (docs/protocol.md), for
//! workers in other processes and on other machines.
//!
//! Failure handling follows what each call may safely repeat:
//! - lease and heartbeat are tried once; the runtime's loops back off and
//!   ask again, so a server that is away is polled at a capped rate.
//! - complete is idempotent (a token the server no longer knows is answered
//!   `Stale`), so a batch is retried with capped exponential backoff until
//!   it is delivered or `complete_patience` runs out: a completion is never
//!   dropped because the server restarted. A batch over the body limit is
//!   halved; one outcome too large to send becomes a permanent failure
//!   saying so, instead of a task that runs and fails forever.
//! - split, children and spawn create things, so they are retried only when
//!   the request cannot have reached the server (connection refused).

use crate::error::SourceError;
use crate::source::WorkSource;
use kontinuum_api::endpoints::{
    ChildRequest, CompleteRequest, CompleteResponse, ErrorBody, HeartbeatRequest, LeaseRequest,
    LeaseResponse, MAX_BODY_BYTES, NodeResponse, RegisterRequest, RegisterResponse, ReleaseRequest,
    SpawnRequest, SplitRequest, SplitResponse, codes,
};
use kontinuum_api::work::{Completion, CompletionAck, HeartbeatReply, Lease, NodeId, Outcome};
use kontinuum_api::{FnRef, TaskSpec};
use reqwest::StatusCode;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Clone, Debug)]
pub struct RemoteConfig {
    /// `http://HOST:PORT` or `https://HOST:PORT`.
    pub server: String,
    /// Bearer token, if the server wants one.
    pub token: Option<String>,
    /// Where the token came from: read again every [`TOKEN_REREAD`], since
    /// a projected ServiceAccount token is rotated by the kubelet (it
    /// expires after an hour).
    pub token_file: Option<std::path::PathBuf>,
    /// How often `token_file` is read again.
    pub token_reread: Duration,
    /// Longest pause between retries while the server is away.
    pub max_backoff: Duration,
    /// How long a completion batch is retried before it is given up (its
    /// tasks then run again when their leases expire).
    pub complete_patience: Duration,
    /// Per-request limit for calls that do not long-poll.
    pub request_timeout: Duration,
    /// The server's body limit: larger completion batches are split first.
    pub max_body_bytes: usize,
}

impl RemoteConfig {
    pub fn new(server: &str) -> Self {
        RemoteConfig {
            server: server.trim_end_matches('/').to_string(),
            token: None,
            token_file: None,
            token_reread: TOKEN_REREAD,
            max_backoff: Duration::from_secs(5),
            complete_patience: Duration::from_secs(120),
            request_timeout: Duration::from_secs(30),
            max_body_bytes: MAX_BODY_BYTES,
        }
    }
}

/// How often a token file is read again by default.
pub const TOKEN_REREAD: Duration = Duration::from_secs(30);

/// The server as a work source.
pub struct RemoteSource {
    http: reqwest::Client,
    config: RemoteConfig,
    /// The token in use and when its file was last read.
    token: parking_lot::Mutex<(Option<String>, Instant)>,
    /// The last registration, sent again when a lease answer asks for it
    /// (the server restarted and forgot this worker).
    registration: parking_lot::Mutex<Option<RegisterRequest>>,
    /// Registrations the server has answered, so far.
    registered: AtomicU64,
    /// True while [`RemoteSource::register`] is trying.
    registering: AtomicBool,
}

/// What a lease answer's "register" asks for, given the registrations
/// answered before the lease was sent and now, and whether one is under way.
#[derive(Debug, PartialEq, Eq)]
enum Reregister {
    /// The server knew this worker and has forgotten it: it restarted, or
    /// another operator replica took over. Register again.
    Again,
    /// The lease reached the server before this worker's first
    /// registration, which has landed since or is under way: nothing to do.
    Overtaken,
    /// Never registered and nothing under way (a source used without
    /// `register`, or one that gave up): send the registration kept, if any.
    Now,
}

fn reregister(answered_before_lease: u64, answered_now: u64, under_way: bool) -> Reregister {
    if answered_before_lease > 0 {
        Reregister::Again
    } else if answered_now > 0 || under_way {
        Reregister::Overtaken
    } else {
        Reregister::Now
    }
}

/// Clears [`RemoteSource::registering`] however `register` ends.
struct Registering<'a>(&'a AtomicBool);

impl Drop for Registering<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

/// Why one request failed, before it becomes a [`SourceError`].
enum CallError {
    /// Never reached the server: safe to send again.
    Unsent(String),
    /// May or may not have been processed (timeout, reset, 5xx).
    Unknown(String),
    /// The server refused it: `(status, body)`.
    Refused(StatusCode, ErrorBody),
}

impl From<CallError> for SourceError {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Unsent(m) | CallError::Unknown(m) => SourceError::Unavailable(m),
            CallError::Refused(_, body) if body.error == codes::STALE_LEASE => {
                SourceError::StaleLease
            }
            CallError::Refused(status, body) if status.is_server_error() => {
                SourceError::Unavailable(body.message)
            }
            CallError::Refused(_, body) => SourceError::Rejected(body.message),
        }
    }
}

impl RemoteSource {
    pub fn new(config: RemoteConfig) -> Result<RemoteSource, SourceError> {
        if !(config.server.starts_with("http://") || config.server.starts_with("https://")) {
            return Err(SourceError::Rejected(format!(
                "bad server URL '{}': expected http://HOST:PORT or https://HOST:PORT",
                config.server
            )));
        }
        let http = reqwest::Client::builder()
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(5))
            // Below the server's HEADER_READ_TIMEOUT (10 s), after which it
            // closes idle connections: reusing one it is closing would fail.
            .pool_idle_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| SourceError::Rejected(format!("cannot build an HTTP client: {e}")))?;
        let token = parking_lot::Mutex::new((config.token.clone(), Instant::now()));
        Ok(RemoteSource {
            http,
            config,
            token,
            registration: parking_lot::Mutex::new(None),
            registered: AtomicU64::new(0),
            registering: AtomicBool::new(false),
        })
    }

    /// Tells the server who this worker is; retries until it gets through
    /// or `give_up` is past. Returns the name the server assigned.
    pub async fn register(
        &self,
        request: &RegisterRequest,
        give_up: Instant,
    ) -> Result<RegisterResponse, SourceError> {
        *self.registration.lock() = Some(request.clone());
        self.registering.store(true, Ordering::SeqCst);
        let _registering = Registering(&self.registering);
        let mut backoff = Backoff::new(self.config.max_backoff);
        loop {
            match self
                .post("/v1/workers/register", request, self.config.request_timeout)
                .await
            {
                Ok(r) => {
                    self.registered.fetch_add(1, Ordering::SeqCst);
                    return Ok(r);
                }
                Err(CallError::Refused(s, body)) if !s.is_server_error() => {
                    return Err(CallError::Refused(s, body).into());
                }
                Err(CallError::Unsent(m) | CallError::Unknown(m))
                    if Instant::now() + backoff.peek() < give_up =>
                {
                    tracing::warn!(error = %m, retry_in = ?backoff.peek(), "cannot register yet");
                    backoff.wait().await;
                }
                Err(CallError::Refused(_, body)) if Instant::now() + backoff.peek() < give_up => {
                    tracing::warn!(error = %body.message, "cannot register yet");
                    backoff.wait().await;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Tells the server a new list of functions (a handler announced its
    /// roster after the first registration); retried until `give_up`.
    pub async fn register_functions(
        &self,
        functions: Vec<String>,
        give_up: Instant,
    ) -> Result<RegisterResponse, SourceError> {
        let request = {
            let mut held = self.registration.lock();
            let Some(request) = held.as_mut() else {
                return Err(SourceError::Rejected(
                    "not registered yet: register before changing the functions".into(),
                ));
            };
            request.functions = functions;
            request.clone()
        };
        self.register(&request, give_up).await
    }

    /// The token to send: the file's current content once [`TOKEN_REREAD`]
    /// has passed (a rotated token replaces the old one before it expires);
    /// the last good one if the file cannot be read or is empty.
    fn current_token(&self) -> Option<String> {
        let mut held = self.token.lock();
        if let Some(path) = &self.config.token_file
            && held.1.elapsed() >= self.config.token_reread
        {
            held.1 = Instant::now();
            match std::fs::read_to_string(path) {
                Ok(text) if !text.trim().is_empty() => held.0 = Some(text.trim().to_string()),
                Ok(_) => {
                    tracing::warn!(path = %path.display(), "the token file is empty; keeping the last token")
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "cannot read the token file again; keeping the last token")
                }
            }
        }
        held.0.clone()
    }

    /// Sends the last registration once more (one try: the next lease
    /// answer asks again if it did not get through). `again`: the server
    /// had known this worker.
    async fn register_again(&self, again: bool) {
        let Some(request) = self.registration.lock().clone() else {
            return;
        };
        match self
            .post::<_, RegisterResponse>(
                "/v1/workers/register",
                &request,
                self.config.request_timeout,
            )
            .await
        {
            Ok(_) => {
                self.registered.fetch_add(1, Ordering::SeqCst);
                if again {
                    tracing::info!(
                        "registered again (the server no longer knew this worker: it restarted, \
                         or another operator replica took over)"
                    );
                } else {
                    tracing::info!("registered");
                }
            }
            Err(CallError::Refused(_, body)) => {
                tracing::warn!(error = %body.message, "registering again was refused")
            }
            Err(CallError::Unsent(m) | CallError::Unknown(m)) => {
                tracing::warn!(error = %m, "cannot register again yet")
            }
        }
    }

    async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
        timeout: Duration,
    ) -> Result<T, CallError> {
        let bytes = serde_json::to_vec(body)
            .map_err(|e| CallError::Unsent(format!("cannot encode the request: {e}")))?;
        self.post_bytes(path, bytes, timeout).await
    }

    async fn post_bytes<T: DeserializeOwned>(
        &self,
        path: &str,
        bytes: Vec<u8>,
        timeout: Duration,
    ) -> Result<T, CallError> {
        let mut request = self
            .http
            .post(format!("{}{path}", self.config.server))
            .timeout(timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(bytes);
        if let Some(token) = self.current_token() {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.map_err(|e| {
            let message = format!("{path}: {}", error_chain(&e));
            if e.is_connect() {
                CallError::Unsent(message)
            } else {
                CallError::Unknown(message)
            }
        })?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| CallError::Unknown(format!("{path}: {}", error_chain(&e))))?;
        if status.is_success() {
            return serde_json::from_slice(&bytes)
                .map_err(|e| CallError::Unknown(format!("{path}: unexpected answer: {e}")));
        }
        let body = serde_json::from_slice::<ErrorBody>(&bytes).unwrap_or_else(|_| ErrorBody {
            error: "http".into(),
            message: format!("{path}: HTTP {status}"),
            ..ErrorBody::default()
        });
        Err(CallError::Refused(status, body))
    }

    /// For calls that must not run twice: retried only while unsent.
    async fn post_once<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, SourceError> {
        let give_up = Instant::now() + self.config.request_timeout;
        let mut backoff = Backoff::new(self.config.max_backoff);
        loop {
            match self.post(path, body, self.config.request_timeout).await {
                Err(CallError::Unsent(m)) if Instant::now() + backoff.peek() < give_up => {
                    tracing::debug!(error = %m, "server away; trying again");
                    backoff.wait().await;
                }
                other => return other.map_err(SourceError::from),
            }
        }
    }

    /// Delivers one batch, retrying while the outcome is unknown; halves a
    /// batch the server finds too large (`shrink`: not yet cut down to a
    /// replacement failure, so a server that refuses even that is an error
    /// rather than a loop).
    async fn deliver(
        &self,
        batch: Vec<Completion>,
        shrink: bool,
    ) -> Result<Vec<CompletionAck>, SourceError> {
        let give_up = Instant::now() + self.config.complete_patience;
        let mut backoff = Backoff::new(self.config.max_backoff);
        let request = CompleteRequest { completions: batch };
        let bytes = serde_json::to_vec(&request)
            .map_err(|e| SourceError::Rejected(format!("cannot encode completions: {e}")))?;
        // Known too large: the server would refuse it, possibly by closing
        // the connection mid-upload, which looks like an unknown outcome.
        let too_large = || {
            SourceError::Rejected("the server refuses even a short completion as too large".into())
        };
        if bytes.len() > self.config.max_body_bytes {
            if !shrink {
                return Err(too_large());
            }
            return Box::pin(self.deliver_halves(request.completions)).await;
        }
        loop {
            let result: Result<CompleteResponse, _> = self
                .post_bytes("/v1/complete", bytes.clone(), self.config.request_timeout)
                .await;
            match result {
                Ok(r) if r.acks.len() == request.completions.len() => return Ok(r.acks),
                Ok(r) => {
                    return Err(SourceError::Unavailable(format!(
                        "{} acks for {} completions",
                        r.acks.len(),
                        request.completions.len()
                    )));
                }
                Err(CallError::Refused(StatusCode::PAYLOAD_TOO_LARGE, _)) if shrink => {
                    return Box::pin(self.deliver_halves(request.completions)).await;
                }
                Err(CallError::Refused(StatusCode::PAYLOAD_TOO_LARGE, _)) => {
                    return Err(too_large());
                }
                Err(CallError::Refused(s, body)) if !s.is_server_error() => {
                    return Err(CallError::Refused(s, body).into());
                }
                Err(e) => {
                    let e = SourceError::from(e);
                    if Instant::now() + backoff.peek() >= give_up {
                        return Err(e);
                    }
                    tracing::warn!(error = %e, retry_in = ?backoff.peek(), count = request.completions.len(), "completions not delivered yet");
                    backoff.wait().await;
                }
            }
        }
    }

    async fn deliver_halves(
        &self,
        mut batch: Vec<Completion>,
    ) -> Result<Vec<CompletionAck>, SourceError> {
        if batch.len() == 1 {
            let c = &mut batch[0];
            let size = serde_json::to_vec(&c.outcome).map_or(0, |b| b.len());
            tracing::warn!(token = c.token, size, "outcome too large for the server");
            c.outcome = Outcome::Failure {
                message: format!(
                    "the outcome ({size} bytes of JSON) is larger than the server accepts"
                ),
                permanent: true,
            };
            return self.deliver(batch, false).await;
        }
        let rest = batch.split_off(batch.len() / 2);
        let mut acks = self.deliver(batch, true).await?;
        acks.extend(self.deliver(rest, true).await?);
        Ok(acks)
    }
}

impl WorkSource for RemoteSource {
    async fn lease(
        &self,
        pool: &str,
        worker: &str,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Lease>, SourceError> {
        let request = LeaseRequest {
            worker: worker.to_string(),
            pool: pool.to_string(),
            max,
            wait_ms: wait.as_millis() as u64,
        };
        let timeout = wait + self.config.request_timeout;
        let answered_before = self.registered.load(Ordering::SeqCst);
        let response: LeaseResponse = self.post("/v1/lease", &request, timeout).await?;
        if response.register {
            let answered_now = self.registered.load(Ordering::SeqCst);
            match reregister(
                answered_before,
                answered_now,
                self.registering.load(Ordering::SeqCst),
            ) {
                Reregister::Again => self.register_again(true).await,
                Reregister::Now => self.register_again(false).await,
                Reregister::Overtaken => tracing::debug!(
                    "a lease reached the server before this worker's registration, which is under way or done"
                ),
            }
        }
        Ok(response.leases)
    }

    async fn heartbeat(
        &self,
        token: u64,
        progress: Option<u64>,
    ) -> Result<HeartbeatReply, SourceError> {
        let request = HeartbeatRequest { token, progress };
        Ok(self
            .post("/v1/heartbeat", &request, self.config.request_timeout)
            .await?)
    }

    async fn complete(
        &self,
        completions: Vec<Completion>,
    ) -> Result<Vec<CompletionAck>, SourceError> {
        if completions.is_empty() {
            return Ok(Vec::new());
        }
        self.deliver(completions, true).await
    }

    /// Retried like a completion (a repeated release is answered `stale`),
    /// but only for `request_timeout`: a stopping worker does not linger,
    /// and what is not handed back comes back when its leases expire.
    async fn release(&self, tokens: Vec<u64>) -> Result<Vec<CompletionAck>, SourceError> {
        let give_up = Instant::now() + self.config.request_timeout;
        let mut backoff = Backoff::new(self.config.max_backoff);
        let request = ReleaseRequest { tokens };
        loop {
            let result: Result<CompleteResponse, _> = self
                .post("/v1/release", &request, self.config.request_timeout)
                .await;
            match result {
                Ok(r) => return Ok(r.acks),
                Err(CallError::Refused(s, body)) if !s.is_server_error() => {
                    return Err(CallError::Refused(s, body).into());
                }
                Err(e) if Instant::now() + backoff.peek() >= give_up => return Err(e.into()),
                Err(e) => {
                    let e = SourceError::from(e);
                    tracing::warn!(error = %e, retry_in = ?backoff.peek(), "leases not handed back yet");
                    backoff.wait().await;
                }
            }
        }
    }

    async fn split(&self, token: u64, at: i64) -> Result<bool, SourceError> {
        let response: SplitResponse = self
            .post_once("/v1/split", &SplitRequest { token, at })
            .await?;
        Ok(response.accepted)
    }

    async fn add_child(&self, token: u64, call: FnRef, weight: u64) -> Result<NodeId, SourceError> {
        let request = ChildRequest {
            token,
            call,
            weight,
        };
        let response: NodeResponse = self.post_once("/v1/children", &request).await?;
        Ok(response.node)
    }

    async fn spawn(&self, token: u64, spec: TaskSpec) -> Result<NodeId, SourceError> {
        let response: NodeResponse = self
            .post_once("/v1/spawn", &SpawnRequest { token, spec })
            .await?;
        Ok(response.node)
    }
}

/// reqwest's top-level message hides the cause ("error sending request").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Exponential backoff from 100 ms, doubling up to `max`, with a little
/// jitter so a fleet of workers does not knock in step.
struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    fn new(max: Duration) -> Self {
        Backoff {
            next: Duration::from_millis(100).min(max),
            max,
        }
    }

    fn peek(&self) -> Duration {
        self.next
    }

    async fn wait(&mut self) {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let jitter = self.next.mul_f64(f64::from(nanos % 1000) / 4000.0);
        tokio::time::sleep(self.next + jitter).await;
        self.next = (self.next * 2).min(self.max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_that_overtakes_the_first_registration_is_no_restart() {
        // Sent before any registration was answered; one is under way, or
        // has been answered meanwhile.
        assert_eq!(reregister(0, 0, true), Reregister::Overtaken);
        assert_eq!(reregister(0, 1, false), Reregister::Overtaken);
        // Registered before the lease went out, and the server asks: it
        // has forgotten this worker.
        assert_eq!(reregister(1, 1, false), Reregister::Again);
        assert_eq!(reregister(2, 3, true), Reregister::Again);
        // Nothing answered and nothing trying: register now.
        assert_eq!(reregister(0, 0, false), Reregister::Now);
    }
}
