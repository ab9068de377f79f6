//! The image's root filesystem, declared here once: the daemonless build
//! writes exactly these entries, and the Dockerfile creates the same tree.

use std::path::{Path, PathBuf};

use crate::{Error, elf};

/// The unprivileged user every process of the image runs as (a numeric uid,
/// so `runAsNonRoot` can verify it without reading /etc/passwd).
pub const USER_ID: u32 = 65532;
pub const USER_NAME: &str = "kontinuum";
/// The three binaries, installed in [`BIN_DIR`].
pub const BINARIES: [&str; 3] = ["kontinuum-operator", "kontinuum-worker", "kontinuum"];
pub const BIN_DIR: &str = "usr/local/bin";
/// Debian's bundle path, one of the places rustls-native-certs looks for
/// roots: kube's client falls back to them when a kubeconfig names no CA.
pub const CA_BUNDLE: &str = "etc/ssl/certs/ca-certificates.crt";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File(Vec<u8>),
}

/// One path of the layer, relative to `/`, with its owner and permissions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub path: String,
    pub kind: Kind,
    pub mode: u32,
    pub uid: u32,
}

impl Entry {
    fn dir(path: &str, mode: u32, uid: u32) -> Entry {
        Entry {
            path: path.to_owned(),
            kind: Kind::Dir,
            mode,
            uid,
        }
    }

    fn file(path: &str, mode: u32, data: Vec<u8>) -> Entry {
        Entry {
            path: path.to_owned(),
            kind: Kind::File(data),
            mode,
            uid: 0,
        }
    }
}

/// Where the build takes its inputs from.
pub struct Inputs {
    /// Holds the three static binaries (e.g. target/x86_64-unknown-linux-musl/release).
    pub bin_dir: PathBuf,
    /// A PEM bundle of CA certificates (Debian's ca-certificates on the build host).
    pub ca_bundle: PathBuf,
}

fn read(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Every entry of the image, parents before children, in a fixed order.
/// Refuses a binary that is not static: the image has no libc to load.
pub fn entries(inputs: &Inputs) -> Result<Vec<Entry>, Error> {
    let binaries: Vec<PathBuf> = BINARIES.iter().map(|b| inputs.bin_dir.join(b)).collect();
    with_binaries(&inputs.ca_bundle, &binaries)
}

/// The stock image's base (users, CA roots, /tmp, /data, home) with
/// `binaries` in [`BIN_DIR`] instead of Kontinuum's three: how a worker
/// built with the SDK becomes an image (`kontinuum-image worker`).
pub fn with_binaries(ca_bundle: &Path, binaries: &[PathBuf]) -> Result<Vec<Entry>, Error> {
    let passwd = format!(
        "root:x:0:0:root:/root:/sbin/nologin\n\
         {USER_NAME}:x:{USER_ID}:{USER_ID}:{USER_NAME}:/home/{USER_NAME}:/sbin/nologin\n"
    );
    let group = format!("root:x:0:\n{USER_NAME}:x:{USER_ID}:\n");
    let home = format!("home/{USER_NAME}");
    let mut out = vec![
        // /data: the operator's store when no volume is mounted (e.g. `docker
        // run -v`, whose named volumes copy this owner); charts mount a PVC.
        Entry::dir("data", 0o700, USER_ID),
        Entry::dir("etc", 0o755, 0),
        Entry::file("etc/group", 0o644, group.into_bytes()),
        Entry::file("etc/passwd", 0o644, passwd.into_bytes()),
        Entry::dir("etc/ssl", 0o755, 0),
        Entry::dir("etc/ssl/certs", 0o755, 0),
        Entry::file(CA_BUNDLE, 0o644, read(ca_bundle)?),
        Entry::dir("home", 0o755, 0),
        Entry::dir(&home, 0o700, USER_ID),
        // Sticky and world-writable, as every program expects of /tmp.
        Entry::dir("tmp", 0o1777, 0),
        Entry::dir("usr", 0o755, 0),
        Entry::dir("usr/local", 0o755, 0),
        Entry::dir(BIN_DIR, 0o755, 0),
    ];
    for path in binaries {
        let name = binary_name(path)?;
        let bytes = read(path)?;
        elf::require_static(path, &bytes)?;
        out.push(Entry::file(&format!("{BIN_DIR}/{name}"), 0o755, bytes));
    }
    Ok(out)
}

/// The name a binary gets in the image: its file name.
pub fn binary_name(path: &Path) -> Result<String, Error> {
    path.file_name()
        .and_then(|n| n.to_str())
        .filter(|n| !n.is_empty() && !n.starts_with('.'))
        .map(str::to_owned)
        .ok_or_else(|| Error::NotElf {
            path: path.to_path_buf(),
            why: "no usable file name for the image",
        })
}

/// The layer: a POSIX tar of the entries with fixed times and numeric owners
/// only, so the same inputs always give the same bytes (and digest).
pub fn layer_tar(entries: &[Entry], mtime: u64) -> Result<Vec<u8>, Error> {
    let mut builder = tar::Builder::new(Vec::new());
    for e in entries {
        let mut header = tar::Header::new_ustar();
        let (path, size, kind) = match &e.kind {
            Kind::Dir => (format!("{}/", e.path), 0, tar::EntryType::Directory),
            Kind::File(data) => (e.path.clone(), data.len() as u64, tar::EntryType::Regular),
        };
        header.set_path(&path).map_err(Error::Tar)?;
        header.set_entry_type(kind);
        header.set_size(size);
        header.set_mode(e.mode);
        header.set_uid(u64::from(e.uid));
        header.set_gid(u64::from(e.uid));
        header.set_mtime(mtime);
        header.set_cksum();
        let data: &[u8] = match &e.kind {
            Kind::Dir => &[],
            Kind::File(data) => data,
        };
        builder.append(&header, data).map_err(Error::Tar)?;
    }
    builder.into_inner().map_err(Error::Tar)
}
