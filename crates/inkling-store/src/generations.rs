//! The generation tree: every generation is a node under the one it continued (or under the
//! document), with everything needed to regenerate it, and what the writer did with it.
//! Siblings are alternatives, like branches of a loom.

use crate::error::{Result, StoreError};
use crate::store::{Document, Origin, Project, Revision, Store, now_ms};
use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Proposed,
    Accepted,
    /// Accepted, then changed by the writer.
    Edited,
    Rejected,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Proposed => "proposed",
            Status::Accepted => "accepted",
            Status::Edited => "edited",
            Status::Rejected => "rejected",
        }
    }

    fn parse(s: &str) -> Status {
        match s {
            "accepted" => Status::Accepted,
            "edited" => Status::Edited,
            "rejected" => Status::Rejected,
            _ => Status::Proposed,
        }
    }
}

/// What to record about one generated candidate.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NewGeneration {
    pub document_id: Option<i64>,
    pub parent_id: Option<i64>,
    /// The tool (recipe) that asked, e.g. "continue".
    pub recipe: String,
    pub model: String,
    /// The full request (prompt, n, max tokens, stop), as JSON.
    pub request: serde_json::Value,
    pub sampling: serde_json::Value,
    pub seed: u64,
    pub text: String,
    pub timings: serde_json::Value,
    /// The answer token by token with each token's alternatives, when they were asked for
    /// (the editor's token view, and where a branch from an alternative starts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<serde_json::Value>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GenerationNode {
    pub id: i64,
    pub project_id: i64,
    pub created_at: i64,
    pub status: Status,
    #[serde(flatten)]
    pub generation: NewGeneration,
}

const COLS: &str = "id, project_id, created_at, status, document_id, parent_id, recipe, model, request, sampling, seed, text, timings, tokens";

fn node(r: &rusqlite::Row<'_>) -> rusqlite::Result<GenerationNode> {
    let j = |i: usize| -> rusqlite::Result<serde_json::Value> {
        serde_json::from_str(&r.get::<_, String>(i)?).map_err(|e| rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e)))
    };
    Ok(GenerationNode {
        id: r.get(0)?,
        project_id: r.get(1)?,
        created_at: r.get(2)?,
        status: Status::parse(&r.get::<_, String>(3)?),
        generation: NewGeneration {
            document_id: r.get(4)?,
            parent_id: r.get(5)?,
            recipe: r.get(6)?,
            model: r.get(7)?,
            request: j(8)?,
            sampling: j(9)?,
            seed: r.get::<_, i64>(10)? as u64,
            text: r.get(11)?,
            timings: j(12)?,
            tokens: match r.get::<_, String>(13)? {
                t if t.is_empty() => None,
                _ => Some(j(13)?),
            },
        },
    })
}

impl Store {
    pub fn record_generation(&mut self, project: &Project, g: &NewGeneration) -> Result<GenerationNode> {
        let id = self.write(|tx| {
            tx.execute(
                "INSERT INTO generations (project_id, document_id, parent_id, created_at, recipe, model, request, sampling, seed, text, timings, tokens)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                params![
                    project.id,
                    g.document_id,
                    g.parent_id,
                    now_ms(),
                    g.recipe,
                    g.model,
                    g.request.to_string(),
                    g.sampling.to_string(),
                    g.seed as i64,
                    g.text,
                    g.timings.to_string(),
                    g.tokens.as_ref().map(|t| t.to_string()).unwrap_or_default()
                ],
            )?;
            Ok(tx.last_insert_rowid())
        })?;
        self.generation(id)
    }

    pub fn generation(&self, id: i64) -> Result<GenerationNode> {
        self.conn.query_row(&format!("SELECT {COLS} FROM generations WHERE id = ?1"), [id], node).optional()?.ok_or(StoreError::NoGeneration(id))
    }

    /// The alternatives under `parent` (None: the roots of the project's tree).
    pub fn children(&self, project: &Project, parent: Option<i64>) -> Result<Vec<GenerationNode>> {
        self.nodes("parent_id IS ?2", project, parent)
    }

    /// The project's whole tree (of one document, when given), oldest first: each node names
    /// its parent, so a caller can walk parents, siblings and children without a query each.
    pub fn generation_tree(&self, project: &Project, document: Option<i64>) -> Result<Vec<GenerationNode>> {
        self.nodes("(?2 IS NULL OR document_id = ?2)", project, document)
    }

    /// The project's nodes that meet `filter` (on `?2` = `value`), oldest first.
    fn nodes(&self, filter: &str, project: &Project, value: Option<i64>) -> Result<Vec<GenerationNode>> {
        let mut st = self.conn.prepare(&format!("SELECT {COLS} FROM generations WHERE project_id = ?1 AND {filter} ORDER BY id"))?;
        let rows = st.query_map(params![project.id, value], node)?.collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }

    /// Records what the writer did with a generation, and the feedback for personalisation.
    pub fn set_status(&mut self, id: i64, status: Status, detail: &str) -> Result<()> {
        self.generation(id)?;
        self.write(|tx| {
            tx.execute("UPDATE generations SET status = ?1 WHERE id = ?2", params![status.as_str(), id])?;
            let kind = match status {
                Status::Edited => "edited_after_accept",
                s => s.as_str(),
            };
            tx.execute("INSERT INTO feedback (generation_id, kind, detail, created_at) VALUES (?1, ?2, ?3, ?4)", params![id, kind, detail, now_ms()])?;
            Ok(())
        })
    }

    /// Accepts generation `id` into `doc`: the document becomes `new_text` (the old text with
    /// the generation inserted where the writer wanted it), recorded as model text.
    pub fn accept(&mut self, doc: &Document, id: i64, new_text: &str) -> Result<Revision> {
        let g = self.generation(id)?;
        let origin = Origin::Accepted { tool: g.generation.recipe.clone(), model: g.generation.model.clone(), seed: g.generation.seed, generation: Some(id) };
        let rev = self.save(doc, new_text, origin)?;
        self.set_status(id, Status::Accepted, "")?;
        Ok(rev)
    }

    /// Feedback rows: (generation, kind, detail), oldest first.
    pub fn feedback(&self, project: &Project) -> Result<Vec<(i64, String, String)>> {
        let mut st = self.conn.prepare("SELECT f.generation_id, f.kind, f.detail FROM feedback f JOIN generations g ON g.id = f.generation_id WHERE g.project_id = ?1 ORDER BY f.id")?;
        let rows = st.query_map([project.id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?.collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }
}
