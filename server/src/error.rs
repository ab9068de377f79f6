//! Errors: what a request gets back (always a JSON [`ErrorBody`]), and why
//! the server could not start or stopped.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use kontinuum_api::endpoints::{ErrorBody, Problem, codes};
use kontinuum_engine::EngineError;
use std::net::SocketAddr;

/// A request's failure, as status code and JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: ErrorBody,
    /// Close the connection after answering: the rest of the request was
    /// not read, so the next bytes on it are not a request.
    pub close: bool,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            body: ErrorBody {
                error: code.to_string(),
                message: message.into(),
                ..ErrorBody::default()
            },
            close: false,
        }
    }

    /// 400 naming one field.
    pub fn bad_field(field: impl Into<String>, message: impl Into<String>) -> Self {
        let field = field.into();
        let message = message.into();
        let mut e = ApiError::new(
            StatusCode::BAD_REQUEST,
            codes::BAD_REQUEST,
            if field.is_empty() {
                message
            } else {
                format!("{field}: {message}")
            },
        );
        e.body.field = Some(field).filter(|f| !f.is_empty());
        e
    }

    /// 400 listing manifest problems.
    pub fn invalid(problems: Vec<Problem>) -> Self {
        let first = problems
            .first()
            .map(|p| format!("objects[{}].{}: {}", p.object, p.field, p.message))
            .unwrap_or_default();
        let mut e = ApiError::new(
            StatusCode::BAD_REQUEST,
            codes::INVALID,
            format!("invalid manifest: {first}"),
        );
        e.body.problems = problems;
        e
    }

    /// 403 for a caller confined to a namespace that reached outside it.
    pub fn forbidden(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::FORBIDDEN, codes::FORBIDDEN, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, codes::INTERNAL, message)
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        let message = e.to_string();
        match e {
            EngineError::StaleLease => {
                ApiError::new(StatusCode::CONFLICT, codes::STALE_LEASE, message)
            }
            EngineError::Conflict { .. }
            | EngineError::UidMismatch { .. }
            | EngineError::Active(_)
            | EngineError::ParentFinished(_) => {
                ApiError::new(StatusCode::CONFLICT, codes::CONFLICT, message)
            }
            EngineError::Invalid(_) | EngineError::ParentNotFound(_) => {
                ApiError::new(StatusCode::BAD_REQUEST, codes::BAD_REQUEST, message)
            }
            EngineError::NotFound(_) => {
                ApiError::new(StatusCode::NOT_FOUND, codes::NOT_FOUND, message)
            }
            EngineError::StoreFailed(_) => {
                // Logged once by the engine; every request after it says why.
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    codes::STORE_FAILED,
                    message,
                )
            }
            EngineError::Store(_)
            | EngineError::Locked { .. }
            | EngineError::Corrupt { .. }
            | EngineError::IllegalMove { .. } => {
                tracing::error!(error = %message, "engine failed");
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, codes::UNAVAILABLE, message)
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_client_error() {
            tracing::debug!(status = %self.status, error = %self.body.message, "request refused");
        }
        let mut response = crate::reply::json(self.status, &self.body);
        if self.close {
            response.headers_mut().insert(
                axum::http::header::CONNECTION,
                axum::http::HeaderValue::from_static("close"),
            );
        }
        response
    }
}

/// Why [`crate::serve`] could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(
        "refusing to listen on {0} without a bearer token: only loopback addresses may go unauthenticated"
    )]
    TokenRequired(SocketAddr),
    #[error("the bearer token is empty or has characters an HTTP header cannot carry")]
    BadToken,
    #[error("cannot read the token file {path}: {source}")]
    TokenFile {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("server failed: {0}")]
    Io(#[from] std::io::Error),
}
