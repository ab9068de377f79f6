//! The durable engine: everything Kontinuum promises about calls and future
//! trees, on sled, with no knowledge of Kubernetes.
//!
//! Data flow: [`Engine::submit`] plans (checks) then applies a submission as
//! one atomic write; [`Engine::lease`] hands queued nodes to workers (doing
//! engine work such as map splits on the way); [`Engine::complete`] records
//! outcomes, rolls values and progress up the tree and starts continuations,
//! again as one atomic write each, made durable by group commit.
//!
//! Where things are: `public.rs` and `error.rs` are what callers use;
//! `engine.rs` (workers' calls) and `objects.rs` (calls about objects) are
//! the public face, `feed.rs` the change feed, `observe.rs` what is counted for metrics; `build.rs` turns specs into
//! records;
//! `machine/` is the state machine (its own module doc says which file holds
//! what); `policy.rs` holds the pure policies (backoff, debounce, exclusive,
//! splitting); `records.rs` is what is stored and `store.rs`/`writer.rs` how.

mod build;
#[cfg(test)]
mod build_tests;
mod clock;
mod engine;
mod error;
mod feed;
mod guard;
mod machine;
mod objects;
mod observe;
mod policy;
mod public;
mod records;
mod salvage;
mod status;
mod store;
mod tree;
mod writer;

pub use build::tasks_ahead;
pub use clock::{Clock, ManualClock};
pub use engine::Engine;
pub use error::EngineError;
pub use feed::{ChangeFeed, Changes};
pub use observe::{
    AttemptOutcome, EngineFigures, FINAL_PHASES, FSYNC_BUCKETS, FunctionFigures, Histogram,
    MAX_FUNCTIONS_PER_POOL, NamespaceFigures, OTHER_FUNCTION, PoolFigures, TASK_DURATION_BUCKETS,
};
pub use public::*;
