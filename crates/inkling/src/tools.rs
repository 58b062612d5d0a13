//! The writing tools on the command line: `inkling tools` lists them, `inkling <tool> ...`
//! runs one (each recipe option becomes a `--flag`), `inkling proofread` lints by rule.

use crate::generate::{OrderedPrinter, read_prompt};
use crate::{ModelArgs, models};
use anyhow::{Context, Result, bail};
use clap::{Arg, ArgAction, Args, CommandFactory, FromArgMatches};
use inkling_craft::context::Frame;
use inkling_craft::proofread::{apply_all, proofread};
use inkling_craft::recipe::{OutputKind, Recipe};
use inkling_craft::run::{finish, prepare};
use inkling_craft::{LoreEntry, StoryContext, ToolOutput, ToolRequest, Toolbox};
use inkling_engine::Event;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The flags every tool shares (recipe options are added per tool).
#[derive(Args, Debug)]
pub struct ToolArgs {
    /// The text to work on ("-" or nothing reads stdin).
    text: Option<String>,
    /// Read the text from a file.
    #[arg(long, short = 'f', conflicts_with = "text")]
    file: Option<PathBuf>,
    /// Number of candidates.
    #[arg(short = 'n', long = "candidates", default_value_t = 1)]
    n: usize,
    #[arg(long)]
    seed: Option<u64>,
    /// Room for the answer, in tokens (default: what the tool needs).
    #[arg(long)]
    max_tokens: Option<usize>,
    #[arg(long)]
    temperature: Option<f32>,
    /// How many items a list tool gives (brainstorm, titles, first-lines, outline chapters or beats).
    #[arg(long)]
    count: Option<usize>,
    /// The answer's language ("French", "zh"); default: the language of your text.
    #[arg(long)]
    language: Option<String>,
    /// Guess tokens ahead from the text and check them in one pass: auto (the default) or
    /// lookup guess from your text, off decodes one token per pass. The answer is the same.
    #[arg(long, default_value = "auto", value_name = "auto|lookup|off")]
    speculative: inkling_engine::Speculation,
    /// Show text as it is written.
    #[arg(long)]
    stream: bool,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
    /// Print the exact prompt and the tokens each part took (to stderr) before generating.
    #[arg(long)]
    show_prompt: bool,
    /// After each answer, the model's tokens with their likeliest alternatives and their
    /// probabilities (before, then after the samplers); with --json, per-token `tokens`.
    #[arg(long)]
    show_alternatives: bool,
    /// The start of the answer: the model goes on from these words, which are part of it.
    #[arg(long, value_name = "TEXT")]
    start_with: Option<String>,
    /// Frame the prompt as chat messages or as plain text (default: chat when the model has a template).
    #[arg(long, value_parser = ["chat", "text"])]
    frame: Option<String>,
    /// Always in the prompt: premise, tone, what matters now.
    #[arg(long)]
    memory: Option<String>,
    /// A steer inserted a few paragraphs before the cursor.
    #[arg(long)]
    note: Option<String>,
    /// Paragraphs before the cursor at which the note goes.
    #[arg(long, default_value_t = 3)]
    note_depth: usize,
    /// Story-bible entries (a JSON list of {kind, name, keys, body, always}).
    #[arg(long)]
    bible: Option<PathBuf>,
    /// The story before the passage (for describe, expand, rewrite, ... on a selection).
    #[arg(long)]
    before: Option<PathBuf>,
    /// Keep the model's order: do not rank prose candidates by the --project's voice profile.
    #[arg(long)]
    no_voice: bool,
    /// Use this project's story bible, memory and author's note.
    #[arg(long)]
    project: Option<String>,
    /// The chapter being written (1-based): lore that starts later in the book stays out.
    #[arg(long)]
    chapter: Option<u32>,
    /// Store the first profile (character, place) in the --project's story bible.
    #[arg(long, requires = "project")]
    save: bool,
    /// The project database (default: inkling.db in the data folder, ~/.local/share/inkling on Linux).
    #[arg(long, env = "INKLING_DB")]
    db: Option<PathBuf>,
    #[command(flatten)]
    bans: crate::config::BanArgs,
    #[command(flatten)]
    model: ModelArgs,
}

#[derive(Args, Debug)]
pub struct ToolsArgs {
    /// Print one tool's recipe (to copy into your recipes folder and change).
    #[arg(long)]
    show: Option<String>,
    #[arg(long)]
    json: bool,
}

pub fn toolbox() -> Result<Toolbox> {
    Ok(Toolbox::load(crate::config::places().recipes.as_deref())?)
}

/// `inkling tools`
pub fn list(args: ToolsArgs) -> Result<()> {
    let tb = toolbox()?;
    if let Some(name) = &args.show {
        print!("{}", tb.get(name)?.toml);
        return Ok(());
    }
    if args.json {
        let v: Vec<_> = tb
            .recipes()
            .map(|r| serde_json::json!({"name": r.name, "description": r.description, "input": r.input, "source": r.source, "options": r.options.iter().map(|(k, o)| (k.clone(), serde_json::json!({"help": o.help, "default": o.default, "values": o.values.keys().collect::<Vec<_>>(), "free": o.free}))).collect::<BTreeMap<_, _>>()}))
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    for r in tb.recipes() {
        println!("{:<12} {}", r.name, r.description);
        for (k, o) in &r.options {
            let values = o.values.keys().cloned().collect::<Vec<_>>().join("|");
            let free = if o.free { "|\"any instruction\"" } else { "" };
            println!("{:<12}   --{k} {values}{free}{}", "", o.default.as_ref().map(|d| format!(" (default {d})")).unwrap_or_default());
        }
    }
    println!("\nproofread    Grammar, spelling, punctuation and style by rule (harper), with fixes.");
    if let Some(dir) = &crate::config::places().recipes {
        println!("\nYour own recipes (*.toml) in {} add tools or replace these; `inkling tools --show NAME` prints one to start from.", dir.display());
    }
    Ok(())
}

/// The clap command for one tool: the shared flags plus one flag per recipe option.
fn command_for(recipe: &Recipe) -> clap::Command {
    let mut cmd = ToolArgs::augment_args(clap::Command::new(recipe.name.clone()).about(recipe.description.clone()));
    for (key, o) in &recipe.options {
        let mut help = o.help.clone();
        if !o.values.is_empty() {
            help = format!("{help}: {}{}", o.values.keys().cloned().collect::<Vec<_>>().join(", "), if o.free { ", or any instruction" } else { "" });
        }
        let mut arg = Arg::new(key.clone()).long(key.clone()).help(help).action(ArgAction::Set);
        if let Some(d) = &o.default {
            arg = arg.default_value(d.clone());
        }
        cmd = cmd.arg(arg);
    }
    cmd
}

/// `inkling <tool> ...`: `argv` starts with the tool's name.
pub fn run_tool(top_model: &ModelArgs, argv: Vec<String>) -> Result<()> {
    let tb = toolbox()?;
    let name = argv.first().cloned().unwrap_or_default();
    let recipe = match tb.get(&name) {
        Ok(r) => r,
        Err(e) => {
            // Not a tool: let clap say what the top-level commands are.
            let mut top = crate::Cli::command();
            eprintln!("error: {e}\n");
            let _ = top.print_help();
            std::process::exit(2);
        }
    };
    let matches = command_for(recipe).try_get_matches_from(&argv).unwrap_or_else(|e| e.exit());
    let args = ToolArgs::from_arg_matches(&matches)?;
    let options: BTreeMap<String, String> = recipe.options.keys().filter_map(|k| matches.get_one::<String>(k).map(|v| (k.clone(), v.clone()))).collect();
    let text = if recipe.needs_text || args.text.is_some() || args.file.is_some() { read_prompt(args.text.as_deref(), args.file.as_deref())? } else { String::new() };
    let (context, project_bans) = story_context(&args)?;
    let request = ToolRequest {
        tool: name,
        text,
        options,
        context,
        n: args.n,
        seed: args.seed,
        max_tokens: args.max_tokens,
        temperature: args.temperature,
        frame: args.frame.as_deref().map(|f| if f == "chat" { Frame::Chat } else { Frame::Text }),
        language: args.language.clone(),
        count: args.count,
        speculative: args.speculative,
        bans: args.bans.stacked(project_bans.as_ref())?,
        alternatives: args.show_alternatives.then_some(crate::generate::ALTERNATIVES),
        answer_start: args.start_with.clone().unwrap_or_default(),
        voice: !args.no_voice,
    };
    let engine = models::backend(&args.model.or(top_model))?;
    if let Some(note) = inkling_catalog::language_note(&engine.info().file, &request.text) {
        eprintln!("{note}");
    }
    let prepared = prepare(recipe, engine.as_ref(), &request)?;
    if args.show_prompt {
        show_prompt(&prepared);
    }
    let mut bar = crate::progress::PrefillBar::default();
    let mut printer = (args.stream && !args.json).then(|| OrderedPrinter::new(request.n));
    let mut on_event = |e: Event<'_>| {
        bar.event(&e);
        if let Some(p) = printer.as_mut() {
            p.event(&e);
        }
        true
    };
    let mut generation = engine.generate(&prepared.request, &mut on_event)?;
    inkling_craft::carry_on::complete_lists(&prepared, &mut generation, &mut |r, on| engine.generate(r, on), &mut on_event)?;
    drop(bar);
    let out = finish(recipe, engine.as_ref(), &request, prepared, generation)?;
    if let Some(name) = &args.project {
        // The generation happened: sticky lore counts it, cooldowns run down.
        let mut store = inkling_store::Store::open(&crate::project::db_or_default(args.db.as_deref()))?;
        let project = store.project(name)?;
        inkling_server::keep_lore_state(&mut store, &project, &out.prompt.lore_state)?;
    }
    if args.save {
        save_profile(&args, &out)?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print_output(recipe, &out, args.stream);
    }
    Ok(())
}

/// `--show-prompt`: each part of the prompt with its tokens and fate, then what the model reads.
pub fn show_prompt(prepared: &inkling_craft::run::Prepared) {
    eprintln!("── prompt ({} of {} tokens; {} kept for the answer) ──", prepared.assembled.prompt_tokens, prepared.assembled.budget, prepared.request.max_tokens);
    for p in &prepared.assembled.parts {
        eprintln!("  {:<28} {:>6} tokens  {}", p.name, p.tokens, p.fate);
    }
    eprintln!("── the model reads ──\n{}\n── end of prompt ──", prepared.assembled.rendered);
    let b = &prepared.bans;
    eprintln!("── banned: {} phrase(s), {} pattern(s) ──", b.phrases.len(), b.regex.len());
    if !b.skipped.is_empty() {
        eprintln!("  built-in bans your text uses, so not banned here: {}", b.skipped.join(", "));
    }
}

/// A JSON profile becomes a story-bible entry: its `name` names it and triggers it, the rest
/// is its body.
fn save_profile(args: &ToolArgs, out: &ToolOutput) -> Result<()> {
    let Some(v) = out.candidates.first().and_then(|c| c.json.as_ref()) else { bail!("--save stores a JSON profile, and `{}` gave none", out.tool) };
    let name = v.get("name").and_then(|n| n.as_str()).filter(|n| !n.trim().is_empty()).context("the profile has no name to file it under")?.trim().to_string();
    let body = v
        .as_object()
        .map(|o| o.iter().filter(|(k, _)| *k != "name").map(|(k, v)| format!("{k}: {}", v.as_str().map(String::from).unwrap_or_else(|| v.to_string()))).collect::<Vec<_>>().join("\n"))
        .unwrap_or_default();
    let db = crate::project::db_or_default(args.db.as_deref());
    let mut store = inkling_store::Store::open(&db)?;
    let project = store.project(args.project.as_deref().unwrap_or_default())?;
    store.put_bible_entry(&project, &out.tool, &name, std::slice::from_ref(&name), &body)?;
    eprintln!("saved {} \"{name}\" to the story bible of {}", out.tool, project.name);
    Ok(())
}

/// The story context from the flags and the --project, and the project's banned phrases.
fn story_context(args: &ToolArgs) -> Result<(StoryContext, Option<inkling_api::BanList>)> {
    let mut ctx = StoryContext { note_depth: args.note_depth, ..StoryContext::default() };
    let mut bans = None;
    if let Some(name) = &args.project {
        let db = crate::project::db_or_default(args.db.as_deref());
        let store = inkling_store::Store::open(&db)?;
        let project = store.project(name)?;
        ctx = inkling_server::project_context(&store, &project, None)?;
        bans = Some(project.bans);
    }
    if let Some(m) = &args.memory {
        ctx.memory = m.clone();
    }
    if let Some(n) = &args.note {
        ctx.author_note = n.clone();
    }
    if let Some(path) = &args.bible {
        let src = inkling_store::import::read_text(path)?;
        let entries: Vec<LoreEntry> = serde_json::from_str(&src).with_context(|| format!("{} is not a JSON list of bible entries ({{\"name\", \"body\", \"keys\", \"kind\"}})", path.display()))?;
        ctx.lore.extend(entries);
    }
    if let Some(path) = &args.before {
        ctx.before = inkling_store::import::read_text(path)?;
    }
    if args.chapter.is_some() {
        ctx.chapter = args.chapter;
    }
    Ok((ctx, bans))
}

fn print_output(recipe: &Recipe, out: &ToolOutput, streamed: bool) {
    let many = out.candidates.len() > 1;
    if streamed {
        // The raw text is on screen; add what reading it back found.
        println!();
    }
    for c in &out.candidates {
        if streamed && recipe.output.kind == OutputKind::Text && c.diff.is_none() {
            continue;
        }
        if many || streamed {
            println!("── {} {} ──", if streamed { "result" } else { "candidate" }, c.index + 1);
        }
        match (&c.json, recipe.output.kind) {
            (Some(v), _) => println!("{}", serde_json::to_string_pretty(v).unwrap_or_default()),
            _ if !streamed || recipe.output.kind == OutputKind::List => println!("{}", c.text),
            _ => {}
        }
        if let Some(d) = &c.diff {
            println!("── changes ──\n{}", inkling_craft::diff::render_inline(d));
        }
        if c.meets_length == Some(false) {
            println!("(note: this answer is not {} than your text)", if recipe.output.length == Some(inkling_craft::recipe::LengthGoal::Shorter) { "shorter" } else { "longer" });
        }
        if !c.tokens.is_empty() {
            print_tokens(c);
        }
        for f in &c.flags {
            let detail = match f {
                inkling_craft::Flag::WrongLanguage => format!(" ({})", out.language),
                _ => String::new(),
            };
            // On stderr: stdout stays the answer, for pipes.
            eprintln!("(note: {} {}{detail})", if many { format!("candidate {}", c.index + 1) } else { "this answer".into() }, f.describe());
        }
    }
    print_voice_ranking(out, streamed);
    if out.candidates.is_empty() {
        println!("(the model gave no usable answer; try again or raise --max-tokens)");
    }
    if out.duplicates_dropped > 0 {
        eprintln!("({} duplicate candidate(s) dropped)", out.duplicates_dropped);
    }
}

/// Why the candidates stand in the order they do, when the writer's voice ranked them (on
/// stderr; streamed answers appeared in the order written, so each is named by its start).
fn print_voice_ranking(out: &ToolOutput, streamed: bool) {
    if out.candidates.len() < 2 || out.candidates.iter().all(|c| c.voice.is_none()) {
        return;
    }
    eprintln!("(ranked by your voice; --no-voice keeps the model's order)");
    for c in &out.candidates {
        let Some(v) = &c.voice else { continue };
        let start: String = c.text.trim().chars().take(40).collect();
        let named = if streamed { format!("\"{start}…\"") } else { format!("candidate {}", c.index + 1) };
        eprintln!("  {}. {named}: {}", c.index + 1, v.reason);
    }
}

#[derive(Args, Debug)]
pub struct ProofreadArgs {
    /// The text to check ("-" or nothing reads stdin).
    text: Option<String>,
    #[arg(long, short = 'f', conflicts_with = "text")]
    file: Option<PathBuf>,
    /// Print the text with every first suggestion applied.
    #[arg(long)]
    apply: bool,
    /// Also ask the model about logic, continuity and clarity (the `check` tool).
    #[arg(long)]
    model_pass: bool,
    /// american (us), british (uk), canadian (ca), australian (au) or indian (in) spelling.
    #[arg(long, default_value = "american")]
    dialect: String,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    model: ModelArgs,
}

/// `inkling proofread`
pub fn proofread_cmd(top_model: &ModelArgs, args: ProofreadArgs) -> Result<()> {
    let text = read_prompt(args.text.as_deref(), args.file.as_deref())?;
    if text.trim().is_empty() {
        bail!("proofread needs some text, but the text is empty");
    }
    let dialect = inkling_craft::proofread::dialect_named(&args.dialect)?;
    let findings = proofread(&text, dialect);
    let notes = if args.model_pass {
        let engine = models::backend(&args.model.or(top_model))?;
        let out = inkling_craft::run(&toolbox()?, engine.as_ref(), &ToolRequest { tool: "check".into(), text: text.clone(), n: 1, seed: Some(1), ..ToolRequest::default() }, &mut |_| true)?;
        out.candidates.into_iter().next().map(|c| c.items).unwrap_or_default().into_iter().filter(|i| !i.trim().eq_ignore_ascii_case("none") && !i.trim().eq_ignore_ascii_case("none.")).collect()
    } else {
        Vec::new()
    };
    if args.apply {
        let (fixed, n) = apply_all(&text, &findings);
        print!("{fixed}");
        eprintln!("({n} of {} findings applied)", findings.len());
        return Ok(());
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&serde_json::json!({"findings": findings, "model_notes": notes}))?);
        return Ok(());
    }
    if findings.is_empty() {
        println!("No problems found by rule.");
    }
    for f in &findings {
        let (line, col) = inkling_craft::text::line_col(&text, f.byte_start);
        let fixes = if f.replacements.is_empty() {
            String::new()
        } else {
            format!(" → {}", f.replacements.iter().map(|r| if r.is_empty() { "(delete)".to_string() } else { format!("\"{r}\"") }).collect::<Vec<_>>().join(" / "))
        };
        println!("{line}:{col} {} \"{}\"{fixes}\n    {}", f.kind, f.original, f.message);
    }
    for n in &notes {
        println!("model: {n}");
    }
    Ok(())
}

/// `--show-alternatives`: one line a token, its probability before and after the samplers,
/// then the likeliest others (after the samplers).
fn print_tokens(c: &inkling_craft::ToolCandidate) {
    println!("── candidate {} token by token: probability (before → after the samplers), then what else the samplers allowed ──", c.index + 1);
    let pct = |l: f32| l.exp() * 100.0;
    for t in &c.tokens {
        let others: Vec<String> = t.sampled_top.iter().filter(|a| a.text != t.text).map(|a| format!("{:?} {:.1}%", a.text, pct(a.logprob))).collect();
        println!("{:<18} {:>5.1}% → {:>5.1}%  | {}", format!("{:?}", t.text), pct(t.logprob), pct(t.sampled_logprob), others.join(" · "));
    }
}
