//! Functions by name: closures registered as functions, the names known
//! only at run time ([`DynamicFunctions`]), the pool's allow and deny lists.
//! The registry is what a running task's [`Ctx`] calls through, as its
//! [`Functions`].

use crate::args::Args;
use crate::ctx::{Ctx, Function, Functions, IntKernel};
use crate::error::FnError;
use crate::invocation::{FnResult, Invocation, Scalar};
use crate::policy::FunctionPolicy;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

struct SyncFn<F>(F);

impl<F> Function for SyncFn<F>
where
    F: Fn(&Ctx, Args<'_>) -> FnResult + Send + Sync + 'static,
{
    fn invoke(&self, ctx: &Ctx, args: Args<'_>) -> Invocation {
        Invocation::Ready((self.0)(ctx, args))
    }
}

/// A function of an integer `item` only: callable like any other, and with
/// an integer kernel for range maps.
struct IntFn<F>(F);

impl<F> Function for IntFn<F>
where
    F: Fn(i64) -> Result<Scalar, FnError> + Send + Sync + 'static,
{
    fn invoke(&self, _: &Ctx, args: Args<'_>) -> Invocation {
        let item = match args.require("item") {
            Ok(v) => v,
            Err(e) => return Invocation::Ready(Err(e)),
        };
        Invocation::Ready(match item.as_i64() {
            Some(i) => (self.0)(i).and_then(Scalar::to_value),
            None => Err(FnError::bad_arg(
                "item",
                format!("expected a 64-bit integer, got {item}"),
            )),
        })
    }

    fn int_kernel(&self, _bound: &Map<String, Value>) -> Option<IntKernel<'_>> {
        Some(Box::new(|i| (self.0)(i)))
    }
}

struct AsyncFn<F>(F);

impl<F, Fut> Function for AsyncFn<F>
where
    F: Fn(Ctx, Args<'static>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = FnResult> + Send + 'static,
{
    fn invoke(&self, ctx: &Ctx, args: Args<'_>) -> Invocation {
        // The future must not borrow the caller, so it gets owned copies.
        Invocation::Pending(Box::pin((self.0)(ctx.clone(), args.into_owned())))
    }
}

/// Functions whose names are known only at run time: a handler's processes
/// announce theirs after the worker has started (worker/src/handler/).
/// Asked only for names the registry itself does not hold.
pub trait DynamicFunctions: Send + Sync + 'static {
    /// The function to call for `name`, if this source may serve it.
    fn resolve(&self, name: &str) -> Option<Arc<dyn Function>>;
    /// The names it serves now, sorted.
    fn names(&self) -> Vec<String>;
    /// Changes whenever [`DynamicFunctions::names`] does, so that the
    /// worker can tell the server its new roster.
    fn changes(&self) -> tokio::sync::watch::Receiver<u64>;
}

/// Function names to implementations. Registering a name again replaces the
/// earlier function (so a worker can override a `std.*` function).
#[derive(Clone, Default)]
pub struct Registry {
    functions: HashMap<String, Arc<dyn Function>>,
    dynamic: Option<Arc<dyn DynamicFunctions>>,
    policy: FunctionPolicy,
}

impl Registry {
    pub fn new() -> Self {
        Registry::default()
    }

    /// An async function: `registry.register("x", |ctx, args| async move { ... })`.
    pub fn register<F, Fut>(&mut self, name: &str, f: F) -> &mut Self
    where
        F: Fn(Ctx, Args<'static>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = FnResult> + Send + 'static,
    {
        self.register_function(name, Arc::new(AsyncFn(f)))
    }

    /// A pure, quick CPU function, called in place with no async overhead.
    /// It runs on the async executor, so it must not block or take long
    /// (say, more than a few milliseconds per call); use [`Registry::register`]
    /// with `tokio::task::spawn_blocking` for that.
    pub fn register_sync<F>(&mut self, name: &str, f: F) -> &mut Self
    where
        F: Fn(&Ctx, Args<'_>) -> FnResult + Send + Sync + 'static,
    {
        self.register_function(name, Arc::new(SyncFn(f)))
    }

    /// A pure function of an integer `item` (bound arguments are ignored).
    /// Besides ordinary calls, a map over a range with sum, mean or count
    /// runs it on the integer fast path, a few ns per item.
    pub fn register_int<F>(&mut self, name: &str, f: F) -> &mut Self
    where
        F: Fn(i64) -> Result<Scalar, FnError> + Send + Sync + 'static,
    {
        self.register_function(name, Arc::new(IntFn(f)))
    }

    pub fn register_function(&mut self, name: &str, f: Arc<dyn Function>) -> &mut Self {
        self.functions.insert(name.to_string(), f);
        self
    }

    /// Adds every function of `other`, replacing same-named ones (and its
    /// dynamic source, if it has one).
    pub fn extend(&mut self, other: Registry) -> &mut Self {
        self.functions.extend(other.functions);
        if other.dynamic.is_some() {
            self.dynamic = other.dynamic;
        }
        self
    }

    /// Names this registry does not hold are looked up in `source` (one
    /// per registry; a later one replaces it).
    pub fn set_dynamic(&mut self, source: Arc<dyn DynamicFunctions>) -> &mut Self {
        self.dynamic = Some(source);
        self
    }

    pub fn dynamic(&self) -> Option<&Arc<dyn DynamicFunctions>> {
        self.dynamic.as_ref()
    }

    /// A function registered under `name` (not the dynamic ones: see
    /// [`Registry::resolve`]), unless the pool's lists refuse it.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn Function>> {
        if self.policy.refusal(name).is_some() {
            return None;
        }
        self.functions.get(name)
    }

    /// Serves only what `policy` allows (the pool's allow and deny lists).
    pub fn set_policy(&mut self, policy: FunctionPolicy) -> &mut Self {
        self.policy = policy;
        self
    }

    /// Why a call of `name` is refused by the pool's lists, if it is.
    pub fn refusal(&self, name: &str) -> Option<String> {
        self.policy.refusal(name)
    }

    /// The function a call of `name` runs: a registered one, else the
    /// dynamic source's; none that the pool's lists refuse.
    pub fn resolve(&self, name: &str) -> Option<Arc<dyn Function>> {
        if self.policy.refusal(name).is_some() {
            return None;
        }
        match self.functions.get(name) {
            Some(f) => Some(f.clone()),
            None => self.dynamic.as_ref().and_then(|d| d.resolve(name)),
        }
    }

    pub fn contains(&self, name: &str) -> bool {
        self.functions.contains_key(name)
    }

    /// Every name served, sorted and once each (what a worker tells the
    /// engine it serves): registered ones and the dynamic source's now.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.functions.keys().cloned().collect();
        if let Some(d) = &self.dynamic {
            names.extend(d.names());
        }
        names.retain(|n| self.policy.refusal(n).is_none());
        names.sort();
        names.dedup();
        names
    }
}

impl Functions for Registry {
    fn get(&self, name: &str) -> Option<&Arc<dyn Function>> {
        Registry::get(self, name)
    }

    fn resolve(&self, name: &str) -> Option<Arc<dyn Function>> {
        Registry::resolve(self, name)
    }

    fn refusal(&self, name: &str) -> Option<String> {
        Registry::refusal(self, name)
    }
}
