//! The story pipeline's documents: a project's stages (braindump, synopsis, outline), each
//! chapter's beats and summary, what each was generated from, what regeneration must keep,
//! and which chapters are done.
//!
//! They are ordinary documents with revisions, so undo, history and the ledger cover them;
//! [`Store::documents`] leaves them out, so exports and the authorship report are the
//! manuscript alone. What "stale" means is the caller's: this module keeps the facts
//! (`made_from`, the revision a document came from) and judges nothing.

use crate::error::{Result, StoreError};
use crate::ledger::Ledger;
use crate::store::{Document, Origin, Project, Store, insert_revision, now_ms, unique_title};
use rusqlite::params;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// The project-wide stages, top down.
pub const STAGES: [&str; 3] = ["braindump", "synopsis", "outline"];
/// What a chapter has of its own: the beats it is drafted from, the summary later chapters see.
pub const CHAPTER_PARTS: [&str; 2] = ["beats", "summary"];

/// What regenerating a document must keep: all of it, or some of its parts (0-based: an
/// outline's chapter entries, a chapter's beats).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Locks {
    #[serde(default)]
    pub whole: bool,
    #[serde(default)]
    pub parts: BTreeSet<usize>,
}

impl Locks {
    pub fn is_empty(&self) -> bool {
        !self.whole && self.parts.is_empty()
    }
}

fn title_of(kind: &str, chapter: Option<&Document>) -> String {
    match chapter {
        Some(c) => format!("{} {kind}", c.title),
        None => {
            let mut t = kind.to_string();
            t[..1].make_ascii_uppercase();
            t
        }
    }
}

impl Store {
    /// The project's document for a stage (`braindump`, `synopsis`, `outline`), if written.
    pub fn stage(&self, project: &Project, kind: &str) -> Result<Option<Document>> {
        check_kind(kind, &STAGES)?;
        Ok(self.documents_where("project_id = ?1 AND kind = ?2 AND of_document IS NULL", params![project.id, kind])?.into_iter().next())
    }

    /// A chapter's `beats` or `summary`, if it has one.
    pub fn chapter_part(&self, chapter: &Document, kind: &str) -> Result<Option<Document>> {
        check_kind(kind, &CHAPTER_PARTS)?;
        Ok(self.documents_where("of_document = ?1 AND kind = ?2", params![chapter.id, kind])?.into_iter().next())
    }

    /// The chapters, in the writer's order (documents of kind `chapter`).
    pub fn chapters(&self, project: &Project) -> Result<Vec<Document>> {
        self.documents_where("project_id = ?1 AND kind = 'chapter'", [project.id])
    }

    /// Each chapter's summary with the chapter's 1-based place and title, in one query (every
    /// tool run in a project reads them).
    pub fn chapter_summaries(&self, project: &Project) -> Result<Vec<(u32, String, String)>> {
        let mut st = self.conn.prepare(
            "SELECT c.n, c.title, r.text FROM
                (SELECT id, title, ROW_NUMBER() OVER (ORDER BY position, id) AS n FROM documents WHERE project_id = ?1 AND kind = 'chapter') c
             JOIN documents s ON s.of_document = c.id AND s.kind = 'summary'
             JOIN revisions r ON r.id = s.head_revision
             ORDER BY c.n",
        )?;
        let rows = st.query_map([project.id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?.collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }

    /// Writes a stage's text (`chapter` None) or a chapter's beats or summary as a new
    /// revision, creating the document the first time. `made_from` is the revision the text
    /// was generated from; `None` keeps what the document had (a hand edit of generated text
    /// still came from it).
    pub fn put_pipeline(&mut self, project: &Project, kind: &str, chapter: Option<&Document>, text: &str, origin: Origin, made_from: Option<i64>) -> Result<Document> {
        let existing = match chapter {
            None => self.stage(project, kind)?,
            Some(c) => self.chapter_part(c, kind)?,
        };
        let doc = match existing {
            Some(d) => {
                self.save(&d, text, origin)?;
                d
            }
            None => self.create_pipeline_doc(project, kind, chapter, text, origin)?,
        };
        if made_from.is_some() {
            self.set_made_from(&doc, made_from)?;
        }
        self.document_by_id(doc.id)
    }

    fn create_pipeline_doc(&mut self, project: &Project, kind: &str, chapter: Option<&Document>, text: &str, origin: Origin) -> Result<Document> {
        let title = unique_title(&self.documents_where("project_id = ?1", [project.id])?, &title_of(kind, chapter));
        let of = chapter.map(|c| c.id);
        let id = self.write(|tx| {
            // Stages sort before the manuscript in a listing of every document.
            tx.execute("INSERT INTO documents (project_id, title, kind, position, created_at, of_document) VALUES (?1, ?2, ?3, 0, ?4, ?5)", params![project.id, title, kind, now_ms(), of])?;
            let doc = tx.last_insert_rowid();
            insert_revision(tx, doc, None, &origin, text, &Ledger::uniform(text, origin.author()))?;
            Ok(doc)
        })?;
        self.document_by_id(id)
    }

    /// Records the revision a document was generated from (`None`: the writer's own now).
    pub fn set_made_from(&mut self, doc: &Document, made_from: Option<i64>) -> Result<()> {
        self.write(|tx| {
            tx.execute("UPDATE documents SET made_from = ?1 WHERE id = ?2", params![made_from, doc.id])?;
            Ok(())
        })
    }

    pub fn set_locks(&mut self, doc: &Document, locks: &Locks) -> Result<()> {
        // A set of numbers and a flag always serializes.
        let json = if locks.is_empty() { String::new() } else { serde_json::to_string(locks).unwrap_or_default() };
        self.write(|tx| {
            tx.execute("UPDATE documents SET locks = ?1 WHERE id = ?2", params![json, doc.id])?;
            Ok(())
        })
    }

    /// Marks a chapter done (or not).
    pub fn set_done(&mut self, doc: &Document, done: bool) -> Result<()> {
        self.write(|tx| {
            tx.execute("UPDATE documents SET done = ?1 WHERE id = ?2", params![done, doc.id])?;
            Ok(())
        })
    }

    /// Renames a document; titles stay unique in the project.
    pub fn rename_document(&mut self, doc: &Document, title: &str) -> Result<Document> {
        let title = title.trim();
        if title.is_empty() {
            return Err(StoreError::NothingTo("rename: the new title is empty"));
        }
        let others: Vec<Document> = self.documents_where("project_id = ?1", [doc.project_id])?.into_iter().filter(|d| d.id != doc.id).collect();
        if others.iter().any(|d| d.title == title) {
            return Err(StoreError::TitleTaken(title.into()));
        }
        self.write(|tx| {
            tx.execute("UPDATE documents SET title = ?1 WHERE id = ?2", params![title, doc.id])?;
            Ok(())
        })?;
        self.document_by_id(doc.id)
    }
}

fn check_kind(kind: &str, known: &[&str]) -> Result<()> {
    if known.contains(&kind) { Ok(()) } else { Err(StoreError::UnknownKind { kind: kind.into(), known: known.join(", ") }) }
}
