//! `RemoteBackend`: the [`Backend`] for a model served elsewhere through the OpenAI-compatible
//! protocol (vLLM, llama.cpp's server, Ollama, hosted APIs). Every writing tool runs on it
//! unchanged.
//!
//! - Text prompts go to `/v1/completions`, chat prompts to `/v1/chat/completions`, always
//!   streamed (SSE); `n` is sent natively and any choices the server did not return are
//!   requested again in parallel, one each.
//! - Failures before any text arrives (connection refused, timeouts, 429, 5xx) are retried
//!   with exponential backoff, honouring `Retry-After`; 4xx errors are not. A stream that breaks
//!   after text arrived is not retried (that would duplicate text): the error carries the text
//!   received so far ([`EngineError::Interrupted`]).
//! - Token counts come from the server's `/tokenize` (vLLM, llama.cpp) when it has one, else a
//!   conservative estimate: the larger of characters / 2.5 and UTF-8 bytes / 3, which
//!   over-counts English (about 4 characters a token) and Chinese (1 to 1.5 characters a
//!   token) so context budgets stay safe.
//! - The API key is sent as a bearer token and never printed: `RemoteConfig`'s `Debug` hides it.

use inkling_api as api;
use inkling_engine::{Backend, Candidate, EngineError, Event, FinishReason, GenerateRequest, Generation, ModelInfo, Prompt, Result, Timings};
use std::io::BufRead;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Clone)]
pub struct RemoteConfig {
    /// Up to and including `/v1`, e.g. `http://127.0.0.1:8000/v1`.
    pub base_url: String,
    pub api_key: Option<String>,
    /// The served model's name (default: the first one `/v1/models` lists).
    pub model: Option<String>,
    /// The context window, when the server does not say (default 4096).
    pub context: Option<usize>,
    pub connect_timeout: Duration,
    /// Longest wait for the next bytes of a response.
    pub read_timeout: Duration,
    pub max_retries: u32,
    /// First backoff; doubled per retry.
    pub backoff: Duration,
}

impl std::fmt::Debug for RemoteConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteConfig")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<hidden>"))
            .field("model", &self.model)
            .field("max_retries", &self.max_retries)
            .finish()
    }
}

impl RemoteConfig {
    pub fn new(base_url: &str) -> Self {
        Self {
            base_url: base_url.trim_end_matches('/').to_string(),
            api_key: None,
            model: None,
            context: None,
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(120),
            max_retries: 3,
            backoff: Duration::from_millis(500),
        }
    }
}

/// How counting tokens works on this server (found on first use).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tokenize {
    Unknown,
    /// llama.cpp server: `POST {root}/tokenize {"content"}` → `{"tokens": [...]}`.
    LlamaCpp,
    /// vLLM: `POST {root}/tokenize {"model", "prompt"}` → `{"count"}`.
    Vllm,
    /// llama-cpp-python: `POST {base}/../extras/tokenize {"input"}` → `{"tokens"}`.
    LlamaCppPython,
    Estimate,
}

pub struct RemoteBackend {
    config: RemoteConfig,
    client: reqwest::blocking::Client,
    info: ModelInfo,
    context: usize,
    tokenize: Mutex<Tokenize>,
    /// JSON schemas go as OpenAI's `json_schema` format until a server rejects it; then as
    /// `{"type": "json_object", "schema": ...}`, which llama-cpp-python reads.
    schema_as_json_object: std::sync::atomic::AtomicBool,
}

/// A request that failed; `retry` says whether trying again may help, `after` how long the
/// server asked us to wait.
struct Failure {
    message: String,
    retry: bool,
    after: Option<Duration>,
    /// A setting the caller can change to get past it.
    remedy: Option<inkling_engine::Remedy>,
}

impl RemoteBackend {
    /// Connects: lists the server's models to check the URL and key and to learn the model name.
    pub fn connect(config: RemoteConfig) -> Result<Self> {
        let client = reqwest::blocking::Client::builder()
            .connect_timeout(config.connect_timeout)
            // In the blocking client this bounds each wait (for headers, for each read), not
            // the whole request: a long stream is fine as long as bytes keep coming.
            .timeout(config.read_timeout)
            .build()
            .map_err(|e| EngineError::Remote(format!("cannot set up the HTTP client: {e}")))?;
        let mut backend = Self {
            info: ModelInfo::remote(&config.base_url, ""),
            context: config.context.unwrap_or(4096),
            config,
            client,
            tokenize: Mutex::new(Tokenize::Unknown),
            schema_as_json_object: std::sync::atomic::AtomicBool::new(false),
        };
        let models = backend.models()?;
        let card = match &backend.config.model {
            Some(m) => models.iter().find(|c| &c.id == m).cloned().unwrap_or(api::ModelCard { id: m.clone(), ..api::ModelCard::default() }),
            None => {
                models.first().cloned().ok_or_else(|| EngineError::RemoteSetting { message: format!("{} serves no models", backend.config.base_url), remedy: inkling_engine::Remedy::RemoteModel })?
            }
        };
        if backend.config.context.is_none()
            && let Some(n) = card.max_model_len
        {
            backend.context = n;
        }
        backend.info = ModelInfo { context_length: backend.context, ..ModelInfo::remote(&backend.config.base_url, &card.id) };
        backend.config.model = Some(card.id);
        Ok(backend)
    }

    /// `GET /models`
    pub fn models(&self) -> Result<Vec<api::ModelCard>> {
        let url = format!("{}/models", self.config.base_url);
        let body = self.with_retries(|| {
            let resp = self.authorized(self.client.get(&url)).send().map_err(|e| transport_failure(&url, &e))?;
            let resp = check_status(&url, resp)?;
            resp.text().map_err(|e| transport_failure(&url, &e))
        })?;
        let list: api::ModelList = serde_json::from_str(&body).map_err(|e| EngineError::Remote(format!("{url} answered with something that is not a model list ({e}): {}", snippet(&body))))?;
        Ok(list.data)
    }

    fn model(&self) -> String {
        self.config.model.clone().unwrap_or_default()
    }

    fn authorized(&self, b: reqwest::blocking::RequestBuilder) -> reqwest::blocking::RequestBuilder {
        match &self.config.api_key {
            Some(k) => b.bearer_auth(k),
            None => b,
        }
    }

    /// Runs `attempt` until it succeeds, fails for good, or retries run out.
    fn with_retries<T>(&self, mut attempt: impl FnMut() -> Result<T, Failure>) -> Result<T> {
        let mut delay = self.config.backoff;
        for n in 0..=self.config.max_retries {
            match attempt() {
                Ok(v) => return Ok(v),
                Err(f) if f.retry && n < self.config.max_retries => {
                    let wait = f.after.unwrap_or(delay).min(Duration::from_secs(60));
                    tracing::warn!(attempt = n + 1, wait_ms = wait.as_millis() as u64, "{}; retrying", f.message);
                    std::thread::sleep(wait);
                    delay *= 2;
                }
                Err(Failure { message, remedy: Some(remedy), .. }) => return Err(EngineError::RemoteSetting { message, remedy }),
                Err(f) => return Err(EngineError::Remote(if f.retry { format!("{} (gave up after {} retries)", f.message, self.config.max_retries) } else { f.message })),
            }
        }
        unreachable!("the loop returns on its last attempt")
    }

    fn root_url(&self) -> String {
        self.config.base_url.strip_suffix("/v1").unwrap_or(&self.config.base_url).to_string()
    }

    fn count_remote(&self, text: &str) -> Result<usize> {
        let mode = *self.tokenize.lock().map_err(|_| EngineError::Remote("tokenizer state poisoned".into()))?;
        let try_mode = |m: Tokenize| -> Option<usize> {
            let (url, body) = match m {
                Tokenize::LlamaCpp => (format!("{}/tokenize", self.root_url()), serde_json::json!({"content": text})),
                Tokenize::Vllm => (format!("{}/tokenize", self.root_url()), serde_json::json!({"model": self.model(), "prompt": text, "add_special_tokens": false})),
                Tokenize::LlamaCppPython => (format!("{}/extras/tokenize", self.root_url()), serde_json::json!({"input": text})),
                _ => return None,
            };
            let resp = self.authorized(self.client.post(&url).json(&body)).send().ok()?;
            if !resp.status().is_success() {
                return None;
            }
            let v: serde_json::Value = resp.json().ok()?;
            v.get("count").and_then(|c| c.as_u64()).map(|c| c as usize).or_else(|| v.get("tokens").and_then(|t| t.as_array()).map(Vec::len))
        };
        if mode == Tokenize::Unknown {
            for m in [Tokenize::LlamaCppPython, Tokenize::Vllm, Tokenize::LlamaCpp] {
                if let Some(n) = try_mode(m) {
                    if let Ok(mut t) = self.tokenize.lock() {
                        *t = m;
                    }
                    return Ok(n);
                }
            }
            if let Ok(mut t) = self.tokenize.lock() {
                *t = Tokenize::Estimate;
            }
            return Ok(estimate_tokens(text));
        }
        Ok(try_mode(mode).unwrap_or_else(|| estimate_tokens(text)))
    }

    /// One streamed request for `n` choices; events go to `on_event` with indices offset by
    /// `first`. Returns the candidates (text so far, finish reason) and whether it was cancelled.
    fn stream_once(&self, request: &GenerateRequest, n: usize, seed: Option<u64>, first: usize, on_event: &mut dyn FnMut(Event<'_>) -> bool) -> Result<Vec<Candidate>> {
        let (url, mut body) = self.body(request, n, seed);
        let mut texts = vec![String::new(); n];
        let mut reasons: Vec<Option<FinishReason>> = vec![None; n];
        let mut counts = vec![0usize; n];
        // Which choices the server sent at all (servers without `n` send only the first).
        let mut seen = vec![false; n];
        let send = |body: &serde_json::Value| {
            self.with_retries(|| {
                let resp = self.authorized(self.client.post(&url).json(body)).send().map_err(|e| transport_failure(&url, &e))?;
                check_status(&url, resp)
            })
        };
        let resp = match send(&body) {
            Err(EngineError::Remote(msg)) if request.json_schema.is_some() && msg.contains("response_format") && !self.schema_as_json_object.load(std::sync::atomic::Ordering::Relaxed) => {
                tracing::info!("the server rejected the json_schema response format; sending the schema as json_object");
                self.schema_as_json_object.store(true, std::sync::atomic::Ordering::Relaxed);
                body = self.body(request, n, seed).1;
                send(&body)?
            }
            other => other?,
        };
        let reader = std::io::BufReader::new(resp);
        let mut cancelled = false;
        let mut done = false;
        for line in reader.lines() {
            let line = match line {
                Ok(l) => l,
                Err(e) => return Err(interrupted(&format!("the stream from {url} broke: {e}"), &texts, &counts, first)),
            };
            let Some(data) = line.strip_prefix("data:").map(str::trim) else { continue };
            if data == "[DONE]" {
                done = true;
                break;
            }
            let chunk: api::CompletionResponse = match serde_json::from_str(data) {
                Ok(c) => c,
                Err(e) => {
                    // An error object mid-stream, or garbage.
                    let msg = serde_json::from_str::<api::ErrorResponse>(data).map(|e| e.error.message).unwrap_or_else(|_| format!("malformed JSON ({e}): {}", snippet(data)));
                    return Err(interrupted(&format!("{url} sent {msg}"), &texts, &counts, first));
                }
            };
            for c in chunk.choices {
                let Some(i) = (c.index < n).then_some(c.index) else { continue };
                seen[i] = true;
                let t = c.content();
                if !t.is_empty() && reasons[i].is_none() {
                    texts[i].push_str(t);
                    counts[i] += 1;
                    if !on_event(Event::Text { candidate: first + i, text: t, logprobs: &[] }) {
                        cancelled = true;
                    }
                }
                if let Some(r) = c.finish_reason.as_deref()
                    && reasons[i].is_none()
                {
                    let reason = FinishReason::from(r);
                    reasons[i] = Some(reason);
                    on_event(Event::Finished { candidate: first + i, reason });
                }
            }
            if cancelled {
                // Dropping the response closes the connection: the server stops generating.
                break;
            }
        }
        if !done && !cancelled && reasons.iter().zip(&seen).any(|(r, &s)| s && r.is_none()) {
            return Err(interrupted(&format!("the stream from {url} ended early"), &texts, &counts, first));
        }
        let mut out = Vec::new();
        for (i, text) in texts.into_iter().enumerate() {
            if !seen[i] && i > 0 {
                continue;
            }
            if reasons[i].is_none() {
                let reason = if cancelled { FinishReason::Cancelled } else { FinishReason::Stop };
                on_event(Event::Finished { candidate: first + i, reason });
                reasons[i] = Some(reason);
            }
            out.push(Candidate { index: first + i, text, finish_reason: reasons[i].unwrap_or(FinishReason::Stop), completion_tokens: counts[i], tokens: Vec::new(), logprobs: Vec::new() });
        }
        Ok(out)
    }

    fn body(&self, r: &GenerateRequest, n: usize, seed: Option<u64>) -> (String, serde_json::Value) {
        let sampling = api::Sampling { seed, ..api::Sampling::from(&r.sampling) };
        let as_object = self.schema_as_json_object.load(std::sync::atomic::Ordering::Relaxed);
        let strict = r.json_schema.as_ref().map(require_every_property);
        let response_format = strict.as_ref().map(|schema| {
            if as_object {
                api::ResponseFormat { kind: "json_object".into(), json_schema: None, schema: Some(schema.clone()) }
            } else {
                api::ResponseFormat { kind: "json_schema".into(), json_schema: Some(api::JsonSchemaFormat { name: "answer".into(), schema: schema.clone(), strict: true }), schema: None }
            }
        });
        let params = api::GenerationParams {
            max_tokens: Some(r.max_tokens),
            min_tokens: (r.min_tokens > 0).then_some(r.min_tokens),
            n: Some(n),
            stop: r.stop.clone(),
            stream: true,
            sampling,
            response_format,
            // Servers that ban (TabbyAPI) do it themselves; the answer is checked here anyway.
            banned_strings: r.banned_strings.clone(),
            banned_regex: r.banned_regex.clone(),
            ..api::GenerationParams::default()
        };
        match &r.prompt {
            Prompt::Text(t) => {
                let body = api::CompletionRequest { model: self.model(), prompt: format!("{t}{}", r.prefill), params };
                (format!("{}/completions", self.config.base_url), serde_json::to_value(body).unwrap_or_default())
            }
            Prompt::Chat(m) => {
                let mut messages: Vec<api::Message> = m.iter().map(api::Message::from).collect();
                let prefill = !r.prefill.is_empty();
                if prefill {
                    messages.push(api::Message { role: "assistant".into(), content: r.prefill.clone() });
                }
                let body = api::ChatRequest { model: self.model(), messages, params, continue_final_message: prefill.then_some(true), add_generation_prompt: prefill.then_some(false) };
                (format!("{}/chat/completions", self.config.base_url), serde_json::to_value(body).unwrap_or_default())
            }
        }
    }
}

fn require_every_property(schema: &serde_json::Value) -> serde_json::Value {
    match schema {
        serde_json::Value::Object(map) => {
            let mut out: serde_json::Map<String, serde_json::Value> = map.iter().map(|(k, v)| (k.clone(), require_every_property(v))).collect();
            if let Some(props) = map.get("properties").and_then(|p| p.as_object()) {
                out.insert("required".into(), props.keys().cloned().collect::<Vec<_>>().into());
                out.insert("additionalProperties".into(), false.into());
            }
            serde_json::Value::Object(out)
        }
        other => other.clone(),
    }
}

fn snippet(s: &str) -> String {
    let t: String = s.chars().take(160).collect();
    if t.len() < s.len() { format!("{t}…") } else { t }
}

fn transport_failure(url: &str, e: &reqwest::Error) -> Failure {
    let what = if e.is_connect() {
        format!("cannot connect to {url}: is the server running? ({e})")
    } else if e.is_timeout() {
        format!("{url} did not answer in time ({e})")
    } else {
        format!("request to {url} failed: {e}")
    };
    Failure { message: what, retry: e.is_connect() || e.is_timeout() || e.is_request(), after: None, remedy: None }
}

fn check_status(url: &str, resp: reqwest::blocking::Response) -> Result<reqwest::blocking::Response, Failure> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let after = resp.headers().get(reqwest::header::RETRY_AFTER).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<f64>().ok()).map(Duration::from_secs_f64);
    let body = resp.text().unwrap_or_default();
    let detail = serde_json::from_str::<api::ErrorResponse>(&body).map(|e| e.error.message).unwrap_or_else(|_| snippet(&body));
    let code = status.as_u16();
    use inkling_engine::Remedy;
    let (message, remedy) = match code {
        401 | 403 => (format!("{url} refused the API key ({status}): {detail}"), Some(Remedy::ApiKey)),
        404 => (format!("{url} was not found ({status}): the base URL should end in /v1, and the model must be one it serves: {detail}"), Some(Remedy::ServerAddress)),
        429 => (format!("{url} is rate-limiting requests ({status}): {detail}"), None),
        _ => (format!("{url} answered {status}: {detail}"), None),
    };
    // A server that rejects a request's shape (some answer 500 to a validation error) will
    // reject it again.
    let invalid = detail.contains("validation error") || detail.contains("response_format");
    Err(Failure { message, retry: !invalid && (code == 429 || code == 408 || status.is_server_error()), after, remedy })
}

fn interrupted(reason: &str, texts: &[String], counts: &[usize], first: usize) -> EngineError {
    let candidates = texts
        .iter()
        .enumerate()
        .map(|(i, t)| Candidate { index: first + i, text: t.clone(), finish_reason: FinishReason::Cancelled, completion_tokens: counts[i], tokens: Vec::new(), logprobs: Vec::new() })
        .collect();
    EngineError::Interrupted { reason: reason.to_string(), partial: Box::new(Generation { candidates, prompt_tokens: 0, seed: 0, timings: Timings::default() }) }
}

/// A count that errs high: the larger of characters / 2.5 and bytes / 3.
pub fn estimate_tokens(text: &str) -> usize {
    let chars = text.chars().count() as f64;
    let bytes = text.len() as f64;
    (chars / 2.5).max(bytes / 3.0).ceil() as usize
}

impl Backend for RemoteBackend {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn context_length(&self) -> usize {
        self.context
    }

    fn count_tokens(&self, text: &str) -> Result<usize> {
        if text.is_empty() {
            return Ok(0);
        }
        self.count_remote(text)
    }

    fn render_prompt(&self, prompt: &Prompt, prefill: &str) -> Result<String> {
        // The server applies its own chat template; show the messages as they are sent.
        Ok(match prompt {
            Prompt::Text(t) => format!("{t}{prefill}"),
            Prompt::Chat(m) => {
                let mut s: String = m.iter().map(|m| format!("[{}]\n{}\n", m.role, m.content)).collect();
                s.push_str(&format!("[assistant]\n{prefill}"));
                s
            }
        })
    }

    fn count_prompt_tokens(&self, prompt: &Prompt, prefill: &str) -> Result<usize> {
        match prompt {
            Prompt::Text(t) => self.count_tokens(&format!("{t}{prefill}")),
            // Each message costs its text plus the template's markers (a few tokens).
            Prompt::Chat(m) => Ok(m.iter().map(|m| self.count_tokens(&m.content).map(|n| n + 8)).sum::<Result<usize>>()? + self.count_tokens(prefill)? + 8),
        }
    }

    fn generate(&self, request: &GenerateRequest, on_event: &mut dyn FnMut(Event<'_>) -> bool) -> Result<Generation> {
        match inkling_engine::bans::Bans::compile(&request.banned_strings, &request.banned_regex)? {
            None => self.generate_unchecked(request, on_event),
            Some(bans) => self.generate_checked(request, &bans, on_event),
        }
    }
}

/// Times a remote candidate holding a banned phrase is asked for again before it is cut.
pub const REMOTE_BAN_RETRIES: usize = 2;

impl RemoteBackend {
    /// Bans on a server inkling cannot take tokens back from (TabbyAPI honours
    /// `banned_strings` itself; vLLM and llama.cpp's server ignore it): each candidate is
    /// checked when it ends, and one holding a banned phrase is asked for again with another
    /// seed, up to [`REMOTE_BAN_RETRIES`] times, then cut before the phrase (finish reason
    /// `Banned`). So nothing banned is shown, its text is held back until it is checked.
    fn generate_checked(&self, request: &GenerateRequest, bans: &inkling_engine::bans::Bans, on_event: &mut dyn FnMut(Event<'_>) -> bool) -> Result<Generation> {
        static SAID: std::sync::Once = std::sync::Once::new();
        SAID.call_once(|| {
            tracing::warn!("a remote server cannot take tokens back: banned phrases are checked after each answer, which is asked for again when it holds one, and text is shown once checked")
        });
        let mut g = self.generate_unchecked(request, &mut |_| true)?;
        let mut cache = bans.cache();
        let mut hit = |text: &str| match bans.scan(&mut cache, text, 0, true) {
            inkling_engine::bans::Scan::Hit { start, .. } => Some(start),
            _ => None,
        };
        for c in g.candidates.iter_mut() {
            let mut tries = 0;
            while hit(&c.text).is_some() && tries < REMOTE_BAN_RETRIES {
                tries += 1;
                g.timings.ban_rewinds += 1;
                let again = GenerateRequest { n: 1, seed: Some(g.seed.wrapping_add((1000 * tries + c.index) as u64)), ..request.clone() };
                if let Some(fresh) = self.generate_unchecked(&again, &mut |_| true)?.candidates.pop() {
                    c.text = fresh.text;
                    c.finish_reason = fresh.finish_reason;
                    c.completion_tokens = fresh.completion_tokens;
                }
            }
            if let Some(at) = hit(&c.text) {
                c.text.truncate(at);
                c.finish_reason = FinishReason::Banned;
            }
        }
        for c in &g.candidates {
            if !c.text.is_empty() && !on_event(Event::Text { candidate: c.index, text: &c.text, logprobs: &[] }) {
                break;
            }
            on_event(Event::Finished { candidate: c.index, reason: c.finish_reason });
        }
        Ok(g)
    }

    fn generate_unchecked(&self, request: &GenerateRequest, on_event: &mut dyn FnMut(Event<'_>) -> bool) -> Result<Generation> {
        request.check()?;
        let t0 = Instant::now();
        let seed = request.seed_or_clock();
        let mut first_ms = None;
        let mut candidates = {
            let mut timed = |e: Event<'_>| {
                first_ms.get_or_insert_with(|| t0.elapsed().as_secs_f64() * 1e3);
                on_event(e)
            };
            self.stream_once(request, request.n, Some(seed), 0, &mut timed)?
        };
        // Servers without `n` return one choice: ask for the rest in parallel, one each. Their
        // events come back over a channel so the caller's callback stays on this thread.
        if candidates.len() < request.n {
            enum Msg {
                Text(usize, String),
                Finished(usize, FinishReason),
            }
            let have = candidates.len();
            let stop = std::sync::atomic::AtomicBool::new(false);
            let (tx, rx) = std::sync::mpsc::channel::<Msg>();
            let results: Vec<Result<Vec<Candidate>>> = std::thread::scope(|s| {
                let handles: Vec<_> = (have..request.n)
                    .map(|i| {
                        let (tx, stop) = (tx.clone(), &stop);
                        s.spawn(move || {
                            let mut forward = |e: Event<'_>| {
                                let _ = tx.send(match e {
                                    Event::Text { candidate, text, .. } => Msg::Text(candidate, text.to_string()),
                                    Event::Finished { candidate, reason } => Msg::Finished(candidate, reason),
                                    // A remote server reads the prompt on its side.
                                    Event::Prefill { .. } => return !stop.load(std::sync::atomic::Ordering::Relaxed),
                                });
                                !stop.load(std::sync::atomic::Ordering::Relaxed)
                            };
                            self.stream_once(request, 1, Some(seed.wrapping_add(i as u64)), i, &mut forward)
                        })
                    })
                    .collect();
                drop(tx);
                for m in rx {
                    let keep = match &m {
                        Msg::Text(c, t) => on_event(Event::Text { candidate: *c, text: t, logprobs: &[] }),
                        Msg::Finished(c, r) => on_event(Event::Finished { candidate: *c, reason: *r }),
                    };
                    if !keep {
                        stop.store(true, std::sync::atomic::Ordering::Relaxed);
                    }
                }
                handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err(EngineError::Remote("a request thread panicked".into())))).collect()
            });
            for r in results {
                candidates.extend(r?);
            }
        }
        let elapsed = t0.elapsed().as_secs_f64() * 1e3;
        let generated: usize = candidates.iter().map(|c| c.completion_tokens).sum();
        Ok(Generation {
            candidates,
            prompt_tokens: 0,
            seed,
            timings: Timings { time_to_first_token_ms: first_ms.unwrap_or(elapsed), decode_ms: elapsed, decode_tokens_per_s: generated as f64 / (elapsed / 1e3).max(1e-9), ..Timings::default() },
        })
    }
}
