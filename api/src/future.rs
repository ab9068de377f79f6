//! The HierarchicalFuture custom resource: a tree of work with live progress
//! and a reduced summary.

use crate::common::{Condition, RetryPolicy, default_pool};
use crate::fnref::FnRef;
use crate::object::Phase;
use crate::reducer::Reducer;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A node of a future tree whose value is known when its body and all its
/// children are done. Exactly one body: map, call, parallel or sequence.
#[derive(CustomResource, KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "kontinuum.dev",
    version = "v1alpha1",
    kind = "HierarchicalFuture",
    plural = "futures",
    singular = "future",
    shortname = "hf",
    namespaced,
    doc = "A tree of futures with live progress and a reduced summary of its results.",
    status = "FutureStatus",
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Progress","type":"string","jsonPath":".status.progress.display"}"#,
    printcolumn = r#"{"name":"Done/Total","type":"string","jsonPath":".status.progress.doneTotal"}"#,
    printcolumn = r#"{"name":"Failed","type":"integer","jsonPath":".status.counts.failed"}"#,
    printcolumn = r#"{"name":"Result","type":"string","description":"The result as exact JSON text (status.resultText)","jsonPath":".status.resultText"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","description":"Why it is not done yet (the Ready condition's reason), e.g. NoWorkerPool","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[x_kube(validation = Rule::new("self == oldSelf").message(crate::messages::SPEC_IMMUTABLE))]
#[x_kube(validation = Rule::new("[has(self.map), has(self.call), has(self.parallel), has(self.sequence)].filter(b, b).size() == 1").message(crate::messages::FUTURE_ONE_BODY))]
#[serde(rename_all = "camelCase")]
pub struct HierarchicalFutureSpec {
    /// WorkerPool (in this namespace) whose workers run the tree's tasks.
    #[serde(default = "default_pool")]
    pub pool: String,
    /// Body: an adaptive sharded map over a range, a list of items or the lines of a file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub map: Option<MapSpec>,
    /// Body: one call, which may add children itself through the SDK (ctx.child).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call: Option<FnRef>,
    /// Body: calls run at once as children; the value is the list of their results in order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub parallel: Option<Vec<FnRef>>,
    /// Body: calls run one after another; each is called with + {previous: [results so far]}.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub sequence: Option<Vec<FnRef>>,
    /// Expected work units of the whole tree (default: a map's item count, else the children's weights).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub weight: Option<u64>,
    /// How many failed leaves to tolerate before the future fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_policy: Option<FailurePolicy>,
    /// Retry policy of every task in the tree.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryPolicy>,
    /// Limit per task attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::optional_duration")]
    pub timeout: Option<String>,
    /// Limit for the whole tree, from acceptance; when it passes the tree is cancelled and the future fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::optional_duration")]
    pub deadline: Option<String>,
    /// Continuation run once after success, called with + {result}.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_success: Option<FnRef>,
    /// Continuation run once after failure, called with + {error}.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_failure: Option<FnRef>,
    /// Makes this future a child of another HierarchicalFuture in the same namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_ref: Option<ParentRef>,
    /// Delete the finished future this long after it finished (in a cluster).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::optional_duration")]
    pub ttl_after_finished: Option<String>,
    /// Write the result to an object instead of the status (a collect or merge too large for a resource): a worker of the pool writes it as JSON; the result becomes {url, bytes, sha256}.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<OutputSpec>,
}

/// Where a future's result is written, with the workers' credentials.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.url.matches('^s3://[^/]+/.*[^/]$')").message(crate::messages::OUTPUT_URL).field_path(".url"))]
#[x_kube(validation = Rule::new("!has(self.endpoint) || self.endpoint.matches('^https?://[^/]+')").message(crate::messages::OUTPUT_ENDPOINT).field_path(".endpoint"))]
pub struct OutputSpec {
    /// `s3://BUCKET/KEY`: the object the result is written to (replaced if it exists).
    pub url: String,
    /// The store's address (default: AWS S3 for the region).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// The store's region (default: the workers' `AWS_REGION`, else `us-east-1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

/// An adaptive sharded map.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct MapSpec {
    /// What to map over: exactly one of range, items, lines or objects.
    pub source: MapSource,
    /// Called once per item with + {item}.
    pub function: FnRef,
    /// Items per leaf shard (default 1000). At least 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub shard_size: Option<u64>,
    /// Children per split (default 8). At least 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 2))]
    pub fanout: Option<u32>,
    /// How results combine: sum, count, min, max, mean, collect, merge, or an FnRef called with {acc, value} (default collect).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    // CEL cannot see an untyped field, so the API server checks the reducer's
    // shape with these two (a string matches the names; an object needs
    // `function`); crate::validate checks the rest.
    #[schemars(schema_with = "crate::schema::any_value")]
    #[schemars(extend("pattern" = crate::messages::REDUCER_NAME_PATTERN, "required" = ["function"]))]
    pub reduce: Option<Reducer>,
}

/// The input of a map.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
// Exactly one of range, items, lines, objects: CEL cannot see the untyped `items`, so
// this is said with property counts (crate::messages::MAP_SOURCE_ONE).
#[schemars(extend("minProperties" = 1, "maxProperties" = 1))]
#[serde(rename_all = "camelCase")]
pub struct MapSource {
    /// Integers start (inclusive) to end (exclusive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<RangeSource>,
    /// A list of JSON values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::any_value_list")]
    pub items: Option<Vec<Value>>,
    /// The lines of a text file readable by the workers; shards are byte ranges split on line boundaries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lines: Option<LinesSource>,
    /// Objects in an S3-compatible store, read by the workers with the credentials of their environment: the lines of every object (byte ranges, split on line boundaries), or each object as one item.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objects: Option<ObjectsSource>,
}

/// Objects in an S3-compatible store. Credentials never appear here: the
/// workers take them from their environment (`AWS_ACCESS_KEY_ID` and
/// `AWS_SECRET_ACCESS_KEY` from a Secret, or the cloud's workload identity).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.url.matches('^s3://[^/]+(/.*)?$')").message(crate::messages::OBJECTS_URL).field_path(".url"))]
#[x_kube(validation = Rule::new("!has(self.endpoint) || self.endpoint.matches('^https?://[^/]+')").message(crate::messages::OBJECTS_ENDPOINT).field_path(".endpoint"))]
pub struct ObjectsSource {
    /// `s3://BUCKET/PREFIX/` (ending in `/`, or just the bucket): every object under the prefix, in key order; `s3://BUCKET/KEY`: that one object.
    pub url: String,
    /// The store's address, e.g. `http://seaweedfs.storage:8333` (default: AWS S3 for the region).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// The store's region (default: the workers' `AWS_REGION`, else `us-east-1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// `lines` (default): every line of every object is an item; `objects`: every object is one item `{key, size, etag}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read: Option<ObjectsRead>,
}

/// What a map over objects calls its function with.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum ObjectsRead {
    /// Every line of every object.
    #[default]
    Lines,
    /// Every object, as `{key, size, etag}`.
    Objects,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[x_kube(validation = Rule::new("self.end >= self.start").message(crate::messages::RANGE_END_BEFORE_START).field_path(".end"))]
pub struct RangeSource {
    /// First item (inclusive).
    pub start: i64,
    /// End (exclusive).
    pub end: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct LinesSource {
    /// Path of the text file, as the workers see it (relative paths are relative to the manifest's directory for `kontinuum run`).
    #[schemars(length(min = 1))]
    pub path: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FailurePolicy {
    /// Failed leaves tolerated before the future fails (default 0).
    #[serde(default)]
    pub max_failed_children: u64,
}

/// Another HierarchicalFuture in the same namespace whose tree this object
/// joins: its weight, progress and value roll up into that future, and
/// cancelling that future cancels this object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ParentRef {
    /// Name of the parent HierarchicalFuture.
    #[schemars(length(min = 1))]
    pub name: String,
}

/// The tree's state, kept small at any tree size.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = crate::schema::with_result_text)]
pub struct FutureStatus {
    /// Pending, Running, Succeeded, Failed or Cancelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// Work units done of the total.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<Progress>,
    /// Nodes of the tree by state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counts: Option<NodeCounts>,
    /// Nodes in the tree so far.
    #[serde(default)]
    pub nodes: u64,
    /// Depth of the tree so far (the root alone is 1).
    #[serde(default)]
    pub depth: u32,
    /// The reduced summary (when at most 4 KiB of JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::any_value")]
    pub result: Option<Value>,
    /// Where a larger result is kept in the store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_ref: Option<String>,
    /// True when the result is too large for the status: `kontinuum get` and the API serve it whole.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub result_truncated: bool,
    /// The first failures (at most 10): node path and message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<NodeFailure>,
    /// Work units per second over the run so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throughput: Option<f64>,
    /// Estimated time left, as a duration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eta: Option<String>,
    /// When the first task started (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// When the outcome became final (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// Name of the Task started for the outcome (onSuccess or onFailure), e.g. `squares.on-success`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continuation: Option<String>,
    /// Ready, Succeeded and Failed conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The spec generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The operator's store that holds this run (`st-` and 32 hex digits).
    /// A resource whose status names another store lost its work with that
    /// store: it is not run again unless asked (annotation `kontinuum.dev/rerun`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_id: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    /// Units done; never decreases.
    pub done: u64,
    /// The root's declared weight, else the sum of the weights known so far.
    pub total: u64,
    /// done / total, 0 to 100.
    pub percent: u32,
    /// The percentage as printed, e.g. `42%`.
    #[serde(default)]
    pub display: String,
    /// `done/total` as printed.
    #[serde(default)]
    pub done_total: String,
}

impl Progress {
    pub fn new(done: u64, total: u64) -> Self {
        let percent = if total == 0 {
            0
        } else {
            ((done.min(total) as u128 * 100) / total as u128) as u32
        };
        Progress {
            done,
            total,
            percent,
            display: format!("{percent}%"),
            done_total: format!("{done}/{total}"),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct NodeCounts {
    /// Nodes waiting: queued, delayed, or held by an exclusive section.
    pub pending: u64,
    /// Nodes running, or waiting for their children.
    pub running: u64,
    /// Nodes that succeeded.
    pub succeeded: u64,
    /// Nodes that failed for good (after retries).
    pub failed: u64,
    /// Nodes cancelled (with their tree, or merged into another run).
    pub cancelled: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct NodeFailure {
    /// Path of the node from the root, e.g. `/3/0/5`.
    pub path: String,
    /// The failure's message.
    pub message: String,
}
