//! Kontinuum's container image without a container daemon.
//!
//! The image is one layer (a static-binary root filesystem, see [`rootfs`])
//! written as an OCI image layout packed in a tar ([`archive`]), which
//! `ctr images import`, `docker load` and `podman load` all accept. [`verify`]
//! reads such an archive back and checks every link of the chain
//! index → manifest → config → layers, so tests can trust what they unpack.

pub mod archive;
pub mod elf;
pub mod rootfs;
pub mod verify;

use std::path::PathBuf;

/// What can go wrong building or checking an image. Every variant names the
/// file or the archive member it is about.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} is dynamically linked (interpreter {interpreter}); the image has no libc: \
         build it for x86_64-unknown-linux-musl (scripts/build-image does)"
    )]
    Dynamic { path: PathBuf, interpreter: String },
    #[error("{path} is not a 64-bit little-endian ELF executable: {why}")]
    NotElf { path: PathBuf, why: &'static str },
    #[error("building the layer tar: {0}")]
    Tar(#[source] std::io::Error),
    #[error("invalid image archive: {member}: {problem}")]
    Invalid { member: String, problem: String },
    #[error("cannot unpack layer {digest} into {dir}: {source}")]
    Unpack {
        digest: String,
        dir: PathBuf,
        source: std::io::Error,
    },
}

impl Error {
    pub(crate) fn invalid(member: impl Into<String>, problem: impl Into<String>) -> Error {
        Error::Invalid {
            member: member.into(),
            problem: problem.into(),
        }
    }
}

/// `sha256:<hex>` of some bytes, as OCI descriptors write digests.
pub fn digest(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let hash = Sha256::digest(bytes);
    let mut out = String::with_capacity(71);
    out.push_str("sha256:");
    for b in hash {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 15)]));
    }
    out
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The archive member that holds the blob of a digest.
pub fn blob_path(digest: &str) -> String {
    format!("blobs/{}", digest.replacen(':', "/", 1))
}
