//! The engine's public vocabulary: errors, settings, submissions, statuses.

use kontinuum_api::{FutureStatus, HierarchicalFutureSpec, TaskSpec, TaskStatus};
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
    /// A write or fsync failed (a full disk, an I/O error). sled refuses
    /// every later write until the store is opened again, so the engine
    /// stops deciding: a restart resumes from what is on disk, which holds
    /// everything that was acknowledged.
    #[error(
        "the store cannot write any more ({0}); nothing acknowledged is lost: make room (or fix the disk), then restart to resume from disk"
    )]
    StoreFailed(String),
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
        EngineConfig {
            lease: Duration::from_secs(10),
            split_after: Duration::from_secs(2),
            cache_bytes: 64 << 20,
        }
    }
}

/// A manifest object handed to the engine. Names are unique per engine; the
/// CLI uses `namespace/kind/name`-free plain names (`kind/name`).
#[derive(Clone, Debug)]
#[allow(clippy::large_enum_variant)] // built once per object, never stored in bulk
pub enum Submission {
    Task {
        name: String,
        spec: TaskSpec,
    },
    /// `lines` paths must already be absolute.
    Future {
        name: String,
        spec: HierarchicalFutureSpec,
    },
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

/// One node of a future tree as `kontinuum tree` shows it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TreeNode {
    /// Child indexes from the root, e.g. `/2/0`.
    pub path: String,
    /// call, split, leaf, parallel or sequence.
    pub kind: String,
    /// The function a call node calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
    /// waiting, blocked, queued, running, children, folding, succeeded, failed, cancelled, merged.
    pub state: String,
    pub weight: u64,
    /// Units done below and at this node (finished work, plus reported progress of running leaves).
    pub done: u64,
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<TreeNode>,
}

/// A tree, cut off after a number of nodes.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TreeView {
    pub root: TreeNode,
    /// Nodes in the whole tree.
    pub nodes: u64,
    /// True when nodes beyond the limit were left out.
    pub truncated: bool,
}
