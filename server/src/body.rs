//! JSON in and out. Requests are read with the body limit and parsed with
//! the failing field's path, so a client learns which field was wrong; every
//! rejection is a JSON [`ApiError`], never axum's plain-text default.

use crate::error::ApiError;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use kontinuum_api::endpoints::codes;
use kontinuum_api::limits::{MAX_BODY_NESTING, body_too_deep, json_nesting};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A JSON body: the request extractor and the response writer.
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let RawBody(bytes) = RawBody::from_request(req, state).await?;
        parse(&bytes).map(Json)
    }
}

/// A body read whole (within the limits), not parsed yet: for handlers
/// that parse it off the async threads.
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let limit = req
            .extensions()
            .get::<BodyTimeout>()
            .map_or(crate::conn::BODY_READ_TIMEOUT, |t| t.0);
        let read = tokio::time::timeout(limit, Bytes::from_request(req, state));
        let Ok(read) = read.await else {
            let mut e = ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                codes::TIMEOUT,
                format!("the body did not arrive within {} s", limit.as_secs_f64()),
            );
            e.close = true;
            return Err(e);
        };
        read.map(RawBody).map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                too_large()
            } else {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    codes::BAD_REQUEST,
                    format!("cannot read the body: {e}"),
                )
            }
        })
    }
}

/// How long a request body may take to arrive (set per server).
#[derive(Clone, Copy, Debug)]
pub struct BodyTimeout(pub std::time::Duration);

pub fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        codes::TOO_LARGE,
        format!(
            "the body is larger than {} bytes",
            kontinuum_api::endpoints::MAX_BODY_BYTES
        ),
    )
}

/// Parses `bytes` as `T`; an error names the field (`completions[2].token`)
/// and what was wrong with it.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.is_empty() {
        return Err(ApiError::bad_field("", "the body is empty; expected JSON"));
    }
    // Before serde_json, whose own cap (128) would answer with other words.
    if json_nesting(bytes, MAX_BODY_NESTING) > MAX_BODY_NESTING {
        return Err(ApiError::bad_field("", body_too_deep()));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let field = e.path().to_string();
        let field = if field == "." { String::new() } else { field };
        let inner = e.into_inner();
        let message = if inner.is_syntax() || inner.is_eof() {
            format!("malformed JSON: {inner}")
        } else {
            inner.to_string()
        };
        ApiError::bad_field(field, message)
    })?;
    de.end()
        .map_err(|e| ApiError::bad_field("", format!("malformed JSON: {e}")))?;
    Ok(value)
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        crate::reply::json(StatusCode::OK, &self.0)
    }
}
