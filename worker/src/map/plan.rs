//! Measuring a map's source for the engine ([`Work::Plan`]): the engine
//! never reads users' data, so the first lease of a map over a file asks a
//! worker of the pool, the one place the file is mounted, for its size and
//! the mean length of its first lines.
//!
//! [`Work::Plan`]: kontinuum_api::work::Work::Plan

use super::lines::io_error;
use crate::error::FnError;
use crate::objects::plan_objects;
use kontinuum_api::work::{SourcePlan, SourceRef};
use serde_json::Value;
use std::fs::File;
use std::io::Read;

/// How much of the start of a source (a file, the first object) the mean
/// line length is taken from.
pub(crate) const SAMPLE_BYTES: u64 = 64 * 1024;

/// Measures `source`, answering with a [`SourcePlan`] as the value.
pub(crate) async fn plan_source(source: SourceRef) -> Result<Value, FnError> {
    let field = source.field();
    let plan = match source {
        SourceRef::Lines { path } => tokio::task::spawn_blocking(move || plan_lines(field, &path))
            .await
            .map_err(|e| FnError::retryable(format!("planning the lines source stopped: {e}")))??,
        SourceRef::Objects { store, key, lines } => plan_objects(&store, &key, lines)
            .await
            .map_err(|e| FnError {
                message: format!("{field}: {}", e.message),
                ..e
            })?,
    };
    serde_json::to_value(plan)
        .map_err(|e| FnError::permanent(format!("a plan that cannot be written: {e}")))
}

/// `field`: the manifest's field, which every message starts with.
fn plan_lines(field: &str, path: &str) -> Result<SourcePlan, FnError> {
    let placed = |e: FnError| FnError {
        message: format!("{field}: {}", e.message),
        ..e
    };
    let meta = std::fs::metadata(path).map_err(|e| placed(io_error(path, &e)))?;
    if meta.is_dir() {
        return Err(FnError::permanent(format!(
            "{field}: lines source '{path}' is a directory; name a file"
        )));
    }
    let mut sample = Vec::new();
    File::open(path)
        .and_then(|f| f.take(SAMPLE_BYTES).read_to_end(&mut sample))
        .map_err(|e| placed(io_error(path, &e)))?;
    Ok(SourcePlan {
        bytes: meta.len(),
        avg_line_bytes: mean_line_bytes(&sample),
        objects: None,
    })
}

/// Bytes per newline in the sample, at least 1 (a sample without one is
/// one line).
pub(crate) fn mean_line_bytes(sample: &[u8]) -> u64 {
    let lines = sample.iter().filter(|&&b| b == b'\n').count().max(1) as u64;
    (sample.len() as u64 / lines).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn the_mean_line_length_counts_newlines() {
        assert_eq!(mean_line_bytes(b"ab\ncd\n"), 3);
        assert_eq!(mean_line_bytes(b"no newline"), 10);
        assert_eq!(mean_line_bytes(b""), 1);
    }

    #[tokio::test]
    async fn a_file_is_measured() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("words.txt");
        let mut f = File::create(&path).unwrap();
        for _ in 0..1000 {
            f.write_all(b"four five\n").unwrap();
        }
        let value = plan_source(SourceRef::Lines {
            path: path.display().to_string(),
        })
        .await
        .unwrap();
        let plan: SourcePlan = serde_json::from_value(value).unwrap();
        assert_eq!(
            plan,
            SourcePlan {
                bytes: 10_000,
                avg_line_bytes: 10,
                objects: None
            }
        );
    }

    #[tokio::test]
    async fn a_missing_file_fails_for_good_naming_the_field_and_path() {
        let e = plan_source(SourceRef::Lines {
            path: "/no/such/corpus.txt".into(),
        })
        .await
        .unwrap_err();
        assert!(e.permanent, "{e:?}");
        assert!(
            e.message
                .starts_with("spec.map.source.lines.path: lines source '/no/such/corpus.txt'"),
            "{}",
            e.message
        );
    }

    #[tokio::test]
    async fn a_directory_fails_for_good() {
        let dir = tempfile::tempdir().unwrap();
        let e = plan_source(SourceRef::Lines {
            path: dir.path().display().to_string(),
        })
        .await
        .unwrap_err();
        assert!(e.permanent && e.message.contains("is a directory"), "{e:?}");
    }
}
