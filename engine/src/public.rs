//! The engine's public vocabulary besides errors: settings, submissions,
//! statuses, pool figures and tree views.

use crate::clock::Clock;
use kontinuum_api::{
    FutureStatus, HierarchicalFutureSpec, ObjectId, ObjectKind, Phase, TaskSpec, TaskStatus,
};
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Lease length without heartbeat.
    pub lease: Duration,
    /// A map leaf running this long may be asked to split.
    pub split_after: Duration,
    /// sled page cache size.
    pub cache_bytes: u64,
    /// Where time comes from: the wall clock, or a manual clock in tests.
    pub clock: Clock,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            lease: Duration::from_secs(10),
            split_after: Duration::from_secs(2),
            cache_bytes: 64 << 20,
            clock: Clock::Wall,
        }
    }
}

/// An object handed to the engine ([`crate::Engine::submit`]).
#[derive(Clone, Debug)]
pub struct Submission {
    /// `NAMESPACE/KIND/NAME`; the kind must match the body's.
    pub id: ObjectId,
    /// The custom resource's uid, for an object that stands for one: the
    /// same id with another uid is another run
    /// ([`crate::EngineError::UidMismatch`]).
    pub uid: Option<String>,
    /// The future whose tree this object joins. When None, the spec's
    /// `parentRef` (if any) names it, in the object's namespace.
    pub parent: Option<ObjectId>,
    pub body: SubmissionBody,
}

/// What a submitted object runs.
#[derive(Clone, Debug)]
#[allow(clippy::large_enum_variant)] // built once per object, never stored in bulk
pub enum SubmissionBody {
    Task(TaskSpec),
    /// `lines` paths must already be absolute.
    Future(HierarchicalFutureSpec),
}

impl Submission {
    /// A Task in `namespace`, with no uid; its parent comes from the spec.
    pub fn task(namespace: &str, name: &str, spec: TaskSpec) -> Submission {
        Submission {
            id: ObjectId::task(namespace, name),
            uid: None,
            parent: None,
            body: SubmissionBody::Task(spec),
        }
    }

    /// A HierarchicalFuture in `namespace`, with no uid; its parent comes
    /// from the spec.
    pub fn future(namespace: &str, name: &str, spec: HierarchicalFutureSpec) -> Submission {
        Submission {
            id: ObjectId::future(namespace, name),
            uid: None,
            parent: None,
            body: SubmissionBody::Future(spec),
        }
    }

    pub fn kind(&self) -> ObjectKind {
        match self.body {
            SubmissionBody::Task(_) => ObjectKind::Task,
            SubmissionBody::Future(_) => ObjectKind::Future,
        }
    }

    /// The pool the object's work goes to.
    pub fn pool(&self) -> &str {
        match &self.body {
            SubmissionBody::Task(spec) => &spec.pool,
            SubmissionBody::Future(spec) => &spec.pool,
        }
    }

    /// The future this object joins: `parent`, else the spec's `parentRef`
    /// in the object's namespace.
    pub fn parent_id(&self) -> Option<ObjectId> {
        let named = match &self.body {
            SubmissionBody::Task(spec) => spec.parent_ref.as_ref(),
            SubmissionBody::Future(spec) => spec.parent_ref.as_ref(),
        };
        self.parent
            .clone()
            .or_else(|| named.map(|p| ObjectId::future(self.id.namespace.clone(), p.name.clone())))
    }
}

/// One object the store holds ([`crate::Engine::list`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectSummary {
    pub id: ObjectId,
    pub uid: Option<String>,
    pub phase: Phase,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ObjectStatus {
    Task(TaskStatus),
    Future(FutureStatus),
}

impl ObjectStatus {
    pub fn phase(&self) -> Option<Phase> {
        match self {
            ObjectStatus::Task(s) => s.phase,
            ObjectStatus::Future(s) => s.phase,
        }
    }

    /// True once the object's outcome is final (Succeeded, Failed, Cancelled, Merged).
    pub fn is_final(&self) -> bool {
        self.phase().is_some_and(Phase::is_final)
    }
}

/// A pool's work at one moment ([`crate::Engine::pool_stats`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Ready for a worker.
    pub queued: u64,
    /// The tasks the ready nodes will become: a map range not yet split
    /// counts as its leaves, a parallel not yet started as its calls,
    /// anything else as one. What a scaler sizes a pool on, with `running`
    /// and `delayed_due`.
    pub queued_tasks: u64,
    /// Leased by workers (a task of a cancelled tree counts until its
    /// worker hears of the cancellation at its next heartbeat).
    pub running: u64,
    /// Waiting for a delay, notBefore or a retry's backoff.
    pub delayed: u64,
    /// Of `delayed`, those whose time has come. The ticker queues them
    /// within 10 ms, so on the wall clock this is nearly always 0; it is
    /// there so a scaler can count them either way.
    pub delayed_due: u64,
}

/// One node of a future tree as `kontinuum tree` shows it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TreeNode {
    /// Child indexes from the root, e.g. `/2/0`.
    pub path: String,
    /// call, split, leaf, parallel, sequence, or link (an object that
    /// joined the tree through parentRef).
    pub kind: String,
    /// The function a call node calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
    /// For a link: the object, `NS/KIND/NAME`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// waiting, blocked, queued, running, children, folding, succeeded, failed, cancelled.
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
