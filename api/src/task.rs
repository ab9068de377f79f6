//! The Task custom resource: one distributed call.

use crate::common::{Condition, ErrorInfo, RetryPolicy, default_pool};
use crate::fnref::FnRef;
use crate::future::ParentRef;
use crate::object::Phase;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One distributed function call: queued, leased by a worker, retried, and
/// optionally delayed, debounced or run in an exclusive section.
#[derive(CustomResource, KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "kontinuum.dev",
    version = "v1alpha1",
    kind = "Task",
    plural = "tasks",
    singular = "task",
    shortname = "kt",
    namespaced,
    doc = "One distributed function call: queued, leased by a worker, retried, optionally delayed, debounced or serialized.",
    status = "TaskStatus",
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Function","type":"string","jsonPath":".spec.call.function"}"#,
    printcolumn = r#"{"name":"Attempts","type":"integer","jsonPath":".status.attempts"}"#,
    printcolumn = r#"{"name":"Result","type":"string","description":"The result as exact JSON text (status.resultText)","jsonPath":".status.resultText"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","description":"Why it is not done yet (the Ready condition's reason), e.g. NoWorkerPool","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[x_kube(validation = Rule::new("self == oldSelf").message(crate::messages::SPEC_IMMUTABLE))]
#[x_kube(validation = Rule::new("!(has(self.delay) && has(self.notBefore))").message(crate::messages::TASK_DELAY_AND_NOT_BEFORE).field_path(".delay"))]
#[serde(rename_all = "camelCase")]
pub struct TaskSpec {
    /// WorkerPool (in this namespace) whose workers run the call.
    #[serde(default = "default_pool")]
    pub pool: String,
    /// The function to call and its arguments.
    pub call: FnRef,
    /// Continuation run as a new task after success, called with + {result}.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_success: Option<FnRef>,
    /// Continuation run as a new task after the final failure, called with + {error}.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_failure: Option<FnRef>,
    /// Attempts and backoff between them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryPolicy>,
    /// Limit per attempt; an attempt that exceeds it (or whose lease expires) fails as a timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::optional_duration")]
    pub timeout: Option<String>,
    /// Run no earlier than this long after acceptance (a countdown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::optional_duration")]
    pub delay: Option<String>,
    /// Run no earlier than this instant (RFC 3339, an eta).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::date_time")]
    pub not_before: Option<String>,
    /// Debounce calls with the same key: at most one run per `repeat`, and always a run at or after the latest call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub debounce: Option<DebounceSpec>,
    /// Critical section: at most one run at a time per key, cluster-wide.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclusive: Option<ExclusiveSpec>,
    /// Makes this Task a child of a HierarchicalFuture in the same namespace:
    /// its weight, progress and result roll up into that future.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_ref: Option<ParentRef>,
    /// Delete the finished Task this long after it finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::optional_duration")]
    pub ttl_after_finished: Option<String>,
}

/// Debounce settings (the seed's initsec and repeatsec).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DebounceSpec {
    /// Wait at least this long after a call before running (default 0s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::optional_duration")]
    pub initial: Option<String>,
    /// At most one run per this period (default: initial).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::optional_duration")]
    pub repeat: Option<String>,
    /// Debounce key; default: the stable id of `call`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// Exclusive-section settings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExclusiveSpec {
    /// Calls that arrive while a run holds the section collapse into one rerun after it (true), or are merged without a rerun (false, the default).
    #[serde(default)]
    pub rerun_on_skip: bool,
    /// Section key; default: the stable id of `call`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// What happened to the call.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = crate::schema::with_result_text)]
pub struct TaskStatus {
    /// Pending, Queued, Running, Succeeded, Failed, Cancelled or Merged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// Stable id of `call` (sha256 of its canonical JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_id: Option<String>,
    /// Attempts started so far.
    #[serde(default)]
    pub attempts: u32,
    /// The function's result (when at most 4 KiB of JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::any_value")]
    pub result: Option<Value>,
    /// Where a larger result is kept in the store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_ref: Option<String>,
    /// True when the result is too large for the status: `kontinuum get` and the API serve it whole.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub result_truncated: bool,
    /// The final (or latest) error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorInfo>,
    /// When the first attempt started (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// When the outcome became final (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// Name of the Task started for the outcome (onSuccess or onFailure), e.g. `sum-4-5.on-success`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continuation: Option<String>,
    /// For phase Merged: the run this call was folded into.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged_into: Option<String>,
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
