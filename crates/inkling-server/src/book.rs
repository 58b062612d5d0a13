//! The story pipeline over the store, shared by the CLI and the API: what each stage and
//! chapter holds and what has gone stale, the text a stage is generated from, a generated
//! stage filed with its locks kept, and the brief and context a chapter is drafted in.
//!
//! Stale means: a document was generated from a revision of the stage above, and the part of
//! that stage it was made from reads differently now (a chapter's beats look at their own
//! outline entry only). Nothing is regenerated here unless the writer asks.

use inkling_craft::pipeline::{self, ChapterBrief, Stage};
use inkling_craft::{ChapterSummary, StoryContext, ToolRequest};
use inkling_store::{Document, Locks, Origin, Project, Store, StoreError};
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum BookError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Craft(#[from] inkling_craft::CraftError),
    #[error("the {what} is locked, so regenerating it would change nothing; unlock it first (`inkling project unlock`)")]
    Locked { what: String },
    #[error("there is no {from} to make the {stage} from yet; write it (`inkling project stage {project} {from} --file F`) or generate it first")]
    NoSource { project: String, stage: &'static str, from: &'static str },
    #[error("the book has {count} chapter(s) and the outline {entries} entries, so there is no chapter {n}; generate the outline or add the chapter first")]
    NoChapter { n: u32, count: usize, entries: usize },
    #[error("chapter {n} has no beats yet; generate them (`inkling project generate {project} beats --chapter {n}`) or write them")]
    NoBeats { project: String, n: u32 },
    #[error("the model's {stage} came back empty; nothing was changed (try another seed)")]
    NoAnswer { stage: &'static str },
    #[error("the {stage} belongs to a chapter: say which one")]
    NeedsChapter { stage: &'static str },
    #[error("the {stage} is the book's, not a chapter's: name no chapter")]
    NotAChapters { stage: &'static str },
    #[error("`{title}` already has {words} words; drafting over them must be asked for (they stay in its history)")]
    HasText { title: String, words: usize },
    #[error("a beat must be at least 1 word long")]
    NoBeatLength,
}

pub type Result<T, E = BookError> = std::result::Result<T, E>;

/// One document of the pipeline, as `inkling project status` and the binder show it.
#[derive(Clone, Debug, Serialize)]
pub struct PartStatus {
    pub id: i64,
    pub title: String,
    pub words: usize,
    /// List stages: how many items, and the items (each lockable).
    pub items: usize,
    pub parts: Vec<String>,
    /// Whether a tool made it (else the writer wrote it).
    pub generated: bool,
    /// Why it is stale, when it is.
    pub stale: Option<String>,
    pub locks: Locks,
}

#[derive(Clone, Debug, Serialize)]
pub struct StageStatus {
    pub stage: &'static str,
    pub document: Option<PartStatus>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ChapterStatus {
    pub chapter: u32,
    pub id: i64,
    pub title: String,
    pub words: usize,
    pub done: bool,
    /// The chapter's own prose, when drafted from beats that have changed since.
    pub stale: Option<String>,
    pub locks: Locks,
    pub beats: Option<PartStatus>,
    pub summary: Option<PartStatus>,
}

#[derive(Clone, Debug, Serialize)]
pub struct BookStatus {
    pub project: String,
    pub stages: Vec<StageStatus>,
    /// Entries in the outline, whether or not their chapters exist yet.
    pub outline_entries: usize,
    pub chapters: Vec<ChapterStatus>,
}

impl BookStatus {
    /// Every stale part, in book order: what the writer may want to regenerate.
    pub fn stale(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = self.stages.iter().filter_map(|s| Some((s.stage.to_string(), s.document.as_ref()?.stale.clone()?))).collect();
        for c in &self.chapters {
            for (what, p) in [("beats", &c.beats), ("summary", &c.summary)] {
                if let Some(why) = p.as_ref().and_then(|p| p.stale.clone()) {
                    out.push((format!("{} {what}", c.title), why));
                }
            }
            if let Some(why) = &c.stale {
                out.push((c.title.clone(), why.clone()));
            }
        }
        out
    }
}

fn text_of(store: &Store, doc: &Document) -> Result<String> {
    Ok(store.head(doc)?.text)
}

/// Why `doc` is stale: the part of its source it was made from (`pick` finds it in a text)
/// reads differently in `source_now` than in the revision it was made from.
fn staleness(store: &Store, doc: &Document, source: &str, source_now: Option<&str>, pick: &dyn Fn(&str) -> Option<String>) -> Result<Option<String>> {
    let Some(made_from) = doc.made_from else { return Ok(None) };
    let then = match store.revision(made_from) {
        Ok(r) => pick(&r.text),
        Err(StoreError::NoRevision(_)) => None,
        Err(e) => return Err(e.into()),
    };
    let now = source_now.and_then(pick);
    Ok(match (then, now) {
        (Some(a), Some(b)) if a == b => None,
        (_, None) => Some(format!("its {source} is gone")),
        _ => Some(format!("the {source} changed after it was made")),
    })
}

fn whole(text: &str) -> Option<String> {
    Some(text.to_string())
}

/// Why a chapter's summary is stale (its chapter changed after it was made).
fn summary_staleness(store: &Store, summary: &Document, chapter_text: &str) -> Result<Option<String>> {
    staleness(store, summary, "chapter", Some(chapter_text), &whole)
}

/// Whether a chapter has a summary made from its text as it is now.
pub fn summary_is_fresh(store: &Store, chapter: &Document) -> Result<bool> {
    match store.chapter_part(chapter, "summary")? {
        Some(s) => Ok(summary_staleness(store, &s, &text_of(store, chapter)?)?.is_none()),
        None => Ok(false),
    }
}

fn part_status(doc: &Document, text: &str, list: bool, stale: Option<String>) -> PartStatus {
    let parts = if list { pipeline::parts(text) } else { Vec::new() };
    PartStatus { id: doc.id, title: doc.title.clone(), words: pipeline::words(text), items: parts.len(), parts, generated: doc.made_from.is_some(), stale, locks: doc.locks.clone() }
}

/// The stages, the chapters, and what is stale.
pub fn status(store: &Store, project: &Project) -> Result<BookStatus> {
    let mut stages = Vec::new();
    // The text of the stage above, once read; the outline's after the loop.
    let mut above: Option<String> = None;
    for stage in [Stage::Braindump, Stage::Synopsis, Stage::Outline] {
        let doc = store.stage(project, stage.name())?;
        let (document, text) = match &doc {
            Some(d) => {
                let text = text_of(store, d)?;
                let stale = staleness(store, d, stage.source().map_or("", |s| s.name()), above.as_deref(), &whole)?;
                (Some(part_status(d, &text, stage.is_list(), stale)), Some(text))
            }
            None => (None, None),
        };
        above = text;
        stages.push(StageStatus { stage: stage.name(), document });
    }
    let outline = above;
    let mut chapters = Vec::new();
    for (i, c) in store.chapters(project)?.iter().enumerate() {
        let n = i as u32 + 1;
        let text = text_of(store, c)?;
        let entry = move |t: &str| pipeline::outline_entry(t, n);
        let (beats, beats_text) = match store.chapter_part(c, "beats")? {
            Some(b) => {
                let beats_text = text_of(store, &b)?;
                let stale = staleness(store, &b, "outline entry", outline.as_deref(), &entry)?;
                (Some(part_status(&b, &beats_text, true, stale)), Some(beats_text))
            }
            None => (None, None),
        };
        let stale = staleness(store, c, "beats", beats_text.as_deref(), &whole)?;
        let summary = match store.chapter_part(c, "summary")? {
            Some(s) => Some(part_status(&s, &text_of(store, &s)?, false, summary_staleness(store, &s, &text)?)),
            None => None,
        };
        chapters.push(ChapterStatus { chapter: n, id: c.id, title: c.title.clone(), words: pipeline::words(&text), done: c.done, stale, locks: c.locks.clone(), beats, summary });
    }
    let outline_entries = outline.as_deref().map_or(0, |o| pipeline::parts(o).len());
    Ok(BookStatus { project: project.name.clone(), stages, outline_entries, chapters })
}

/// The summaries of the book's chapters, numbered by their place; the context assembly
/// keeps those before the chapter being written.
pub fn summaries(store: &Store, project: &Project) -> inkling_store::Result<Vec<ChapterSummary>> {
    Ok(store.chapter_summaries(project)?.into_iter().map(|(chapter, title, text)| ChapterSummary { chapter, title, text }).collect())
}

/// A pipeline document as the writer names it: a stage, or chapter `n`'s beats, summary or
/// prose. With `create`, chapter `n` is made from its outline entry when it is the next one.
pub struct Named {
    pub chapter: Option<Document>,
    pub document: Option<Document>,
}

pub fn named(store: &mut Store, project: &Project, stage: Stage, n: Option<u32>, create: bool) -> Result<Named> {
    let chapter = match (stage.per_chapter(), n) {
        (true, Some(n)) if create => Some(chapter(store, project, n)?),
        (true, Some(n)) => store.chapters(project)?.into_iter().nth((n as usize).wrapping_sub(1)),
        (true, None) => return Err(BookError::NeedsChapter { stage: stage.name() }),
        (false, Some(_)) => return Err(BookError::NotAChapters { stage: stage.name() }),
        (false, None) => None,
    };
    let document = match (stage, &chapter) {
        (_, None) if stage.per_chapter() => None,
        _ => target(store, project, stage, chapter.as_ref())?,
    };
    Ok(Named { chapter, document })
}

/// Writes a stage by hand as a new revision (a summary is of its chapter as it is now,
/// whoever wrote it, so it records that revision).
pub fn write_by_hand(store: &mut Store, project: &Project, stage: Stage, n: Option<u32>, text: &str) -> Result<Document> {
    let Named { chapter, .. } = named(store, project, stage, n, true)?;
    Ok(match (stage, &chapter) {
        (Stage::Chapter, Some(c)) => {
            store.save(c, text, Origin::Typed)?;
            store.document_by_id(c.id)?
        }
        (Stage::Summary, Some(c)) => {
            let of = store.head(c)?.id;
            store.put_pipeline(project, stage.name(), Some(c), text, Origin::Typed, Some(of))?
        }
        _ => store.put_pipeline(project, stage.name(), chapter.as_ref(), text, Origin::Typed, None)?,
    })
}

/// Chapter `n` (1-based), created empty (titled after its outline entry) when the outline
/// has an entry for it and the book does not have that many chapters yet.
pub fn chapter(store: &mut Store, project: &Project, n: u32) -> Result<Document> {
    let chapters = store.chapters(project)?;
    if let Some(c) = (n as usize).checked_sub(1).and_then(|i| chapters.get(i)) {
        return Ok(c.clone());
    }
    let outline = match store.stage(project, "outline")? {
        Some(o) => text_of(store, &o)?,
        None => String::new(),
    };
    let entries = pipeline::parts(&outline);
    if n == 0 || n as usize > entries.len() || n as usize > chapters.len() + 1 {
        return Err(BookError::NoChapter { n, count: chapters.len(), entries: entries.len() });
    }
    let title = chapter_title(n, &entries[n as usize - 1]);
    Ok(store.add_document(project, &title, "chapter", "", Origin::Typed)?)
}

/// "Chapter 3: The Ferry" from an outline entry "The Ferry: Mara crosses at dusk."
fn chapter_title(n: u32, entry: &str) -> String {
    let head = entry.split([':', '：']).next().unwrap_or("").trim().trim_matches(['*', '"']);
    if !head.is_empty() && head.chars().count() <= 60 && head != entry.trim() { format!("Chapter {n}: {head}") } else { format!("Chapter {n}") }
}

/// What a stage (or a chapter's beats or summary) is generated from: the text, and the
/// revision it is in.
pub struct Source {
    pub text: String,
    pub revision: i64,
}

pub fn source(store: &Store, project: &Project, stage: Stage, chapter: Option<(&Document, u32)>) -> Result<Source> {
    let up = stage.source().ok_or(inkling_craft::CraftError::NotGenerated { stage: stage.name() })?;
    let missing = || BookError::NoSource { project: project.name.clone(), stage: stage.name(), from: up.name() };
    let doc = match (up, chapter) {
        (Stage::Beats, Some((c, _))) => store.chapter_part(c, "beats")?,
        (Stage::Chapter, Some((c, _))) => Some(c.clone()),
        (Stage::Beats | Stage::Chapter, None) => return Err(BookError::NeedsChapter { stage: stage.name() }),
        _ => store.stage(project, up.name())?,
    };
    let doc = doc.ok_or_else(missing)?;
    let rev = store.head(&doc)?;
    let text = match (stage, chapter) {
        (Stage::Beats, Some((_, n))) => pipeline::outline_entry(&rev.text, n).ok_or_else(|| BookError::NoChapter { n, count: 0, entries: pipeline::parts(&rev.text).len() })?,
        _ => rev.text,
    };
    if text.trim().is_empty() {
        return Err(missing());
    }
    Ok(Source { text, revision: rev.id })
}

/// Where a generated stage is filed: its document (None: not written yet) and its locks.
fn target(store: &Store, project: &Project, stage: Stage, chapter: Option<&Document>) -> Result<Option<Document>> {
    Ok(match (stage, chapter) {
        (Stage::Beats | Stage::Summary, Some(c)) => store.chapter_part(c, stage.name())?,
        (Stage::Chapter, Some(c)) => Some(c.clone()),
        _ => store.stage(project, stage.name())?,
    })
}

/// Refuses to regenerate what is locked whole, or a list whose every part is locked.
pub fn check_unlocked(store: &Store, project: &Project, stage: Stage, chapter: Option<&Document>) -> Result<()> {
    let Some(doc) = target(store, project, stage, chapter)? else { return Ok(()) };
    let n = if stage.is_list() { pipeline::parts(&text_of(store, &doc)?).len() } else { 0 };
    if doc.locks.whole || (n > 0 && (0..n).all(|i| doc.locks.parts.contains(&i))) {
        return Err(BookError::Locked { what: doc.title });
    }
    Ok(())
}

/// The project's synopsis added to a context's memory: beats and drafts are written with it.
fn with_synopsis(store: &Store, project: &Project, ctx: &mut StoryContext) -> Result<()> {
    if let Some(s) = store.stage(project, "synopsis")? {
        let synopsis = text_of(store, &s)?;
        if !synopsis.trim().is_empty() {
            ctx.memory = [ctx.memory.trim(), &format!("Synopsis: {}", synopsis.trim())].into_iter().filter(|p| !p.is_empty()).collect::<Vec<_>>().join("\n\n");
        }
    }
    Ok(())
}

/// The tool request that generates `stage` (chapter `n`'s, for beats and a summary) in the
/// project's context, and the revision it is made from. A list keeps its length unless
/// `count` says otherwise; the project's banned phrases apply.
/// What a stage's answer is filed with: the revision it is made from and how many items were
/// asked for (a list).
#[derive(Clone, Copy, Debug)]
pub struct Made {
    pub from: i64,
    pub count: Option<usize>,
}

pub fn stage_request(store: &Store, project: &Project, stage: Stage, chapter: Option<(&Document, u32)>, count: Option<usize>) -> Result<(ToolRequest, Made)> {
    let doc = chapter.map(|(c, _)| c);
    check_unlocked(store, project, stage, doc)?;
    let source = source(store, project, stage, chapter)?;
    let mut context = crate::writing::project_context(store, project, doc)?;
    if stage == Stage::Beats {
        with_synopsis(store, project, &mut context)?;
    }
    let current = match target(store, project, stage, doc)? {
        Some(d) if stage.is_list() => Some(pipeline::parts(&text_of(store, &d)?).len()).filter(|&n| n > 0),
        _ => None,
    };
    let mut request = pipeline::stage_request(stage, &source.text, count.or(current), context)?;
    request.bans = project.bans.clone();
    let made = Made { from: source.revision, count: request.count };
    Ok((request, made))
}

/// Files a generated stage as a new revision of its document, with the locked parts of the
/// old text kept in place (list stages) and `made_from` recording its source's revision.
pub fn file_generated(store: &mut Store, project: &Project, stage: Stage, chapter: Option<&Document>, generated: &str, made_from: i64, origin: Origin) -> Result<Document> {
    check_unlocked(store, project, stage, chapter)?;
    let old = target(store, project, stage, chapter)?;
    let text = match &old {
        Some(d) if stage.is_list() && !d.locks.parts.is_empty() => {
            let kept = pipeline::keep_locked(&pipeline::parts(&text_of(store, d)?), pipeline::parts(generated), &d.locks.parts);
            pipeline::numbered(&kept)
        }
        _ if stage.is_list() => pipeline::numbered(&pipeline::parts(generated)),
        _ => generated.trim().to_string(),
    };
    Ok(match (stage, chapter) {
        (Stage::Chapter, Some(c)) => {
            store.save(c, &text, origin)?;
            store.set_made_from(c, Some(made_from))?;
            store.document_by_id(c.id)?
        }
        _ => store.put_pipeline(project, stage.name(), chapter, &text, origin, Some(made_from))?,
    })
}

/// Files a tool's answer for `stage`: the first candidate (its first `made.count` items, for
/// a list) as a new revision made from `made.from`, and the lorebook's timers after the run.
pub fn file_answer(store: &mut Store, project: &Project, stage: Stage, chapter: Option<&Document>, out: &inkling_craft::ToolOutput, made: Made, model: &str) -> Result<Document> {
    let text = out.candidates.first().map(|c| pipeline::answer_text(stage, c, made.count)).unwrap_or_default();
    if text.trim().is_empty() {
        return Err(BookError::NoAnswer { stage: stage.name() });
    }
    let origin = Origin::Accepted { tool: format!("generate {}", stage.name()), model: model.to_string(), seed: out.seed, generation: None };
    let doc = file_generated(store, project, stage, chapter, &text, made.from, origin)?;
    crate::writing::keep_lore_state(store, project, &out.prompt.lore_state)?;
    Ok(doc)
}

/// The brief chapter `n` is drafted from, and its story context: the project's memory with
/// the synopsis, summaries of the chapters before it, the lorebook, and the chapter before
/// it as the story so far (the assembly keeps its last pages).
pub fn chapter_brief(store: &Store, project: &Project, chapter: &Document, n: u32, words_per_beat: usize) -> Result<(ChapterBrief, StoryContext)> {
    let beats_doc = store.chapter_part(chapter, "beats")?.ok_or_else(|| BookError::NoBeats { project: project.name.clone(), n })?;
    let beats = pipeline::parts(&text_of(store, &beats_doc)?);
    if beats.is_empty() {
        return Err(BookError::NoBeats { project: project.name.clone(), n });
    }
    let outline = store.stage(project, "outline")?.map(|o| text_of(store, &o)).transpose()?.unwrap_or_default();
    let entry = pipeline::outline_entry(&outline, n).unwrap_or_default();
    let mut ctx = crate::writing::project_context(store, project, Some(chapter))?;
    with_synopsis(store, project, &mut ctx)?;
    let chapters = store.chapters(project)?;
    if let Some(prev) = (n as usize).checked_sub(2).and_then(|i| chapters.get(i)) {
        ctx.before = text_of(store, prev)?;
    }
    let title = chapter.title.split_once(':').map_or(chapter.title.as_str(), |(_, t)| t).trim().to_string();
    Ok((ChapterBrief { chapter: n, title, entry, beats, words_per_beat }, ctx))
}

/// What drafting a chapter from its beats starts from, checked.
pub struct ChapterPlan {
    /// The chapter (made from its outline entry when it is the next one).
    pub chapter: Document,
    pub brief: ChapterBrief,
    pub context: StoryContext,
    /// The beats' revision the draft is made from (its staleness is judged against it).
    pub beats_revision: i64,
}

/// Checks that chapter `n` may be drafted (unlocked, beats written, empty unless `replace`)
/// and gathers what the draft needs: shared by `inkling project draft-chapter` and the binder.
pub fn plan_chapter_draft(store: &mut Store, project: &Project, n: u32, words_per_beat: usize, replace: bool) -> Result<ChapterPlan> {
    if words_per_beat == 0 {
        return Err(BookError::NoBeatLength);
    }
    let chapter = chapter(store, project, n)?;
    check_unlocked(store, project, Stage::Chapter, Some(&chapter))?;
    let existing = store.head(&chapter)?.text;
    if !existing.trim().is_empty() && !replace {
        return Err(BookError::HasText { title: chapter.title.clone(), words: pipeline::words(&existing) });
    }
    let (brief, context) = chapter_brief(store, project, &chapter, n, words_per_beat)?;
    let beats = store.chapter_part(&chapter, "beats")?.ok_or_else(|| BookError::NoBeats { project: project.name.clone(), n })?;
    let beats_revision = store.head(&beats)?.id;
    Ok(ChapterPlan { chapter, brief, context, beats_revision })
}

/// Files a drafted chapter as the model's text, and keeps the lorebook's timers it left.
pub fn file_chapter_draft(store: &mut Store, project: &Project, plan: &ChapterPlan, draft: &pipeline::ChapterDraft, model: &str, seed: Option<u64>) -> Result<Document> {
    if draft.text.trim().is_empty() {
        return Err(BookError::NoAnswer { stage: "chapter" });
    }
    let origin = Origin::Accepted { tool: "draft-chapter".into(), model: model.to_string(), seed: seed.unwrap_or(0), generation: None };
    let doc = file_generated(store, project, Stage::Chapter, Some(&plan.chapter), &draft.text, plan.beats_revision, origin)?;
    crate::writing::keep_lore_state(store, project, &draft.lore_state)?;
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::chapter_title;

    #[test]
    fn a_chapter_is_titled_after_its_outline_entry() {
        assert_eq!(chapter_title(3, "The Ferry: Mara crosses at dusk."), "Chapter 3: The Ferry");
        assert_eq!(chapter_title(1, "Mara crosses at dusk."), "Chapter 1");
        assert_eq!(chapter_title(2, "渡口：玛拉在黄昏时渡河。"), "Chapter 2: 渡口");
    }
}
