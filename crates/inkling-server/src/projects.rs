//! Projects over HTTP: documents and their revisions (save, history, undo, redo, restore),
//! accepting generated text into a document, the generation tree, the story bible, export
//! and the authorship report. Each handler is one store call run off the async runtime.

use crate::body::Body;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use inkling_store::generations::Status;
use inkling_store::{Document, Origin, Project, Revision, Store};
use serde::Deserialize;
use serde_json::{Value, json};

pub fn routes() -> axum::Router<AppState> {
    use axum::routing::{delete, get, post, put};
    axum::Router::new()
        .route("/api/projects", get(list_projects).post(create_project))
        .route("/api/projects/{project}", get(show_project))
        .route("/api/projects/{project}/context", put(set_context))
        .route("/api/projects/{project}/bans", get(bans).put(set_bans))
        .route("/api/projects/{project}/voice", get(voice).post(build_voice).delete(clear_voice))
        .route("/api/projects/{project}/documents", post(add_document))
        .route("/api/projects/{project}/documents/{doc}", get(show_document))
        .route("/api/projects/{project}/documents/{doc}/revisions", post(save).get(history))
        .route("/api/projects/{project}/documents/{doc}/revisions/{rev}", get(revision))
        .route("/api/projects/{project}/documents/{doc}/undo", post(undo))
        .route("/api/projects/{project}/documents/{doc}/redo", post(redo))
        .route("/api/projects/{project}/documents/{doc}/restore", post(restore))
        .route("/api/projects/{project}/documents/{doc}/accept", post(accept))
        .route("/api/projects/{project}/generations", get(generations))
        .route("/api/projects/{project}/generations/{id}", get(generation))
        .route("/api/projects/{project}/generations/{id}/status", post(set_status))
        .route("/api/projects/{project}/bible", get(bible).post(put_bible))
        .route("/api/projects/{project}/bible/{id}", delete(delete_bible))
        .route("/api/projects/{project}/lore/export", get(export_lore))
        .route("/api/projects/{project}/lore/import", post(import_lore))
        .route("/api/projects/{project}/export", get(export))
        .route("/api/projects/{project}/report", get(report))
}

/// A document of `project` by id (ids of other projects' documents are not found here).
fn document(st: &Store, project: &Project, id: i64) -> ApiResult<Document> {
    match st.document_by_id(id) {
        Ok(d) if d.project_id == project.id => Ok(d),
        _ => Err(ApiError::NotFound(format!("project `{}` has no document {id}", project.name))),
    }
}

/// What the editor needs of a revision: its text and who wrote how much of it.
fn revision_json(r: &Revision) -> Value {
    json!({"id": r.id, "document_id": r.document_id, "parent_id": r.parent_id, "created_at": r.created_at, "origin": r.origin, "text": r.text, "share": r.ledger.share()})
}

async fn list_projects(State(s): State<AppState>) -> ApiResult<Json<Vec<Project>>> {
    s.store(|st| Ok(Json(st.projects()?))).await
}

#[derive(Deserialize)]
struct NewProject {
    name: String,
}

async fn create_project(State(s): State<AppState>, Body(b): Body<NewProject>) -> ApiResult<Response> {
    let name = b.name.trim().to_string();
    if name.is_empty() {
        return Err(ApiError::BadRequest("a project needs a name".into()));
    }
    let p = s.store(move |st| Ok(st.create_project(&name)?)).await?;
    Ok((StatusCode::CREATED, Json(p)).into_response())
}

async fn show_project(State(s): State<AppState>, Path(project): Path<String>) -> ApiResult<Json<Value>> {
    s.store(move |st| {
        let p = st.project(&project)?;
        let report = st.report(&p)?;
        let docs = st.documents(&p)?;
        let documents: Vec<Value> =
            docs.iter().zip(&report.documents).map(|(d, r)| json!({"id": d.id, "title": d.title, "kind": d.kind, "head_revision": d.head_revision, "share": r.share})).collect();
        Ok(Json(json!({"project": p, "documents": documents, "total": report.total})))
    })
    .await
}

#[derive(Deserialize)]
struct ContextBody {
    memory: Option<String>,
    authors_note: Option<String>,
    depth: Option<i64>,
}

async fn set_context(State(s): State<AppState>, Path(project): Path<String>, Body(b): Body<ContextBody>) -> ApiResult<Json<Project>> {
    s.store(move |st| {
        let p = st.project(&project)?;
        if let Some(m) = &b.memory {
            st.set_memory(&p, m)?;
        }
        if b.authors_note.is_some() || b.depth.is_some() {
            let depth = b.depth.unwrap_or(p.authors_note_depth);
            if !(0..=100).contains(&depth) {
                return Err(ApiError::BadRequest("depth is a number of paragraphs from 0 to 100".into()));
            }
            st.set_authors_note(&p, b.authors_note.as_deref().unwrap_or(&p.authors_note), depth)?;
        }
        Ok(Json(st.project(&project)?))
    })
    .await
}

/// The project's banned phrases, with the built-in list and the config file's beneath them.
async fn bans(State(s): State<AppState>, Path(project): Path<String>) -> ApiResult<Json<Value>> {
    let config = s.config.bans.clone();
    s.store(move |st| {
        let p = st.project(&project)?;
        let (phrases, regex) = inkling_craft::bans::builtin();
        Ok(Json(json!({"project": p.bans, "config": config, "builtin": {"phrases": phrases, "regex": regex}})))
    })
    .await
}

/// A voice profile as the editor shows it: its description and measures (the character
/// model stays on the server).
fn voice_view(r: &inkling_store::VoiceRecord) -> Value {
    let p = &r.profile;
    json!({"built_at": r.built_at, "script": p.script, "units": p.units, "description": p.describe(), "habits": p.habits})
}

async fn voice(State(s): State<AppState>, Path(project): Path<String>) -> ApiResult<Json<Value>> {
    s.store(move |st| {
        let p = st.project(&project)?;
        match st.voice(&p)? {
            Some(r) => Ok(Json(voice_view(&r))),
            None => Err(ApiError::NotFound(format!("project `{}` has no voice profile yet; POST to this address builds one from the writer's own text", p.name))),
        }
    })
    .await
}

async fn build_voice(State(s): State<AppState>, Path(project): Path<String>) -> ApiResult<Json<Value>> {
    s.store(move |st| {
        let p = st.project(&project)?;
        Ok(Json(voice_view(&st.build_voice(&p)?)))
    })
    .await
}

async fn clear_voice(State(s): State<AppState>, Path(project): Path<String>) -> ApiResult<StatusCode> {
    s.store(move |st| {
        let p = st.project(&project)?;
        st.clear_voice(&p)?;
        Ok(StatusCode::NO_CONTENT)
    })
    .await
}

async fn set_bans(State(s): State<AppState>, Path(project): Path<String>, Body(b): Body<inkling_api::BanList>) -> ApiResult<Json<inkling_api::BanList>> {
    inkling_engine::bans::Bans::compile(&b.phrases, &b.regex).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    s.store(move |st| {
        let p = st.project(&project)?;
        st.set_bans(&p, &b)?;
        Ok(Json(st.project(&project)?.bans))
    })
    .await
}

#[derive(Deserialize)]
struct NewDocument {
    title: String,
    #[serde(default)]
    text: String,
}

async fn add_document(State(s): State<AppState>, Path(project): Path<String>, Body(b): Body<NewDocument>) -> ApiResult<Response> {
    let title = if b.title.trim().is_empty() { "Untitled".to_string() } else { b.title.trim().to_string() };
    let v = s
        .store(move |st| {
            let p = st.project(&project)?;
            let d = st.add_document(&p, &title, "chapter", &b.text, Origin::Typed)?;
            let head = st.head(&d)?;
            Ok(json!({"document": d, "revision": revision_json(&head)}))
        })
        .await?;
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

async fn show_document(State(s): State<AppState>, Path((project, doc)): Path<(String, i64)>) -> ApiResult<Json<Value>> {
    s.store(move |st| {
        let p = st.project(&project)?;
        let d = document(st, &p, doc)?;
        let head = st.head(&d)?;
        Ok(Json(json!({"document": d, "revision": revision_json(&head)})))
    })
    .await
}

#[derive(Deserialize)]
struct SaveBody {
    text: String,
    /// typed (default) or pasted.
    #[serde(default)]
    origin: Option<String>,
}

async fn save(State(s): State<AppState>, Path((project, doc)): Path<(String, i64)>, Body(b): Body<SaveBody>) -> ApiResult<Json<Value>> {
    let origin = match b.origin.as_deref().unwrap_or("typed") {
        "typed" => Origin::Typed,
        "pasted" => Origin::Pasted,
        other => return Err(ApiError::BadRequest(format!("origin `{other}` is not one a save can have; use typed or pasted (accepted text goes through /accept)"))),
    };
    s.store(move |st| {
        let p = st.project(&project)?;
        let d = document(st, &p, doc)?;
        let r = st.save(&d, &b.text, origin)?;
        Ok(Json(json!({"id": r.id, "chars": r.text.chars().count(), "share": r.ledger.share()})))
    })
    .await
}

async fn history(State(s): State<AppState>, Path((project, doc)): Path<(String, i64)>) -> ApiResult<Json<Value>> {
    s.store(move |st| {
        let p = st.project(&project)?;
        let d = document(st, &p, doc)?;
        Ok(Json(json!({"revisions": st.history(&d)?})))
    })
    .await
}

async fn revision(State(s): State<AppState>, Path((project, doc, rev)): Path<(String, i64, i64)>) -> ApiResult<Json<Value>> {
    s.store(move |st| {
        let p = st.project(&project)?;
        let d = document(st, &p, doc)?;
        let r = st.revision(rev)?;
        if r.document_id != d.id {
            return Err(ApiError::NotFound(format!("document {doc} has no revision {rev}")));
        }
        Ok(Json(revision_json(&r)))
    })
    .await
}

/// Undo and redo: `step` moves the document's head and returns the revision it lands on.
async fn step(s: AppState, project: String, doc: i64, redo: bool) -> ApiResult<Json<Value>> {
    s.store(move |st| {
        let p = st.project(&project)?;
        let d = document(st, &p, doc)?;
        let r = if redo { st.redo(&d)? } else { st.undo(&d)? };
        Ok(Json(revision_json(&r)))
    })
    .await
}

async fn undo(State(s): State<AppState>, Path((project, doc)): Path<(String, i64)>) -> ApiResult<Json<Value>> {
    step(s, project, doc, false).await
}

async fn redo(State(s): State<AppState>, Path((project, doc)): Path<(String, i64)>) -> ApiResult<Json<Value>> {
    step(s, project, doc, true).await
}

#[derive(Deserialize)]
struct RestoreBody {
    revision: i64,
}

async fn restore(State(s): State<AppState>, Path((project, doc)): Path<(String, i64)>, Body(b): Body<RestoreBody>) -> ApiResult<Json<Value>> {
    s.store(move |st| {
        let p = st.project(&project)?;
        let d = document(st, &p, doc)?;
        Ok(Json(revision_json(&st.restore(&d, b.revision)?)))
    })
    .await
}

#[derive(Deserialize)]
struct AcceptBody {
    generation: i64,
    /// The whole document with the generated text in place.
    text: String,
}

async fn accept(State(s): State<AppState>, Path((project, doc)): Path<(String, i64)>, Body(b): Body<AcceptBody>) -> ApiResult<Json<Value>> {
    s.store(move |st| {
        let p = st.project(&project)?;
        let d = document(st, &p, doc)?;
        let g = st.generation(b.generation)?;
        if g.project_id != p.id {
            return Err(ApiError::NotFound(format!("project `{}` has no generation {}", p.name, b.generation)));
        }
        Ok(Json(revision_json(&st.accept(&d, b.generation, &b.text)?)))
    })
    .await
}

#[derive(Deserialize)]
struct TreeQuery {
    /// Alternatives under this generation (none: the first generations).
    parent: Option<i64>,
    /// Only those made for this document.
    document: Option<i64>,
    /// Every node at every depth (each names its `parent_id`), not one level.
    #[serde(default)]
    tree: bool,
}

/// One level of the generation tree, or all of it; tokens are left out of listings (a
/// node's own endpoint has them) and `has_tokens` says whether there are any.
async fn generations(State(s): State<AppState>, Path(project): Path<String>, Query(q): Query<TreeQuery>) -> ApiResult<Json<Value>> {
    s.store(move |st| {
        let p = st.project(&project)?;
        let nodes =
            if q.tree { st.generation_tree(&p, q.document)? } else { st.children(&p, q.parent)?.into_iter().filter(|n| q.document.is_none() || n.generation.document_id == q.document).collect() };
        let nodes: Vec<Value> = nodes
            .into_iter()
            .map(|mut n| {
                let has_tokens = n.generation.tokens.take().is_some();
                let mut v = serde_json::to_value(&n).unwrap_or_default();
                v["has_tokens"] = json!(has_tokens);
                v
            })
            .collect();
        Ok(Json(json!({"generations": nodes})))
    })
    .await
}

/// One generation, with its tokens and their alternatives when it has them.
async fn generation(State(s): State<AppState>, Path((project, id)): Path<(String, i64)>) -> ApiResult<Json<Value>> {
    s.store(move |st| {
        let p = st.project(&project)?;
        let g = st.generation(id)?;
        if g.project_id != p.id {
            return Err(ApiError::NotFound(format!("project `{}` has no generation {id}", p.name)));
        }
        Ok(Json(serde_json::to_value(&g).unwrap_or_default()))
    })
    .await
}

#[derive(Deserialize)]
struct StatusBody {
    status: Status,
    #[serde(default)]
    detail: String,
}

async fn set_status(State(s): State<AppState>, Path((project, id)): Path<(String, i64)>, Body(b): Body<StatusBody>) -> ApiResult<StatusCode> {
    s.store(move |st| {
        let p = st.project(&project)?;
        if st.generation(id)?.project_id != p.id {
            return Err(ApiError::NotFound(format!("project `{}` has no generation {id}", p.name)));
        }
        st.set_status(id, b.status, &b.detail)?;
        Ok(StatusCode::NO_CONTENT)
    })
    .await
}

async fn bible(State(s): State<AppState>, Path(project): Path<String>) -> ApiResult<Json<Value>> {
    s.store(move |st| {
        let p = st.project(&project)?;
        Ok(Json(json!({"entries": st.bible(&p)?})))
    })
    .await
}

#[derive(Deserialize)]
struct BibleBody {
    kind: String,
    name: String,
    #[serde(default)]
    keys: Vec<String>,
    #[serde(default)]
    body: String,
    /// The lorebook rules (secondary keys, position, order, sticky, cooldown, probability,
    /// from_chapter, progressions, ...); absent: an existing entry keeps its own.
    #[serde(default)]
    rules: Option<serde_json::Map<String, Value>>,
}

async fn put_bible(State(s): State<AppState>, Path(project): Path<String>, Body(b): Body<BibleBody>) -> ApiResult<Json<Value>> {
    if b.name.trim().is_empty() || b.kind.trim().is_empty() {
        return Err(ApiError::BadRequest("a bible entry needs a kind (character, place, item, style) and a name".into()));
    }
    s.store(move |st| {
        let p = st.project(&project)?;
        // The name always triggers its own entry.
        let mut keys = b.keys.clone();
        if !keys.iter().any(|k| k == b.name.trim()) {
            keys.insert(0, b.name.trim().to_string());
        }
        let saved = match &b.rules {
            Some(rules) => {
                let entry =
                    inkling_craft::LoreEntry::from_parts(b.kind.trim(), b.name.trim(), &keys, &b.body, rules).map_err(|e| ApiError::BadRequest(format!("the entry's rules cannot be read: {e}")))?;
                entry.check().map_err(ApiError::BadRequest)?;
                st.put_lore_entry(&p, b.kind.trim(), b.name.trim(), &keys, &b.body, &entry.rules())?
            }
            None => st.put_bible_entry(&p, b.kind.trim(), b.name.trim(), &keys, &b.body)?,
        };
        Ok(Json(json!(saved)))
    })
    .await
}

/// The lorebook as SillyTavern world info.
async fn export_lore(State(s): State<AppState>, Path(project): Path<String>) -> ApiResult<Json<Value>> {
    s.store(move |st| {
        let p = st.project(&project)?;
        let entries: Vec<_> = st.bible(&p)?.iter().map(crate::writing::lore_entry).collect();
        Ok(Json(inkling_craft::lore::world_info::export(&entries)))
    })
    .await
}

/// World info (SillyTavern, KoboldAI, a character book, or inkling's list) into the lorebook.
async fn import_lore(State(s): State<AppState>, Path(project): Path<String>, Body(v): Body<Value>) -> ApiResult<Json<Value>> {
    let entries = inkling_craft::lore::world_info::import(&v.to_string()).map_err(|e| ApiError::BadRequest(format!("the lorebook cannot be imported: {e}")))?;
    s.store(move |st| {
        let p = st.project(&project)?;
        for e in &entries {
            st.put_lore_entry(&p, &e.kind, &e.name, &e.keys, &e.body, &e.rules())?;
        }
        Ok(Json(json!({"imported": entries.len()})))
    })
    .await
}

async fn delete_bible(State(s): State<AppState>, Path((project, id)): Path<(String, i64)>) -> ApiResult<StatusCode> {
    s.store(move |st| {
        let p = st.project(&project)?;
        if !st.bible(&p)?.iter().any(|e| e.id == id) {
            return Err(ApiError::NotFound(format!("project `{}` has no bible entry {id}", p.name)));
        }
        st.delete_bible_entry(id)?;
        Ok(StatusCode::NO_CONTENT)
    })
    .await
}

#[derive(Deserialize)]
struct ExportQuery {
    format: String,
    /// The download's file name (default: the project's name with the format's extension).
    name: Option<String>,
}

async fn export(State(s): State<AppState>, Path(project): Path<String>, Query(q): Query<ExportQuery>) -> ApiResult<Response> {
    use inkling_store::export::Format;
    let format = Format::parse(&q.format).ok_or_else(|| ApiError::BadRequest(format!("unknown export format `{}`; use md, txt, epub or docx", q.format)))?;
    let (ext, mime) = match format {
        Format::Markdown => ("md", "text/markdown; charset=utf-8"),
        Format::Text => ("txt", "text/plain; charset=utf-8"),
        Format::Epub => ("epub", "application/epub+zip"),
        Format::Docx => ("docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
    };
    let name = q.name.unwrap_or_else(|| format!("{project}.{ext}"));
    // A download name is one plain file name: no directories, no way out of the export folder.
    if name.contains(['/', '\\']) || name.starts_with('.') || name.chars().any(char::is_control) {
        return Err(ApiError::BadRequest(format!("`{name}` is not a plain file name; give a name without slashes or a leading dot")));
    }
    let (bytes, name) = s
        .store(move |st| {
            let p = st.project(&project)?;
            let dir = tempfile::tempdir().map_err(|e| ApiError::Internal(format!("cannot make a folder for the export: {e}")))?;
            let path = st.export(&p, format, dir.path(), &name)?;
            let bytes = std::fs::read(&path).map_err(|e| ApiError::Internal(format!("cannot read the export back: {e}")))?;
            Ok((bytes, name))
        })
        .await?;
    // RFC 6266: an ASCII fallback and the UTF-8 name percent-encoded (a Chinese title stays).
    let ascii: String = name.chars().map(|c| if c.is_ascii_graphic() && c != '"' && c != '%' || c == ' ' { c } else { '_' }).collect();
    let encoded: String = name.bytes().map(|b| if b.is_ascii_alphanumeric() || b"-._~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") }).collect();
    let disposition = format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}");
    Ok(([(header::CONTENT_TYPE, mime.to_string()), (header::CONTENT_DISPOSITION, disposition)], bytes).into_response())
}

async fn report(State(s): State<AppState>, Path(project): Path<String>) -> ApiResult<Json<Value>> {
    s.store(move |st| {
        let p = st.project(&project)?;
        Ok(Json(json!(st.report(&p)?)))
    })
    .await
}
