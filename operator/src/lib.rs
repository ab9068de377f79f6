//! Kontinuum's Kubernetes operator: one process that runs the engine, the
//! worker API and the controllers that bridge Task and HierarchicalFuture
//! resources to the engine (see docs/operator.md).
//!
//! - [`reconcile`]: read → [`reconcile::plan::plan`] (pure) → steps (finalizer,
//!   submit, cancel, remove, ttl).
//! - [`status`]: the one status writer (coalescing index, rendering, Events).
//! - [`leader`]: leader election on a Lease, with a renew deadline;
//!   [`admission`]: readiness waits until the API server admits creates of
//!   Tasks and futures; `health`: what the probes answer.
//! - [`logging`]: what `RUST_LOG` means (a bare `debug` is for Kontinuum's
//!   crates only).
//! - [`bridge`]: the engine as the controllers see it; [`feed`]: its changes,
//!   pushed to the status writer and the WorkerPool controllers.
//! - [`uninstall`]: `kontinuum-operator uninstall`, the chart's pre-delete
//!   hook (deletes the release's resources while the operator still runs).

pub mod admission;
pub mod backoff;
pub mod bridge;
pub mod config;
pub mod error;
pub mod feed;
#[cfg(test)]
mod fixtures;
mod health;
pub mod job;
pub mod leader;
pub mod logging;
pub mod metrics;
pub mod pool;
pub mod reconcile;
mod run;
pub mod status;
mod store_lock;
pub mod tokenreview;
pub mod uninstall;

pub use config::Flags;
pub use error::Error;
pub use run::run;

/// Milliseconds since the Unix epoch by the wall clock (0 before 1970).
pub(crate) fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
