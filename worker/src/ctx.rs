//! `Ctx`: what a running function knows about its task and can ask of the
//! engine. One per task attempt; cloning it is cheap (one `Arc`). The runtime
//! keeps a clone to report progress and to pass on cancellation.
//!
//! The [`Function`] trait lives here too, and the [`Functions`] a context
//! calls by name: the registry implements that from above, so this module
//! needs nothing of how functions are registered.

use crate::args::Args;
use crate::error::{FnError, SourceError};
use crate::invocation::{FnResult, Invocation, Scalar};
use futures::future::BoxFuture;
use kontinuum_api::work::NodeId;
use kontinuum_api::{FnRef, TaskSpec};
use serde_json::{Map, Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use tokio::sync::Notify;

/// `item` → number, for map leaves over integer ranges (see [`Function::int_kernel`]).
pub type IntKernel<'a> = Box<dyn Fn(i64) -> Result<Scalar, FnError> + Send + Sync + 'a>;

/// A function workers can run. Most code registers closures with
/// [`Registry::register`](crate::Registry::register) or
/// [`Registry::register_sync`](crate::Registry::register_sync) instead.
/// Here beside [`Ctx`] because each needs the other: a function is called
/// with a context, and a context calls functions by name.
pub trait Function: Send + Sync + 'static {
    fn invoke(&self, ctx: &Ctx, args: Args<'_>) -> Invocation;

    /// Optional fast path: with these bound arguments, the function maps an
    /// integer `item` to a number, exactly as [`Function::invoke`] would but
    /// without JSON values. A map leaf over a range with an arithmetic
    /// reducer (sum, mean, count) then calls it per item, a few ns instead
    /// of ~150 (with arbitrary-precision JSON every number is a string).
    fn int_kernel(&self, _bound: &Map<String, Value>) -> Option<IntKernel<'_>> {
        None
    }

    /// How many of its calls a map leaf may have waiting at once (items
    /// taken in order, results folded in order). 1 for ordinary functions:
    /// a leaf is one task. A handler's function answers more, so that one
    /// round trip to its process is not paid per item.
    fn map_window(&self) -> usize {
        1
    }
}

/// The functions a running task can call by name: the worker's
/// [`Registry`](crate::Registry), or any other table of them.
pub trait Functions: Send + Sync + 'static {
    /// A function registered under `name`, borrowed: most calls need no
    /// reference count of their own.
    fn get(&self, name: &str) -> Option<&Arc<dyn Function>>;
    /// The function a call of `name` runs, names known only at run time
    /// included; none that the pool's lists refuse.
    fn resolve(&self, name: &str) -> Option<Arc<dyn Function>>;
    /// Why the pool's lists refuse a call of `name`, if they do.
    fn refusal(&self, name: &str) -> Option<String>;
}

/// The engine calls a running task may make. Object-safe so that `Ctx` need
/// not be generic over the work source.
pub(crate) trait TaskServices: Send + Sync + 'static {
    fn split(&self, token: u64, at: i64) -> BoxFuture<'_, Result<bool, SourceError>>;
    fn add_child(
        &self,
        token: u64,
        call: FnRef,
        weight: u64,
    ) -> BoxFuture<'_, Result<NodeId, SourceError>>;
    fn spawn(&self, token: u64, spec: TaskSpec) -> BoxFuture<'_, Result<NodeId, SourceError>>;
}

/// Services for a context with no engine behind it (tests, local calls).
struct Detached;

const DETACHED: &str = "not running under a worker runtime";

impl TaskServices for Detached {
    fn split(&self, _: u64, _: i64) -> BoxFuture<'_, Result<bool, SourceError>> {
        Box::pin(async { Ok(false) })
    }
    fn add_child(&self, _: u64, _: FnRef, _: u64) -> BoxFuture<'_, Result<NodeId, SourceError>> {
        Box::pin(async { Err(SourceError::Rejected(DETACHED.into())) })
    }
    fn spawn(&self, _: u64, _: TaskSpec) -> BoxFuture<'_, Result<NodeId, SourceError>> {
        Box::pin(async { Err(SourceError::Rejected(DETACHED.into())) })
    }
}

/// The lease a context belongs to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TaskInfo {
    pub token: u64,
    pub node: NodeId,
    pub attempt: u32,
    /// The pool this worker serves ("*" = any), for error messages.
    pub pool: String,
    /// When this attempt times out (its lease's `timeoutMs` from when it
    /// was leased), if it has a timeout: handlers are told it.
    pub deadline: Option<std::time::SystemTime>,
}

struct Inner {
    info: TaskInfo,
    functions: Arc<dyn Functions>,
    services: Arc<dyn TaskServices>,
    /// Units done, as the function or map leaf last reported.
    progress: AtomicU64,
    progress_reported: AtomicBool,
    split_requested: AtomicBool,
    cancelled: AtomicBool,
    cancel_notify: Notify,
    /// Set by whoever reports the attempt's outcome first (the task itself,
    /// or the heartbeat loop on cancellation), so it is reported once.
    finished: AtomicBool,
}

/// The context of one running task attempt.
#[derive(Clone)]
pub struct Ctx {
    inner: Arc<Inner>,
}

impl Ctx {
    pub(crate) fn new(
        info: TaskInfo,
        functions: Arc<dyn Functions>,
        services: Arc<dyn TaskServices>,
    ) -> Ctx {
        Ctx {
            inner: Arc::new(Inner {
                info,
                functions,
                services,
                progress: AtomicU64::new(0),
                progress_reported: AtomicBool::new(false),
                split_requested: AtomicBool::new(false),
                cancelled: AtomicBool::new(false),
                cancel_notify: Notify::new(),
                finished: AtomicBool::new(false),
            }),
        }
    }

    /// A context outside any runtime: functions can be called (inline calls
    /// work), but `child`/`spawn` fail. For tests and local use.
    pub fn detached(functions: Arc<dyn Functions>) -> Ctx {
        let info = TaskInfo {
            pool: "local".into(),
            ..TaskInfo::default()
        };
        Ctx::new(info, functions, Arc::new(Detached))
    }

    pub fn info(&self) -> &TaskInfo {
        &self.inner.info
    }

    /// The lease token of this attempt.
    pub fn token(&self) -> u64 {
        self.inner.info.token
    }

    /// The function a call of `name` runs here, if one does (see
    /// [`Functions::resolve`]).
    pub fn resolve(&self, name: &str) -> Option<Arc<dyn Function>> {
        self.inner.functions.resolve(name)
    }

    /// Reports `units` of work done so far in this attempt (sent with the next heartbeat).
    pub fn progress(&self, units: u64) {
        self.inner.progress.store(units, Ordering::Relaxed);
        self.inner.progress_reported.store(true, Ordering::Relaxed);
    }

    pub(crate) fn reported_progress(&self) -> Option<u64> {
        self.inner
            .progress_reported
            .load(Ordering::Relaxed)
            .then(|| self.inner.progress.load(Ordering::Relaxed))
    }

    pub fn is_cancelled(&self) -> bool {
        self.inner.cancelled.load(Ordering::Acquire)
    }

    /// Resolves once the task is cancelled (or its lease is lost).
    pub async fn cancelled(&self) {
        let notified = self.inner.cancel_notify.notified();
        tokio::pin!(notified);
        // Register before checking the flag, so a cancel in between is not missed.
        notified.as_mut().enable();
        if self.is_cancelled() {
            return;
        }
        notified.await;
    }

    pub(crate) fn cancel(&self) {
        self.inner.cancelled.store(true, Ordering::Release);
        self.inner.cancel_notify.notify_waiters();
    }

    pub(crate) fn request_split(&self) {
        self.inner.split_requested.store(true, Ordering::Relaxed);
    }

    /// Takes a pending split request (a map leaf polls this between items).
    pub(crate) fn take_split_request(&self) -> bool {
        self.inner.split_requested.load(Ordering::Relaxed)
            && self.inner.split_requested.swap(false, Ordering::Relaxed)
    }

    /// True for the one caller that gets to report the outcome.
    pub(crate) fn claim_finish(&self) -> bool {
        !self.inner.finished.swap(true, Ordering::AcqRel)
    }

    pub(crate) async fn split(&self, at: i64) -> Result<bool, SourceError> {
        self.inner.services.split(self.token(), at).await
    }

    /// Adds a child future node under this task's node, with `weight`
    /// expected work units; its value joins this node's summary.
    pub async fn child(&self, call: FnRef, weight: u64) -> Result<NodeId, FnError> {
        Ok(self
            .inner
            .services
            .add_child(self.token(), call, weight)
            .await?)
    }

    /// Starts an independent task (same pool unless the spec says otherwise).
    pub async fn spawn(&self, spec: TaskSpec) -> Result<NodeId, FnError> {
        Ok(self.inner.services.spawn(self.token(), spec).await?)
    }

    /// Starts an independent task that calls `call`, with default settings,
    /// in this worker's pool (the default pool when it serves every pool).
    pub async fn spawn_call(&self, call: &FnRef) -> Result<NodeId, FnError> {
        let mut spec = json!({ "call": call });
        let pool = &self.inner.info.pool;
        if pool != "*" && !pool.is_empty() {
            spec["pool"] = json!(pool);
        }
        // Built from JSON so that new optional TaskSpec fields keep their defaults.
        let spec: TaskSpec = serde_json::from_value(spec).map_err(|e| {
            FnError::permanent(format!("cannot build a task for '{}': {e}", call.function))
        })?;
        self.spawn(spec).await
    }

    /// Calls a function of this worker by name, in this task.
    pub fn invoke(&self, function: &str, args: Args<'_>) -> Invocation {
        if let Some(f) = self.inner.functions.get(function) {
            return f.invoke(self, args);
        }
        match self.inner.functions.resolve(function) {
            Some(f) => f.invoke(self, args),
            None => Invocation::Ready(Err(self.unknown_function(function))),
        }
    }

    /// Calls an FnRef inline: same task, same attempt, no round trip.
    pub async fn call_inline(&self, call: &FnRef) -> FnResult {
        self.invoke(&call.function, Args::new(&call.args))
            .resolve()
            .await
    }

    /// The error of a call to a function no one here serves.
    pub fn unknown_function(&self, function: &str) -> FnError {
        if let Some(refusal) = self.inner.functions.refusal(function) {
            return FnError::permanent(refusal);
        }
        FnError::permanent(format!(
            "function '{function}' is not registered by the workers of pool '{}'",
            self.inner.info.pool
        ))
    }
}
