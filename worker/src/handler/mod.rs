//! Handlers: functions in any language, served by long-lived child
//! processes that speak a line-delimited JSON protocol (docs/handlers.md)
//! over their fds 3 and 4. The worker keeps leases, heartbeats, batching and
//! shutdown; a handler only runs functions.
//!
//! `protocol.rs` is the wire format; `lines.rs` reads bounded lines;
//! `spawn.rs` starts a process with its pipes; `output.rs` writes to one
//! (straight into the pipe when it can); `process.rs` is one live
//! process (its calls, its messages, its death); `pool.rs` starts,
//! supervises and restarts the processes and keeps the roster;
//! `function.rs` is a handler function as the registry calls it. Each uses
//! only those before it, except `pool.rs` and `function.rs`, which are two
//! halves of one thing.

mod function;
mod lines;
mod output;
mod pool;
mod process;
pub mod protocol;
mod spawn;

pub use pool::{HandlerConfig, HandlerPool};
pub use spawn::{IN_FD, OUT_FD, split_command};
