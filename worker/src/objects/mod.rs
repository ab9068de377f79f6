//! Map sources in S3-compatible stores: the store client (credentials from
//! the worker's environment, never from a manifest), a listing for the
//! engine's plan, and byte ranges of objects for map leaves. `store.rs`
//! builds and keeps clients; `read.rs` lists and reads; `write.rs` writes a
//! future's result (spec.output); errors are worded
//! here, each naming the object (`s3://BUCKET/KEY`).

mod read;
mod store;
mod write;

pub(crate) use read::{plan_objects, read_range};
pub(crate) use write::write_output;

use crate::error::FnError;
use kontinuum_api::work::StoreRef;

/// What went wrong with `url`, permanent when asking again cannot help
/// (no such bucket or object, refused credentials, an object replaced
/// since the plan), retryable otherwise (the store did not answer).
pub(crate) fn store_error(url: &str, e: object_store::Error) -> FnError {
    use object_store::Error as E;
    let status = match &e {
        E::NotFound { .. } => Some(404),
        E::Precondition { .. } => Some(412),
        E::PermissionDenied { .. } | E::Unauthenticated { .. } => Some(403),
        // The client keeps most statuses inside a generic error's text.
        other => status_in(&other.to_string()),
    };
    match status {
        Some(404) => FnError::permanent(format!(
            "{url}: no such object or bucket (the store answered: {e})"
        )),
        Some(412) => FnError::permanent(format!(
            "{url}: the object changed since the map listed it; run the map again to read the new version"
        )),
        Some(401 | 403) => FnError::permanent(format!(
            "{url}: the store refused the workers' credentials ({e}); check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the pool's environment"
        )),
        _ => FnError::retryable(format!("{url}: {e}")),
    }
}

/// The HTTP status the store answered, as the client writes it in an
/// error ("... status code: 403 Forbidden ...").
fn status_in(text: &str) -> Option<u16> {
    let (_, after) = text.split_once("status code: ")?;
    after.get(..3)?.parse().ok()
}

/// `s3://BUCKET/KEY` of an object of `store`.
fn url(store: &StoreRef, key: &str) -> String {
    store.url(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_is_read_from_the_clients_words() {
        let text = "Generic S3 error: Error performing list request: Error performing GET http://h/b?list-type=2 in 1ms - Server returned non-2xx status code: 403 Forbidden: <Error/>";
        assert_eq!(status_in(text), Some(403));
        assert_eq!(status_in("connection refused"), None);
        assert_eq!(status_in("status code: 5"), None);
    }
}
