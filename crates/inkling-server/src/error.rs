//! One error type for every endpoint, answered in OpenAI's error shape
//! (`{"error": {"message", "type", "code"}}`) so OpenAI clients show the message as it is.
//! Internal details (paths of the server's files, SQL) stay in the log, not the response.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use inkling_api::{ErrorBody, ErrorResponse};
use inkling_craft::CraftError;
use inkling_engine::EngineError;
use inkling_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed or asks for something impossible (400).
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    /// Missing or wrong bearer token (401).
    #[error("a valid API key is required: send `Authorization: Bearer KEY` with the key the server was started with")]
    Unauthorized,
    /// The state forbids it (nothing to undo, a name taken) (409).
    #[error("{0}")]
    Conflict(String),
    /// The queue is full; try again after this many seconds (429).
    #[error("the server is busy ({queued} requests waiting); retry after {retry_after} s")]
    Busy { queued: usize, retry_after: u64 },
    #[error("the request body is larger than this server accepts; send less text or start the server with a larger --max-body-mb")]
    TooLarge,
    /// The model (or the remote server behind inkling) failed to give a usable answer (502).
    #[error("{0}")]
    Model(String),
    /// The server is shutting down (503).
    #[error("the server is shutting down")]
    ShuttingDown,
    /// Something failed on the server's side (500); the details are logged.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Busy { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Model(_) => StatusCode::BAD_GATEWAY,
            ApiError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// OpenAI's `type` field.
    fn kind(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) | ApiError::TooLarge => "invalid_request_error",
            ApiError::NotFound(_) => "not_found_error",
            ApiError::Unauthorized => "authentication_error",
            ApiError::Conflict(_) => "conflict_error",
            ApiError::Busy { .. } => "rate_limit_error",
            ApiError::Model(_) | ApiError::ShuttingDown | ApiError::Internal(_) => "server_error",
        }
    }

    pub fn body(&self) -> ErrorResponse {
        let message = match self {
            // The cause is in the log; the client learns only that it was ours.
            ApiError::Internal(_) => "the server failed to answer this request; its log has the details".to_string(),
            e => e.to_string(),
        };
        ErrorResponse { error: ErrorBody { message, kind: self.kind().into(), code: Some(serde_json::json!(self.status().as_u16())) } }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(detail) = &self {
            tracing::error!("{detail}");
        }
        let mut response = (self.status(), axum::Json(self.body())).into_response();
        if let ApiError::Busy { retry_after, .. } = &self {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(*retry_after));
        }
        response
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::InvalidRequest(_) | EngineError::PromptTooLong { .. } | EngineError::EmptyPrompt | EngineError::Template(_) => ApiError::BadRequest(e.to_string()),
            EngineError::Remote(_) | EngineError::RemoteSetting { .. } | EngineError::Interrupted { .. } => ApiError::Model(e.to_string()),
            e => ApiError::Internal(e.to_string()),
        }
    }
}

impl From<CraftError> for ApiError {
    fn from(e: CraftError) -> Self {
        match e {
            CraftError::Engine(e) => e.into(),
            CraftError::UnknownTool { .. } => ApiError::NotFound(e.to_string()),
            CraftError::Unparsable { .. } => ApiError::Model(e.to_string()),
            CraftError::Recipe { .. } | CraftError::Io { .. } => ApiError::Internal(e.to_string()),
            e => ApiError::BadRequest(e.to_string()),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NoProject(_) | StoreError::NoDocument { .. } | StoreError::NoRevision(_) | StoreError::NoGeneration(_) => ApiError::NotFound(e.to_string()),
            StoreError::ProjectExists(_) | StoreError::NothingTo(_) | StoreError::TitleTaken(_) | StoreError::Voice(_) => ApiError::Conflict(e.to_string()),
            StoreError::UnknownKind { .. } => ApiError::BadRequest(e.to_string()),
            StoreError::PathEscapes(_) | StoreError::NotUtf8 { .. } | StoreError::BadImport { .. } => ApiError::BadRequest(e.to_string()),
            e => ApiError::Internal(e.to_string()),
        }
    }
}

impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(r: axum::extract::rejection::JsonRejection) -> Self {
        use axum::extract::rejection::JsonRejection;
        match &r {
            JsonRejection::BytesRejection(b) if b.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::TooLarge,
            _ => ApiError::BadRequest(format!("the request body is not the JSON this endpoint takes: {}", r.body_text())),
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
