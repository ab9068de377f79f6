//! What every route shares: the application state (the engine, the token,
//! the workers seen) and the way an engine call leaves the async threads.
//! The route modules depend on this, not on each other or on the server.

use crate::auth::{Authenticator, Caller};
use crate::error::ApiError;
use kontinuum_engine::{Engine, EngineError};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

/// A worker as it registered, for operators to see who is connected.
#[derive(Clone, Debug)]
pub struct WorkerRecord {
    /// The namespace its token confines it to (None: the shared token).
    pub namespace: Option<String>,
    pub pool: String,
    pub functions: Vec<String>,
    pub concurrency: u32,
    pub last_seen: Instant,
}

pub(crate) struct AppState {
    pub(crate) engine: Engine,
    pub(crate) token: Option<String>,
    /// Checks bearer tokens other than `token` (in a cluster: TokenReview).
    pub(crate) authenticator: Option<Arc<dyn Authenticator>>,
    pub(crate) workers: parking_lot::Mutex<HashMap<String, WorkerRecord>>,
    /// Set when shutdown begins: long polls return at their next slice.
    pub(crate) stopping: AtomicBool,
    pub(crate) metrics: crate::metrics::ApiMetrics,
}

pub(crate) type AppStateRef = Arc<AppState>;

impl AppState {
    pub(crate) fn new(
        engine: Engine,
        token: Option<String>,
        authenticator: Option<Arc<dyn Authenticator>>,
    ) -> AppStateRef {
        Arc::new(AppState {
            engine,
            token,
            authenticator,
            workers: parking_lot::Mutex::new(HashMap::new()),
            stopping: AtomicBool::new(false),
            metrics: crate::metrics::ApiMetrics::new(),
        })
    }
}

/// Runs an engine call on the blocking pool (engine calls block on locks
/// and group commit); a panic there is a 500.
pub(crate) async fn blocking<T: Send + 'static>(
    engine: &Engine,
    call: impl FnOnce(&Engine) -> Result<T, EngineError> + Send + 'static,
) -> Result<T, ApiError> {
    blocking_api(engine, move |e| call(e).map_err(ApiError::from)).await
}

/// Like [`blocking`], for work that fails with request errors too.
pub(crate) async fn blocking_api<T: Send + 'static>(
    engine: &Engine,
    call: impl FnOnce(&Engine) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let engine = engine.clone();
    match tokio::task::spawn_blocking(move || call(&engine)).await {
        Ok(result) => result,
        Err(e) => {
            tracing::error!(error = %e, "engine call ended abnormally");
            Err(ApiError::internal("the engine call failed"))
        }
    }
}

/// Refuses a confined caller's use of a lease of another namespace. A
/// token the engine no longer knows passes: the engine answers it as stale.
/// The shared token costs nothing here; a confined caller's check reads the
/// engine off the async threads.
pub(crate) async fn check_leases(
    state: &AppStateRef,
    caller: &Caller,
    tokens: Vec<u64>,
) -> Result<(), ApiError> {
    let Some(own) = caller.namespace().map(str::to_string) else {
        return Ok(());
    };
    let foreign = blocking(&state.engine, move |e| {
        Ok(tokens
            .iter()
            .any(|&t| e.lease_namespace(t).is_some_and(|ns| ns != own)))
    })
    .await?;
    if foreign {
        return Err(ApiError::forbidden(crate::auth::outside(
            caller,
            "this lease",
        )));
    }
    Ok(())
}

/// A worker counts as connected this long after its last call (workers
/// long-poll every second or so).
const CONNECTED_WITHIN: std::time::Duration = std::time::Duration::from_secs(30);

/// The workers a pool has, for its status.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PoolWorkers {
    pub workers: u32,
    /// Every function one of them registered, sorted.
    pub functions: Vec<String>,
}

/// A read-only view of the connected workers, for the operator.
#[derive(Clone)]
pub struct Roster(pub(crate) AppStateRef);

impl Roster {
    /// The workers serving `pool` in `namespace`: confined to it, or on
    /// the shared token (which serves every namespace).
    pub fn pool(&self, namespace: &str, pool: &str) -> PoolWorkers {
        let now = Instant::now();
        let mut out = PoolWorkers::default();
        let mut functions = std::collections::BTreeSet::new();
        for w in self.0.workers.lock().values() {
            let here = w.namespace.as_deref().is_none_or(|ns| ns == namespace);
            if here
                && (w.pool == pool || w.pool == "*")
                && now.duration_since(w.last_seen) < CONNECTED_WITHIN
            {
                out.workers += 1;
                functions.extend(w.functions.iter().cloned());
            }
        }
        out.functions = functions.into_iter().collect();
        out
    }
}
