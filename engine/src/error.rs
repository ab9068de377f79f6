//! What can go wrong in the engine, as callers see it.

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("store error: {0}")]
    Store(#[from] sled::Error),
    #[error("object '{name}' already exists with a different spec")]
    Conflict { name: String },
    #[error("invalid submission: {0}")]
    Invalid(String),
    #[error("lease is stale or unknown")]
    StaleLease,
    #[error("no object named '{0}'")]
    NotFound(String),
    #[error("corrupt record {what}: {detail}")]
    Corrupt { what: String, detail: String },
}
