//! `Store`: one SQLite database (WAL, synchronous FULL) holding every project.
//!
//! Writes run in short `BEGIN IMMEDIATE` transactions with a busy timeout, so the server and
//! a CLI can share a project without "database is locked" failures; a transaction either
//! lands whole or not at all, so a killed process never leaves half a save.

use crate::error::{Result, StoreError};
use crate::ledger::{Author, Ledger, Share};
use crate::schema;
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// Where a revision's text came from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Origin {
    Typed,
    Pasted,
    Imported {
        file: String,
    },
    /// A suggestion the writer accepted.
    Accepted {
        tool: String,
        model: String,
        seed: u64,
        generation: Option<i64>,
    },
    /// The text of an earlier revision, brought back.
    Restored {
        from: i64,
    },
}

impl Origin {
    pub(crate) fn author(&self) -> Author {
        match self {
            Origin::Accepted { generation, .. } => Author::Model { generation: *generation },
            _ => Author::Writer,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Origin::Typed => "typed".into(),
            Origin::Pasted => "pasted".into(),
            Origin::Imported { file } => format!("imported from {file}"),
            Origin::Accepted { tool, model, seed, .. } => format!("accepted from {tool} ({model}, seed {seed})"),
            Origin::Restored { from } => format!("restored revision {from}"),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Project {
    pub id: i64,
    pub name: String,
    pub created_at: i64,
    pub memory: String,
    pub authors_note: String,
    pub authors_note_depth: i64,
    /// The project's banned phrases, stacked over the config file's.
    #[serde(default)]
    pub bans: inkling_api::BanList,
    /// The lorebook's settings and timers, as the toolbox writes them (see `set_lorebook`).
    #[serde(default)]
    pub lorebook: serde_json::Map<String, serde_json::Value>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Document {
    pub id: i64,
    pub project_id: i64,
    pub title: String,
    pub kind: String,
    pub position: f64,
    pub head_revision: Option<i64>,
    /// The chapter a `beats` or `summary` document belongs to.
    #[serde(default)]
    pub of_document: Option<i64>,
    /// The revision (of the stage above) this document was generated from; `None` when the
    /// writer wrote it. Its staleness is judged against that revision's text.
    #[serde(default)]
    pub made_from: Option<i64>,
    /// What regenerating must keep.
    #[serde(default)]
    pub locks: crate::pipeline::Locks,
    /// A chapter the writer marked done.
    #[serde(default)]
    pub done: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Revision {
    pub id: i64,
    pub document_id: i64,
    pub parent_id: Option<i64>,
    pub created_at: i64,
    pub origin: Origin,
    pub text: String,
    pub ledger: Ledger,
}

/// A revision without its text, for history listings.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RevisionInfo {
    pub id: i64,
    pub parent_id: Option<i64>,
    pub created_at: i64,
    pub origin: Origin,
    pub chars: usize,
    pub is_head: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DocumentReport {
    pub title: String,
    pub share: Share,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Report {
    pub project: String,
    pub documents: Vec<DocumentReport>,
    pub total: Share,
}

pub struct Store {
    pub(crate) conn: Connection,
    path: PathBuf,
    read_only: bool,
}

fn json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

fn from_json<T: for<'de> Deserialize<'de>>(s: &str, col: usize) -> rusqlite::Result<T> {
    serde_json::from_str(s).map_err(|e| rusqlite::Error::FromSqlConversionFailure(col, rusqlite::types::Type::Text, Box::new(e)))
}

fn revision_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Revision> {
    Ok(Revision {
        id: r.get(0)?,
        document_id: r.get(1)?,
        parent_id: r.get(2)?,
        created_at: r.get(3)?,
        origin: from_json(&r.get::<_, String>(4)?, 4)?,
        text: r.get(5)?,
        ledger: from_json(&r.get::<_, String>(6)?, 6)?,
    })
}

const REVISION_COLS: &str = "id, document_id, parent_id, created_at, origin, text, ledger";

const DOCUMENT_COLS: &str = "id, project_id, title, kind, position, head_revision, of_document, made_from, locks, done";

/// The SQL filter for the manuscript's documents: not the story pipeline's own kinds.
fn manuscript() -> String {
    let kinds: Vec<String> = crate::pipeline::STAGES.iter().chain(&crate::pipeline::CHAPTER_PARTS).map(|k| format!("'{k}'")).collect();
    format!("kind NOT IN ({})", kinds.join(", "))
}

fn document_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Document> {
    let locks: String = r.get(8)?;
    Ok(Document {
        id: r.get(0)?,
        project_id: r.get(1)?,
        title: r.get(2)?,
        kind: r.get(3)?,
        position: r.get(4)?,
        head_revision: r.get(5)?,
        of_document: r.get(6)?,
        made_from: r.get(7)?,
        // Written by `set_locks` only; locks that no longer parse read as none.
        locks: if locks.is_empty() { Default::default() } else { serde_json::from_str(&locks).unwrap_or_default() },
        done: r.get(9)?,
    })
}

impl Store {
    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Self> {
        let io = |source| StoreError::Io { path: path.to_path_buf(), error: source };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        // Honour a read-only file even when running as root, who could write it anyway.
        let read_only = path.metadata().map(|m| m.permissions().readonly()).unwrap_or(false);
        let flags = if read_only {
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
        } else {
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX
        };
        let mut conn = Connection::open_with_flags(path, flags)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.pragma_update(None, "foreign_keys", true)?;
        if read_only {
            let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
            if found > schema::VERSION {
                return Err(StoreError::NewerSchema { path: path.to_path_buf(), found, known: schema::VERSION });
            }
        } else {
            conn.pragma_update(None, "journal_mode", "WAL")?;
            conn.pragma_update(None, "synchronous", "FULL")?;
            schema::migrate(&mut conn, path)?;
        }
        Ok(Self { conn, path: path.to_path_buf(), read_only })
    }

    /// Caps the database size in pages: tests use it to simulate a full disk.
    #[doc(hidden)]
    pub fn limit_pages_for_tests(&self, pages: i64) -> Result<()> {
        self.conn.pragma_update(None, "max_page_count", pages)?;
        Ok(())
    }

    /// `PRAGMA integrity_check`: "ok" for a healthy database.
    pub fn integrity_check(&self) -> Result<String> {
        Ok(self.conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))?)
    }

    /// A stamp that changes whenever anything in the database changes, by this connection
    /// (its count of rows written) or by another process (SQLite's `data_version`). A caller
    /// that keeps something computed from the data knows from this whether it is still true.
    pub fn change_stamp(&self) -> Result<(i64, u64)> {
        let data_version: i64 = self.conn.query_row("PRAGMA data_version", [], |r| r.get(0))?;
        Ok((data_version, self.conn.total_changes()))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` in one immediate transaction (the write lock is taken up front, so two
    /// writers queue instead of failing halfway).
    pub(crate) fn write<T>(&mut self, f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T>) -> Result<T> {
        if self.read_only {
            return Err(StoreError::ReadOnly(self.path.clone()));
        }
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let out = f(&tx)?;
        tx.commit().map_err(|e| match StoreError::from(e) {
            StoreError::ReadOnly(_) => StoreError::ReadOnly(self.path.clone()),
            other => other,
        })?;
        Ok(out)
    }

    // ---- projects ----

    pub fn create_project(&mut self, name: &str) -> Result<Project> {
        let name = name.trim();
        if name.is_empty() {
            return Err(StoreError::NoProject("(empty name)".into()));
        }
        let exists: bool = self.conn.query_row("SELECT EXISTS(SELECT 1 FROM projects WHERE name = ?1)", [name], |r| r.get(0))?;
        if exists {
            return Err(StoreError::ProjectExists(name.into()));
        }
        self.write(|tx| {
            tx.execute("INSERT INTO projects (name, created_at) VALUES (?1, ?2)", params![name, now_ms()])?;
            Ok(())
        })?;
        self.project(name)
    }

    pub fn project(&self, name: &str) -> Result<Project> {
        self.conn
            .query_row("SELECT id, name, created_at, memory, authors_note, authors_note_depth, bans, lorebook FROM projects WHERE name = ?1", [name], |r| {
                let bans: String = r.get(6)?;
                // Written by `set_bans` only; a list that no longer parses reads as none
                // rather than locking the writer out of the project.
                let bans = if bans.is_empty() { Default::default() } else { serde_json::from_str(&bans).unwrap_or_default() };
                let lorebook = json_object(&r.get::<_, String>(7)?);
                Ok(Project { id: r.get(0)?, name: r.get(1)?, created_at: r.get(2)?, memory: r.get(3)?, authors_note: r.get(4)?, authors_note_depth: r.get(5)?, bans, lorebook })
            })
            .optional()?
            .ok_or_else(|| StoreError::NoProject(name.into()))
    }

    pub fn projects(&self) -> Result<Vec<Project>> {
        let mut st = self.conn.prepare("SELECT name FROM projects ORDER BY name")?;
        let names: Vec<String> = st.query_map([], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?;
        names.iter().map(|n| self.project(n)).collect()
    }

    /// Memory: text always given to the model for this project.
    pub fn set_memory(&mut self, project: &Project, memory: &str) -> Result<()> {
        self.write(|tx| {
            tx.execute("UPDATE projects SET memory = ?1 WHERE id = ?2", params![memory, project.id])?;
            Ok(())
        })
    }

    /// The author's note and how many paragraphs before the cursor it goes.
    pub fn set_authors_note(&mut self, project: &Project, note: &str, depth: i64) -> Result<()> {
        self.write(|tx| {
            tx.execute("UPDATE projects SET authors_note = ?1, authors_note_depth = ?2 WHERE id = ?3", params![note, depth, project.id])?;
            Ok(())
        })
    }

    /// The lorebook's settings and timers (opaque here: the toolbox owns their shape).
    pub fn set_lorebook(&mut self, project: &Project, lorebook: &serde_json::Map<String, serde_json::Value>) -> Result<()> {
        let json = if lorebook.is_empty() { String::new() } else { serde_json::Value::Object(lorebook.clone()).to_string() };
        self.write(|tx| {
            tx.execute("UPDATE projects SET lorebook = ?1 WHERE id = ?2", params![json, project.id])?;
            Ok(())
        })
    }

    /// The project's banned phrases (see [`inkling_api::BanList`]).
    pub fn set_bans(&mut self, project: &Project, bans: &inkling_api::BanList) -> Result<()> {
        // A list of strings and flags always serializes.
        let json = if bans.is_empty() { String::new() } else { serde_json::to_string(bans).unwrap_or_default() };
        self.write(|tx| {
            tx.execute("UPDATE projects SET bans = ?1 WHERE id = ?2", params![json, project.id])?;
            Ok(())
        })
    }

    // ---- documents ----

    /// Adds a document at the end of the project, with `text` as its first revision.
    pub fn add_document(&mut self, project: &Project, title: &str, kind: &str, text: &str, origin: Origin) -> Result<Document> {
        let title = unique_title(&self.documents_where("project_id = ?1", [project.id])?, title);
        let id = self.write(|tx| {
            let pos: f64 = tx.query_row("SELECT COALESCE(MAX(position), 0) + 1 FROM documents WHERE project_id = ?1", [project.id], |r| r.get(0))?;
            tx.execute("INSERT INTO documents (project_id, title, kind, position, created_at) VALUES (?1, ?2, ?3, ?4, ?5)", params![project.id, title, kind, pos, now_ms()])?;
            let doc = tx.last_insert_rowid();
            let ledger = Ledger::uniform(text, origin.author());
            insert_revision(tx, doc, None, &origin, text, &ledger)?;
            Ok(doc)
        })?;
        self.document_by_id(id)
    }

    /// The manuscript: the project's documents in the writer's order, without the story
    /// pipeline's own (stages, beats, summaries; see [`Store::stage`]).
    pub fn documents(&self, project: &Project) -> Result<Vec<Document>> {
        self.documents_where(&format!("project_id = ?1 AND {}", manuscript()), [project.id])
    }

    /// Documents matching an SQL filter over `documents`, in the writer's order.
    pub(crate) fn documents_where(&self, filter: &str, args: impl rusqlite::Params) -> Result<Vec<Document>> {
        let mut st = self.conn.prepare(&format!("SELECT {DOCUMENT_COLS} FROM documents WHERE {filter} ORDER BY position, id"))?;
        let docs = st.query_map(args, document_from_row)?.collect::<rusqlite::Result<_>>()?;
        Ok(docs)
    }

    pub fn document_by_id(&self, id: i64) -> Result<Document> {
        Ok(self.conn.query_row(&format!("SELECT {DOCUMENT_COLS} FROM documents WHERE id = ?1"), [id], document_from_row)?)
    }

    /// A document by title, or by its 1-based place in the manuscript's order. Titles find
    /// the pipeline's documents too ("Synopsis", "Chapter 3 beats").
    pub fn document(&self, project: &Project, which: &str) -> Result<Document> {
        let docs = self.documents(project)?;
        if let Some(d) = docs.iter().find(|d| d.title == which) {
            return Ok(d.clone());
        }
        if let Some(d) = self.documents_where("project_id = ?1", [project.id])?.into_iter().find(|d| d.title == which) {
            return Ok(d);
        }
        if let Ok(n) = which.parse::<usize>()
            && n >= 1
            && n <= docs.len()
        {
            return Ok(docs[n - 1].clone());
        }
        Err(StoreError::NoDocument { project: project.name.clone(), document: which.into() })
    }

    /// Moves a document to 0-based place `index` in its project's order.
    pub fn move_document(&mut self, doc: &Document, index: usize) -> Result<()> {
        let project_id = doc.project_id;
        let doc_id = doc.id;
        self.write(|tx| {
            let mut st = tx.prepare(&format!("SELECT id FROM documents WHERE project_id = ?1 AND {} ORDER BY position, id", manuscript()))?;
            let mut ids: Vec<i64> = st.query_map([project_id], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?;
            ids.retain(|&i| i != doc_id);
            ids.insert(index.min(ids.len()), doc_id);
            for (pos, id) in ids.iter().enumerate() {
                tx.execute("UPDATE documents SET position = ?1 WHERE id = ?2", params![pos as f64 + 1.0, id])?;
            }
            Ok(())
        })
    }

    // ---- revisions ----

    pub fn revision(&self, id: i64) -> Result<Revision> {
        self.conn.query_row(&format!("SELECT {REVISION_COLS} FROM revisions WHERE id = ?1"), [id], revision_from_row).optional()?.ok_or(StoreError::NoRevision(id))
    }

    /// The current text of a document.
    pub fn head(&self, doc: &Document) -> Result<Revision> {
        let head: Option<i64> = self.conn.query_row("SELECT head_revision FROM documents WHERE id = ?1", [doc.id], |r| r.get(0))?;
        self.revision(head.ok_or(StoreError::NothingTo("show: the document has no revision"))?)
    }

    /// Saves `text` as the document's new revision. Saving the same text again is a no-op.
    pub fn save(&mut self, doc: &Document, text: &str, origin: Origin) -> Result<Revision> {
        let doc_id = doc.id;
        let id = self.write(|tx| {
            let head: Option<i64> = tx.query_row("SELECT head_revision FROM documents WHERE id = ?1", [doc_id], |r| r.get(0))?;
            let prev = match head {
                Some(h) => Some(tx.query_row(&format!("SELECT {REVISION_COLS} FROM revisions WHERE id = ?1"), [h], revision_from_row)?),
                None => None,
            };
            if let Some(p) = &prev
                && p.text == text
                && !matches!(origin, Origin::Restored { .. })
            {
                return Ok(p.id);
            }
            let ledger = match (&origin, &prev) {
                (Origin::Restored { from }, _) => tx.query_row("SELECT ledger FROM revisions WHERE id = ?1", [from], |r| from_json::<Ledger>(&r.get::<_, String>(0)?, 0))?,
                (_, Some(p)) => p.ledger.apply_edit(&p.text, text, origin.author()),
                (_, None) => Ledger::uniform(text, origin.author()),
            };
            insert_revision(tx, doc_id, head, &origin, text, &ledger)
        })?;
        self.revision(id)
    }

    /// Revisions of a document, oldest first (every branch; nothing is ever deleted).
    pub fn history(&self, doc: &Document) -> Result<Vec<RevisionInfo>> {
        let head: Option<i64> = self.conn.query_row("SELECT head_revision FROM documents WHERE id = ?1", [doc.id], |r| r.get(0))?;
        let mut st = self.conn.prepare("SELECT id, parent_id, created_at, origin, length(text) FROM revisions WHERE document_id = ?1 ORDER BY id")?;
        let rows = st
            .query_map([doc.id], |r| {
                let id: i64 = r.get(0)?;
                Ok(RevisionInfo { id, parent_id: r.get(1)?, created_at: r.get(2)?, origin: from_json(&r.get::<_, String>(3)?, 3)?, chars: r.get::<_, i64>(4)? as usize, is_head: Some(id) == head })
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }

    /// Steps the document back to the revision before the current one. The newer revision
    /// stays and `redo` returns to it.
    pub fn undo(&mut self, doc: &Document) -> Result<Revision> {
        let doc_id = doc.id;
        let id = self.write(|tx| {
            let head: Option<i64> = tx.query_row("SELECT head_revision FROM documents WHERE id = ?1", [doc_id], |r| r.get(0))?;
            let parent: Option<i64> = match head {
                Some(h) => tx.query_row("SELECT parent_id FROM revisions WHERE id = ?1", [h], |r| r.get(0))?,
                None => None,
            };
            let parent = parent.ok_or(StoreError::NothingTo("undo"))?;
            tx.execute("UPDATE documents SET head_revision = ?1 WHERE id = ?2", params![parent, doc_id])?;
            Ok(parent)
        })?;
        self.revision(id)
    }

    /// Steps forward again along the path to the latest revision reached before undoing.
    pub fn redo(&mut self, doc: &Document) -> Result<Revision> {
        let doc_id = doc.id;
        let id = self.write(|tx| {
            let (head, tip): (Option<i64>, Option<i64>) = tx.query_row("SELECT head_revision, tip_revision FROM documents WHERE id = ?1", [doc_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
            let (Some(head), Some(tip)) = (head, tip) else { return Err(StoreError::NothingTo("redo")) };
            // Walk up from the tip to the child of the head on that path.
            let mut cur = tip;
            let mut next = None;
            while cur != head {
                let parent: Option<i64> = tx.query_row("SELECT parent_id FROM revisions WHERE id = ?1", [cur], |r| r.get(0))?;
                next = Some(cur);
                match parent {
                    Some(p) => cur = p,
                    None => return Err(StoreError::NothingTo("redo")),
                }
            }
            let next = next.ok_or(StoreError::NothingTo("redo"))?;
            tx.execute("UPDATE documents SET head_revision = ?1 WHERE id = ?2", params![next, doc_id])?;
            Ok(next)
        })?;
        self.revision(id)
    }

    /// Brings back the text of revision `rev` as a new revision; newer ones are kept.
    pub fn restore(&mut self, doc: &Document, rev: i64) -> Result<Revision> {
        let old = self.revision(rev)?;
        if old.document_id != doc.id {
            return Err(StoreError::NoRevision(rev));
        }
        self.save(doc, &old.text, Origin::Restored { from: rev })
    }

    // ---- authorship ----

    /// AI-assisted share per document (at its current revision) and for the project.
    pub fn report(&self, project: &Project) -> Result<Report> {
        let mut documents = Vec::new();
        let mut total = Share::default();
        for d in self.documents(project)? {
            let share = self.head(&d).map(|r| r.ledger.share()).unwrap_or_default();
            total.add(share);
            documents.push(DocumentReport { title: d.title, share });
        }
        Ok(Report { project: project.name.clone(), documents, total })
    }
}

pub(crate) fn unique_title(docs: &[Document], title: &str) -> String {
    let base = if title.trim().is_empty() { "Untitled" } else { title.trim() };
    let mut t = base.to_string();
    let mut n = 2;
    while docs.iter().any(|d| d.title == t) {
        t = format!("{base} ({n})");
        n += 1;
    }
    t
}

pub(crate) fn insert_revision(tx: &rusqlite::Transaction<'_>, doc: i64, parent: Option<i64>, origin: &Origin, text: &str, ledger: &Ledger) -> Result<i64> {
    tx.execute("INSERT INTO revisions (document_id, parent_id, created_at, origin, text, ledger) VALUES (?1, ?2, ?3, ?4, ?5, ?6)", params![doc, parent, now_ms(), json(origin), text, json(ledger)])?;
    let id = tx.last_insert_rowid();
    tx.execute("UPDATE documents SET head_revision = ?1, tip_revision = ?1 WHERE id = ?2", params![id, doc])?;
    Ok(id)
}

/// A stored JSON object; '' or anything else reads as empty rather than locking the writer
/// out of the project (only inkling writes these columns).
pub(crate) fn json_object(s: &str) -> serde_json::Map<String, serde_json::Value> {
    match serde_json::from_str(s) {
        Ok(serde_json::Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    }
}
