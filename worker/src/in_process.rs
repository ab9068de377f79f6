//! The embedded engine as a work source, and `kontinuum run`'s in-process
//! workers.
//!
//! Engine calls block. Quick ones (heartbeat, a lease that finds work at
//! once) run inline; the ones that wait (a long-poll lease, and every call
//! that commits durably: complete, split, add_child, spawn) run on tokio's
//! blocking pool so they never stall the executor the functions run on.

use crate::error::SourceError;
use crate::registry::Registry;
use crate::runtime::Runtime;
use crate::shared::RuntimeConfig;
use crate::source::WorkSource;
use kontinuum_api::work::{Completion, CompletionAck, HeartbeatReply, Lease, NodeId};
use kontinuum_api::{FnRef, TaskSpec};
use kontinuum_engine::{Engine, EngineError};
use std::sync::Arc;
use std::time::Duration;

impl From<EngineError> for SourceError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::StaleLease => SourceError::StaleLease,
            EngineError::Conflict { .. }
            | EngineError::UidMismatch { .. }
            | EngineError::Invalid(_)
            | EngineError::NotFound(_)
            | EngineError::Active(_)
            | EngineError::ParentNotFound(_)
            | EngineError::ParentFinished(_) => SourceError::Rejected(e.to_string()),
            EngineError::Store(_)
            | EngineError::Locked { .. }
            | EngineError::Corrupt { .. }
            | EngineError::IllegalMove { .. }
            | EngineError::StoreFailed(_) => SourceError::Unavailable(e.to_string()),
        }
    }
}

async fn blocking<T: Send + 'static>(
    engine: &Engine,
    call: impl FnOnce(&Engine) -> Result<T, EngineError> + Send + 'static,
) -> Result<T, SourceError> {
    let engine = engine.clone();
    match tokio::task::spawn_blocking(move || call(&engine)).await {
        Ok(result) => result.map_err(SourceError::from),
        Err(e) => Err(SourceError::Unavailable(format!(
            "engine call ended abnormally: {e}"
        ))),
    }
}

/// In process (`kontinuum run`) a worker serves its pool in every namespace.
impl WorkSource for Engine {
    async fn lease(
        &self,
        pool: &str,
        worker: &str,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Lease>, SourceError> {
        let ready = Engine::lease(self, pool, None, worker, max, Duration::ZERO)?;
        if !ready.is_empty() || wait.is_zero() {
            return Ok(ready);
        }
        let (pool, worker) = (pool.to_string(), worker.to_string());
        blocking(self, move |e| e.lease(&pool, None, &worker, max, wait)).await
    }

    async fn heartbeat(
        &self,
        token: u64,
        progress: Option<u64>,
    ) -> Result<HeartbeatReply, SourceError> {
        Ok(Engine::heartbeat(self, token, progress)?)
    }

    async fn complete(
        &self,
        completions: Vec<Completion>,
    ) -> Result<Vec<CompletionAck>, SourceError> {
        blocking(self, move |e| e.complete(completions)).await
    }

    async fn release(&self, tokens: Vec<u64>) -> Result<Vec<CompletionAck>, SourceError> {
        blocking(self, move |e| e.release(tokens)).await
    }

    async fn split(&self, token: u64, at: i64) -> Result<bool, SourceError> {
        blocking(self, move |e| e.split(token, at)).await
    }

    async fn add_child(&self, token: u64, call: FnRef, weight: u64) -> Result<NodeId, SourceError> {
        blocking(self, move |e| e.add_child(token, call, weight)).await
    }

    async fn spawn(&self, token: u64, spec: TaskSpec) -> Result<NodeId, SourceError> {
        blocking(self, move |e| e.spawn(token, spec)).await
    }
}

/// Workers running inside the `kontinuum run` process.
pub struct InProcessWorkers {
    runtime: Runtime<Engine>,
}

/// Starts workers for `pool` ("*" = any) on the current tokio runtime,
/// running up to `concurrency` tasks at once. CPU-bound work is limited by
/// the tokio runtime's threads anyway; `concurrency` bounds how many tasks
/// are leased at once (and so how many can wait on I/O or timers together).
pub fn start_in_process(
    engine: Engine,
    registry: Arc<Registry>,
    pool: &str,
    concurrency: usize,
) -> InProcessWorkers {
    let mut config = RuntimeConfig::new(pool, concurrency);
    config.worker = format!("in-process-{}", std::process::id());
    InProcessWorkers {
        runtime: Runtime::start(Arc::new(engine), registry, config),
    }
}

impl InProcessWorkers {
    /// Tasks running now.
    pub fn running(&self) -> usize {
        self.runtime.running()
    }

    /// Stops leasing, lets running tasks finish (10 s grace), hands back
    /// the rest, and flushes completions.
    pub async fn shutdown(self) {
        self.runtime.shutdown().await;
    }
}
