//! The editor's files, compiled into the binary (no build step, nothing to install), plus
//! `/health`, `/metrics` and the API description at `/openapi.json` and `/docs`.

use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::sync::atomic::Ordering;

pub fn routes() -> axum::Router<AppState> {
    use axum::routing::get;
    axum::Router::new()
        .route("/", get(|State(s): State<AppState>| async move { asset(&s, "index.html", include_str!("../../../web/index.html")) }))
        .route("/app.js", get(|State(s): State<AppState>| async move { asset(&s, "app.js", include_str!("../../../web/app.js")) }))
        .route("/style.css", get(|State(s): State<AppState>| async move { asset(&s, "style.css", include_str!("../../../web/style.css")) }))
        .route("/docs", get(|State(s): State<AppState>| async move { asset(&s, "docs.html", include_str!("../../../web/docs.html")) }))
        .route("/openapi.json", get(|| async { Json(crate::openapi::spec()) }))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
}

/// One of the editor's files: the copy compiled in, or with `web_dir` set (working on the
/// editor) the file on disk, read on every request.
fn asset(s: &AppState, name: &str, compiled: &'static str) -> Response {
    let mime = match name.rsplit('.').next() {
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        _ => "text/html; charset=utf-8",
    };
    let body = s.config.web_dir.as_ref().and_then(|dir| std::fs::read_to_string(dir.join(name)).ok()).unwrap_or_else(|| compiled.to_string());
    ([(header::CONTENT_TYPE, mime), (header::CACHE_CONTROL, "no-cache")], body).into_response()
}

async fn health(State(s): State<AppState>) -> Json<Value> {
    let m = s.queue.metrics();
    Json(json!({
        "status": "ok",
        "model": s.config.model_id,
        "context_length": s.backend.context_length(),
        "queue": {"waiting": m.waiting.load(Ordering::Relaxed), "running": m.running.load(Ordering::Relaxed), "limit": s.config.max_queue},
        "auth": s.config.api_key.is_some(),
        "uptime_s": s.started.elapsed().as_secs(),
    }))
}

/// Prometheus text format.
async fn metrics(State(s): State<AppState>) -> Response {
    let m = s.queue.metrics();
    let g = |a: &std::sync::atomic::AtomicUsize| a.load(Ordering::Relaxed);
    let c = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let busy_s = c(&m.busy_ms) as f64 / 1e3;
    let body = format!(
        "# HELP inkling_queue_waiting Requests waiting for the model.\n# TYPE inkling_queue_waiting gauge\ninkling_queue_waiting {}\n\
         # HELP inkling_queue_running Requests the model is serving.\n# TYPE inkling_queue_running gauge\ninkling_queue_running {}\n\
         # TYPE inkling_requests_total counter\ninkling_requests_total {}\n\
         # TYPE inkling_requests_completed_total counter\ninkling_requests_completed_total {}\n\
         # HELP inkling_requests_rejected_total Requests refused with 429 because the queue was full.\n# TYPE inkling_requests_rejected_total counter\ninkling_requests_rejected_total {}\n\
         # HELP inkling_requests_cancelled_total Requests whose client left before the answer.\n# TYPE inkling_requests_cancelled_total counter\ninkling_requests_cancelled_total {}\n\
         # HELP inkling_batches_total Decode batches run; inkling_batched_requests_total / this is the mean batch size.\n# TYPE inkling_batches_total counter\ninkling_batches_total {}\n\
         # TYPE inkling_batched_requests_total counter\ninkling_batched_requests_total {}\n\
         # TYPE inkling_prompt_tokens_total counter\ninkling_prompt_tokens_total {}\n\
         # TYPE inkling_completion_tokens_total counter\ninkling_completion_tokens_total {}\n\
         # HELP inkling_draft_tokens_total Tokens guessed ahead by speculative decoding.\n# TYPE inkling_draft_tokens_total counter\ninkling_draft_tokens_total {}\n\
         # HELP inkling_draft_accepted_total Guessed tokens the model kept (each saved a forward pass); over inkling_draft_tokens_total, the acceptance rate.\n# TYPE inkling_draft_accepted_total counter\ninkling_draft_accepted_total {}\n\
         # HELP inkling_model_busy_seconds_total Time the model workers spent on requests.\n# TYPE inkling_model_busy_seconds_total counter\ninkling_model_busy_seconds_total {busy_s:.3}\n\
         # HELP inkling_decode_tokens_per_second Decode speed of the last generation.\n# TYPE inkling_decode_tokens_per_second gauge\ninkling_decode_tokens_per_second {:.3}\n\
         # HELP inkling_prompt_tokens_per_second Prompt speed of the last generation.\n# TYPE inkling_prompt_tokens_per_second gauge\ninkling_prompt_tokens_per_second {:.3}\n",
        g(&m.waiting),
        g(&m.running),
        c(&m.requests),
        c(&m.completed),
        c(&m.rejected),
        c(&m.cancelled),
        c(&m.batches),
        c(&m.batched_requests),
        c(&m.prompt_tokens),
        c(&m.completion_tokens),
        c(&m.draft_tokens),
        c(&m.draft_accepted),
        c(&m.last_decode_tps_milli) as f64 / 1e3,
        c(&m.last_prompt_tps_milli) as f64 / 1e3,
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}
