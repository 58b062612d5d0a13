//! The writing tools over HTTP: `GET /api/tools` lists them, `POST /api/tools/{name}` runs one
//! (streamed as server-sent events or whole), `POST /api/proofread` lints by rule. A run
//! inside a project reads the project's memory, author's note and story bible, and files every
//! candidate in the project's generation tree so the writer can accept, reject or come back.

use crate::body::Body;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use inkling_craft::carry_on::CarryOn;
use inkling_craft::proofread::{Finding, proofread};
use inkling_craft::run::{finish, prepare};
use inkling_craft::{LoreEntry, StoryContext, ToolOutput, ToolRequest};
use inkling_engine::Event;
use inkling_store::generations::NewGeneration;
use inkling_store::{Project, Store};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::convert::Infallible;
use tokio::sync::mpsc;

pub fn routes() -> axum::Router<AppState> {
    use axum::routing::{get, post};
    axum::Router::new().route("/api/tools", get(list)).route("/api/tools/{name}", post(run_tool)).route("/api/proofread", post(proofread_text))
}

/// The story context a project gives every tool: memory, author's note and its depth, the
/// lorebook with its settings and timers ("style" entries always apply unless their rules
/// say otherwise; the rest when they fire), the chapter `document` is, if given, and the
/// chapters' summaries (the assembly keeps only those before that chapter), and the writer's
/// voice profile if one was built (prose tools rank by it unless the request says `voice: false`).
pub fn project_context(store: &Store, project: &Project, document: Option<&inkling_store::Document>) -> inkling_store::Result<StoryContext> {
    let mut context = context_without_voice(store, project, document)?;
    context.voice = store.voice(project)?.map(|r| std::sync::Arc::new(r.profile));
    Ok(context)
}

/// Parsed voice profiles by project, with the stored build each came from: a profile runs to
/// megabytes of JSON, and a tool run should not parse it again unless it was rebuilt.
#[derive(Default)]
pub struct VoiceCache {
    profiles: std::sync::Mutex<std::collections::HashMap<i64, CachedVoice>>,
}

/// A parsed profile and the stored build (time, size) it was parsed from.
type CachedVoice = ((i64, i64), std::sync::Arc<inkling_voice::Profile>);

impl VoiceCache {
    /// The project's current profile, parsed at most once per build.
    pub fn get(&self, store: &Store, project: &Project) -> inkling_store::Result<Option<std::sync::Arc<inkling_voice::Profile>>> {
        let Some(version) = store.voice_version(project)? else { return Ok(None) };
        if let Some((v, p)) = self.profiles.lock().ok().and_then(|m| m.get(&project.id).cloned())
            && v == version
        {
            return Ok(Some(p));
        }
        let Some(record) = store.voice(project)? else { return Ok(None) };
        let profile = std::sync::Arc::new(record.profile);
        if let Ok(mut m) = self.profiles.lock() {
            m.insert(project.id, (version, profile.clone()));
        }
        Ok(Some(profile))
    }
}

/// [`project_context`] with the profile from `voices`.
pub fn cached_project_context(store: &Store, project: &Project, document: Option<&inkling_store::Document>, voices: &VoiceCache) -> inkling_store::Result<StoryContext> {
    let mut context = context_without_voice(store, project, document)?;
    context.voice = voices.get(store, project)?;
    Ok(context)
}

fn context_without_voice(store: &Store, project: &Project, document: Option<&inkling_store::Document>) -> inkling_store::Result<StoryContext> {
    let lore = store.bible(project)?.into_iter().map(|e| lore_entry(&e)).collect();
    let book = LoreBook::of(project);
    Ok(StoryContext {
        memory: project.memory.clone(),
        author_note: project.authors_note.clone(),
        note_depth: usize::try_from(project.authors_note_depth).unwrap_or(3),
        lore,
        before: String::new(),
        chapter: match document {
            Some(d) => chapter_of(store, project, d)?,
            None => None,
        },
        lore_settings: book.settings,
        lore_state: book.state,
        summaries: crate::book::summaries(store, project)?,
        voice: None,
    })
}

/// A stored entry as the toolbox reads it. Rules that no longer parse (a newer inkling
/// wrote them) are dropped rather than the entry: its keys and body still work.
pub fn lore_entry(e: &inkling_store::BibleEntry) -> LoreEntry {
    LoreEntry::from_parts(&e.kind, &e.name, &e.keys, &e.body, &e.rules).unwrap_or_else(|_| LoreEntry::from_parts(&e.kind, &e.name, &e.keys, &e.body, &Default::default()).unwrap_or_default())
}

/// What `projects.lorebook` holds: the lorebook's settings and its timers.
#[derive(Serialize, serde::Deserialize, Default)]
pub struct LoreBook {
    #[serde(default)]
    pub settings: inkling_craft::LoreSettings,
    #[serde(default)]
    pub state: inkling_craft::LoreState,
}

impl LoreBook {
    pub fn of(project: &Project) -> LoreBook {
        serde_json::from_value(serde_json::Value::Object(project.lorebook.clone())).unwrap_or_default()
    }

    pub fn to_map(&self) -> serde_json::Map<String, serde_json::Value> {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(m)) => m,
            _ => serde_json::Map::new(),
        }
    }
}

/// The 1-based place of a chapter among the project's chapters (documents of kind chapter,
/// in binder order); `None` for a document of another kind.
pub fn chapter_of(store: &Store, project: &Project, document: &inkling_store::Document) -> inkling_store::Result<Option<u32>> {
    if document.kind != "chapter" {
        return Ok(None);
    }
    Ok(store.chapters(project)?.iter().position(|d| d.id == document.id).map(|i| i as u32 + 1))
}

/// Keeps the lorebook's timers after a generation in the project.
pub fn keep_lore_state(store: &mut Store, project: &Project, state: &inkling_craft::LoreState) -> inkling_store::Result<()> {
    // Re-read: the settings may have changed while the model wrote.
    let fresh = store.project(&project.name)?;
    let mut book = LoreBook::of(&fresh);
    if book.state == *state {
        return Ok(());
    }
    book.state = state.clone();
    store.set_lorebook(&fresh, &book.to_map())
}

#[derive(Serialize)]
struct ToolInfo {
    name: String,
    description: String,
    input: String,
    needs_text: bool,
    continues: bool,
    output: &'static str,
    diff: bool,
    options: BTreeMap<String, OptionInfo>,
}

#[derive(Serialize)]
struct OptionInfo {
    help: String,
    default: Option<String>,
    values: Vec<String>,
    /// Any instruction is accepted besides the named values.
    free: bool,
}

async fn list(State(s): State<AppState>) -> Json<Vec<ToolInfo>> {
    use inkling_craft::recipe::OutputKind;
    Json(
        s.toolbox
            .recipes()
            .map(|r| ToolInfo {
                name: r.name.clone(),
                description: r.description.clone(),
                input: r.input.clone(),
                needs_text: r.needs_text,
                continues: r.continues,
                output: match r.output.kind {
                    OutputKind::Text => "text",
                    OutputKind::List => "list",
                    OutputKind::Json => "json",
                },
                diff: r.output.diff,
                options: r
                    .options
                    .iter()
                    .map(|(k, o)| (k.clone(), OptionInfo { help: o.help.clone(), default: o.default.clone(), values: o.values.keys().cloned().collect(), free: o.free }))
                    .collect(),
            })
            .collect(),
    )
}

/// `POST /api/tools/{name}`.
#[derive(Deserialize, Default)]
#[serde(default)]
struct RunBody {
    text: String,
    options: BTreeMap<String, String>,
    n: Option<usize>,
    seed: Option<u64>,
    max_tokens: Option<usize>,
    temperature: Option<f32>,
    /// The answer's language ("French", "zh"); default: the text's.
    language: Option<String>,
    /// How many items a list tool gives.
    count: Option<usize>,
    /// `chat` or `text` (default: chat when the model has a template), as the CLI's `--frame`.
    frame: Option<inkling_craft::Frame>,
    /// `auto` (the default), `lookup` or `off`, as the CLI's `--speculative`.
    speculative: Option<inkling_engine::Speculation>,
    /// This request's banned phrases, over the project's and the config file's.
    bans: inkling_api::BanList,
    /// Report this many alternatives for each answer token (at most 20): the token view.
    alternatives: Option<usize>,
    /// The answer starts with this (a branch: the old answer up to a token, then the
    /// alternative chosen there); the model goes on from it.
    answer_start: String,
    stream: bool,
    /// Run inside this project: its memory, note and bible apply and candidates are recorded.
    project: Option<String>,
    /// The document the text comes from (recorded with each candidate).
    document: Option<i64>,
    /// Regenerating: the generation these are alternatives to continue from.
    parent: Option<i64>,
    /// The story before a selection.
    before: String,
    /// The chapter being written (1-based), for lore that starts later in the book; a
    /// project's `document` gives it when this is absent.
    #[serde(default)]
    chapter: Option<u32>,
    /// Override the project's memory and author's note.
    memory: Option<String>,
    note: Option<String>,
    /// `false` keeps the model's order instead of ranking prose by the project's voice profile.
    voice: Option<bool>,
}

#[derive(Serialize)]
struct RunResult {
    #[serde(flatten)]
    output: ToolOutput,
    /// The generation-tree id of each candidate, in order, when run inside a project.
    generations: Vec<i64>,
    /// The model that wrote them: the served model's id, `+feedback` after it when the
    /// project's feedback adapter was used.
    model: String,
}

async fn run_tool(State(s): State<AppState>, Path(name): Path<String>, Body(body): Body<RunBody>) -> ApiResult<Response> {
    // Looked up once: the prompt is built from it before the model runs and the answer read
    // with it after.
    let recipe = std::sync::Arc::new(s.toolbox.get(&name)?.clone());
    let project_name = body.project.clone();
    let (mut context, project_bans) = match &project_name {
        Some(p) => {
            let p = p.clone();
            let document = body.document;
            let voices = s.voices.clone();
            s.store(move |st| {
                let project = st.project(&p)?;
                // A document of another project is no chapter of this one.
                let document = document.and_then(|id| st.document_by_id(id).ok()).filter(|d| d.project_id == project.id);
                Ok((cached_project_context(st, &project, document.as_ref(), &voices)?, project.bans))
            })
            .await?
        }
        None => (StoryContext::default(), Default::default()),
    };
    context.before = body.before.clone();
    if body.chapter.is_some() {
        context.chapter = body.chapter;
    }
    if let Some(m) = &body.memory {
        context.memory = m.clone();
    }
    if let Some(n) = &body.note {
        context.author_note = n.clone();
    }
    let request = ToolRequest {
        tool: name,
        text: body.text.clone(),
        options: body.options.clone(),
        context,
        n: body.n.unwrap_or(1),
        seed: body.seed,
        max_tokens: body.max_tokens,
        temperature: body.temperature,
        frame: body.frame,
        language: body.language.clone(),
        count: body.count,
        speculative: body.speculative.unwrap_or_else(inkling_craft::run::default_speculation),
        bans: body.bans.over(&project_bans.over(&s.config.bans)),
        alternatives: body.alternatives,
        answer_start: body.answer_start.clone(),
        voice: body.voice.unwrap_or(true),
    };
    let (tx, pieces) = mpsc::unbounded_channel::<Value>();
    let streaming = body.stream;
    // A project that learnt from its writer's choices generates through its adapter.
    let model = match &project_name {
        Some(p) => crate::learning::model_for(&s, p).await,
        None => None,
    };
    // The prompt is assembled off the async runtime (it counts tokens), the model's part waits
    // in line with every other generation, and the answer is cleaned up here.
    let (prepared, request) = prepare_off_runtime(&s, &recipe, request).await?;
    let generation = s.queue.generate_on(model.clone(), prepared.request.clone(), move |e| {
        let v = match e {
            Event::Prefill { cached, processed, total } => json!({"type": "progress", "cached": cached, "processed": processed, "total": total}),
            Event::Text { candidate, text, .. } => json!({"type": "text", "candidate": candidate, "text": text}),
            Event::Finished { candidate, reason } => json!({"type": "finished", "candidate": candidate, "reason": reason}),
        };
        // Whole answers need no events; the result channel still tells when the client left.
        !streaming || tx.send(v).is_ok()
    })?;
    let record = Record {
        model: filed_model(&s, model.is_some()),
        project: project_name,
        document: body.document,
        parent: body.parent,
        // Enough to run it again, or to branch from one of its tokens after a reload.
        request: json!({"text": body.text, "options": body.options, "n": body.n, "max_tokens": body.max_tokens, "temperature": body.temperature, "before": body.before, "language": body.language, "count": body.count, "frame": body.frame, "alternatives": body.alternatives, "answer_start": body.answer_start}),
        temperature: body.temperature,
    };
    let done = complete(s.clone(), model, recipe, request, prepared, generation);
    if !streaming {
        let output = done.await?;
        return Ok(Json(record.file(&s, output).await?).into_response());
    }
    let st = ToolStream { pieces, done: Some(Box::pin(done)), record: Some(record), state: s };
    let events = futures_util::stream::unfold(st, |mut st| async move {
        let record = st.record.take()?;
        if let Some(v) = st.pieces.recv().await {
            st.record = Some(record);
            return Some((SseEvent::default().data(v.to_string()), st));
        }
        // The worker is done: the cleaned candidates (filed in the project), or the error.
        let out = match st.done.take()?.await {
            Ok(output) => match record.file(&st.state, output).await {
                Ok(r) => json!({"type": "result", "result": r}),
                Err(e) => json!({"type": "error", "error": e.body().error}),
            },
            Err(e) => json!({"type": "error", "error": e.body().error}),
        };
        Some((SseEvent::default().data(out.to_string()), st))
    })
    .map(Ok::<_, Infallible>);
    Ok(Sse::new(events).keep_alive(KeepAlive::default()).into_response())
}

/// The rest of a tool run once its generation is in line: a list that stopped short is asked
/// for the rest (in line like any generation; its added text reaches a stream in the result,
/// not as events), then the answers are cleaned and parsed.
pub(crate) async fn complete(
    s: AppState,
    model: Option<std::sync::Arc<dyn inkling_engine::Backend>>,
    recipe: std::sync::Arc<inkling_craft::Recipe>,
    request: ToolRequest,
    prepared: inkling_craft::run::Prepared,
    generation: tokio::sync::oneshot::Receiver<Result<inkling_engine::Generation, inkling_engine::EngineError>>,
) -> ApiResult<ToolOutput> {
    let dropped = || ApiError::Internal("the model worker dropped a request".into());
    let mut g = generation.await.map_err(|_| dropped())??;
    if let Some(mut carry) = CarryOn::new(&prepared, &g) {
        loop {
            let steps = carry.requests(&prepared, &g);
            if steps.is_empty() {
                break;
            }
            for step in steps {
                let extra = s.queue.generate_on(model.clone(), step.request.clone(), |_| true)?.await.map_err(|_| dropped())??;
                carry.absorb(&mut g, step, extra);
            }
        }
    }
    Ok(finish(&recipe, &*s.backend, &request, prepared, g)?)
}

/// The prompt, assembled off the async runtime (it counts tokens; an adapter changes no
/// token, so the served model's tokenizer serves every project).
async fn prepare_off_runtime(s: &AppState, recipe: &std::sync::Arc<inkling_craft::Recipe>, request: ToolRequest) -> ApiResult<(inkling_craft::run::Prepared, ToolRequest)> {
    let backend = s.backend.clone();
    let recipe = recipe.clone();
    Ok(tokio::task::spawn_blocking(move || -> inkling_craft::Result<_> { Ok((prepare(&recipe, &*backend, &request)?, request)) })
        .await
        .map_err(|e| ApiError::Internal(format!("preparing the prompt failed: {e}")))??)
}

/// The model a generation is filed under: the served one, or its feedback-adapted self.
pub(crate) fn filed_model(s: &AppState, adapted: bool) -> String {
    if adapted { crate::learning::adapted_model_id(&s.config.model_id) } else { s.config.model_id.clone() }
}

/// Runs a tool request whole, in line with every other generation, on `model` (a project's
/// feedback adapter) or the served model.
pub(crate) async fn run_whole(s: &AppState, model: Option<std::sync::Arc<dyn inkling_engine::Backend>>, request: ToolRequest) -> ApiResult<ToolOutput> {
    let recipe = std::sync::Arc::new(s.toolbox.get(&request.tool)?.clone());
    let (prepared, request) = prepare_off_runtime(s, &recipe, request).await?;
    let generation = s.queue.generate_on(model.clone(), prepared.request.clone(), |_| true)?;
    complete(s.clone(), model, recipe, request, prepared, generation).await
}

struct ToolStream {
    pieces: mpsc::UnboundedReceiver<Value>,
    /// The generation, then its clean-up.
    done: Option<std::pin::Pin<Box<dyn std::future::Future<Output = ApiResult<ToolOutput>> + Send>>>,
    /// Taken when the result has been sent: the stream ends at the next step.
    record: Option<Record>,
    state: AppState,
}

/// Where a tool's candidates go in the project's generation tree.
struct Record {
    /// The model filed with each candidate.
    model: String,
    project: Option<String>,
    document: Option<i64>,
    parent: Option<i64>,
    request: Value,
    temperature: Option<f32>,
}

impl Record {
    async fn file(self, s: &AppState, output: ToolOutput) -> ApiResult<RunResult> {
        let model = self.model;
        let Some(project) = self.project else { return Ok(RunResult { output, generations: Vec::new(), model }) };
        s.store(move |st| {
            let project = st.project(&project)?;
            // The generation happened: sticky entries count it, cooldowns run down.
            keep_lore_state(st, &project, &output.prompt.lore_state)?;
            let mut ids = Vec::new();
            for c in &output.candidates {
                let g = NewGeneration {
                    document_id: self.document,
                    parent_id: self.parent,
                    recipe: output.tool.clone(),
                    model: model.clone(),
                    request: self.request.clone(),
                    sampling: json!({"temperature": self.temperature}),
                    seed: output.seed,
                    text: c.text.clone(),
                    timings: serde_json::to_value(&output.timings).unwrap_or_default(),
                    // Through text, so the figures are filed as the response wrote them
                    // (an f32's shortest form, not its f64 widening).
                    tokens: (!c.tokens.is_empty()).then(|| serde_json::to_string(&c.tokens).ok().and_then(|t| serde_json::from_str(&t).ok())).flatten(),
                };
                ids.push(st.record_generation(&project, &g)?.id);
            }
            Ok(RunResult { output, generations: ids, model })
        })
        .await
    }
}

#[derive(Deserialize)]
struct ProofreadBody {
    text: String,
    #[serde(default)]
    dialect: Option<String>,
}

/// A finding with its span also in UTF-16 code units, which is what the browser's strings
/// count.
#[derive(Serialize)]
struct BrowserFinding {
    #[serde(flatten)]
    finding: Finding,
    utf16_start: usize,
    utf16_end: usize,
}

async fn proofread_text(Body(body): Body<ProofreadBody>) -> ApiResult<Json<Value>> {
    let dialect = inkling_craft::proofread::dialect_named(body.dialect.as_deref().unwrap_or("american"))?;
    let text = body.text;
    let findings = tokio::task::spawn_blocking(move || {
        let findings = proofread(&text, dialect);
        let utf16 = |byte: usize| text.get(..byte).map_or(0, |t| t.encode_utf16().count());
        findings.into_iter().map(|f| BrowserFinding { utf16_start: utf16(f.byte_start), utf16_end: utf16(f.byte_end), finding: f }).collect::<Vec<_>>()
    })
    .await
    .map_err(|e| ApiError::Internal(format!("proofreading failed: {e}")))?;
    Ok(Json(json!({ "findings": findings })))
}
