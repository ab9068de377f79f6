//! The worker API: the engine behind the versioned HTTP/JSON API that remote
//! workers, the CLI and the operator's clients use ([`serve`], [`Server`]),
//! and a small [`Client`] for the CLI's side of it. `kontinuum serve` and
//! `kontinuum-operator` both run it.
//!
//! `kontinuum serve --data DIR --listen ADDR [--token-file F]` is, in
//! essence: open the engine on DIR, read the token with
//! [`token_from_file`], and `serve(engine, addr, token, ctrl_c)`; [`serve`]
//! refuses a non-loopback ADDR without a token ([`ServeError::TokenRequired`]).
//!
//! Modules, each using only those below it (tests/tests/layering.rs checks
//! this list against the `crate::` paths of the source):
//!
//! ```text
//! server.rs          binding, the router (path -> handler), the layers every
//!                    request passes (auth, body limit, panics, the request
//!                    count), /healthz; registering the metrics
//! routes/            the handlers: work.rs (workers), objects.rs and
//!                    submit.rs (the CLI and other clients)
//! engine_metrics.rs  the engine's figures and the connected workers as
//!                    Prometheus series, read at scrape time
//! state.rs           the state every route shares; engine calls off the
//!                    async threads
//! metrics.rs         the request counter, the /metrics listener, reading a
//!                    scrape
//! body.rs            JSON requests, read within the limits, naming a bad field
//! error.rs           ApiError (every refusal, as JSON) and ServeError
//! reply.rs           how every JSON answer is written
//! conn.rs            the accept loop: read timeouts, the connection cap
//! auth.rs            who calls: the shared token or a token an Authenticator
//!                    accepts
//! client.rs          the CLI's Client (uses none of the above)
//! ```

pub mod auth;
mod body;
pub mod client;
mod conn;
mod engine_metrics;
mod error;
pub mod metrics;
mod reply;
mod routes;
mod server;
mod state;

pub use client::{Client, ClientError};
pub use conn::{BODY_READ_TIMEOUT, HEADER_READ_TIMEOUT, Limits, MAX_CONNECTIONS};
pub use engine_metrics::{CONNECTED_WITHIN, EngineCollector};
pub use error::{ApiError, ServeError};
pub use server::{Server, serve, token_from_file};
pub use state::{PoolWorkers, Roster, WorkerRecord};
