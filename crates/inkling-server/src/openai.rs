//! The OpenAI-compatible endpoints: `/v1/models`, `/v1/completions`, `/v1/chat/completions`,
//! whole or streamed (server-sent events ending in `data: [DONE]`), with `n`, `stop`, `seed`,
//! `logprobs`, and the extra samplers vLLM and llama.cpp's server accept.

use crate::body::Body;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use inkling_api::{ChatRequest, Choice, CompletionRequest, CompletionResponse, Delta, GenerationParams, ModelCard, ModelList, PromptProgress, Usage};
use inkling_engine::{Backend, ChatMessage, Event, FinishReason, GenerateRequest, Generation, Prompt, SamplingConfig, TokenLogprob};
use serde_json::{Value, json};
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::{mpsc, oneshot};

pub fn routes() -> axum::Router<AppState> {
    use axum::routing::{get, post};
    axum::Router::new().route("/v1/models", get(models)).route("/v1/completions", post(completions)).route("/v1/chat/completions", post(chat))
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn response_id(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!("{prefix}-{:x}{:04x}", unix_now(), NEXT.fetch_add(1, Ordering::Relaxed))
}

async fn models(State(s): State<AppState>) -> Json<ModelList> {
    let card = ModelCard { id: s.config.model_id.clone(), object: "model".into(), created: unix_now(), owned_by: Some("inkling".into()), max_model_len: Some(s.backend.context_length()) };
    Json(ModelList { object: "list".into(), data: vec![card] })
}

#[derive(Clone, Copy, PartialEq)]
enum Endpoint {
    Completions,
    Chat,
}

/// A request translated for the engine, and how to answer it.
struct Plan {
    endpoint: Endpoint,
    request: GenerateRequest,
    stream: bool,
    include_usage: bool,
    return_progress: bool,
}

async fn completions(State(s): State<AppState>, Body(req): Body<CompletionRequest>) -> ApiResult<Response> {
    check_model(&s, &req.model)?;
    let logprobs = match &req.params.logprobs {
        None => None,
        Some(Value::Number(n)) => Some(n.as_u64().ok_or_else(|| ApiError::BadRequest("logprobs must be a whole number from 0 to 20".into()))? as usize),
        Some(_) => return Err(ApiError::BadRequest("logprobs must be a number of alternatives per token (0 to 20) on /v1/completions".into())),
    };
    // OpenAI's default for completions is 16 tokens.
    let plan = plan(Endpoint::Completions, Prompt::Text(req.prompt), &req.params, logprobs, 16)?;
    answer(s, plan).await
}

async fn chat(State(s): State<AppState>, Body(req): Body<ChatRequest>) -> ApiResult<Response> {
    check_model(&s, &req.model)?;
    if req.messages.is_empty() {
        return Err(ApiError::BadRequest("messages is empty; send at least one message".into()));
    }
    let mut messages = Vec::with_capacity(req.messages.len());
    for m in &req.messages {
        messages.push(ChatMessage::try_from(m).map_err(ApiError::BadRequest)?);
    }
    let logprobs = match (&req.params.logprobs, req.params.top_logprobs) {
        (Some(Value::Bool(true)), top) => Some(top.unwrap_or(0)),
        (None | Some(Value::Bool(false)), None) => None,
        (None | Some(Value::Bool(false)), Some(_)) => return Err(ApiError::BadRequest("top_logprobs needs logprobs: true".into())),
        _ => return Err(ApiError::BadRequest("logprobs must be true or false on /v1/chat/completions".into())),
    };
    let mut prompt = Prompt::Chat(messages);
    let mut prefill = String::new();
    // vLLM's continue_final_message: the last assistant message is the start of the reply.
    if req.continue_final_message == Some(true)
        && let Prompt::Chat(m) = &mut prompt
        && m.last().is_some_and(|l| l.role == "assistant")
    {
        prefill = m.pop().map(|l| l.content).unwrap_or_default();
    }
    let mut plan = plan(Endpoint::Chat, prompt, &req.params, logprobs, s.backend.context_length())?;
    plan.request.prefill = prefill;
    answer(s, plan).await
}

fn check_model(s: &AppState, name: &str) -> ApiResult<()> {
    if s.serves(name) { Ok(()) } else { Err(ApiError::NotFound(format!("model `{name}` is not served here; this server serves `{}` (GET /v1/models)", s.config.model_id))) }
}

fn plan(endpoint: Endpoint, prompt: Prompt, p: &GenerationParams, logprobs: Option<usize>, default_max: usize) -> ApiResult<Plan> {
    let schema = match &p.response_format {
        None => None,
        Some(f) => match f.kind.as_str() {
            "text" => None,
            "json_schema" => Some(f.json_schema.as_ref().map(|j| j.schema.clone()).ok_or_else(|| ApiError::BadRequest("response_format json_schema needs a `json_schema.schema`".into()))?),
            "json_object" => Some(f.schema.clone().unwrap_or_else(|| json!({"type": "object"}))),
            other => return Err(ApiError::BadRequest(format!("response_format type `{other}` is not supported; use text, json_object or json_schema"))),
        },
    };
    let request = GenerateRequest {
        n: p.n.unwrap_or(1),
        max_tokens: p.max_tokens.unwrap_or(default_max),
        min_tokens: p.min_tokens.unwrap_or(0),
        sampling: SamplingConfig::try_from(&p.sampling).map_err(ApiError::BadRequest)?,
        stop: p.stop.clone(),
        seed: p.sampling.seed,
        json_schema: schema,
        logprobs,
        speculative: match &p.speculative {
            Some(mode) => mode.parse().map_err(ApiError::BadRequest)?,
            None => inkling_engine::Speculation::Lookup,
        },
        banned_strings: p.banned_strings.clone(),
        banned_regex: p.banned_regex.clone(),
        ..GenerateRequest::new(prompt)
    };
    // A bad pattern is the client's mistake: say so before the request waits in line.
    inkling_engine::bans::Bans::compile(&request.banned_strings, &request.banned_regex).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    if request.max_tokens == 0 {
        return Err(ApiError::BadRequest("max_tokens must be at least 1".into()));
    }
    Ok(Plan { endpoint, request, stream: p.stream, include_usage: p.stream_options.as_ref().is_some_and(|o| o.include_usage), return_progress: p.return_progress })
}

async fn answer(s: AppState, plan: Plan) -> ApiResult<Response> {
    if plan.stream { stream(s, plan) } else { whole(s, plan).await }
}

async fn whole(s: AppState, plan: Plan) -> ApiResult<Response> {
    let request = plan.request;
    let top = request.logprobs;
    let g = s.queue.generate(request, |_| true)?.await.map_err(|_| ApiError::Internal("the model worker dropped a request".into()))??;
    let choices = g
        .candidates
        .iter()
        .map(|c| {
            let logprobs = top.map(|_| logprob_report(&*s.backend, plan.endpoint, &c.logprobs, 0));
            let mut choice = Choice { index: c.index, finish_reason: Some(<&str>::from(c.finish_reason).into()), logprobs, ..Choice::default() };
            match plan.endpoint {
                Endpoint::Completions => choice.text = Some(c.text.clone()),
                Endpoint::Chat => choice.message = Some(Delta { role: Some("assistant".into()), content: Some(c.text.clone()) }),
            }
            choice
        })
        .collect();
    let (object, prefix) = match plan.endpoint {
        Endpoint::Completions => ("text_completion", "cmpl"),
        Endpoint::Chat => ("chat.completion", "chatcmpl"),
    };
    Ok(Json(CompletionResponse { id: response_id(prefix), object: object.into(), created: unix_now(), model: s.config.model_id.clone(), choices, usage: Some(usage(&g)), prompt_progress: None })
        .into_response())
}

fn usage(g: &Generation) -> Usage {
    let completion_tokens = g.candidates.iter().map(|c| c.completion_tokens).sum();
    Usage { prompt_tokens: g.prompt_tokens, completion_tokens, total_tokens: g.prompt_tokens + completion_tokens }
}

/// OpenAI's two log-probability shapes, from the engine's per-token reports; `offset` is
/// where the first token's text begins in the answer (a stream's chunks go on from there).
fn logprob_report(backend: &dyn Backend, endpoint: Endpoint, lps: &[TokenLogprob], offset: usize) -> Value {
    let text = |t: u32| String::from_utf8_lossy(&backend.token_bytes(t)).into_owned();
    match endpoint {
        Endpoint::Completions => {
            let mut offset = offset;
            let mut text_offset = Vec::new();
            for lp in lps {
                text_offset.push(offset);
                offset += text(lp.token).len();
            }
            json!({
                "tokens": lps.iter().map(|lp| text(lp.token)).collect::<Vec<_>>(),
                "token_logprobs": lps.iter().map(|lp| lp.logprob).collect::<Vec<_>>(),
                "top_logprobs": lps.iter().map(|lp| lp.top.iter().map(|&(t, l)| (text(t), json!(l))).collect::<serde_json::Map<_, _>>()).collect::<Vec<_>>(),
                "text_offset": text_offset,
            })
        }
        Endpoint::Chat => {
            let entry = |t: u32, l: f32| json!({"token": text(t), "logprob": l, "bytes": backend.token_bytes(t)});
            json!({"content": lps.iter().map(|lp| {
                let mut e = entry(lp.token, lp.logprob);
                e["top_logprobs"] = lp.top.iter().map(|&(t, l)| entry(t, l)).collect();
                e
            }).collect::<Vec<_>>()})
        }
    }
}

/// What the model worker sends a streaming response.
enum Piece {
    Progress(PromptProgress),
    /// Text, and the reports of the tokens it completes.
    Text(usize, String, Vec<TokenLogprob>),
    Finished(usize, FinishReason),
}

struct StreamState {
    pieces: mpsc::UnboundedReceiver<Piece>,
    done: Option<oneshot::Receiver<Result<Generation, inkling_engine::EngineError>>>,
    /// Chat candidates whose first chunk (which carries the role) has gone out.
    started: std::collections::HashSet<usize>,
    /// Asked for log-probabilities, and each candidate's answer bytes reported so far
    /// (completions' `text_offset` goes on from there).
    logprobs: bool,
    reported: std::collections::HashMap<usize, usize>,
    ended: bool,
    endpoint: Endpoint,
    include_usage: bool,
    id: String,
    created: u64,
    state: AppState,
}

impl StreamState {
    fn body(&self, choices: Vec<Choice>, usage: Option<Usage>) -> CompletionResponse {
        let object = if self.endpoint == Endpoint::Chat { "chat.completion.chunk" } else { "text_completion" };
        CompletionResponse { id: self.id.clone(), object: object.into(), created: self.created, model: self.state.config.model_id.clone(), choices, usage, prompt_progress: None }
    }

    fn chunk(&self, choices: Vec<Choice>, usage: Option<Usage>) -> SseEvent {
        SseEvent::default().data(serde_json::to_string(&self.body(choices, usage)).unwrap_or_default())
    }
}

fn stream(s: AppState, plan: Plan) -> ApiResult<Response> {
    let (tx, pieces) = mpsc::unbounded_channel::<Piece>();
    let (request, return_progress) = (plan.request, plan.return_progress);
    let logprobs = request.logprobs.is_some();
    let started = std::time::Instant::now();
    let done = s.queue.generate(request, move |e| {
        let piece = match e {
            Event::Prefill { cached, processed, total } if return_progress => Piece::Progress(PromptProgress { total, cache: cached, processed, time_ms: started.elapsed().as_secs_f64() * 1e3 }),
            Event::Prefill { .. } => return !tx.is_closed(),
            Event::Text { candidate, text, logprobs } => Piece::Text(candidate, text.to_string(), logprobs.to_vec()),
            Event::Finished { candidate, reason } => Piece::Finished(candidate, reason),
        };
        // A closed channel means the client has gone: stop generating for it.
        tx.send(piece).is_ok()
    })?;
    let st = StreamState {
        pieces,
        done: Some(done),
        started: Default::default(),
        logprobs,
        reported: Default::default(),
        ended: false,
        endpoint: plan.endpoint,
        include_usage: plan.include_usage,
        id: response_id(if plan.endpoint == Endpoint::Chat { "chatcmpl" } else { "cmpl" }),
        created: unix_now(),
        state: s,
    };
    // Each step turns one message from the worker (or the ending) into events.
    let events = futures_util::stream::unfold(st, |mut st| async move {
        if st.ended {
            return None;
        }
        let mut out: Vec<SseEvent> = Vec::new();
        match st.pieces.recv().await {
            Some(Piece::Progress(p)) => {
                let mut chunk = st.body(Vec::new(), None);
                chunk.prompt_progress = Some(p);
                out.push(SseEvent::default().data(serde_json::to_string(&chunk).unwrap_or_default()));
            }
            Some(Piece::Text(i, text, lps)) => {
                let mut choice = Choice { index: i, ..Choice::default() };
                if st.logprobs {
                    let at = st.reported.entry(i).or_default();
                    choice.logprobs = Some(logprob_report(&*st.state.backend, st.endpoint, &lps, *at));
                    *at += lps.iter().map(|lp| st.state.backend.token_bytes(lp.token).len()).sum::<usize>();
                }
                match st.endpoint {
                    Endpoint::Completions => choice.text = Some(text),
                    Endpoint::Chat => {
                        let role = st.started.insert(i).then(|| "assistant".to_string());
                        choice.delta = Some(Delta { role, content: Some(text) });
                    }
                }
                out.push(st.chunk(vec![choice], None));
            }
            Some(Piece::Finished(i, reason)) => {
                let mut choice = Choice { index: i, finish_reason: Some(<&str>::from(reason).into()), ..Choice::default() };
                match st.endpoint {
                    Endpoint::Completions => choice.text = Some(String::new()),
                    Endpoint::Chat => choice.delta = Some(Delta::default()),
                }
                out.push(st.chunk(vec![choice], None));
            }
            None => {
                // The worker is done: report a failure in OpenAI's shape, or the usage.
                if let Some(rx) = st.done.take() {
                    let error = match rx.await {
                        Ok(Ok(g)) => {
                            if st.include_usage {
                                out.push(st.chunk(Vec::new(), Some(usage(&g))));
                            }
                            None
                        }
                        Ok(Err(e)) => Some(ApiError::from(e)),
                        Err(_) => Some(ApiError::Internal("the model worker dropped a request".into())),
                    };
                    if let Some(e) = error {
                        out.push(SseEvent::default().data(serde_json::to_string(&e.body()).unwrap_or_default()));
                    }
                }
                out.push(SseEvent::default().data("[DONE]"));
                st.ended = true;
            }
        }
        Some((futures_util::stream::iter(out.into_iter().map(Ok::<_, Infallible>)), st))
    })
    .flatten();
    Ok(Sse::new(events).keep_alive(KeepAlive::default()).into_response())
}
