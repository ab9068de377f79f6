//! How every answer's JSON is written: successes (`body::Json`) and
//! errors (`ApiError`) alike. A leaf, so that the request side (`body.rs`)
//! and the error side (`error.rs`) need not use each other to answer.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// `value` as a JSON response with `status`; a value that cannot be encoded
/// is a 500 with a fixed JSON body (and a log line), never a panic.
pub(crate) fn json<T: Serialize>(status: StatusCode, value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(bytes) => (status, [(header::CONTENT_TYPE, "application/json")], bytes).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "cannot encode a response");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                [(header::CONTENT_TYPE, "application/json")],
                r#"{"error":"internal","message":"cannot encode the response"}"#,
            )
                .into_response()
        }
    }
}
