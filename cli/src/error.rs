//! What can go wrong in a command, and the exit code each maps to.

use std::fmt;
use std::path::PathBuf;

/// One problem with the input, printed as `FILE:LINE: FIELD: MESSAGE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: String,
    /// 1-based; `None` when the file could not be read at all.
    pub line: Option<usize>,
    pub field: Option<String>,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(field) = &self.field {
            write!(f, ": {field}")?;
        }
        write!(f, ": {}", self.message)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad manifests: nothing was run.
    #[error("{} problem(s) in the input; nothing was run", .0.len())]
    Invalid(Vec<Diagnostic>),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot render the CRDs: {0}")]
    Crds(String),
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    /// A rerun with --data whose manifest changed under the same name.
    #[error(
        "{name} is already in the store at {} with a different spec: use another --data directory, or another name",
        dir.display()
    )]
    Conflict { name: String, dir: PathBuf },
    #[error("the store at {} is in use by another process (another kontinuum run?)", .0.display())]
    Busy(PathBuf),
    /// A write to the store failed (a full disk): the run stopped at once.
    #[error("{}", store_failed(.dir, .temporary, .reason))]
    StoreFailed {
        dir: PathBuf,
        temporary: bool,
        reason: String,
    },
    #[error("engine: {0}")]
    Engine(#[from] kontinuum_engine::EngineError),
    /// A command line that cannot work (such as `--data` naming a file).
    #[error("{0}")]
    Usage(String),
}

fn store_failed(dir: &std::path::Path, temporary: &bool, reason: &str) -> String {
    if *temporary {
        format!(
            "the store at {} (temporary) cannot write any more: {reason}; the run stopped. Use --data DIR on a disk with more room",
            dir.display()
        )
    } else {
        format!(
            "the store at {} cannot write any more: {reason}; the run stopped. Nothing acknowledged is lost: make room on that disk (or copy {} to a bigger one and point --data there), then rerun the same command to resume",
            dir.display(),
            dir.display()
        )
    }
}

impl CliError {
    /// 2 for input that was rejected, 1 otherwise (docs: `kontinuum run`).
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Invalid(_) | CliError::Conflict { .. } | CliError::Usage(_) => 2,
            CliError::Engine(kontinuum_engine::EngineError::Invalid(_)) => 2,
            _ => 1,
        }
    }
}
