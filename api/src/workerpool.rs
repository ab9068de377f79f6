//! The WorkerPool custom resource: a Deployment of workers scaled by queue depth.

use crate::common::Condition;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// Workers that serve a set of functions, as a Deployment whose replicas follow the queue.
#[derive(CustomResource, KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "kontinuum.dev",
    version = "v1alpha1",
    kind = "WorkerPool",
    plural = "workerpools",
    singular = "workerpool",
    shortname = "wp",
    namespaced,
    doc = "A pool of workers (a Deployment) scaled by queue depth.",
    status = "WorkerPoolStatus",
    scale = r#"{"specReplicasPath":".spec.replicas","statusReplicasPath":".status.replicas","labelSelectorPath":".status.selector"}"#,
    printcolumn = r#"{"name":"Desired","type":"integer","jsonPath":".status.desiredReplicas"}"#,
    printcolumn = r#"{"name":"Ready","type":"integer","jsonPath":".status.readyReplicas"}"#,
    printcolumn = r#"{"name":"Queued","type":"integer","jsonPath":".status.queued"}"#,
    printcolumn = r#"{"name":"Running","type":"integer","jsonPath":".status.running"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct WorkerPoolSpec {
    /// Pod template of the worker Deployment (the stock worker image when omitted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::free_form_object")]
    pub template: Option<PodTemplateSpec>,
    /// Tasks one replica runs at once (default 8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub concurrency: Option<u32>,
    /// How replicas follow queue depth.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scaling: Option<Scaling>,
    /// Fixed replicas (set by `kubectl scale`); when set, queue-depth scaling is off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub replicas: Option<i32>,
    /// How the worker runs in the pool's pods: put into any image, or the image's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<WorkerSpec>,
}

/// How the worker runs in the pool's pods.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkerSpec {
    /// Copy `kontinuum-worker` into the worker container (an init container of the stock image, an emptyDir at /kontinuum/bin) and run it there, so any image becomes a worker and keeps its files. Default: true when the template names an image; false for an image that runs a worker itself (a Rust SDK worker).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inject: Option<bool>,
    /// A program serving functions in any language over the handler protocol, e.g. `python3 /app/tasks.py` (kontinuum-worker --handler).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4096))]
    pub handler: Option<String>,
    /// Handler processes per worker (default: the pool's concurrency).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1024))]
    pub handler_processes: Option<u32>,
    /// Which functions the pool's workers serve: `allow` (if set, only names matching one of its patterns) and `deny` (never these; wins over allow). `*` stands for any run of characters, e.g. `deny: [std.exec]`. A call the lists refuse fails, naming the list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub functions: Option<FunctionLists>,
}

/// A pool's allow and deny lists of function-name patterns.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FunctionLists {
    /// Serve only functions matching one of these (default: every function the workers have).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<String>,
    /// Never serve functions matching these.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[x_kube(validation = Rule::new("!has(self.minReplicas) || !has(self.maxReplicas) || self.minReplicas <= self.maxReplicas").message(crate::messages::SCALING_MIN_ABOVE_MAX).field_path(".minReplicas"))]
#[serde(rename_all = "camelCase")]
pub struct Scaling {
    /// Fewest replicas (default 0: scale to zero).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub min_replicas: Option<i32>,
    /// Most replicas (default 20).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub max_replicas: Option<i32>,
    /// Queued plus running tasks one replica should carry (default 16).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub target_per_replica: Option<u32>,
    /// How long the queue must stay low before replicas are removed (default 60s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::optional_duration")]
    pub scale_down_delay: Option<String>,
}

/// The pool's replicas and the queue they serve.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkerPoolStatus {
    /// Replicas of the worker Deployment.
    #[serde(default)]
    pub replicas: i32,
    /// Replicas whose pods are ready.
    #[serde(default)]
    pub ready_replicas: i32,
    /// Replicas last applied to the Deployment: what the demand asks for,
    /// or on the way down the highest it asked for during the last
    /// scaleDownDelay.
    #[serde(default)]
    pub desired_replicas: i32,
    /// The work the scaler sizes the pool on: the tasks its queue will
    /// become (a map range not yet split counts as its leaves, a parallel
    /// as its calls), plus those running and those delayed whose time has
    /// come.
    #[serde(default)]
    pub demand: u64,
    /// While replicas are held above what the demand asks for (the
    /// scale-down window): when they may go down (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_down_at: Option<String>,
    /// Entries of the ready queue (due now): a map range not yet split is
    /// one, whatever it will become (see `demand`).
    #[serde(default)]
    pub queued: u64,
    /// Tasks leased to workers.
    #[serde(default)]
    pub running: u64,
    /// Tasks waiting for a later time.
    #[serde(default)]
    pub delayed: u64,
    /// Workers connected.
    #[serde(default)]
    pub workers: u32,
    /// Functions the connected workers serve.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub functions: Vec<String>,
    /// Label selector of the pods (for the scale subresource).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// When replicas last changed (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scale_time: Option<String>,
    /// Ready conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The spec generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}
