//! Writing a future's result to an object (spec.output).

use super::store::client;
use super::{store_error, url};
use crate::error::FnError;
use kontinuum_api::work::{OutputRef, StoreRef};
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Puts `value` as JSON at `key` (replacing what is there) and answers
/// with where, how long and its SHA-256. Writing the same value twice (a
/// retried attempt) leaves the same object.
pub(crate) async fn write_output(
    store: &StoreRef,
    key: &str,
    value: &Value,
) -> Result<Value, FnError> {
    let bytes = serde_json::to_vec(value)
        .map_err(|e| FnError::permanent(format!("the result cannot be written as JSON: {e}")))?;
    let at = url(store, key);
    let written = OutputRef {
        url: at.clone(),
        bytes: bytes.len() as u64,
        sha256: Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
    };
    client(store)?
        .put(&Path::from(key), PutPayload::from(bytes))
        .await
        .map_err(|e| store_error(&at, e))?;
    serde_json::to_value(written)
        .map_err(|e| FnError::permanent(format!("the output's reference cannot be written: {e}")))
}
