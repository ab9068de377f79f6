//! Kontinuum's operator. For now: the engine behind the versioned HTTP/JSON
//! API that remote workers and the CLI use ([`serve`], [`Server`]), and a
//! small [`Client`] for the CLI's side of it. Kubernetes controllers come
//! later and will serve the same API.

mod body;
pub mod client;
mod error;
mod objects;
mod server;
mod worker_api;

pub use client::{Client, ClientError};
pub use error::{ApiError, ServeError};
pub use server::{Server, WorkerRecord, serve};
