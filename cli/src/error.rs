//! What can go wrong in a command, and the exit code each maps to.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot render the CRDs: {0}")]
    Crds(String),
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        1
    }
}
