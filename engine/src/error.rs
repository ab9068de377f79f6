//! What can go wrong in the engine, as callers see it.

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("store error: {0}")]
    Store(#[from] sled::Error),
    /// Another process (or another engine in this process) has the store
    /// open; sled allows one at a time.
    #[error("the store at {} is in use by another process", .path.display())]
    Locked { path: std::path::PathBuf },
    #[error("object '{name}' already exists with a different spec")]
    Conflict { name: String },
    #[error("invalid submission: {0}")]
    Invalid(String),
    #[error("lease is stale or unknown")]
    StaleLease,
    #[error("no object named '{0}'")]
    NotFound(String),
    /// A state change the engine's own tables do not allow: a bug, refused
    /// before anything is written.
    #[error("engine bug: a {what} cannot move from {from} to {to}")]
    IllegalMove {
        what: &'static str,
        from: &'static str,
        to: &'static str,
    },
    #[error("corrupt record {what}: {detail}")]
    Corrupt { what: String, detail: String },
}
