//! What the crates' tests need to run work over HTTP: [`TestServer`], the
//! worker API (`kontinuum_server::Server`) in this process over a fresh or
//! reopened store, and [`Process`], a child process (a `kontinuum-worker`,
//! a seed worker) that is killed when the test ends, however it ends.
//!
//! A test that starts `kontinuum serve` itself (the CLI's tests) is testing
//! that binary, so it keeps its own launcher; its workers are [`Process`]es.

mod process;
mod server;

pub use process::{Process, worker};
pub use server::{ServerOptions, TestServer};
