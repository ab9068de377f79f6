//! What is stored: a tree of nodes per root, one root record per tree with
//! its settings and roll-up, and the per-key debounce and exclusive state.
//! Every type here is serialized into the store (see store.rs for where).

use kontinuum_api::common::ErrorInfo;
use kontinuum_api::reducer::Reducer;
use kontinuum_api::work::NodeId;
use kontinuum_api::{FnRef, ObjectId};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Records leave out fields at their default: smaller records are cheaper to
/// encode, to keep in sled's cache and to write to its log.
fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

/// One unit of a tree: a call, a map shard, or a node that only gathers children.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Node {
    pub id: NodeId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<NodeId>,
    pub root: NodeId,
    /// Position among the parent's children (creation order).
    #[serde(default, skip_serializing_if = "is_default")]
    pub index: u32,
    #[serde(default, skip_serializing_if = "is_default")]
    pub depth: u32,
    pub body: Body,
    /// Expected work units.
    #[serde(default, skip_serializing_if = "is_default")]
    pub weight: u64,
    pub state: NodeState,
    /// For `Waiting`: when it becomes due (ms since the epoch).
    #[serde(default, skip_serializing_if = "is_default")]
    pub due_ms: u64,
    #[serde(default, skip_serializing_if = "is_default")]
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorInfo>,
    /// The body's own value (a map leaf's accumulator, a call's result).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub own: Option<Value>,
    /// Children created so far.
    #[serde(default, skip_serializing_if = "is_default")]
    pub children: u32,
    /// Children whose outcome is final.
    #[serde(default, skip_serializing_if = "is_default")]
    pub finished_children: u32,
    /// Of `children`, how many are links to other objects (parentRef).
    #[serde(default, skip_serializing_if = "is_default")]
    pub linked: u32,
    #[serde(default, skip_serializing_if = "is_default")]
    pub started_ms: u64,
    #[serde(default, skip_serializing_if = "is_default")]
    pub finished_ms: u64,
    /// In memory only: the node's place in its pool's ready queue while it
    /// is queued (0 otherwise), so a cancelled tree leaves the queue at once.
    #[serde(skip)]
    pub queued_seq: u64,
}

/// What a node does itself.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Body {
    /// A worker calls this function.
    Call { call: FnRef },
    /// Engine work: split positions `start..end` of the root's map into children.
    Split { start: u64, end: u64 },
    /// A worker maps positions `start..end` of the root's map.
    Leaf { start: u64, end: u64 },
    /// A worker measures the root's map source (data only workers can
    /// read); its answer turns this root into the map's first Split or
    /// Leaf. `shard` is the manifest's shard size in items (lines).
    Plan { shard: u64 },
    /// Engine work: start every call as a child at once.
    Parallel { calls: Vec<FnRef> },
    /// Engine work: start the calls one after another.
    Sequence { calls: Vec<FnRef> },
    /// Another object that joined this tree (parentRef): its root and id.
    /// The node runs while that object does and takes its value or failure.
    Linked { root: NodeId, object: ObjectId },
}

impl Body {
    /// Bodies the engine carries out itself when it takes them off the queue.
    pub fn is_engine_work(&self) -> bool {
        matches!(
            self,
            Body::Split { .. } | Body::Parallel { .. } | Body::Sequence { .. }
        )
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum NodeState {
    /// Not due yet (delay, backoff).
    Waiting,
    /// Held back by an exclusive section.
    Blocked,
    Queued,
    Running,
    /// The body is done; children are not.
    Children,
    /// Children are done; their values await an FnRef reducer (a Fold task).
    Folding,
    Succeeded,
    Failed,
    Cancelled,
}

impl NodeState {
    pub fn is_final(self) -> bool {
        matches!(
            self,
            NodeState::Succeeded | NodeState::Failed | NodeState::Cancelled
        )
    }

    /// The name stored and shown (`kontinuum tree`).
    pub fn name(self) -> &'static str {
        match self {
            NodeState::Waiting => "waiting",
            NodeState::Blocked => "blocked",
            NodeState::Queued => "queued",
            NodeState::Running => "running",
            NodeState::Children => "children",
            NodeState::Folding => "folding",
            NodeState::Succeeded => "succeeded",
            NodeState::Failed => "failed",
            NodeState::Cancelled => "cancelled",
        }
    }

    pub fn bucket(self) -> CountBucket {
        match self {
            NodeState::Waiting | NodeState::Blocked | NodeState::Queued => CountBucket::Pending,
            NodeState::Running | NodeState::Children | NodeState::Folding => CountBucket::Running,
            NodeState::Succeeded => CountBucket::Succeeded,
            NodeState::Failed => CountBucket::Failed,
            NodeState::Cancelled => CountBucket::Cancelled,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CountBucket {
    Pending,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RootKind {
    Task,
    Future,
}

impl RootKind {
    pub fn object_kind(self) -> kontinuum_api::ObjectKind {
        match self {
            RootKind::Task => kontinuum_api::ObjectKind::Task,
            RootKind::Future => kontinuum_api::ObjectKind::Future,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RootState {
    Active,
    Succeeded,
    Failed,
    Cancelled,
    /// Folded into another run by debounce or an exclusive section.
    Merged,
}

impl RootState {
    pub fn name(self) -> &'static str {
        match self {
            RootState::Active => "active",
            RootState::Succeeded => "succeeded",
            RootState::Failed => "failed",
            RootState::Cancelled => "cancelled",
            RootState::Merged => "merged",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetrySettings {
    pub max_attempts: u32,
    pub initial_ms: u64,
    pub factor: f64,
    pub max_ms: u64,
}

impl Default for RetrySettings {
    fn default() -> Self {
        RetrySettings {
            max_attempts: 3,
            initial_ms: 1_000,
            factor: 2.0,
            max_ms: 300_000,
        }
    }
}

/// Where a map's items come from; positions index into it.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum MapSourceKind {
    /// Position p is the integer `start + p`.
    Range { start: i64 },
    /// Position p is item p of the list kept in the store (blob of the root).
    Items,
    /// Positions are byte offsets into the file.
    Lines { path: String },
    /// Objects under `key` (a prefix ending in `/`, or empty) or the one
    /// object `key`. With `lines`, positions are byte offsets into the
    /// concatenation of the listing (kept as the root's items, each with
    /// its `start`); otherwise position p is object p of the listing.
    Objects {
        store: kontinuum_api::work::StoreRef,
        key: String,
        lines: bool,
    },
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MapParams {
    pub function: FnRef,
    pub reducer: Reducer,
    /// Positions per leaf: shardSize items, or for lines shardSize times the
    /// file's average line length in bytes (0 until a worker planned it).
    pub shard_units: u64,
    pub fanout: u32,
    pub source: MapSourceKind,
}

/// An object a tree's value is written to.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutputTarget {
    pub store: kontinuum_api::work::StoreRef,
    pub key: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExclusiveSettings {
    pub key: String,
    pub rerun_on_skip: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    #[serde(default, skip_serializing_if = "is_default")]
    pub pending: u64,
    #[serde(default, skip_serializing_if = "is_default")]
    pub running: u64,
    #[serde(default, skip_serializing_if = "is_default")]
    pub succeeded: u64,
    #[serde(default, skip_serializing_if = "is_default")]
    pub failed: u64,
    #[serde(default, skip_serializing_if = "is_default")]
    pub cancelled: u64,
}

impl Counts {
    pub fn slot(&mut self, bucket: CountBucket) -> &mut u64 {
        match bucket {
            CountBucket::Pending => &mut self.pending,
            CountBucket::Running => &mut self.running,
            CountBucket::Succeeded => &mut self.succeeded,
            CountBucket::Failed => &mut self.failed,
            CountBucket::Cancelled => &mut self.cancelled,
        }
    }
}

/// Where an object that joined another future's tree sits in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    /// The parent future's root.
    pub parent: NodeId,
    /// The node standing for this object in the parent's tree.
    pub node: NodeId,
}

/// A tree's settings and roll-up: one per Task, future, continuation or
/// spawned task. Small at any tree size.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Root {
    pub id: NodeId,
    /// The object's id for Tasks, futures and continuations; None for tasks
    /// spawned by the SDK.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<ObjectId>,
    /// The uid of the custom resource this object stands for, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    pub kind: RootKind,
    pub namespace: String,
    pub pool: String,
    pub stable_id: String,
    #[serde(default, skip_serializing_if = "is_default")]
    pub retry: RetrySettings,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_success: Option<FnRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_failure: Option<FnRef>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub max_failed_children: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub map: Option<MapParams>,
    /// Where a worker writes the tree's value (spec.output), if anywhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<OutputTarget>,
    /// The value is known and a worker is writing it to `output`; the root
    /// node waits in `Folding` with the value as its own.
    #[serde(default, skip_serializing_if = "is_default")]
    pub output_pending: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub debounce_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclusive: Option<ExclusiveSettings>,
    pub state: RootState,
    /// Declared weight (fixes `total`), else None and total is the sum known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub declared_total: Option<u64>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub known_total: u64,
    #[serde(default, skip_serializing_if = "is_default")]
    pub done: u64,
    #[serde(default, skip_serializing_if = "is_default")]
    pub counts: Counts,
    #[serde(default, skip_serializing_if = "is_default")]
    pub nodes: u64,
    #[serde(default, skip_serializing_if = "is_default")]
    pub depth: u32,
    #[serde(default, skip_serializing_if = "is_default")]
    pub failed_leaves: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<(String, String)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorInfo>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub attempts: u32,
    pub accepted_ms: u64,
    #[serde(default, skip_serializing_if = "is_default")]
    pub started_ms: u64,
    #[serde(default, skip_serializing_if = "is_default")]
    pub finished_ms: u64,
    /// The continuation's root, and its object when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continuation: Option<NodeId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continuation_object: Option<ObjectId>,
    /// Set when this object joined another future's tree.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<Link>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged_into: Option<NodeId>,
    /// The name of the run it merged into, when that run has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged_into_name: Option<String>,
    /// For a named object: hash of its canonical spec, which a
    /// resubmission under the same name must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec_hash: Option<String>,
    /// In memory only: the index of the tree's (namespace, pool) in the
    /// engine's pools, set when the root is loaded.
    #[serde(skip)]
    pub slot: u32,
}

impl Root {
    pub fn total(&self) -> u64 {
        self.declared_total.unwrap_or(self.known_total)
    }

    /// A one-call tree with default settings; callers adjust the rest.
    pub fn new_task(
        id: NodeId,
        object: Option<ObjectId>,
        namespace: &str,
        pool: &str,
        stable_id: String,
        now_ms: u64,
    ) -> Root {
        Root {
            id,
            object,
            uid: None,
            kind: RootKind::Task,
            namespace: namespace.to_string(),
            pool: pool.to_string(),
            stable_id,
            retry: RetrySettings::default(),
            timeout_ms: None,
            deadline_ms: None,
            on_success: None,
            on_failure: None,
            max_failed_children: 0,
            map: None,
            output: None,
            output_pending: false,
            debounce_key: None,
            exclusive: None,
            state: RootState::Active,
            declared_total: None,
            known_total: 1,
            done: 0,
            counts: Counts::default(),
            nodes: 0,
            depth: 0,
            failed_leaves: 0,
            failures: Vec::new(),
            result: None,
            error: None,
            attempts: 0,
            accepted_ms: now_ms,
            started_ms: 0,
            finished_ms: 0,
            continuation: None,
            continuation_object: None,
            link: None,
            merged_into: None,
            merged_into_name: None,
            spec_hash: None,
            slot: 0,
        }
    }
}

impl Node {
    /// The root node of a tree shares the root's id.
    pub fn root_node(id: NodeId, body: Body, weight: u64, state: NodeState, due_ms: u64) -> Node {
        Node {
            id,
            parent: None,
            root: id,
            index: 0,
            depth: 0,
            body,
            weight,
            state,
            due_ms,
            attempts: 0,
            error: None,
            own: None,
            children: 0,
            finished_children: 0,
            linked: 0,
            started_ms: 0,
            finished_ms: 0,
            queued_seq: 0,
        }
    }
}

/// Debounce state per key.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DebounceState {
    /// The run that is scheduled and has not started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<NodeId>,
    /// When the last run started (ms since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run_ms: Option<u64>,
}

/// Exclusive-section state per key.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExclusiveState {
    /// The root that holds the section (queued or running).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder: Option<NodeId>,
    /// The one rerun that collapsed calls wait in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rerun: Option<NodeId>,
}
