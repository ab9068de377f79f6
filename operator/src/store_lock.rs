//! One operator process per store directory: `operator.lock` in `--data`,
//! held (flock) for the life of the process and released by the kernel when
//! it ends, however it ends.
//!
//! Out of a pod the Lease identity is the host and the store directory
//! (config.rs), the same after a restart, so a restarted operator renews its
//! own Lease at once instead of waiting for it to expire. That is safe only
//! if no other live process has that identity: this lock makes sure, since
//! a second process on the same store waits here, before the Lease.

use crate::error::Error;
use fs2::FileExt;
use std::fs::File;
use std::path::Path;
use std::time::Duration;

/// The lock's file name inside the store directory.
pub const FILE: &str = "operator.lock";

/// Waits until this process holds the store directory's lock; dropping the
/// file lets go of it.
pub async fn claim(data: &Path) -> Result<File, Error> {
    let path = data.join(FILE);
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| Error::Data {
            path: path.clone(),
            source,
        })?;
    let mut said = false;
    loop {
        match file.try_lock_exclusive() {
            Ok(()) => return Ok(file),
            Err(e) if e.kind() == fs2::lock_contended_error().kind() => {
                if !said {
                    tracing::info!(
                        lock = %path.display(),
                        "another operator process uses this store directory; waiting for it to stop"
                    );
                    said = true;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(source) => return Err(Error::Data { path, source }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_second_claim_waits_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let first = claim(dir.path()).await.unwrap();
        let second = tokio::time::timeout(Duration::from_millis(600), claim(dir.path())).await;
        assert!(second.is_err(), "claimed twice");
        drop(first);
        let again = tokio::time::timeout(Duration::from_secs(5), claim(dir.path())).await;
        assert!(matches!(again, Ok(Ok(_))));
    }
}
