//! `inkling project lore NAME ...`: the lorebook (story bible) from the command line.

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use inkling_craft::lore::{Logic, LoreEntry, Position, Progression, world_info};
use inkling_server::{LoreBook, lore_entry};
use inkling_store::{BibleEntry, Project, Store};
use std::path::PathBuf;

#[derive(Subcommand, Debug)]
pub enum LoreCommand {
    /// Every entry with its keys and rules.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Add an entry (or replace the one of the same kind and name).
    Add {
        /// The entry's name; it is always one of its keys.
        entry: String,
        #[command(flatten)]
        rules: RuleFlags,
    },
    /// Change an entry: only the flags given change.
    Edit {
        entry: String,
        /// Which entry, when two kinds share the name.
        #[arg(long = "of-kind")]
        of_kind: Option<String>,
        #[command(flatten)]
        rules: RuleFlags,
    },
    /// Remove an entry.
    Remove {
        entry: String,
        #[arg(long)]
        kind: Option<String>,
    },
    /// Read SillyTavern or KoboldAI world info, a character book, or a JSON list of entries.
    Import { file: PathBuf },
    /// Write the lorebook as SillyTavern world info ("-": standard output).
    Export { file: PathBuf },
    /// The lorebook's settings: show them, or change them with the flags.
    Settings {
        /// Paragraphs at the end of the story scanned for keys.
        #[arg(long)]
        scan_depth: Option<usize>,
        /// How many steps an entry's text may bring in other entries (0: none).
        #[arg(long)]
        recursion: Option<usize>,
        /// Most tokens the entries may take ("none": whatever room the prompt has).
        #[arg(long)]
        budget: Option<String>,
        /// Seeds the entries' probability rolls.
        #[arg(long)]
        seed: Option<u64>,
        /// Forget sticky and cooldown timers.
        #[arg(long)]
        reset_timers: bool,
    },
}

/// An entry's rules as flags; on `edit`, what is not given stays as it was.
#[derive(Args, Debug, Default)]
pub struct RuleFlags {
    /// character, place, item, style, ... (default on add: character).
    #[arg(long)]
    kind: Option<String>,
    /// What the model is told.
    #[arg(long)]
    body: Option<String>,
    /// A trigger key or alias; `/pattern/i` is a regular expression (repeatable; replaces the keys).
    #[arg(long = "key", value_name = "KEY")]
    keys: Vec<String>,
    /// A secondary key (repeatable; replaces them; "" clears them).
    #[arg(long = "secondary", value_name = "KEY")]
    secondary: Vec<String>,
    /// How secondary keys combine: and_any, and_all, not_any, not_all.
    #[arg(long)]
    logic: Option<String>,
    /// In every prompt.
    #[arg(long)]
    always: Option<bool>,
    #[arg(long)]
    enabled: Option<bool>,
    #[arg(long)]
    case_sensitive: Option<bool>,
    #[arg(long)]
    whole_words: Option<bool>,
    /// Paragraphs scanned for this entry's keys (overrides the lorebook's).
    #[arg(long)]
    scan_depth: Option<usize>,
    /// Higher goes nearer the story's end and is dropped last for budget (default 100).
    #[arg(long, allow_negative_numbers = true)]
    order: Option<i32>,
    /// Place it inside the story, N paragraphs before its end.
    #[arg(long, conflicts_with = "before_story")]
    at_depth: Option<usize>,
    /// Place it before the story, with memory (the default).
    #[arg(long)]
    before_story: bool,
    /// Not brought in by other entries' text.
    #[arg(long)]
    exclude_recursion: Option<bool>,
    /// Its text brings in no other entry.
    #[arg(long)]
    prevent_recursion: Option<bool>,
    /// Generations it stays in after firing.
    #[arg(long)]
    sticky: Option<u32>,
    /// Generations it cannot fire after it leaves.
    #[arg(long)]
    cooldown: Option<u32>,
    /// Percent chance it goes in when it fires.
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=100))]
    probability: Option<u8>,
    /// The chapter from which it exists ("none": always).
    #[arg(long)]
    from_chapter: Option<String>,
    /// "N:text": a fact added from chapter N on (repeatable; adds).
    #[arg(long = "progression", value_name = "N:TEXT")]
    progressions: Vec<String>,
    /// Remove its progressions (before adding any given).
    #[arg(long)]
    clear_progressions: bool,
}

impl RuleFlags {
    fn apply(self, e: &mut LoreEntry) -> Result<()> {
        let set = |target: &mut bool, v: Option<bool>| {
            if let Some(v) = v {
                *target = v;
            }
        };
        if let Some(k) = self.kind {
            e.kind = k.trim().to_string();
        }
        if let Some(b) = self.body {
            e.body = b;
        }
        if !self.keys.is_empty() {
            e.keys = self.keys.into_iter().map(|k| k.trim().to_string()).filter(|k| !k.is_empty()).collect();
        }
        if !self.secondary.is_empty() {
            e.secondary = self.secondary.into_iter().map(|k| k.trim().to_string()).filter(|k| !k.is_empty()).collect();
        }
        if let Some(l) = self.logic {
            e.logic = Logic::named(&l).with_context(|| format!("`{l}` is not a logic; use and_any, and_all, not_any or not_all"))?;
        }
        set(&mut e.always, self.always);
        set(&mut e.enabled, self.enabled);
        set(&mut e.case_sensitive, self.case_sensitive);
        set(&mut e.whole_words, self.whole_words);
        set(&mut e.exclude_recursion, self.exclude_recursion);
        set(&mut e.prevent_recursion, self.prevent_recursion);
        if self.scan_depth.is_some() {
            e.scan_depth = self.scan_depth;
        }
        if let Some(o) = self.order {
            e.order = o;
        }
        if let Some(d) = self.at_depth {
            e.position = Position::AtDepth(d);
        }
        if self.before_story {
            e.position = Position::BeforeStory;
        }
        if let Some(s) = self.sticky {
            e.sticky = s;
        }
        if let Some(c) = self.cooldown {
            e.cooldown = c;
        }
        if let Some(p) = self.probability {
            e.probability = p;
        }
        if let Some(c) = self.from_chapter {
            e.from_chapter = if c.trim() == "none" { None } else { Some(chapter_number(&c)?) };
        }
        if self.clear_progressions {
            e.progressions.clear();
        }
        for p in self.progressions {
            let (n, body) = p.split_once(':').with_context(|| format!("`{p}` is not a progression; write it as N:text, e.g. 15:she is the heir"))?;
            e.progressions.push(Progression { from_chapter: chapter_number(n)?, body: body.trim().to_string() });
        }
        e.check().map_err(anyhow::Error::msg)
    }
}

fn chapter_number(s: &str) -> Result<u32> {
    s.trim().parse::<u32>().ok().filter(|&n| n >= 1).with_context(|| format!("`{s}` is not a chapter number; chapters count from 1"))
}

/// `inkling project lore NAME ...`
pub fn run(store: &mut Store, name: &str, command: LoreCommand) -> Result<()> {
    let project = store.project(name)?;
    match command {
        LoreCommand::List { json } => {
            let entries = store.bible(&project)?;
            if json {
                let rows: Vec<_> = entries.iter().map(|e| serde_json::json!({"id": e.id, "entry": lore_entry(e)})).collect();
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else if entries.is_empty() {
                println!("the lorebook of `{}` is empty; add an entry with `inkling project lore {} add NAME --body TEXT`", project.name, project.name);
            } else {
                for e in &entries {
                    println!("{}", describe(&lore_entry(e)));
                }
            }
        }
        LoreCommand::Add { entry, rules } => {
            let mut e = LoreEntry { kind: "character".into(), name: entry.trim().to_string(), ..LoreEntry::default() };
            if rules.body.is_none() {
                bail!("an entry needs --body: what the model should know about {}", e.name);
            }
            rules.apply(&mut e)?;
            put(store, &project, &e)?;
            println!("saved {} `{}`", e.kind, e.name);
        }
        LoreCommand::Edit { entry, of_kind, rules } => {
            let old = find(store, &project, &entry, of_kind.as_deref())?;
            let mut e = lore_entry(&old);
            rules.apply(&mut e)?;
            if e.kind != old.kind {
                store.delete_bible_entry(old.id)?;
            }
            put(store, &project, &e)?;
            println!("saved {} `{}`", e.kind, e.name);
        }
        LoreCommand::Remove { entry, kind } => {
            let old = find(store, &project, &entry, kind.as_deref())?;
            store.delete_bible_entry(old.id)?;
            println!("removed {} `{}`", old.kind, old.name);
        }
        LoreCommand::Import { file } => {
            let src = inkling_store::import::read_text(&file)?;
            let entries = world_info::import(&src).map_err(|e| anyhow::anyhow!("{} cannot be imported: {e}", file.display()))?;
            for e in &entries {
                put(store, &project, e)?;
            }
            println!("imported {} entries into the lorebook of `{}`", entries.len(), project.name);
        }
        LoreCommand::Export { file } => {
            let entries: Vec<LoreEntry> = store.bible(&project)?.iter().map(lore_entry).collect();
            let json = serde_json::to_string_pretty(&world_info::export(&entries))?;
            if file.as_os_str() == "-" {
                println!("{json}");
            } else {
                std::fs::write(&file, json + "\n").with_context(|| format!("cannot write {}", file.display()))?;
                eprintln!("wrote {} entries to {}", entries.len(), file.display());
            }
        }
        LoreCommand::Settings { scan_depth, recursion, budget, seed, reset_timers } => {
            let mut book = LoreBook::of(&project);
            let s = &mut book.settings;
            let changed = scan_depth.is_some() || recursion.is_some() || budget.is_some() || seed.is_some() || reset_timers;
            s.scan_depth = scan_depth.unwrap_or(s.scan_depth);
            s.recursion_depth = recursion.unwrap_or(s.recursion_depth);
            if let Some(b) = budget {
                s.budget = if b.trim() == "none" { None } else { Some(b.trim().parse().with_context(|| format!("`{b}` is not a token count; give a number or none"))?) };
            }
            s.seed = seed.unwrap_or(s.seed);
            if reset_timers {
                book.state = Default::default();
            }
            if changed {
                store.set_lorebook(&project, &book.to_map())?;
            }
            let s = &book.settings;
            println!("scan depth: {} paragraphs", s.scan_depth);
            println!("recursion: {} steps", s.recursion_depth);
            println!("budget: {}", s.budget.map_or("whatever room the prompt has".to_string(), |b| format!("{b} tokens")));
            println!("seed: {}", s.seed);
            println!("generations so far: {} ({} entries sticky or cooling down)", book.state.generation, book.state.timers.len());
        }
    }
    Ok(())
}

fn put(store: &mut Store, project: &Project, e: &LoreEntry) -> Result<BibleEntry> {
    Ok(store.put_lore_entry(project, &e.kind, &e.name, &e.keys, &e.body, &e.rules())?)
}

fn find(store: &Store, project: &Project, name: &str, kind: Option<&str>) -> Result<BibleEntry> {
    let mut found: Vec<BibleEntry> = store.bible(project)?.into_iter().filter(|e| e.name == name.trim() && kind.is_none_or(|k| e.kind == k)).collect();
    match found.len() {
        0 => bail!("the lorebook of `{}` has no entry `{name}`{}; `inkling project lore {} list` shows them", project.name, kind.map(|k| format!(" of kind {k}")).unwrap_or_default(), project.name),
        1 => Ok(found.remove(0)),
        _ => bail!("`{name}` names entries of kinds {}; say which with --kind (or --of-kind for edit)", found.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>().join(", ")),
    }
}

/// One line per entry: kind, name, keys, and any rule that is not the default.
fn describe(e: &LoreEntry) -> String {
    let mut rules = Vec::new();
    if !e.enabled {
        rules.push("disabled".to_string());
    }
    if e.always {
        rules.push("always on".into());
    }
    if !e.secondary.is_empty() {
        rules.push(format!("{} of {}", e.logic.name(), e.secondary.join(", ")));
    }
    if e.order != 100 {
        rules.push(format!("order {}", e.order));
    }
    if let Position::AtDepth(d) = e.position {
        rules.push(format!("at depth {d}"));
    }
    if e.sticky > 0 {
        rules.push(format!("sticky {}", e.sticky));
    }
    if e.cooldown > 0 {
        rules.push(format!("cooldown {}", e.cooldown));
    }
    if e.probability < 100 {
        rules.push(format!("{}% chance", e.probability));
    }
    if let Some(c) = e.from_chapter {
        rules.push(format!("from chapter {c}"));
    }
    for p in &e.progressions {
        rules.push(format!("from chapter {}: {}", p.from_chapter, p.body));
    }
    let keys = if e.keys.is_empty() { String::new() } else { format!("  keys: {}", e.keys.join(", ")) };
    let rules = if rules.is_empty() { String::new() } else { format!("  [{}]", rules.join("; ")) };
    format!("{:<10} {}{keys}{rules}\n           {}", e.kind, e.name, e.body)
}
