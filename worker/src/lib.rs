//! Kontinuum's worker SDK and runtime.
//!
//! - Write functions: [`Registry::register`] (async) and
//!   [`Registry::register_sync`] (pure CPU, the map fast path); they receive a
//!   [`Ctx`] and an [`Args`] view and return `Result<Value, FnError>`.
//!   [`Registry::register_int`] (or [`Function::int_kernel`]) adds an
//!   integer kernel: range maps with sum/mean/count then skip JSON per item.
//! - Serve them: [`Runtime`] leases work from a [`WorkSource`] (the embedded
//!   engine, or a remote server), runs it, heartbeats and completes it
//!   in batches. [`start_in_process`] is the `kontinuum run` entry.
//! - [`std_registry`] holds the `std.*` functions (docs/reference.md).
//!
//! ```
//! use kontinuum_worker::{Args, Ctx, FnError, Registry};
//! use serde_json::{Value, json};
//! use std::sync::Arc;
//!
//! #[derive(serde::Deserialize)]
//! struct Greet {
//!     name: String,
//! }
//!
//! let mut registry = Registry::new();
//! // Pure and quick: the sync fast path (map leaves call it per item).
//! registry.register_sync("demo.greet", |_ctx, args| {
//!     let Greet { name } = args.parse()?; // wrong type: permanent error naming `name`
//!     Ok(json!(format!("hello {name}")))
//! });
//! // Anything that waits: async.
//! registry.register("demo.twice", |ctx, args| async move {
//!     let f = args.fnref("f")?; // an FnRef argument, {"$fn": {...}}
//!     let once = ctx.call_inline(&f).await?;
//!     Ok(json!([once.clone(), once]))
//! });
//!
//! let ctx = Ctx::detached(Arc::new(registry));
//! let greet = kontinuum_api::FnRef::new("demo.greet").arg("name", "ada");
//! let args = json!({"f": greet.to_value()});
//! let args = args.as_object().cloned().unwrap_or_default();
//! let out = futures::executor::block_on(ctx.invoke("demo.twice", Args::new(&args)).resolve());
//! assert_eq!(out, Ok(json!(["hello ada", "hello ada"])));
//!
//! let bad = json!({"name": 7}).as_object().cloned().unwrap_or_default();
//! let err: FnError = ctx.invoke("demo.greet", Args::new(&bad)).resolve_now().unwrap_err();
//! assert!(err.permanent && err.message.starts_with("argument 'name'"));
//! # let _: Value = Value::Null;
//! ```

mod args;
pub mod cli;
mod completions;
mod ctx;
mod error;
mod execute;
mod fold;
pub mod handler;
mod heartbeat;
mod in_process;
mod invocation;
mod map;
pub mod metrics;
mod objects;
mod policy;
mod registry;
pub mod remote;
mod runtime;
mod serve_remote;
mod shared;
mod source;
mod std_fns;
mod typed;

pub use args::Args;
pub use ctx::{Ctx, Function, Functions, IntKernel, TaskInfo};
pub use error::{FnError, SourceError};
pub use execute::execute;
pub use in_process::{InProcessWorkers, start_in_process};
pub use invocation::{FnResult, Invocation, Scalar};
pub use metrics::WorkerMetrics;
pub use policy::FunctionPolicy;
pub use registry::{DynamicFunctions, Registry};
pub use remote::{RemoteConfig, RemoteSource};
pub use runtime::Runtime;
pub use serve_remote::{ServeError, ServeOptions, init_logging, serve_registry};
pub use shared::RuntimeConfig;
pub use source::WorkSource;
pub use std_fns::{register_std, std_registry};
pub use typed::{BindArgsError, FnRefExt, TypedFn, fn_value};

#[cfg(test)]
mod runtime_tests;
#[cfg(test)]
mod testing;
