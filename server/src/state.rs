//! What every route shares: the application state (the engine, the token,
//! the workers seen) and the way an engine call leaves the async threads.
//! The route modules depend on this, not on each other or on the server.

use crate::error::ApiError;
use kontinuum_engine::{Engine, EngineError};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

/// A worker as it registered, for operators to see who is connected.
#[derive(Clone, Debug)]
pub struct WorkerRecord {
    pub pool: String,
    pub functions: Vec<String>,
    pub concurrency: u32,
    pub last_seen: Instant,
}

pub(crate) struct AppState {
    pub(crate) engine: Engine,
    pub(crate) token: Option<String>,
    pub(crate) workers: parking_lot::Mutex<HashMap<String, WorkerRecord>>,
    /// Set when shutdown begins: long polls return at their next slice.
    pub(crate) stopping: AtomicBool,
}

pub(crate) type AppStateRef = Arc<AppState>;

impl AppState {
    pub(crate) fn new(engine: Engine, token: Option<String>) -> AppStateRef {
        Arc::new(AppState {
            engine,
            token,
            workers: parking_lot::Mutex::new(HashMap::new()),
            stopping: AtomicBool::new(false),
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
