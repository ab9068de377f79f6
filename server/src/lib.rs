//! The worker API: the engine behind the versioned HTTP/JSON API that remote
//! workers, the CLI and the operator's clients use ([`serve`], [`Server`]),
//! and a small [`Client`] for the CLI's side of it. `kontinuum serve` and
//! `kontinuum-operator` both run it.
//!
//! `kontinuum serve --data DIR --listen ADDR [--token-file F]` is, in
//! essence: open the engine on DIR, read the token with
//! [`token_from_file`], and `serve(engine, addr, token, ctrl_c)`; [`serve`]
//! refuses a non-loopback ADDR without a token ([`ServeError::TokenRequired`]).

pub mod auth;
mod body;
pub mod client;
mod conn;
mod engine_metrics;
mod error;
pub mod metrics;
mod objects;
mod server;
mod submit;
mod worker_api;

pub use client::{Client, ClientError};
pub use conn::{BODY_READ_TIMEOUT, HEADER_READ_TIMEOUT, Limits, MAX_CONNECTIONS};
pub use engine_metrics::{CONNECTED_WITHIN, EngineCollector};
pub use error::{ApiError, ServeError};
pub use server::{Server, WorkerRecord, serve, token_from_file};
