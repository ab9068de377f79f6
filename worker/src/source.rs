//! Where work comes from: the engine's worker-facing calls, as a trait so
//! the same runtime serves the embedded engine and (later) a remote server.

use crate::ctx::TaskServices;
use crate::error::SourceError;
use futures::future::BoxFuture;
use kontinuum_api::work::{Completion, CompletionAck, HeartbeatReply, Lease, NodeId};
use kontinuum_api::{FnRef, TaskSpec};
use std::future::Future;
use std::time::Duration;

/// The engine as a worker sees it (mirrors `kontinuum_engine::Engine`).
pub trait WorkSource: Send + Sync + 'static {
    /// Up to `max` leases for `pool` ("*" = any), waiting up to `wait` for the first.
    fn lease(
        &self,
        pool: &str,
        worker: &str,
        max: usize,
        wait: Duration,
    ) -> impl Future<Output = Result<Vec<Lease>, SourceError>> + Send;

    /// Keeps a lease alive; `progress` is the units done so far in this attempt.
    fn heartbeat(
        &self,
        token: u64,
        progress: Option<u64>,
    ) -> impl Future<Output = Result<HeartbeatReply, SourceError>> + Send;

    /// Reports outcomes; one ack per completion, in order.
    fn complete(
        &self,
        completions: Vec<Completion>,
    ) -> impl Future<Output = Result<Vec<CompletionAck>, SourceError>> + Send;

    /// Hands leases back unfinished (the worker is stopping): the engine
    /// queues them again at once without counting an attempt.
    fn release(
        &self,
        tokens: Vec<u64>,
    ) -> impl Future<Output = Result<Vec<CompletionAck>, SourceError>> + Send;

    /// A map leaf gives up its slice from `at` on; `true` when accepted.
    fn split(&self, token: u64, at: i64) -> impl Future<Output = Result<bool, SourceError>> + Send;

    /// Adds a child future node under the running task's node.
    fn add_child(
        &self,
        token: u64,
        call: FnRef,
        weight: u64,
    ) -> impl Future<Output = Result<NodeId, SourceError>> + Send;

    /// Starts an independent task from a running task.
    fn spawn(
        &self,
        token: u64,
        spec: TaskSpec,
    ) -> impl Future<Output = Result<NodeId, SourceError>> + Send;
}

impl<S: WorkSource> TaskServices for S {
    fn split(&self, token: u64, at: i64) -> BoxFuture<'_, Result<bool, SourceError>> {
        Box::pin(WorkSource::split(self, token, at))
    }
    fn add_child(
        &self,
        token: u64,
        call: FnRef,
        weight: u64,
    ) -> BoxFuture<'_, Result<NodeId, SourceError>> {
        Box::pin(WorkSource::add_child(self, token, call, weight))
    }
    fn spawn(&self, token: u64, spec: TaskSpec) -> BoxFuture<'_, Result<NodeId, SourceError>> {
        Box::pin(WorkSource::spawn(self, token, spec))
    }
}
