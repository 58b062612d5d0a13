//! `inkling project status|stage|generate|lock|unlock|summarize|done|draft-chapter|rename|move`:
//! the story pipeline (braindump → synopsis → outline → beats → chapter → summary) from the
//! command line. The rules live in `inkling_server::book` and `inkling_craft::pipeline`;
//! this module parses flags, runs the model and prints.

use crate::ModelArgs;
use anyhow::{Context, Result, bail};
use clap::Subcommand;
use inkling_craft::pipeline::{self, BeatDraft, Stage};
use inkling_craft::{ToolOutput, ToolRequest};
use inkling_engine::{Backend, Event};
use inkling_server::book;
use inkling_store::{Document, Project, Store};
use std::path::PathBuf;

#[derive(Subcommand, Debug)]
pub enum BookCommand {
    /// The story pipeline: stages, chapters, beats, summaries, locks, and what is stale.
    Status {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Print a stage (braindump, synopsis, outline; beats or summary with --chapter), or write
    /// it by hand from --file (`-` for stdin).
    Stage {
        name: String,
        stage: String,
        #[arg(long)]
        chapter: Option<u32>,
        #[arg(long, short = 'f')]
        file: Option<PathBuf>,
    },
    /// Generate a stage from the one above it: synopsis from the braindump, outline from the
    /// synopsis, a chapter's beats from its outline entry, a summary from the chapter. Locked
    /// parts are kept; the old text stays in the history.
    Generate {
        name: String,
        stage: String,
        #[arg(long)]
        chapter: Option<u32>,
        /// How many chapters (outline) or beats (default: as many as now, else the tool's own).
        #[arg(long)]
        count: Option<usize>,
        #[command(flatten)]
        run: RunFlags,
    },
    /// Lock a stage, or some of its parts (1-based: outline entries, beats), so regenerating keeps them.
    Lock(LockArgs),
    /// Undo `lock`: the parts named, or every lock.
    Unlock(LockArgs),
    /// Make or refresh a chapter's summary, the memory later chapters are written with.
    Summarize {
        name: String,
        /// The chapter: its title or its 1-based place among the chapters.
        chapter: String,
        #[command(flatten)]
        run: RunFlags,
    },
    /// Mark a chapter done; it is summarized unless its summary is up to date.
    Done {
        name: String,
        chapter: String,
        /// Mark it not done again.
        #[arg(long)]
        undo: bool,
        #[command(flatten)]
        run: RunFlags,
    },
    /// Draft chapter N from its beats, beat by beat, with the synopsis, its outline entry,
    /// earlier chapters' summaries, the end of the chapter before and the lorebook.
    DraftChapter {
        name: String,
        n: u32,
        /// About how long each beat's prose is, in words (characters for Chinese).
        #[arg(long, default_value_t = 250)]
        words_per_beat: usize,
        /// Draft over text the chapter already has (it stays in the history).
        #[arg(long)]
        replace: bool,
        #[command(flatten)]
        run: RunFlags,
    },
    /// Rename a document (chapters keep their place).
    Rename { name: String, document: String, title: String },
    /// Move a document to a 1-based place in the manuscript.
    Move { name: String, document: String, to: usize },
}

#[derive(clap::Args, Debug)]
pub struct LockArgs {
    name: String,
    stage: String,
    #[arg(long)]
    chapter: Option<u32>,
    /// Parts (repeatable); none means the whole stage.
    #[arg(long = "part")]
    parts: Vec<usize>,
}

#[derive(clap::Args, Debug, Clone)]
pub struct RunFlags {
    #[arg(long)]
    seed: Option<u64>,
    #[arg(long)]
    temperature: Option<f32>,
    /// Print what the model reads for each run, part by part.
    #[arg(long)]
    show_prompt: bool,
}

pub fn run(store: &mut Store, top_model: &ModelArgs, command: BookCommand) -> Result<()> {
    match command {
        BookCommand::Status { name, json } => status(store, &name, json),
        BookCommand::Stage { name, stage, chapter, file } => stage_text(store, &name, &stage, chapter, file),
        BookCommand::Generate { name, stage, chapter, count, run } => {
            let project = store.project(&name)?;
            let stage = Stage::parse(&stage)?;
            let engine = crate::models::backend(top_model)?;
            let doc = generate(store, engine.as_ref(), &project, stage, chapter, count, &run)?;
            print_filed(store, &doc, stage)
        }
        BookCommand::Lock(a) => set_locks(store, &a, true),
        BookCommand::Unlock(a) => set_locks(store, &a, false),
        BookCommand::Summarize { name, chapter, run } => {
            let project = store.project(&name)?;
            let n = chapter_number(store, &project, &chapter)?;
            let engine = crate::models::backend(top_model)?;
            let doc = generate(store, engine.as_ref(), &project, Stage::Summary, Some(n), None, &run)?;
            print_filed(store, &doc, Stage::Summary)
        }
        BookCommand::Done { name, chapter, undo, run } => done(store, top_model, &name, &chapter, undo, &run),
        BookCommand::DraftChapter { name, n, words_per_beat, replace, run } => draft_chapter(store, top_model, &name, n, words_per_beat, replace, &run),
        BookCommand::Rename { name, document, title } => {
            let project = store.project(&name)?;
            let doc = store.document(&project, &document)?;
            let doc = store.rename_document(&doc, &title)?;
            println!("renamed to `{}`", doc.title);
            Ok(())
        }
        BookCommand::Move { name, document, to } => {
            let project = store.project(&name)?;
            let doc = store.document(&project, &document)?;
            if to == 0 {
                bail!("places count from 1");
            }
            store.move_document(&doc, to - 1)?;
            for (i, d) in store.documents(&project)?.iter().enumerate() {
                println!("  {:>2}. {}", i + 1, d.title);
            }
            Ok(())
        }
    }
}

/// The chapter a writer names by title or by its 1-based place among the chapters.
fn chapter_number(store: &Store, project: &Project, which: &str) -> Result<u32> {
    let chapters = store.chapters(project)?;
    if let Some(i) = chapters.iter().position(|c| c.title == which) {
        return Ok(i as u32 + 1);
    }
    match which.parse::<u32>() {
        Ok(n) if n >= 1 && (n as usize) <= chapters.len() => Ok(n),
        _ => bail!("project `{}` has no chapter `{which}` ({} chapters; `inkling project status {}` lists them)", project.name, chapters.len(), project.name),
    }
}

/// The pipeline document a stage flag names: the stage's own, or a chapter's beats, summary
/// or prose (`create`: chapter N is made from its outline entry when it is the next one).
fn pipeline_doc(store: &mut Store, project: &Project, stage: Stage, chapter: Option<u32>, create: bool) -> Result<Option<Document>> {
    Ok(book::named(store, project, stage, chapter, create)?.document)
}

fn status(store: &Store, name: &str, json: bool) -> Result<()> {
    let project = store.project(name)?;
    let s = book::status(store, &project)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&s)?);
        return Ok(());
    }
    println!("{}", s.project);
    let mark = |p: &book::PartStatus| {
        let mut m = vec![format!("{} words", p.words)];
        if p.items > 0 {
            m.push(format!("{} items", p.items));
        }
        m.push(if p.generated { "generated".into() } else { "by hand".into() });
        if p.locks.whole {
            m.push("locked".into());
        } else if !p.locks.parts.is_empty() {
            m.push(format!("locked: {}", p.locks.parts.iter().map(|i| (i + 1).to_string()).collect::<Vec<_>>().join(", ")));
        }
        if let Some(why) = &p.stale {
            m.push(format!("STALE ({why})"));
        }
        m.join(", ")
    };
    for st in &s.stages {
        match &st.document {
            Some(p) => println!("  {:<10} {}", st.stage, mark(p)),
            None => println!("  {:<10} (not written)", st.stage),
        }
    }
    if s.chapters.is_empty() {
        println!("  no chapters yet{}", if s.outline_entries > 0 { format!(" (the outline has {}: `generate {name} beats --chapter 1` starts the first)", s.outline_entries) } else { String::new() });
    }
    for c in &s.chapters {
        let mut m = vec![format!("{} words", c.words), if c.done { "done".into() } else { "draft".into() }];
        if c.locks.whole {
            m.push("locked".into());
        }
        if let Some(why) = &c.stale {
            m.push(format!("STALE ({why})"));
        }
        println!("  {:>2}. {}  ({})", c.chapter, c.title, m.join(", "));
        for (what, p) in [("beats", &c.beats), ("summary", &c.summary)] {
            match p {
                Some(p) => println!("        {what:<8} {}", mark(p)),
                None if what == "summary" && c.done => println!("        summary  (none: `summarize {name} {}`)", c.chapter),
                None => {}
            }
        }
    }
    let stale = s.stale();
    if !stale.is_empty() {
        println!("stale: {} (nothing is regenerated until you ask)", stale.iter().map(|(w, _)| w.as_str()).collect::<Vec<_>>().join("; "));
    }
    Ok(())
}

fn stage_text(store: &mut Store, name: &str, stage: &str, chapter: Option<u32>, file: Option<PathBuf>) -> Result<()> {
    let project = store.project(name)?;
    let stage = Stage::parse(stage)?;
    let Some(file) = file else {
        let doc = pipeline_doc(store, &project, stage, chapter, false)?.with_context(|| format!("the {} is not written yet", stage.name()))?;
        println!("{}", store.head(&doc)?.text);
        return Ok(());
    };
    // `-f -` reads stdin.
    let text = if file.as_os_str() == "-" { crate::generate::read_prompt(None, None)? } else { crate::generate::read_prompt(None, Some(&file))? };
    let doc = book::write_by_hand(store, &project, stage, chapter, &text)?;
    println!("saved `{}` ({} words)", doc.title, pipeline::words(&text));
    Ok(())
}

fn set_locks(store: &mut Store, a: &LockArgs, lock: bool) -> Result<()> {
    let parts = &a.parts;
    let project = store.project(&a.name)?;
    let stage = Stage::parse(&a.stage)?;
    let doc = pipeline_doc(store, &project, stage, a.chapter, false)?.with_context(|| format!("the {} is not written yet, so there is nothing to lock", stage.name()))?;
    if !parts.is_empty() && !stage.is_list() {
        bail!("only the outline and a chapter's beats have parts to lock one by one; lock the whole {} without --part", stage.name());
    }
    let items = pipeline::parts(&store.head(&doc)?.text).len();
    if let Some(&bad) = parts.iter().find(|&&p| p == 0 || p > items) {
        bail!("part {bad} is not in `{}`, which has {items} (numbered from 1)", doc.title);
    }
    let mut locks = doc.locks.clone();
    match (lock, parts.is_empty()) {
        (true, true) => locks.whole = true,
        (true, false) => locks.parts.extend(parts.iter().map(|p| p - 1)),
        (false, true) => locks = Default::default(),
        (false, false) => parts.iter().for_each(|p| {
            locks.parts.remove(&(p - 1));
        }),
    }
    store.set_locks(&doc, &locks)?;
    let what = if locks.whole {
        "all of it".to_string()
    } else if locks.parts.is_empty() {
        "nothing".into()
    } else {
        format!("parts {}", locks.parts.iter().map(|i| (i + 1).to_string()).collect::<Vec<_>>().join(", "))
    };
    println!("`{}`: locked {what}", doc.title);
    Ok(())
}

/// Runs one tool request with the prompt shown if asked and the reading progress on stderr.
fn run_request(engine: &dyn Backend, request: &ToolRequest, flags: &RunFlags) -> Result<ToolOutput> {
    let tb = crate::tools::toolbox()?;
    let recipe = tb.get(&request.tool)?;
    if flags.show_prompt {
        let p = inkling_craft::run::prepare(recipe, engine, request)?;
        crate::tools::show_prompt(&p);
    }
    let mut bar = crate::progress::PrefillBar::default();
    let out = inkling_craft::run(&tb, engine, request, &mut |e: Event<'_>| {
        bar.event(&e);
        true
    })?;
    Ok(out)
}

/// Generates `stage` (for chapter `n` where it is a chapter's) and files it, locks kept.
fn generate(store: &mut Store, engine: &dyn Backend, project: &Project, stage: Stage, n: Option<u32>, count: Option<usize>, flags: &RunFlags) -> Result<Document> {
    if stage == Stage::Chapter {
        bail!("a chapter is drafted from its beats: `inkling project draft-chapter {} {}`", project.name, n.unwrap_or(1));
    }
    let chapter = book::named(store, project, stage, n, true)?.chapter;
    let (mut request, made) = book::stage_request(store, project, stage, chapter.as_ref().zip(n), count)?;
    request.seed = flags.seed;
    request.temperature = flags.temperature;
    let out = run_request(engine, &request, flags)?;
    Ok(book::file_answer(store, project, stage, chapter.as_ref(), &out, made, &engine.info().name)?)
}

fn print_filed(store: &Store, doc: &Document, stage: Stage) -> Result<()> {
    println!("{}", store.head(doc)?.text);
    let kept = if doc.locks.parts.is_empty() { String::new() } else { format!("; locked parts kept: {}", doc.locks.parts.iter().map(|i| (i + 1).to_string()).collect::<Vec<_>>().join(", ")) };
    eprintln!("saved as the new revision of `{}` ({}{kept}; `inkling project undo` brings back the old one)", doc.title, stage.name());
    Ok(())
}

fn done(store: &mut Store, top_model: &ModelArgs, name: &str, which: &str, undo: bool, flags: &RunFlags) -> Result<()> {
    let project = store.project(name)?;
    let n = chapter_number(store, &project, which)?;
    let chapter = book::chapter(store, &project, n)?;
    store.set_done(&chapter, !undo)?;
    if undo {
        println!("`{}` is a draft again", chapter.title);
        return Ok(());
    }
    if book::summary_is_fresh(store, &chapter)? {
        println!("`{}` is done; its summary is up to date", chapter.title);
        return Ok(());
    }
    if store.head(&chapter)?.text.trim().is_empty() {
        println!("`{}` is done (it is empty, so it has no summary)", chapter.title);
        return Ok(());
    }
    let engine = crate::models::backend(top_model)?;
    match generate(store, engine.as_ref(), &project, Stage::Summary, Some(n), None, flags) {
        Ok(doc) => {
            println!("`{}` is done. Its summary, which later chapters are written with:", chapter.title);
            print_filed(store, &doc, Stage::Summary)
        }
        // Done stands; the summary can be made later.
        Err(e) => {
            println!("`{}` is done", chapter.title);
            eprintln!(
                "warning: its summary could not be made ({e:#}); `inkling project summarize {name} {n}` tries again, or write one with `inkling project stage {name} summary --chapter {n} -f FILE`"
            );
            Ok(())
        }
    }
}

fn draft_chapter(store: &mut Store, top_model: &ModelArgs, name: &str, n: u32, words_per_beat: usize, replace: bool, flags: &RunFlags) -> Result<()> {
    let project = store.project(name)?;
    let plan = book::plan_chapter_draft(store, &project, n, words_per_beat, replace)?;
    let engine = crate::models::backend(top_model)?;
    let tb = crate::tools::toolbox()?;
    let base = ToolRequest { context: plan.context.clone(), seed: flags.seed, temperature: flags.temperature, bans: project.bans.clone(), ..ToolRequest::default() };
    let brief = &plan.brief;
    if flags.show_prompt {
        let first = ToolRequest { tool: "draft".into(), text: brief.beats[0].clone(), ..base.clone() };
        crate::tools::show_prompt(&inkling_craft::run::prepare(tb.get("draft")?, engine.as_ref(), &first)?);
    }
    eprintln!("drafting `{}`: {} beats of about {words_per_beat} words", plan.chapter.title, brief.beats.len());
    let mut bar = crate::progress::PrefillBar::default();
    let draft = pipeline::draft_chapter(&tb, engine.as_ref(), brief, &base, &mut |k: usize, b: &BeatDraft| eprintln!("  beat {}: {} words", k + 1, b.words), &mut |e: Event<'_>| {
        bar.event(&e);
        true
    })?;
    book::file_chapter_draft(store, &project, &plan, &draft, &engine.info().name, flags.seed)?;
    println!("{}", draft.text);
    let total: usize = draft.beats.iter().map(|b| b.words).sum();
    eprintln!("saved `{}`: {total} words over {} beats ({})", plan.chapter.title, draft.beats.len(), draft.beats.iter().map(|b| b.words.to_string()).collect::<Vec<_>>().join(", "));
    Ok(())
}
