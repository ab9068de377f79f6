//! What can go wrong in the engine, as callers see it.

use kontinuum_api::ObjectId;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("store error: {0}")]
    Store(#[from] sled::Error),
    /// Another process (or another engine in this process) has the store
    /// open; sled allows one at a time.
    #[error("the store at {} is in use by another process", .path.display())]
    Locked { path: std::path::PathBuf },
    #[error("{id} already exists with a different spec")]
    Conflict { id: ObjectId },
    /// The id exists, but stands for another custom resource (a resource
    /// deleted and created again under the same name): cancel and remove
    /// the stored object, then submit again.
    #[error("{id} already exists for another resource (uid {}); remove it before submitting this one", .stored_uid.as_deref().unwrap_or("none"))]
    UidMismatch {
        id: ObjectId,
        stored_uid: Option<String>,
    },
    #[error("invalid submission: {0}")]
    Invalid(String),
    #[error("lease is stale or unknown")]
    StaleLease,
    #[error("no object {0}")]
    NotFound(ObjectId),
    #[error("{0} is still active: cancel it (and let it finish) before removing it")]
    Active(ObjectId),
    #[error("the parent {0} does not exist: submit it first, or earlier in the same call")]
    ParentNotFound(ObjectId),
    #[error("the parent {0} has finished: nothing can join its tree any more")]
    ParentFinished(ObjectId),
    /// A state change the engine's own tables do not allow: a bug, refused
    /// before anything is written.
    #[error("engine bug: a {what} cannot move from {from} to {to}")]
    IllegalMove {
        what: &'static str,
        from: &'static str,
        to: &'static str,
    },
    /// A write or fsync failed (a full disk, an I/O error). sled refuses
    /// every later write until the store is opened again, so the engine
    /// stops deciding: a restart resumes from what is on disk, which holds
    /// everything that was acknowledged.
    #[error(
        "the store cannot write any more ({0}); nothing acknowledged is lost: make room (or fix the disk), then restart to resume from disk"
    )]
    StoreFailed(String),
    #[error("corrupt record {what}: {detail}")]
    Corrupt { what: String, detail: String },
}

/// A rule of the validation layer refused a spec: the same words as
/// `kontinuum run` and the API server use.
impl From<kontinuum_api::validate::FieldError> for EngineError {
    fn from(e: kontinuum_api::validate::FieldError) -> Self {
        EngineError::Invalid(e.to_string())
    }
}
