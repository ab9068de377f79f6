//! Spec and status pieces shared by Task, HierarchicalFuture and WorkerPool.

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub fn default_pool() -> String {
    "default".to_string()
}

/// Retry policy for each task of a call.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetryPolicy {
    /// Attempts in all, the first one included (default 3). At least 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_attempts: Option<u32>,
    /// Delay before each retry: initial, multiplied by factor per attempt, capped at max.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<Backoff>,
}

/// Exponential backoff between attempts.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Backoff {
    /// Delay before the first retry (default 1s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::optional_duration")]
    pub initial: Option<String>,
    /// Multiplier per further retry (default 2). At least 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1.0))]
    pub factor: Option<f64>,
    /// Longest delay between attempts (default 5m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::optional_duration")]
    pub max: Option<String>,
}

/// A standard Kubernetes-style condition.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Condition type: Ready, Succeeded or Failed.
    #[serde(rename = "type")]
    pub type_: String,
    /// True, False or Unknown.
    pub status: String,
    /// One CamelCase word saying why.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// A human-readable explanation.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// When the status last changed (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
    /// The spec generation this condition describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

impl Condition {
    /// Whether this condition is of type `t`.
    pub fn is(&self, t: ConditionType) -> bool {
        self.type_ == t.as_str()
    }
}

/// The types of condition a Task or HierarchicalFuture shows. `Ready`,
/// `Succeeded` and `Failed` come from the engine; `Accepted` (and any
/// `Ready` the engine cannot give) from the operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConditionType {
    Accepted,
    Ready,
    Succeeded,
    Failed,
}

impl ConditionType {
    pub const fn as_str(self) -> &'static str {
        match self {
            ConditionType::Accepted => "Accepted",
            ConditionType::Ready => "Ready",
            ConditionType::Succeeded => "Succeeded",
            ConditionType::Failed => "Failed",
        }
    }
}

/// A condition's `status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConditionStatus {
    True,
    False,
    Unknown,
}

impl ConditionStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            ConditionStatus::True => "True",
            ConditionStatus::False => "False",
            ConditionStatus::Unknown => "Unknown",
        }
    }
}

/// The reasons the operator gives in conditions (and, for the warnings
/// among them, in Events). Clients match on these words: `kubectl get`
/// prints the `Ready` one, scripts wait for them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// The engine holds the object.
    Submitted,
    /// The spec passed the CRD schema but not the engine's rules.
    InvalidSpec,
    /// `spec.parentRef` names a future that does not exist (yet).
    WaitingForParent,
    /// `spec.parentRef` names a future that already finished.
    ParentFinished,
    /// The run was held by another store, lost with it.
    StoreReplaced,
    /// The operator's store failed; nothing moves until a restart.
    EngineStopped,
    /// Nothing serves the object's pool.
    NoWorkerPool,
}

impl Reason {
    pub const fn as_str(self) -> &'static str {
        match self {
            Reason::Submitted => "Submitted",
            Reason::InvalidSpec => "InvalidSpec",
            Reason::WaitingForParent => "WaitingForParent",
            Reason::ParentFinished => "ParentFinished",
            Reason::StoreReplaced => "StoreReplaced",
            Reason::EngineStopped => "EngineStopped",
            Reason::NoWorkerPool => "NoWorkerPool",
        }
    }
}

/// Why a task failed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorInfo {
    /// What the function (or the engine) said.
    pub message: String,
    /// retryable, permanent, timeout or cancelled.
    pub kind: ErrorKind,
    /// The attempt (1-based) that produced this error.
    #[serde(default)]
    pub attempt: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ErrorKind {
    Retryable,
    Permanent,
    Timeout,
    Cancelled,
}

/// A result small enough for the status, or a reference to it in the store.
pub const RESULT_INLINE_LIMIT: usize = 4096;

pub use crate::limits::RESULT_TEXT_LIMIT;

/// The result as JSON text, exactly as stored (integers of any size keep
/// every digit), cut to [`RESULT_TEXT_LIMIT`] bytes on a character
/// boundary with ` …` when longer. This is `status.resultText` in a
/// cluster: kubectl decodes integers beyond 64 bits as doubles, so
/// `status.result` read through it loses digits, while a string does not.
pub fn result_text(value: &Value) -> String {
    let mut text = serde_json::to_string(value).unwrap_or_default();
    if text.len() > RESULT_TEXT_LIMIT {
        const MARK: &str = " …";
        let mut cut = RESULT_TEXT_LIMIT - MARK.len();
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str(MARK);
    }
    text
}

/// Splits a result into the inline form and, when too large, a reference.
pub fn inline_result(
    value: &Value,
    store_ref: impl FnOnce() -> String,
) -> (Option<Value>, Option<String>) {
    let size = serde_json::to_string(value)
        .map(|s| s.len())
        .unwrap_or(usize::MAX);
    if size <= RESULT_INLINE_LIMIT {
        (Some(value.clone()), None)
    } else {
        (None, Some(store_ref()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn condition_words_are_the_ones_clients_read() {
        let ready = Condition {
            type_: "Ready".into(),
            status: ConditionStatus::False.as_str().into(),
            ..Condition::default()
        };
        assert!(ready.is(ConditionType::Ready) && !ready.is(ConditionType::Accepted));
        let types = [
            ConditionType::Accepted,
            ConditionType::Ready,
            ConditionType::Succeeded,
            ConditionType::Failed,
        ];
        assert_eq!(
            types.map(ConditionType::as_str),
            ["Accepted", "Ready", "Succeeded", "Failed"]
        );
        let statuses = [
            ConditionStatus::True,
            ConditionStatus::False,
            ConditionStatus::Unknown,
        ];
        assert_eq!(
            statuses.map(ConditionStatus::as_str),
            ["True", "False", "Unknown"]
        );
        let reasons = [
            Reason::Submitted,
            Reason::InvalidSpec,
            Reason::WaitingForParent,
            Reason::ParentFinished,
            Reason::StoreReplaced,
            Reason::EngineStopped,
            Reason::NoWorkerPool,
        ];
        assert_eq!(
            reasons.map(Reason::as_str),
            [
                "Submitted",
                "InvalidSpec",
                "WaitingForParent",
                "ParentFinished",
                "StoreReplaced",
                "EngineStopped",
                "NoWorkerPool"
            ]
        );
    }

    #[test]
    fn result_text_is_exact_and_bounded() {
        let big: Value = serde_json::from_str("333333283333335000000").unwrap();
        assert_eq!(result_text(&big), "333333283333335000000");
        // One more than a double can hold keeps its last digit.
        let odd: Value = serde_json::from_str("9007199254740993").unwrap();
        assert_eq!(result_text(&odd), "9007199254740993");
        assert_eq!(
            result_text(&serde_json::json!({"a": [1, "x"]})),
            r#"{"a":[1,"x"]}"#
        );
        let long = Value::String("é".repeat(1000));
        let text = result_text(&long);
        assert!(text.len() <= RESULT_TEXT_LIMIT, "{}", text.len());
        assert!(text.starts_with("\"éé") && text.ends_with(" …"), "{text}");
    }
}
