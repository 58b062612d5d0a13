//! `inkling project ...`: projects, revisions, undo/redo and the authorship report.

use anyhow::{Context, Result};
use clap::Subcommand;
use inkling_store::export::Format;
use inkling_store::{Origin, Project, Store};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct ProjectArgs {
    /// The project database (default: inkling.db in the data folder, ~/.local/share/inkling on Linux).
    #[arg(long, env = "INKLING_DB", global = true)]
    db: Option<PathBuf>,
    #[command(subcommand)]
    command: ProjectCommand,
}

#[derive(Subcommand, Debug)]
enum ProjectCommand {
    /// Create a project.
    New { name: String },
    /// List projects.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Documents of a project, in order, with their size and AI-assisted share.
    Show {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Import a .txt or .md file (creating the project if needed).
    Import {
        name: String,
        file: PathBuf,
        /// One document per chapter heading instead of one for the whole file.
        #[arg(long)]
        split: bool,
    },
    /// Export the whole project.
    Export {
        name: String,
        /// md, txt, epub or docx.
        #[arg(long, default_value = "md")]
        format: String,
        #[arg(short = 'o', long)]
        output: PathBuf,
    },
    /// A consistent copy of the whole database, safe while the editor is running.
    Backup {
        /// The file to write (it must not exist yet).
        #[arg(long)]
        to: PathBuf,
    },
    /// Bring back a backup; what is in the database now is saved beside it first.
    RestoreBackup { file: PathBuf },
    /// Save a new revision of a document from a file or stdin (creating the document if needed).
    Save {
        name: String,
        document: String,
        #[arg(long, short = 'f')]
        file: Option<PathBuf>,
        /// Record the text as pasted rather than typed.
        #[arg(long)]
        pasted: bool,
    },
    /// Print a document's current text.
    Cat { name: String, document: String },
    /// Every revision of a document (nothing is ever deleted).
    History {
        name: String,
        document: String,
        #[arg(long)]
        json: bool,
    },
    /// Step a document back one revision (typing and accepted suggestions alike).
    Undo { name: String, document: String },
    /// Step forward again after undo.
    Redo { name: String, document: String },
    /// Bring back an old revision's text as a new revision.
    Restore { name: String, document: String, revision: i64 },
    /// How much of each document came from the model, for disclosure.
    Report {
        name: String,
        #[arg(long)]
        json: bool,
    },
    #[command(flatten)]
    Book(crate::book::BookCommand),
    /// The lorebook (story bible): list, add, edit, remove, import and export entries.
    Lore {
        name: String,
        #[command(subcommand)]
        command: crate::lore::LoreCommand,
    },
    /// The project's banned phrases: show them, or change them with the flags.
    Bans {
        name: String,
        /// Ban a phrase in this project (repeatable).
        #[arg(long, value_name = "PHRASE")]
        add: Vec<String>,
        /// Ban a regular expression in this project (repeatable).
        #[arg(long, value_name = "REGEX")]
        add_regex: Vec<String>,
        /// Take a phrase or pattern off the project's list, or stop allowing one (repeatable).
        #[arg(long, value_name = "PHRASE")]
        remove: Vec<String>,
        /// Allow a built-in phrase in this project (repeatable).
        #[arg(long, value_name = "PHRASE")]
        allow: Vec<String>,
        /// The built-in list in this project: on, off, or inherit (the config file decides).
        #[arg(long, value_parser = ["on", "off", "inherit"])]
        defaults: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

fn db_path(args: &ProjectArgs) -> PathBuf {
    db_or_default(args.db.as_deref())
}

/// The project database every command opens unless told another: the config file's
/// `[projects] db`, else `inkling.db` in the data folder (`$INKLING_HOME`, else
/// `~/.local/share/inkling` on Linux; never the cache folder, which cleaners empty).
pub fn default_db_path() -> PathBuf {
    crate::config::file().projects.db.clone().unwrap_or_else(|| crate::config::places().data.join("inkling.db"))
}

/// The project database, resolved the same way by every command: the one named (`--db`,
/// else `INKLING_DB`), else [`default_db_path`]. A database an older inkling left in the
/// cache folder is moved to the data folder first (copied, checked, the old file kept).
pub fn db_or_default(db: Option<&std::path::Path>) -> PathBuf {
    if let Some(db) = db {
        return db.to_path_buf();
    }
    if let Some(db) = &crate::config::file().projects.db {
        return db.clone();
    }
    let path = default_db_path();
    let legacy = crate::config::places().cache.join("inkling.db");
    if legacy == path {
        return path;
    }
    match inkling_store::relocate(&legacy, &path) {
        Ok(inkling_store::Relocation::Nothing) => path,
        Ok(inkling_store::Relocation::Moved { rows, kept }) => {
            eprintln!("moved your projects from {} to {} ({rows} rows, checked); the old file is kept as {}", legacy.display(), path.display(), kept.display());
            path
        }
        Ok(inkling_store::Relocation::BothExist) => {
            eprintln!("note: an older project database is still at {}; inkling uses {} (pass --db {} to open the old one)", legacy.display(), path.display(), legacy.display());
            path
        }
        Err(e) => {
            eprintln!("warning: your projects could not be moved out of the cache folder ({e}); using {} as before", legacy.display());
            legacy
        }
    }
}

fn open_or_create(store: &mut Store, name: &str) -> Result<Project> {
    Ok(match store.project(name) {
        Ok(p) => p,
        Err(inkling_store::StoreError::NoProject(_)) => store.create_project(name)?,
        Err(e) => return Err(e.into()),
    })
}

fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

pub fn run(top_model: &crate::ModelArgs, args: ProjectArgs) -> Result<()> {
    let path = db_path(&args);
    let mut store = Store::open(&path)?;
    match args.command {
        ProjectCommand::New { name } => {
            store.create_project(&name)?;
            println!("created project `{name}` in {}", path.display());
        }
        ProjectCommand::List { json } => {
            let projects = store.projects()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&projects)?);
            } else {
                for p in projects {
                    println!("{}  ({} documents)", p.name, store.documents(&p)?.len());
                }
            }
        }
        ProjectCommand::Show { name, json } => {
            let p = store.project(&name)?;
            let report = store.report(&p)?;
            let docs = store.documents(&p)?;
            if json {
                let rows: Vec<_> = docs
                    .iter()
                    .zip(&report.documents)
                    .map(|(d, r)| serde_json::json!({"title": d.title, "kind": d.kind, "revisions": store.history(d).map(|h| h.len()).unwrap_or(0), "share": r.share}))
                    .collect();
                println!("{}", serde_json::json!({"project": p, "documents": rows, "bible_entries": store.bible(&p)?.len()}));
            } else {
                println!("{}", p.name);
                for (i, (d, r)) in docs.iter().zip(&report.documents).enumerate() {
                    println!("  {:>2}. {}  ({} chars, {} revisions, {} AI-assisted)", i + 1, d.title, r.share.total(), store.history(d)?.len(), pct(r.share.ai_assisted()));
                }
                if !p.memory.is_empty() {
                    println!("  memory: {}", p.memory);
                }
            }
        }
        ProjectCommand::Import { name, file, split } => {
            let p = open_or_create(&mut store, &name)?;
            let docs = store.import_file(&p, &file, split)?;
            println!("imported {} document(s) into `{name}`", docs.len());
            for d in docs {
                println!("  {}", d.title);
            }
        }
        ProjectCommand::Export { name, format, output } => {
            let f = Format::parse(&format).with_context(|| format!("unknown format `{format}`; use md, txt, epub or docx"))?;
            let p = store.project(&name)?;
            let dir = output.parent().filter(|d| !d.as_os_str().is_empty()).map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
            let file = output.file_name().and_then(|n| n.to_str()).context("the output needs a file name")?;
            let written = store.export(&p, f, &dir, file)?;
            println!("{}", written.display());
        }
        ProjectCommand::Backup { to } => {
            let rows = store.backup(&to)?;
            println!("backed up {} ({rows} rows) to {}", store.path().display(), to.display());
        }
        ProjectCommand::RestoreBackup { file } => {
            let before = store.restore_backup(&file)?;
            println!("restored {} from {}; what was there before is kept in {}", store.path().display(), file.display(), before.display());
        }
        ProjectCommand::Save { name, document, file, pasted } => {
            let text = crate::generate::read_prompt(None, file.as_deref())?;
            let p = open_or_create(&mut store, &name)?;
            let origin = if pasted { Origin::Pasted } else { Origin::Typed };
            let rev = match store.document(&p, &document) {
                Ok(d) => store.save(&d, &text, origin)?,
                Err(inkling_store::StoreError::NoDocument { .. }) => {
                    let d = store.add_document(&p, &document, "chapter", &text, origin)?;
                    store.head(&d)?
                }
                Err(e) => return Err(e.into()),
            };
            println!("revision {}", rev.id);
        }
        ProjectCommand::Cat { name, document } => {
            let p = store.project(&name)?;
            let d = store.document(&p, &document)?;
            print!("{}", store.head(&d)?.text);
        }
        ProjectCommand::History { name, document, json } => {
            let p = store.project(&name)?;
            let d = store.document(&p, &document)?;
            let h = store.history(&d)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&h)?);
            } else {
                for r in h {
                    println!("{} {:>6} {:>7} chars  {}", if r.is_head { "*" } else { " " }, r.id, r.chars, r.origin.describe());
                }
            }
        }
        ProjectCommand::Undo { name, document } => {
            let p = store.project(&name)?;
            let d = store.document(&p, &document)?;
            let r = store.undo(&d)?;
            println!("now at revision {} ({})", r.id, r.origin.describe());
        }
        ProjectCommand::Redo { name, document } => {
            let p = store.project(&name)?;
            let d = store.document(&p, &document)?;
            let r = store.redo(&d)?;
            println!("now at revision {} ({})", r.id, r.origin.describe());
        }
        ProjectCommand::Restore { name, document, revision } => {
            let p = store.project(&name)?;
            let d = store.document(&p, &document)?;
            let r = store.restore(&d, revision)?;
            println!("restored revision {revision} as revision {}", r.id);
        }
        ProjectCommand::Report { name, json } => {
            let p = store.project(&name)?;
            let r = store.report(&p)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                println!("AI-assisted share, {}:", r.project);
                for d in &r.documents {
                    println!(
                        "  {:<30} {:>7} of {:>7} chars ({}; {} edited by the writer)",
                        d.title,
                        d.share.model + d.share.model_edited,
                        d.share.total(),
                        pct(d.share.ai_assisted()),
                        d.share.model_edited
                    );
                }
                println!("  {:<30} {:>7} of {:>7} chars ({})", "whole project", r.total.model + r.total.model_edited, r.total.total(), pct(r.total.ai_assisted()));
            }
        }
        ProjectCommand::Lore { name, command } => crate::lore::run(&mut store, &name, command)?,
        ProjectCommand::Book(command) => crate::book::run(&mut store, top_model, command)?,
        ProjectCommand::Bans { name, add, add_regex, remove, allow, defaults, json } => {
            let p = store.project(&name)?;
            let mut bans = p.bans.clone();
            let push = |list: &mut Vec<String>, items: &[String]| {
                for x in items.iter().map(|x| x.trim()).filter(|x| !x.is_empty()) {
                    if !list.iter().any(|y| y == x) {
                        list.push(x.to_string());
                    }
                }
            };
            push(&mut bans.phrases, &add);
            push(&mut bans.regex, &add_regex);
            push(&mut bans.allow, &allow);
            for r in &remove {
                for list in [&mut bans.phrases, &mut bans.regex, &mut bans.allow] {
                    list.retain(|x| x != r.trim());
                }
            }
            if let Some(d) = defaults {
                bans.defaults = match d.as_str() {
                    "on" => Some(true),
                    "off" => Some(false),
                    _ => None,
                };
            }
            if bans != p.bans {
                inkling_engine::bans::Bans::compile(&bans.phrases, &bans.regex)?;
                store.set_bans(&p, &bans)?;
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&bans)?);
            } else {
                let defaults = match bans.defaults {
                    Some(true) => "on",
                    Some(false) => "off",
                    None => "as the config file says (on unless it turns them off)",
                };
                println!("banned in {name}:");
                println!("  built-in list: {defaults}");
                println!("  phrases: {}", if bans.phrases.is_empty() { "(none)".into() } else { bans.phrases.join(", ") });
                println!("  patterns: {}", if bans.regex.is_empty() { "(none)".into() } else { bans.regex.join(", ") });
                println!("  allowed: {}", if bans.allow.is_empty() { "(none)".into() } else { bans.allow.join(", ") });
            }
        }
    }
    Ok(())
}
