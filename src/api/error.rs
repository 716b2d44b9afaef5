//! What a server API request can fail with, and how each failure is answered.
//!
//! Centrifugo's convention: a request the API cannot take (no key, a body that does not decode,
//! a method it does not know) gets an HTTP error status; a request it took but the method refused
//! gets HTTP 200 with the error in the body, so that a client tells "my call was wrong" from
//! "the server did not understand me" without parsing both.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use rpc_crypto_proto::ErrorReply;
use serde::Serialize;

/// A failed server API request.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No key, a wrong key, or the API is off (no key configured): HTTP 401, code 101.
    #[error("unauthorized")]
    Unauthorized,
    /// The body is not the method's JSON request: HTTP 400, code 107.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The body is over [`super::MAX_BODY_SIZE`]: HTTP 413, code 107.
    #[error("bad request: body larger than {0} bytes")]
    TooLarge(usize),
    /// No such method: HTTP 404, code 104.
    #[error("method not found")]
    MethodNotFound,
    /// An actor did not answer (its mailbox closed, or the call timed out): HTTP 500, code 100.
    #[error("internal server error")]
    Internal,
    /// The method refused the request: HTTP 200 with the error in the body.
    #[error("{0}")]
    Method(ErrorReply),
}

impl From<ErrorReply> for ApiError {
    fn from(error: ErrorReply) -> Self {
        ApiError::Method(error)
    }
}

impl ApiError {
    /// The error code of the `{"error":{"code":..}}` body.
    pub fn code(&self) -> u32 {
        match self {
            ApiError::Unauthorized => ErrorReply::UNAUTHORIZED.code,
            ApiError::BadRequest(_) | ApiError::TooLarge(_) => ErrorReply::BAD_REQUEST.code,
            ApiError::MethodNotFound => ErrorReply::METHOD_NOT_FOUND.code,
            ApiError::Internal => ErrorReply::INTERNAL.code,
            ApiError::Method(error) => error.code,
        }
    }

    /// The `{"code":..,"message":..}` object.
    pub fn body(&self) -> ErrorBody {
        let message = match self {
            ApiError::Method(error) => error.message.to_string(),
            other => other.to_string(),
        };
        ErrorBody {
            code: self.code(),
            message,
        }
    }
}

/// The object under `"error"`: Centrifugo's error shape (no `temporary`).
#[derive(Debug, Clone, Serialize)]
pub struct ErrorBody {
    pub code: u32,
    pub message: String,
}

/// `{"error":{...}}`.
#[derive(Serialize)]
struct ErrorEnvelope {
    error: ErrorBody,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::MethodNotFound => StatusCode::NOT_FOUND,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Method(_) => StatusCode::OK,
        }
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status_code()).json(ErrorEnvelope { error: self.body() })
    }
}
