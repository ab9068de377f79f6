//! Kontinuum's worker SDK and runtime.
//!
//! - Write functions: [`Registry::register`] (async) and
//!   [`Registry::register_sync`] (pure CPU, the map fast path); they receive a
//!   [`Ctx`] and an [`Args`] view and return `Result<Value, FnError>`.
//! - Serve them: [`Runtime`] leases work from a [`WorkSource`] (the embedded
//!   engine, or later a remote server), runs it, heartbeats and completes it
//!   in batches. [`start_in_process`] is the `kontinuum run` entry.
//! - [`std_registry`] holds the `std.*` functions of DESIGN.md §2.

mod args;
mod completions;
mod ctx;
mod error;
mod execute;
mod fold;
mod heartbeat;
mod in_process;
mod kernel;
mod lines;
mod map;
mod registry;
mod runtime;
mod source;
mod std_fns;

pub use args::Args;
pub use ctx::{Ctx, TaskInfo};
pub use error::{FnError, SourceError};
pub use execute::execute;
pub use in_process::{InProcessWorkers, start_in_process};
pub use registry::{FnResult, Function, IntKernel, Invocation, Registry, Scalar};
pub use runtime::{Runtime, RuntimeConfig};
pub use source::WorkSource;
pub use std_fns::{register_std, std_registry};

#[cfg(test)]
mod map_tests;
#[cfg(test)]
mod runtime_tests;
#[cfg(test)]
mod testing;
