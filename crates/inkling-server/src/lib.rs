//! `inkling-server`: inkling over HTTP. [`app`] builds the axum `Router` (tests call it
//! directly); [`serve`] binds it and shuts down gracefully.
//!
//! - `/v1/*`: the OpenAI-compatible API ([`openai`]), for SillyTavern, mikupad, scripts using
//!   the `openai` client.
//! - `/api/*`: the writing API: tools ([`writing`]) and projects ([`projects`]); the story
//!   pipeline over the store ([`book`]) is shared with the CLI; learning from the writer's
//!   choices in the background ([`learning`]).
//! - `/`: the web editor (`web/` in the repository, compiled in), `/docs` and `/openapi.json`,
//!   `/health`, `/metrics`.
//!
//! The server translates HTTP into crate calls and nothing more: prompts are built by
//! `inkling-craft`, text is kept by `inkling-store`, tokens come from an `inkling-engine`
//! `Backend`. Model work waits in one fair [`queue`]; database work runs on blocking threads.

pub mod auth;
pub mod binder;
pub mod body;
pub mod book;
pub mod error;
pub mod learning;
pub mod openai;
pub mod openapi;
pub mod projects;
pub mod queue;
pub mod state;
pub mod web;
pub mod writing;

pub use error::{ApiError, ApiResult};
pub use state::{AppState, ServerConfig};
pub use writing::{LoreBook, chapter_of, keep_lore_state, lore_entry, project_context};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, Method, header};
use std::net::SocketAddr;
use std::time::Duration;
use tower_http::cors::CorsLayer;

/// Every route, with the body limit, the API key check and (when configured) CORS.
pub fn app(state: AppState) -> Router {
    let mut router = Router::new()
        .merge(openai::routes())
        .merge(writing::routes())
        .merge(projects::routes())
        .merge(learning::routes())
        .merge(binder::routes())
        .merge(web::routes())
        .fallback(|| async { ApiError::NotFound("no such endpoint; GET /docs lists them".into()) })
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth::require_key))
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes));
    let origins: Vec<HeaderValue> = state.config.cors_origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()).collect();
    if !origins.is_empty() {
        router =
            router.layer(CorsLayer::new().allow_origin(origins).allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE]).allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE]));
    }
    router.with_state(state)
}

/// Refuses to expose the server beyond this machine without a key.
pub fn check_bind(addr: &SocketAddr, api_key: Option<&str>) -> Result<(), String> {
    if !addr.ip().is_loopback() && api_key.is_none_or(|k| k.trim().is_empty()) {
        return Err(format!(
            "refusing to listen on {addr} without an API key: anyone who can reach this address could read and change your manuscripts. \
             Give the server a key, or bind a loopback address such as 127.0.0.1"
        ));
    }
    Ok(())
}

/// Serves `state` on `listener` until SIGINT or SIGTERM, then stops taking requests, lets
/// the ones in flight finish (saves always complete; a generation still streaming gets
/// `grace` to end) and returns.
pub async fn serve(listener: tokio::net::TcpListener, state: AppState, grace: Duration) -> std::io::Result<()> {
    let queue = state.queue.clone();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let shutdown = async move {
        shutdown_signal().await;
        tracing::info!("shutting down: finishing requests in flight");
        queue.close();
        let _ = stop_tx.send(true);
    };
    let server = axum::serve(listener, app(state)).with_graceful_shutdown(shutdown);
    let mut stop_rx = stop_rx;
    tokio::select! {
        r = server => r,
        _ = async move {
            let _ = stop_rx.wait_for(|s| *s).await;
            tokio::time::sleep(grace).await;
        } => {
            tracing::warn!("requests still open after {grace:?}; closing them");
            Ok(())
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
