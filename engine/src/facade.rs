//! PUBLIC API OF THE ENGINE (stub while the engine is being written; the
//! signatures are the contract the worker runtime and the CLI build on).

use kontinuum_api::wire::{Completion, CompletionAck, HeartbeatReply, Lease, NodeId};
use kontinuum_api::{FnRef, FutureStatus, HierarchicalFutureSpec, TaskSpec, TaskStatus};
use std::path::Path;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("store error: {0}")]
    Store(#[from] sled::Error),
    #[error("object '{name}' already exists with a different spec")]
    Conflict { name: String },
    #[error("invalid submission: {0}")]
    Invalid(String),
    #[error("lease is stale or unknown")]
    StaleLease,
    #[error("no object named '{0}'")]
    NotFound(String),
    #[error("corrupt record {what}: {detail}")]
    Corrupt { what: String, detail: String },
}

#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Lease length without heartbeat.
    pub lease: Duration,
    /// A map leaf running this long may be asked to split.
    pub split_after: Duration,
    /// sled page cache size.
    pub cache_bytes: u64,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig { lease: Duration::from_secs(10), split_after: Duration::from_secs(2), cache_bytes: 64 << 20 }
    }
}

/// A manifest object handed to the engine. Names are unique per engine; the
/// CLI uses `namespace/kind/name`-free plain names (`kind/name`).
#[derive(Clone, Debug)]
pub enum Submission {
    Task { name: String, spec: TaskSpec },
    /// `lines` paths must already be absolute.
    Future { name: String, spec: HierarchicalFutureSpec },
}

#[derive(Clone, Debug, PartialEq)]
pub enum ObjectStatus {
    Task(TaskStatus),
    Future(FutureStatus),
}

impl ObjectStatus {
    /// True once the object's outcome is final (Succeeded, Failed, Cancelled, Merged).
    pub fn is_final(&self) -> bool {
        let phase = match self {
            ObjectStatus::Task(s) => s.phase.as_deref(),
            ObjectStatus::Future(s) => s.phase.as_deref(),
        };
        matches!(phase, Some("Succeeded" | "Failed" | "Cancelled" | "Merged"))
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    pub queued: u64,
    pub running: u64,
    pub delayed: u64,
}

#[derive(Clone)]
pub struct Engine {}

impl Engine {
    pub fn open(_path: &Path, _config: EngineConfig) -> Result<Engine, EngineError> {
        unimplemented!("engine being written")
    }
    /// Accepts objects; durable before returning. Resubmitting an existing
    /// name with an identical spec is a no-op (so a rerun resumes).
    pub fn submit(&self, _objects: Vec<Submission>) -> Result<(), EngineError> {
        unimplemented!()
    }
    pub fn status(&self, _name: &str) -> Result<ObjectStatus, EngineError> {
        unimplemented!()
    }
    pub fn cancel(&self, _name: &str) -> Result<(), EngineError> {
        unimplemented!()
    }
    /// Up to `max` leases for `pool`, waiting up to `wait` for the first.
    pub fn lease(&self, _pool: &str, _worker: &str, _max: usize, _wait: Duration) -> Result<Vec<Lease>, EngineError> {
        unimplemented!()
    }
    /// `progress`: units done so far in this attempt (map leaves).
    pub fn heartbeat(&self, _token: u64, _progress: Option<u64>) -> Result<HeartbeatReply, EngineError> {
        unimplemented!()
    }
    pub fn complete(&self, _completions: Vec<Completion>) -> Result<Vec<CompletionAck>, EngineError> {
        unimplemented!()
    }
    /// A map leaf gives up its slice from `at` on: the engine makes new
    /// children for it. Ok(true) when accepted; then process only up to `at`.
    pub fn split(&self, _token: u64, _at: u64) -> Result<bool, EngineError> {
        unimplemented!()
    }
    /// SDK: add a child future node under the running task's node.
    pub fn add_child(&self, _token: u64, _call: FnRef, _weight: u64) -> Result<NodeId, EngineError> {
        unimplemented!()
    }
    /// SDK: start an independent task from a running task (same pool).
    pub fn spawn(&self, _token: u64, _spec: TaskSpec) -> Result<NodeId, EngineError> {
        unimplemented!()
    }
    pub fn pool_stats(&self, _pool: &str) -> PoolStats {
        unimplemented!()
    }
}
