//! What travels between the engine and workers, in process or over HTTP.
//! The engine hands out [`Lease`]s; a worker executes the [`Work`] and answers
//! with a [`Completion`], heartbeats in between.

use crate::fnref::FnRef;
use crate::reducer::Reducer;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Id of a node (a task) in the engine's store.
pub type NodeId = u64;

/// One attempt of one task, handed to one worker.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Lease {
    /// Opaque; proves this worker holds this attempt. Completions and
    /// heartbeats carrying an older token are refused.
    pub token: u64,
    pub node: NodeId,
    /// 1-based attempt number.
    pub attempt: u32,
    pub work: Work,
    /// The attempt fails as a timeout after this many milliseconds, if set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Without a heartbeat within this many milliseconds the lease expires.
    pub lease_ms: u64,
}

/// What a worker is asked to do.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum Work {
    /// Call the function; its arguments are already merged.
    Call { call: FnRef },
    /// Call `function` with + {item} for every item of the slice, fold the
    /// results with `reducer` and answer with the accumulator
    /// ([`crate::accumulator::Accumulator`] as a value).
    MapLeaf {
        function: FnRef,
        slice: Slice,
        reducer: Reducer,
    },
    /// Fold child values (accumulators, in order) with an FnRef reducer,
    /// calling it with {acc, value}; the first value is the initial acc.
    Fold { reducer: FnRef, values: Vec<Value> },
    /// Measure a map's source where the data is: the engine never reads
    /// users' data, so the first lease of a map over a file is this one,
    /// and its worker answers with a [`SourcePlan`] as the value.
    Plan { source: SourceRef },
    /// Write a future's result to an object: put `value` as JSON at `key`
    /// of `store` and answer with an [`OutputRef`].
    Output {
        store: StoreRef,
        key: String,
        value: Value,
    },
}

/// The name metrics and messages give a [`Work::Output`] lease.
pub const OUTPUT_FUNCTION: &str = "kontinuum.output";

/// A result written to an object: what the status keeps instead.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OutputRef {
    /// `s3://BUCKET/KEY`.
    pub url: String,
    /// The JSON's length in bytes.
    pub bytes: u64,
    /// The SHA-256 of those bytes, in hex.
    pub sha256: String,
}

/// The name metrics and messages give a [`Work::Plan`] lease.
pub const PLAN_FUNCTION: &str = "kontinuum.plan";

/// A map source that only a worker can read.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "source")]
pub enum SourceRef {
    /// A text file on the worker's filesystem (absolute path).
    Lines { path: String },
    /// Objects of an S3-compatible store: every object under `prefix` (a
    /// `url` ending in `/`) or one object; `lines` asks for the mean line
    /// length too.
    Objects {
        store: StoreRef,
        /// The key (one object) or the prefix (ends in `/`, or is empty).
        key: String,
        lines: bool,
    },
}

impl SourceRef {
    /// The manifest field the source came from, for messages.
    pub fn field(&self) -> &'static str {
        match self {
            SourceRef::Lines { .. } => "spec.map.source.lines.path",
            SourceRef::Objects { .. } => "spec.map.source.objects.url",
        }
    }
}

/// Where objects live; the credentials come from the worker's environment.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoreRef {
    pub bucket: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

impl StoreRef {
    /// `s3://BUCKET/KEY`, for messages and items.
    pub fn url(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket)
    }
}

/// One object of a listing, as a plan reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObjectEntry {
    pub key: String,
    pub size: u64,
    /// The object's version as the store names it (read with If-Match, so
    /// an object replaced during the map fails rather than mixes versions).
    #[serde(default)]
    pub etag: String,
}

/// Part of one object a map leaf reads: the lines whose first byte, at
/// `base` + offset in the concatenation of the listing, lies in the leaf's
/// positions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectPart {
    pub key: String,
    pub etag: String,
    pub size: u64,
    /// The position of the object's first byte.
    pub base: u64,
}

/// A worker's answer to [`Work::Plan`]: what the engine needs to shard.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SourcePlan {
    /// The source's size: a file's length in bytes.
    pub bytes: u64,
    /// The mean length of a line in bytes, from a sample of the start
    /// (at least 1): turns a shard size in lines into bytes.
    pub avg_line_bytes: u64,
    /// For objects: the listing, in key order (`bytes` is their sum).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objects: Option<Vec<ObjectEntry>>,
}

/// The part of a map source that one leaf covers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "source")]
pub enum Slice {
    /// Integers `start..end`.
    Range { start: i64, end: i64 },
    /// Items `offset..offset + items.len()` of the source list.
    Items { offset: u64, items: Vec<Value> },
    /// The lines of `path` whose first byte lies in `start..end`. A line
    /// belongs to the range holding its first byte, so any byte offsets
    /// split a file on line boundaries with each line in exactly one range.
    Lines { path: String, start: u64, end: u64 },
    /// The lines of objects whose first byte, counted in the concatenation
    /// of the listing, lies in `start..end`; `parts` are the objects
    /// that range touches, in order.
    ObjectLines {
        store: StoreRef,
        parts: Vec<ObjectPart>,
        start: u64,
        end: u64,
    },
}

impl Slice {
    /// Position units of the slice: items for range and items, bytes for lines.
    pub fn units(&self) -> u64 {
        match self {
            Slice::Range { start, end } => end.saturating_sub(*start) as u64,
            Slice::Items { items, .. } => items.len() as u64,
            Slice::Lines { start, end, .. } | Slice::ObjectLines { start, end, .. } => {
                end.saturating_sub(*start)
            }
        }
    }
}

/// The outcome of one attempt.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Completion {
    pub token: u64,
    pub outcome: Outcome,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "status")]
pub enum Outcome {
    Success {
        value: Value,
    },
    /// `permanent` skips the remaining retries.
    Failure {
        message: String,
        permanent: bool,
    },
}

/// What the engine says in answer to a heartbeat.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeartbeatReply {
    /// The task (or its tree) was cancelled: stop and complete with a failure.
    pub cancelled: bool,
    /// The lease is no longer this worker's (expired or superseded): stop; a
    /// completion would be refused.
    pub lost: bool,
    /// For a map leaf: workers are idle, so split the rest of the slice off
    /// (call split with the next unprocessed position).
    pub split: bool,
}

/// What the engine says to each completion.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum CompletionAck {
    Accepted,
    /// The token was stale (the lease expired and was handed on, or the task
    /// was cancelled): the outcome was ignored.
    Stale,
}
