//! Errors a function returns, and errors talking to the engine.

use std::fmt;

/// How a function call failed. `permanent` skips the remaining retries: use
/// it when running again with the same arguments cannot succeed (bad
/// arguments, unknown function, a bug), and [`FnError::retryable`] for
/// anything the world might fix (a busy service, a timeout).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct FnError {
    pub message: String,
    pub permanent: bool,
}

impl FnError {
    pub fn retryable(message: impl Into<String>) -> Self {
        FnError {
            message: message.into(),
            permanent: false,
        }
    }

    pub fn permanent(message: impl Into<String>) -> Self {
        FnError {
            message: message.into(),
            permanent: true,
        }
    }

    /// A permanent error about one argument, worded the same everywhere so
    /// users can grep for the argument's name.
    pub fn bad_arg(name: &str, problem: impl fmt::Display) -> Self {
        FnError::permanent(format!("argument '{name}': {problem}"))
    }

    /// The permanent error for a missing required argument.
    pub fn missing_arg(name: &str) -> Self {
        FnError::permanent(format!("missing argument '{name}'"))
    }
}

impl fmt::Display for FnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// A failed call to the engine (in process, or over the network later).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    /// The lease is no longer ours: stop the task, its completion would be refused.
    #[error("lease is stale or unknown")]
    StaleLease,
    /// The engine refused the request itself; sending it again will not help.
    #[error("rejected by the engine: {0}")]
    Rejected(String),
    /// The engine could not be reached or failed internally; try again later.
    #[error("engine unavailable: {0}")]
    Unavailable(String),
}

impl From<SourceError> for FnError {
    fn from(e: SourceError) -> Self {
        match e {
            SourceError::Rejected(_) => FnError::permanent(e.to_string()),
            SourceError::StaleLease | SourceError::Unavailable(_) => {
                FnError::retryable(e.to_string())
            }
        }
    }
}
