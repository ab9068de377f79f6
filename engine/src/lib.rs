//! The durable engine: everything Kontinuum promises about calls and future
//! trees, on sled, with no knowledge of Kubernetes.
//!
//! Data flow: [`Engine::submit`] plans (checks) then applies a submission as
//! one atomic write; [`Engine::lease`] hands queued nodes to workers (doing
//! engine work such as map splits on the way); [`Engine::complete`] records
//! outcomes, rolls values and progress up the tree and starts continuations,
//! again as one atomic write each, made durable by group commit.

mod build;
mod decide;
mod engine;
mod guard;
mod machine;
mod model;
mod salvage;
mod status;
mod store;
mod tree;
mod types;
mod writer;

pub use engine::{Engine, now_ms};
pub use types::*;
