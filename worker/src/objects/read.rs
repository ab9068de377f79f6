//! Listing objects for a plan, and reading the byte ranges a leaf needs.

use super::store::client;
use super::{store_error, url};
use crate::error::FnError;
use crate::map::{SAMPLE_BYTES, mean_line_bytes};
use bytes::Bytes;
use futures::TryStreamExt;
use kontinuum_api::limits::{MAX_LEAF_BYTES, MAX_LISTED_OBJECTS};
use kontinuum_api::work::{ObjectEntry, SourcePlan, StoreRef};
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt};

/// Lists what `key` names (a prefix when it ends in `/` or is empty, else
/// one object) and, for a map over lines, samples the mean line length.
pub(crate) async fn plan_objects(
    store: &StoreRef,
    key: &str,
    lines: bool,
) -> Result<SourcePlan, FnError> {
    let s3 = client(store)?;
    let objects = if key.is_empty() || key.ends_with('/') {
        list(store, &*s3, key).await?
    } else {
        let meta = s3
            .head(&object_path(key))
            .await
            .map_err(|e| store_error(&url(store, key), e))?;
        vec![entry(meta)]
    };
    if objects.is_empty() {
        return Err(FnError::permanent(format!(
            "{}: no objects under this prefix",
            url(store, key)
        )));
    }
    let mut avg_line_bytes = 1;
    if lines && let Some(first) = objects.iter().find(|o| o.size > 0) {
        let sample = read_range(
            store,
            &first.key,
            &first.etag,
            0,
            first.size.min(SAMPLE_BYTES),
        )
        .await?;
        avg_line_bytes = mean_line_bytes(&sample);
    }
    Ok(SourcePlan {
        bytes: objects.iter().map(|o| o.size).sum(),
        avg_line_bytes,
        objects: Some(objects),
    })
}

async fn list(
    store: &StoreRef,
    s3: &dyn ObjectStore,
    prefix: &str,
) -> Result<Vec<ObjectEntry>, FnError> {
    let at = url(store, prefix);
    let dir = prefix.trim_end_matches('/');
    let path = (!dir.is_empty()).then(|| Path::from(dir));
    let mut found = Vec::new();
    let mut listing = s3.list(path.as_ref());
    while let Some(meta) = listing.try_next().await.map_err(|e| store_error(&at, e))? {
        if found.len() == MAX_LISTED_OBJECTS {
            return Err(FnError::permanent(format!(
                "{at}: more than {MAX_LISTED_OBJECTS} objects under this prefix; map narrower prefixes (one future each) or join them with parentRef"
            )));
        }
        found.push(entry(meta));
    }
    // Key order is position order: stores list that way, but the plan must
    // not depend on it.
    found.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(found)
}

/// A key as the client names it: a listed key is already a valid path; a
/// key from a manifest is taken as written.
fn object_path(key: &str) -> Path {
    Path::parse(key).unwrap_or_else(|_| Path::from(key))
}

fn entry(meta: object_store::ObjectMeta) -> ObjectEntry {
    ObjectEntry {
        key: meta.location.to_string(),
        size: meta.size,
        etag: meta.e_tag.unwrap_or_default(),
    }
}

/// Bytes `from..to` of one object, refused if it is no longer the version
/// the plan listed (`etag`, when the store gave one).
pub(crate) async fn read_range(
    store: &StoreRef,
    key: &str,
    etag: &str,
    from: u64,
    to: u64,
) -> Result<Bytes, FnError> {
    if to <= from {
        return Ok(Bytes::new());
    }
    if to - from > MAX_LEAF_BYTES {
        return Err(FnError::permanent(format!(
            "{}: a leaf would hold {} bytes of it at once, over {MAX_LEAF_BYTES}; set a smaller shardSize",
            url(store, key),
            to - from
        )));
    }
    let s3 = client(store)?;
    let options = GetOptions {
        range: Some(GetRange::Bounded(from..to)),
        if_match: (!etag.is_empty()).then(|| etag.to_string()),
        ..GetOptions::default()
    };
    let at = url(store, key);
    s3.get_opts(&object_path(key), options)
        .await
        .map_err(|e| store_error(&at, e))?
        .bytes()
        .await
        .map_err(|e| store_error(&at, e))
}
