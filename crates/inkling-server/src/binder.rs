//! The story pipeline over HTTP, for the editor's binder: the book's status, stages written
//! by hand or generated (locks kept), locks, chapters marked done (and summarized), renaming
//! and moving documents. The rules are [`crate::book`]'s; model work waits in the queue.

use crate::body::Body;
use crate::book::{self, BookError};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use inkling_craft::pipeline::{self, Stage};
use inkling_store::{Document, Locks, Store};
use serde::Deserialize;
use serde_json::{Value, json};

pub fn routes() -> axum::Router<AppState> {
    use axum::routing::{get, post, put};
    axum::Router::new()
        .route("/api/projects/{project}/book", get(status))
        .route("/api/projects/{project}/book/{stage}", get(read_stage).put(write_stage))
        .route("/api/projects/{project}/book/{stage}/locks", put(set_locks))
        .route("/api/projects/{project}/book/{stage}/generate", post(generate))
        .route("/api/projects/{project}/chapters/{n}/done", post(done))
        .route("/api/projects/{project}/chapters/{n}/draft", post(draft))
        .route("/api/projects/{project}/documents/{doc}/rename", post(rename))
        .route("/api/projects/{project}/documents/{doc}/move", post(move_document))
}

impl From<BookError> for ApiError {
    fn from(e: BookError) -> Self {
        match e {
            BookError::Store(e) => e.into(),
            BookError::Craft(e) => e.into(),
            BookError::Locked { .. } | BookError::HasText { .. } => ApiError::Conflict(e.to_string()),
            BookError::NoChapter { .. } => ApiError::NotFound(e.to_string()),
            BookError::NoAnswer { .. } => ApiError::Model(e.to_string()),
            BookError::NoSource { .. } | BookError::NoBeats { .. } | BookError::NeedsChapter { .. } | BookError::NotAChapters { .. } | BookError::NoBeatLength => ApiError::BadRequest(e.to_string()),
        }
    }
}

fn status_json(st: &Store, project: &str) -> ApiResult<Value> {
    let p = st.project(project)?;
    serde_json::to_value(book::status(st, &p)?).map_err(|e| ApiError::Internal(e.to_string()))
}

async fn status(State(s): State<AppState>, Path(project): Path<String>) -> ApiResult<Json<Value>> {
    s.store(move |st| Ok(Json(status_json(st, &project)?))).await
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct StageQuery {
    chapter: Option<u32>,
}

async fn read_stage(State(s): State<AppState>, Path((project, stage)): Path<(String, String)>, axum::extract::Query(q): axum::extract::Query<StageQuery>) -> ApiResult<Json<Value>> {
    let stage = Stage::parse(&stage)?;
    s.store(move |st| {
        let p = st.project(&project)?;
        let doc = book::named(st, &p, stage, q.chapter, false)?.document.ok_or_else(|| ApiError::NotFound(format!("the {} is not written yet", stage.name())))?;
        let text = st.head(&doc)?.text;
        Ok(Json(json!({"document": doc, "text": text, "parts": if stage.is_list() { pipeline::parts(&text) } else { Vec::new() }})))
    })
    .await
}

#[derive(Deserialize)]
struct StageText {
    text: String,
    #[serde(default)]
    chapter: Option<u32>,
}

async fn write_stage(State(s): State<AppState>, Path((project, stage)): Path<(String, String)>, Body(b): Body<StageText>) -> ApiResult<Json<Value>> {
    let stage = Stage::parse(&stage)?;
    s.store(move |st| {
        let p = st.project(&project)?;
        book::write_by_hand(st, &p, stage, b.chapter, &b.text)?;
        Ok(Json(status_json(st, &project)?))
    })
    .await
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct LockBody {
    chapter: Option<u32>,
    whole: bool,
    /// 1-based parts to lock; the ones left out are unlocked.
    parts: Vec<usize>,
}

async fn set_locks(State(s): State<AppState>, Path((project, stage)): Path<(String, String)>, Body(b): Body<LockBody>) -> ApiResult<Json<Value>> {
    let stage = Stage::parse(&stage)?;
    s.store(move |st| {
        let p = st.project(&project)?;
        let doc = book::named(st, &p, stage, b.chapter, false)?.document.ok_or_else(|| ApiError::NotFound(format!("the {} is not written yet, so there is nothing to lock", stage.name())))?;
        let n = pipeline::parts(&st.head(&doc)?.text).len();
        if let Some(bad) = b.parts.iter().find(|&&i| i == 0 || i > n || !stage.is_list()) {
            return Err(ApiError::BadRequest(format!("part {bad} cannot be locked in `{}` ({n} parts, numbered from 1; only the outline and beats have parts)", doc.title)));
        }
        st.set_locks(&doc, &Locks { whole: b.whole, parts: b.parts.iter().map(|i| i - 1).collect() })?;
        Ok(Json(status_json(st, &project)?))
    })
    .await
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct GenerateBody {
    chapter: Option<u32>,
    count: Option<usize>,
    seed: Option<u64>,
    temperature: Option<f32>,
}

/// Generates a stage from the one above it and files it (locked parts kept).
async fn generate(State(s): State<AppState>, Path((project, stage)): Path<(String, String)>, Body(b): Body<GenerateBody>) -> ApiResult<Json<Value>> {
    let stage = Stage::parse(&stage)?;
    let doc = generate_stage(&s, &project, stage, b).await?;
    s.store(move |st| {
        let text = st.head(&doc)?.text;
        Ok(Json(json!({"document": doc, "text": text, "status": status_json(st, &project)?})))
    })
    .await
}

async fn generate_stage(s: &AppState, project: &str, stage: Stage, b: GenerateBody) -> ApiResult<Document> {
    if stage == Stage::Chapter || stage == Stage::Braindump {
        return Err(inkling_craft::CraftError::NotGenerated { stage: stage.name() }.into());
    }
    let name = project.to_string();
    let bans = s.config.bans.clone();
    let (request, chapter, made) = s
        .store(move |st| {
            let p = st.project(&name)?;
            let chapter = book::named(st, &p, stage, b.chapter, true)?.chapter;
            let (mut request, made) = book::stage_request(st, &p, stage, chapter.as_ref().zip(b.chapter), b.count)?;
            request.seed = b.seed;
            request.temperature = b.temperature;
            request.bans = request.bans.over(&bans);
            Ok((request, chapter, made))
        })
        .await?;
    let adapter = crate::learning::model_for(s, project).await;
    let model = stage_model(s, adapter.is_some());
    let out = crate::writing::run_whole(s, adapter, request).await?;
    let name = project.to_string();
    s.store(move |st| {
        let p = st.project(&name)?;
        Ok(book::file_answer(st, &p, stage, chapter.as_ref(), &out, made, &model)?)
    })
    .await
}

#[derive(Deserialize)]
struct DoneBody {
    #[serde(default = "yes")]
    done: bool,
    /// Summarize the chapter unless its summary is up to date.
    #[serde(default = "yes")]
    summarize: bool,
    #[serde(default)]
    seed: Option<u64>,
}

fn yes() -> bool {
    true
}

async fn done(State(s): State<AppState>, Path((project, n)): Path<(String, u32)>, Body(b): Body<DoneBody>) -> ApiResult<Json<Value>> {
    let name = project.clone();
    let needs_summary = s
        .store(move |st| {
            let p = st.project(&name)?;
            let c = st.chapters(&p)?.get((n as usize).wrapping_sub(1)).cloned().ok_or_else(|| ApiError::NotFound(format!("project `{name}` has no chapter {n}")))?;
            st.set_done(&c, b.done)?;
            Ok(b.done && b.summarize && !book::summary_is_fresh(st, &c)? && !st.head(&c)?.text.trim().is_empty())
        })
        .await?;
    // Done stands when the model cannot summarize; the answer says why.
    let summary_error = match needs_summary {
        true => generate_stage(&s, &project, Stage::Summary, GenerateBody { chapter: Some(n), seed: b.seed, ..GenerateBody::default() }).await.err().map(|e| e.to_string()),
        false => None,
    };
    s.store(move |st| {
        let mut v = status_json(st, &project)?;
        v["summary_error"] = json!(summary_error);
        Ok(Json(v))
    })
    .await
}

#[derive(Deserialize)]
#[serde(default)]
struct DraftBody {
    /// About how long each beat's prose is, in words (characters for Chinese).
    words_per_beat: usize,
    /// Draft over the chapter's text (it stays in the history).
    replace: bool,
    seed: Option<u64>,
    temperature: Option<f32>,
    /// `chat` or `text` (default: chat when the model has a template), as the tools take it.
    frame: Option<inkling_craft::Frame>,
}

impl Default for DraftBody {
    fn default() -> Self {
        Self { words_per_beat: 250, replace: false, seed: None, temperature: None, frame: None }
    }
}

/// `POST .../chapters/{n}/draft`: drafts chapter N from its beats, one `draft` run a beat in
/// the queue (the project's feedback adapter if it has one), and files it as the model's text.
async fn draft(State(s): State<AppState>, Path((project, n)): Path<(String, u32)>, Body(b): Body<DraftBody>) -> ApiResult<Json<Value>> {
    let name = project.clone();
    let bans = s.config.bans.clone();
    let (plan, bans) = s
        .store(move |st| {
            let p = st.project(&name)?;
            let plan = book::plan_chapter_draft(st, &p, n, b.words_per_beat, b.replace)?;
            Ok((plan, p.bans.over(&bans)))
        })
        .await?;
    let base = inkling_craft::ToolRequest { context: plan.context.clone(), seed: b.seed, temperature: b.temperature, frame: b.frame, bans, ..inkling_craft::ToolRequest::default() };
    let adapter = crate::learning::model_for(&s, &project).await;
    let model = stage_model(&s, adapter.is_some());
    let mut drafting = pipeline::ChapterDrafting::start(&plan.brief, &base)?;
    while let Some(request) = drafting.next_request() {
        let out = crate::writing::run_whole(&s, adapter.clone(), request).await?;
        drafting.absorb(out);
    }
    let draft = drafting.finish();
    let beats: Vec<usize> = draft.beats.iter().map(|b| b.words).collect();
    s.store(move |st| {
        let p = st.project(&project)?;
        let doc = book::file_chapter_draft(st, &p, &plan, &draft, &model, b.seed)?;
        let text = st.head(&doc)?.text;
        Ok(Json(json!({"document": doc, "text": text, "beats": beats, "status": status_json(st, &project)?})))
    })
    .await
}

/// The model a stage or chapter draft is filed under (as the CLI files them: the model's own
/// name), `+feedback` when the project's adapter wrote it.
fn stage_model(s: &AppState, adapted: bool) -> String {
    let name = &s.backend.info().name;
    if adapted { crate::learning::adapted_model_id(name) } else { name.clone() }
}

fn project_document(st: &Store, project: &str, id: i64) -> ApiResult<(inkling_store::Project, Document)> {
    let p = st.project(project)?;
    match st.document_by_id(id) {
        Ok(d) if d.project_id == p.id => Ok((p, d)),
        _ => Err(ApiError::NotFound(format!("project `{project}` has no document {id}"))),
    }
}

#[derive(Deserialize)]
struct RenameBody {
    title: String,
}

async fn rename(State(s): State<AppState>, Path((project, id)): Path<(String, i64)>, Body(b): Body<RenameBody>) -> ApiResult<Json<Document>> {
    s.store(move |st| {
        let (_, d) = project_document(st, &project, id)?;
        Ok(Json(st.rename_document(&d, &b.title)?))
    })
    .await
}

#[derive(Deserialize)]
struct MoveBody {
    /// The 1-based place in the manuscript.
    to: usize,
}

async fn move_document(State(s): State<AppState>, Path((project, id)): Path<(String, i64)>, Body(b): Body<MoveBody>) -> ApiResult<Json<Vec<Document>>> {
    s.store(move |st| {
        let (p, d) = project_document(st, &project, id)?;
        if b.to == 0 {
            return Err(ApiError::BadRequest("places count from 1".into()));
        }
        st.move_document(&d, b.to - 1)?;
        Ok(Json(st.documents(&p)?))
    })
    .await
}
