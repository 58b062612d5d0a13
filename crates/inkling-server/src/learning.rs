//! Learning from the writer's choices while the editor runs: how many preference pairs a
//! project's history holds, a feedback adapter trained on them in the background with its
//! progress, and the project's generations made through that adapter once it is ready.
//!
//! The server does not train. The binary hands it a [`FeedbackTrainer`] (DPO over the served
//! model's file, the same run as `inkling finetune --from-feedback`), so this crate stays
//! free of the training stack; a server without one (a remote backend) says so.
//!
//! Invariants:
//! - One training per project at a time; a second start is refused (409).
//! - A project's generations use its adapter only once the file is written and loaded; until
//!   then, and whenever it fails to load, they use the served model, and the reason is shown.
//! - Forgetting an adapter deletes the adapter, never the choices: the pairs are read from
//!   the generation tree (counted again whenever the database changes), so it can be
//!   trained again.
//! - A project's generations use the adapter file as it is now: one trained again or
//!   deleted by the CLI while the server runs is loaded again, or no longer used.

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use inkling_engine::Backend;
use inkling_store::preferences::{FeedbackPair, PairKind};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// A training's shape before it starts.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TrainingPlan {
    /// Fewer pairs than this are refused.
    pub needed: usize,
    pub steps: usize,
    /// Pairs kept back to measure with.
    pub held_out: usize,
    /// About how long it takes on this machine, scoring the pairs included.
    pub seconds: f64,
}

/// One step of a training.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TrainingStep {
    pub step: usize,
    pub steps: usize,
    pub loss: f32,
    pub seconds: f64,
}

/// What a finished training measured: on the held-out pairs, how many times the model gives
/// the writer's choice the higher likelihood per token, before and after.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TrainingReport {
    pub pairs: usize,
    pub held_out: usize,
    pub preferred_before: usize,
    pub preferred_after: usize,
    pub steps: usize,
    pub seconds: f64,
    /// The model it was trained on (`general.name` of its file).
    pub base: String,
}

impl TrainingReport {
    /// The report of the adapter at `adapter` is kept beside it.
    pub fn path_for(adapter: &Path) -> PathBuf {
        adapter.with_extension("json")
    }

    pub fn save(&self, adapter: &Path) -> std::io::Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(Self::path_for(adapter), text)
    }

    /// The report beside `adapter`, if there is a readable one.
    pub fn load(adapter: &Path) -> Option<Self> {
        serde_json::from_str(&std::fs::read_to_string(Self::path_for(adapter)).ok()?).ok()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LearningError {
    #[error("{have} of your choices can be learnt from, and at least {need} are needed: accept one of several candidates, or edit a suggestion you accepted, a few more times")]
    TooFewPairs { have: usize, need: usize },
    #[error("{0}")]
    Failed(String),
}

/// Trains and loads feedback adapters for the served model.
pub trait FeedbackTrainer: Send + Sync {
    /// Where `project`'s feedback adapter is kept (`inkling finetune --from-feedback` writes
    /// the same file, so an adapter trained from the CLI is used here too).
    fn adapter_path(&self, project: &str) -> PathBuf;
    /// Steps, held-out pairs and about how long, for pairs of these sizes.
    fn plan(&self, pairs: &[PairSize]) -> TrainingPlan;
    /// Trains on `pairs` and writes the adapter to `out`. `on_step` returning false stops
    /// early. Blocking: it runs for minutes.
    fn train(&self, pairs: &[FeedbackPair], out: &Path, on_step: &mut dyn FnMut(&TrainingStep) -> bool) -> Result<TrainingReport, LearningError>;
    /// The served model with the adapter at `adapter` merged in.
    fn load(&self, adapter: &Path) -> Result<Arc<dyn Backend>, LearningError>;
}

/// Where a project's training stands.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Training {
    /// Tokenizing the pairs and scoring them under the base model.
    Preparing {
        pairs: usize,
    },
    Running {
        step: usize,
        steps: usize,
        loss: f32,
        seconds_left: f64,
    },
    Done {
        report: TrainingReport,
    },
    Failed {
        error: String,
    },
    /// Stopped by the writer; the partial adapter was deleted.
    Stopped,
}

/// A project's adapter, once looked for.
#[derive(Clone)]
enum Adapted {
    Loaded(Arc<dyn Backend>),
    /// The file is there but does not load (another base model, damaged): why.
    Unusable(String),
}

/// Which version of an adapter file was loaded: its modification time and size. `inkling
/// finetune --from-feedback` may train a project's adapter again while the editor runs; a
/// changed stamp loads the new file, a missing file uses the served model again.
type FileStamp = (std::time::SystemTime, u64);

fn file_stamp(path: &Path) -> Option<FileStamp> {
    let m = std::fs::metadata(path).ok().filter(|m| m.is_file())?;
    Some((m.modified().ok()?, m.len()))
}

/// A pair's length in tokens, estimated from its text (a plan is shown before any model has
/// read the pairs): about four characters a token, and one for each Chinese character.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PairSize {
    pub prompt: usize,
    pub chosen: usize,
    pub rejected: usize,
}

impl PairSize {
    pub fn of(p: &FeedbackPair) -> Self {
        PairSize { prompt: rough_tokens(&p.prompt), chosen: rough_tokens(&p.chosen), rejected: rough_tokens(&p.rejected) }
    }
}

fn rough_tokens(text: &str) -> usize {
    let ideographs = text.chars().filter(|&c| inkling_voice::text::is_cjk(c)).count();
    ideographs + (text.chars().count() - ideographs).div_ceil(4)
}

/// A project's pair count at a database change stamp: the editor polls `GET` while a
/// training runs, and counting reads the whole generation tree and every document's head.
#[derive(Clone)]
struct Counted {
    stamp: (i64, u64),
    sizes: Vec<PairSize>,
    edits: usize,
}

/// Trainings and loaded adapters, by project name.
pub struct Learning {
    trainer: Option<Arc<dyn FeedbackTrainer>>,
    trainings: Mutex<HashMap<String, (Training, Arc<AtomicBool>)>>,
    adapted: Mutex<HashMap<String, (FileStamp, Adapted)>>,
    counted: Mutex<HashMap<String, Counted>>,
}

impl Learning {
    pub fn new(trainer: Option<Arc<dyn FeedbackTrainer>>) -> Self {
        Self { trainer, trainings: Mutex::new(HashMap::new()), adapted: Mutex::new(HashMap::new()), counted: Mutex::new(HashMap::new()) }
    }

    fn training(&self, project: &str) -> Option<Training> {
        self.trainings.lock().ok()?.get(project).map(|(t, _)| t.clone())
    }

    fn set(&self, project: &str, t: Training) {
        if let Ok(mut m) = self.trainings.lock()
            && let Some(slot) = m.get_mut(project)
        {
            slot.0 = t;
        }
    }

    /// The adapter loaded for `project`, if it was loaded from the file as it is now.
    fn adapted(&self, project: &str, now: Option<FileStamp>) -> Option<Adapted> {
        let m = self.adapted.lock().ok()?;
        let (stamp, a) = m.get(project)?;
        (Some(*stamp) == now).then(|| a.clone())
    }

    fn keep(&self, project: &str, path: &Path, a: Adapted) {
        let Some(stamp) = file_stamp(path) else { return };
        if let Ok(mut m) = self.adapted.lock() {
            m.insert(project.to_string(), (stamp, a));
        }
    }

    fn forget(&self, project: &str) {
        if let Ok(mut m) = self.adapted.lock() {
            m.remove(project);
        }
    }
}

/// The model a project's generations go through: its feedback adapter when there is one
/// that loads (loaded on first use and kept), else `None`, the served model.
pub async fn model_for(s: &AppState, project: &str) -> Option<Arc<dyn Backend>> {
    let learning = s.learning.clone();
    let trainer = learning.trainer.clone()?;
    let path = trainer.adapter_path(project);
    let Some(now) = file_stamp(&path) else {
        learning.forget(project);
        return None;
    };
    match learning.adapted(project, Some(now)) {
        Some(Adapted::Loaded(m)) => return Some(m),
        Some(Adapted::Unusable(_)) => return None,
        None => {}
    }
    let name = project.to_string();
    let (loaded, path) = tokio::task::spawn_blocking(move || (trainer.load(&path), path)).await.ok()?;
    match loaded {
        Ok(m) => {
            learning.keep(&name, &path, Adapted::Loaded(m.clone()));
            Some(m)
        }
        Err(e) => {
            tracing::warn!("the feedback adapter of project `{name}` is not used: {e}");
            learning.keep(&name, &path, Adapted::Unusable(e.to_string()));
            None
        }
    }
}

/// The name generations made through a project's adapter are filed under.
pub fn adapted_model_id(base: &str) -> String {
    format!("{base}+feedback")
}

pub fn routes() -> axum::Router<AppState> {
    use axum::routing::get;
    axum::Router::new().route("/api/projects/{project}/learning", get(status).post(start).delete(stop))
}

async fn pairs_of(s: &AppState, project: String) -> ApiResult<(String, Vec<FeedbackPair>)> {
    s.store(move |st| {
        let p = st.project(&project)?;
        Ok((p.name.clone(), st.feedback_pairs(&p)?))
    })
    .await
}

/// The project's name and how many pairs (and edits among them) it has, counted again only
/// when the database has changed since the last count.
async fn count_pairs(s: &AppState, project: String) -> ApiResult<(String, Counted)> {
    let learning = s.learning.clone();
    s.store(move |st| {
        let p = st.project(&project)?;
        let stamp = st.change_stamp()?;
        let known = learning.counted.lock().ok().and_then(|m| m.get(&p.name).cloned()).filter(|c| c.stamp == stamp);
        if let Some(c) = known {
            return Ok((p.name, c));
        }
        let pairs = st.feedback_pairs(&p)?;
        let c = Counted { stamp, sizes: pairs.iter().map(PairSize::of).collect(), edits: pairs.iter().filter(|x| x.kind == PairKind::EditedAfterAccept).count() };
        if let Ok(mut m) = learning.counted.lock() {
            m.insert(p.name.clone(), c.clone());
        }
        Ok((p.name, c))
    })
    .await
}

fn trainer(s: &AppState) -> ApiResult<Arc<dyn FeedbackTrainer>> {
    s.learning
        .trainer
        .clone()
        .ok_or_else(|| ApiError::Conflict("this server cannot train: it serves a remote model. Train with `inkling finetune --from-feedback` against a local model instead".into()))
}

/// `GET /api/projects/{p}/learning`: the pairs there are, what training them would take,
/// the training under way or last finished, and the adapter in use.
async fn status(State(s): State<AppState>, UrlPath(project): UrlPath<String>) -> ApiResult<Json<Value>> {
    let (name, Counted { sizes, edits, .. }) = count_pairs(&s, project).await?;
    let pairs = sizes.len();
    let Some(trainer) = s.learning.trainer.clone() else {
        return Ok(Json(json!({"pairs": pairs, "edits": edits, "available": false, "why_not": "this server serves a remote model and cannot train"})));
    };
    let path = trainer.adapter_path(&name);
    // A training that failed or was stopped says so; the adapter from before it still stands.
    let stamp = file_stamp(&path);
    let adapter = match (stamp, s.learning.adapted(&name, stamp)) {
        (None, _) => Value::Null,
        (Some(_), Some(Adapted::Unusable(why))) => json!({"in_use": false, "why_not": why, "report": TrainingReport::load(&path)}),
        (Some(_), _) => json!({"in_use": true, "report": TrainingReport::load(&path)}),
    };
    Ok(Json(json!({
        "pairs": pairs,
        "edits": edits,
        "available": true,
        "plan": trainer.plan(&sizes),
        "training": s.learning.training(&name),
        "adapter": adapter,
    })))
}

/// `POST /api/projects/{p}/learning`: starts training in the background (202); poll `GET`.
async fn start(State(s): State<AppState>, UrlPath(project): UrlPath<String>) -> ApiResult<(StatusCode, Json<Value>)> {
    let trainer = trainer(&s)?;
    let (name, pairs) = pairs_of(&s, project).await?;
    let plan = trainer.plan(&pairs.iter().map(PairSize::of).collect::<Vec<_>>());
    if pairs.len() < plan.needed {
        return Err(ApiError::Conflict(LearningError::TooFewPairs { have: pairs.len(), need: plan.needed }.to_string()));
    }
    let stop = Arc::new(AtomicBool::new(false));
    {
        let mut m = s.learning.trainings.lock().map_err(|_| ApiError::Internal("the training list is poisoned".into()))?;
        if let Some((Training::Preparing { .. } | Training::Running { .. }, _)) = m.get(&name) {
            return Err(ApiError::Conflict(format!("project `{name}` is already learning from its choices; GET this address for its progress")));
        }
        m.insert(name.clone(), (Training::Preparing { pairs: pairs.len() }, stop.clone()));
    }
    let learning = s.learning.clone();
    let thread_name = name.clone();
    let spawned = std::thread::Builder::new().name("inkling-learning".into()).spawn(move || train_in_background(&learning, &*trainer, &thread_name, &pairs, &stop));
    if let Err(e) = spawned {
        s.learning.set(&name, Training::Failed { error: format!("the training thread could not start: {e}") });
        return Err(ApiError::Internal(format!("cannot start a training thread: {e}")));
    }
    Ok((StatusCode::ACCEPTED, Json(json!({"training": s.learning.training(&name), "plan": plan}))))
}

fn train_in_background(learning: &Learning, trainer: &dyn FeedbackTrainer, project: &str, pairs: &[FeedbackPair], stop: &AtomicBool) {
    let out = trainer.adapter_path(project);
    // Trained beside the adapter in use, which stays in use until the new one is complete.
    let fresh = out.with_extension("training.gguf");
    let t0 = std::time::Instant::now();
    let mut on_step = |st: &TrainingStep| {
        let per_step = t0.elapsed().as_secs_f64() / st.step.max(1) as f64;
        learning.set(project, Training::Running { step: st.step, steps: st.steps, loss: st.loss, seconds_left: per_step * st.steps.saturating_sub(st.step) as f64 });
        !stop.load(Ordering::SeqCst)
    };
    let result = trainer.train(pairs, &fresh, &mut on_step);
    if stop.load(Ordering::SeqCst) {
        let _ = std::fs::remove_file(&fresh);
        learning.set(project, Training::Stopped);
        return;
    }
    let outcome = result.and_then(|report| {
        let installed = report.save(&fresh).and_then(|()| std::fs::rename(TrainingReport::path_for(&fresh), TrainingReport::path_for(&out))).and_then(|()| std::fs::rename(&fresh, &out));
        installed.map_err(|e| LearningError::Failed(format!("the adapter could not be saved beside {}: {e}", out.display())))?;
        Ok(report)
    });
    match outcome.and_then(|report| Ok((trainer.load(&out)?, report))) {
        Ok((model, report)) => {
            learning.keep(project, &out, Adapted::Loaded(model));
            learning.set(project, Training::Done { report });
        }
        Err(e) => {
            let _ = std::fs::remove_file(&fresh);
            learning.set(project, Training::Failed { error: e.to_string() });
        }
    }
}

/// `DELETE /api/projects/{p}/learning`: stops a training under way and forgets the adapter
/// (the choices stay; it can be trained again).
async fn stop(State(s): State<AppState>, UrlPath(project): UrlPath<String>) -> ApiResult<StatusCode> {
    let trainer = trainer(&s)?;
    // Only the name: forgetting needs no pairs.
    let name = s.store(move |st| Ok(st.project(&project)?.name)).await?;
    if let Ok(m) = s.learning.trainings.lock()
        && let Some((_, stop)) = m.get(&name)
    {
        stop.store(true, Ordering::SeqCst);
    }
    s.learning.forget(&name);
    let path = trainer.adapter_path(&name);
    for f in [TrainingReport::path_for(&path), path] {
        match std::fs::remove_file(&f) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(ApiError::Internal(format!("cannot delete {}: {e}", f.display()))),
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pairs_size_counts_chinese_characters_one_a_token_and_english_four_characters_a_token() {
        let pair = FeedbackPair { prompt: "今天天气很好".into(), chosen: "The rain came.".into(), rejected: String::new(), kind: PairKind::AcceptedOverSibling, generation: 1 };
        assert_eq!(PairSize::of(&pair), PairSize { prompt: 6, chosen: 4, rejected: 0 });
    }
}
