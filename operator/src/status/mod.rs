//! The one writer of Task and HierarchicalFuture status.
//!
//! Reconcilers and the engine say *what* may have changed; the writer
//! decides *when* to write: coalesced per object, at most one patch per
//! `--status-interval`, only when the rendered status differs from the last
//! one written, by server-side apply with field manager `kontinuum-operator`.

pub mod events;
pub mod index;
pub mod model;
pub mod render;
pub mod unserved;
mod writer;

pub use model::JobStatus;
pub use render::Note;
pub use writer::{StatusHandle, StatusMsg, Writer};
