//! Bodies of the versioned HTTP/JSON API (`/v1/...`) between the server
//! (`kontinuum serve`, the operator) and its clients (remote workers, the
//! CLI). Shared so both sides agree by construction; docs/protocol.md says
//! what each endpoint does with them.
//!
//! Field names are camelCase like the rest of the API. Lease tokens are
//! JSON integers up to 2^64-1: clients in languages whose numbers are
//! doubles must read them as big integers (or strings of digits).

use crate::TaskSpec;
use crate::fnref::FnRef;
use crate::work::{Completion, CompletionAck, HeartbeatReply, Lease, NodeId};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The path prefix of this protocol version.
pub const PREFIX: &str = "/v1";

/// The largest request body a server accepts, in bytes.
pub const MAX_BODY_BYTES: usize = 8 << 20;

/// The longest a lease call may wait for work; longer waits are cut to this.
pub const MAX_LEASE_WAIT_MS: u64 = 30_000;

/// The most leases (or completions) one call may carry.
pub const MAX_BATCH: usize = 4096;

/// `POST /v1/workers/register`: a worker says who it is before leasing.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegisterRequest {
    /// The worker's own name (e.g. its pod or host name and pid).
    pub worker: String,
    /// The pool it serves ("*" = any).
    pub pool: String,
    /// Names of the functions it serves.
    #[serde(default)]
    pub functions: Vec<String>,
    /// Tasks it runs at once.
    #[serde(default)]
    pub concurrency: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegisterResponse {
    /// The name to use in lease calls (the server may make it unique).
    pub worker: String,
    /// Limits the server enforces, so the worker can size its calls.
    pub max_batch: usize,
    pub max_lease_wait_ms: u64,
    pub max_body_bytes: usize,
}

/// `GET /v1/workers`: the workers seen in the last few minutes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerList {
    pub workers: Vec<WorkerView>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerView {
    pub worker: String,
    pub pool: String,
    /// Empty for a worker that leased without registering (for example
    /// after the server restarted).
    pub functions: Vec<String>,
    pub concurrency: u32,
    /// Milliseconds since its last register or lease call.
    pub idle_ms: u64,
    /// The namespace its token confines it to; absent for the shared token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Leases it holds now (tasks it runs).
    #[serde(default)]
    pub running: u64,
}

/// `POST /v1/lease`: up to `max` leases, waiting up to `waitMs` for the first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LeaseRequest {
    pub worker: String,
    pub pool: String,
    pub max: usize,
    #[serde(default)]
    pub wait_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaseResponse {
    pub leases: Vec<Lease>,
    /// The server does not know this worker (it restarted since the worker
    /// registered): register again, so that it lists the worker's functions.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub register: bool,
}

/// `POST /v1/heartbeat`: answered with a [`HeartbeatReply`] (a stale token
/// is `lost: true`, not an error).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HeartbeatRequest {
    pub token: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<u64>,
}

pub type HeartbeatResponse = HeartbeatReply;

/// `POST /v1/complete`: outcomes, answered one ack per completion, in order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CompleteRequest {
    pub completions: Vec<Completion>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CompleteResponse {
    pub acks: Vec<CompletionAck>,
}

/// `POST /v1/release`: leases handed back unfinished (a worker stopping),
/// queued again at once without counting an attempt. Answered like
/// complete: one ack per token, `stale` for a token no longer live.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReleaseRequest {
    pub tokens: Vec<u64>,
}

/// `POST /v1/split`: a map leaf gives up its slice from `at` on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SplitRequest {
    pub token: u64,
    pub at: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SplitResponse {
    pub accepted: bool,
}

/// `POST /v1/children`: adds a child future node under the running call.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChildRequest {
    pub token: u64,
    pub call: FnRef,
    #[serde(default = "one")]
    pub weight: u64,
}

fn one() -> u64 {
    1
}

/// `POST /v1/spawn`: starts an independent task from a running one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SpawnRequest {
    pub token: u64,
    pub spec: TaskSpec,
}

/// The answer to children and spawn: the new node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeResponse {
    pub node: NodeId,
}

/// `POST /v1/objects`: manifests (Task, HierarchicalFuture, WorkerPool
/// documents as JSON), validated on the server and accepted all or nothing.
/// `lines` paths must be absolute paths on the server's machine.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SubmitRequest {
    pub objects: Vec<Value>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubmitResponse {
    /// Ids (`NAMESPACE/task/NAME`, `NAMESPACE/future/NAME`,
    /// `NAMESPACE/workerpool/NAME`), in the order submitted. WorkerPools are
    /// accepted but run nothing here.
    pub names: Vec<String>,
}

/// `GET /v1/objects/{namespace}/{kind}/{name}`, and the items of `GET /v1/objects`:
/// an object as kubectl shows it, without its spec (the engine keeps a
/// hash of the spec, not the spec).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectView {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    /// TaskStatus or FutureStatus.
    pub status: Value,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    pub name: String,
    pub namespace: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectList {
    pub api_version: String,
    pub kind: String,
    #[serde(default)]
    pub metadata: ListMeta,
    pub items: Vec<ObjectView>,
}

/// A page's metadata: `continue` is present when more objects follow; send
/// it back as `?continue=` (with the same `kind`) for the next page.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ListMeta {
    #[serde(rename = "continue", default, skip_serializing_if = "Option::is_none")]
    pub continue_token: Option<String>,
}

/// Objects per page of `GET /v1/objects` unless `limit` says otherwise.
pub const LIST_DEFAULT_LIMIT: usize = 500;
/// The largest `limit` a listing accepts.
pub const LIST_MAX_LIMIT: usize = 5000;

/// `GET /healthz`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    pub status: String,
    pub version: String,
}

/// Every 4xx and 5xx answer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    /// A stable code: see [`codes`].
    pub error: String,
    /// A sentence for people.
    pub message: String,
    /// The offending field, when one field is to blame (`completions[3].token`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Manifest problems (`POST /v1/objects`): one per field.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<Problem>,
}

/// One manifest problem: which object (index in the request), which field.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    pub object: usize,
    pub field: String,
    pub message: String,
}

/// The `error` codes of [`ErrorBody`].
pub mod codes {
    /// 400: the body is not JSON, or a field has the wrong type or is missing.
    pub const BAD_REQUEST: &str = "bad_request";
    /// 400: a manifest failed validation (`problems` says where).
    pub const INVALID: &str = "invalid";
    /// 401: missing or wrong bearer token.
    pub const UNAUTHORIZED: &str = "unauthorized";
    /// 403: the caller is known but confined to another namespace.
    pub const FORBIDDEN: &str = "forbidden";
    /// 404: no such route, or no such object.
    pub const NOT_FOUND: &str = "not_found";
    /// 405: the route exists, the method does not.
    pub const METHOD_NOT_ALLOWED: &str = "method_not_allowed";
    /// 409: the lease token is stale or unknown (split, children, spawn).
    pub const STALE_LEASE: &str = "stale_lease";
    /// 409: an object of that name exists with another spec.
    pub const CONFLICT: &str = "conflict";
    /// 408: the body did not arrive within the server's body read timeout.
    pub const TIMEOUT: &str = "timeout";
    /// 413: the body is larger than the limit.
    pub const TOO_LARGE: &str = "too_large";
    /// 500: the server failed; the request may be retried.
    pub const INTERNAL: &str = "internal";
    /// 503: the server is shutting down or its store failed; retry later.
    pub const UNAVAILABLE: &str = "unavailable";
    /// 503: a write to the store failed (a full disk): every call is refused
    /// until the server restarts; retrying before that cannot succeed.
    pub const STORE_FAILED: &str = "store_failed";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_and_defaults() {
        let r: HeartbeatRequest = serde_json::from_str(r#"{"token": 18446744073709551615}"#)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.token, u64::MAX);
        assert!(serde_json::from_str::<HeartbeatRequest>(r#"{"token": 1, "x": 2}"#).is_err());
        let c: ChildRequest =
            serde_json::from_str(r#"{"token": 1, "call": {"function": "std.echo"}}"#)
                .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.weight, 1);
    }
}

/// `GET /v1/objects/{namespace}/{kind}/{name}/result`: the whole result,
/// also when the status holds only `resultRef` (over 4 KiB); `null` until
/// there is one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResultView {
    pub result: Option<serde_json::Value>,
}
