//! The API key check: with a key configured, every `/v1` and `/api` request must carry
//! `Authorization: Bearer KEY`. The editor's own files and `/health` stay open so the page can
//! load and ask the writer for the key.

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

pub async fn require_key(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let Some(key) = s.config.api_key.as_deref() else { return next.run(req).await };
    let path = req.uri().path();
    let guarded = path.starts_with("/v1/") || path.starts_with("/api/") || path == "/metrics";
    if !guarded {
        return next.run(req).await;
    }
    let given = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer ")).unwrap_or("");
    if same(given.trim().as_bytes(), key.as_bytes()) { next.run(req).await } else { ApiError::Unauthorized.into_response() }
}

/// Compares without stopping at the first difference, so timing does not leak the key.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    #[test]
    fn keys_compare_whole() {
        assert!(super::same(b"secret", b"secret"));
        assert!(!super::same(b"secret", b"secreT"));
        assert!(!super::same(b"secret", b"secret2"));
        assert!(!super::same(b"", b"x"));
    }
}
