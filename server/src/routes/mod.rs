//! The handlers behind `/v1`, by who calls them: `work.rs` for workers
//! (register, lease, heartbeat, complete, release, split, children, spawn),
//! `objects.rs` and `submit.rs` for the CLI and other clients (submit, list,
//! get, tree, cancel). They share only [`crate::state`]; `server.rs` maps
//! paths to them.

pub(crate) mod objects;
pub(crate) mod submit;
pub(crate) mod work;
