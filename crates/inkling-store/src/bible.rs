//! Story-bible entries: characters, places, items and style notes, each with the keywords
//! that bring it into the model's context (the toolbox decides how).

use crate::error::Result;
use crate::store::{Project, Store, now_ms};
use rusqlite::params;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BibleEntry {
    pub id: i64,
    /// character, place, item or style.
    pub kind: String,
    pub name: String,
    /// Trigger keywords and aliases.
    pub keys: Vec<String>,
    pub body: String,
}

impl Store {
    /// Adds an entry, or replaces the one of the same kind and name.
    pub fn put_bible_entry(&mut self, project: &Project, kind: &str, name: &str, keys: &[String], body: &str) -> Result<BibleEntry> {
        let keys_json = serde_json::to_string(keys).unwrap_or_else(|_| "[]".into());
        let id = self.write(|tx| {
            let existing: Option<i64> = tx
                .query_row("SELECT id FROM bible_entries WHERE project_id = ?1 AND kind = ?2 AND name = ?3", params![project.id, kind, name], |r| r.get(0))
                .ok();
            match existing {
                Some(id) => {
                    tx.execute("UPDATE bible_entries SET keys = ?1, body = ?2, updated_at = ?3 WHERE id = ?4", params![keys_json, body, now_ms(), id])?;
                    Ok(id)
                }
                None => {
                    tx.execute(
                        "INSERT INTO bible_entries (project_id, kind, name, keys, body, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                        params![project.id, kind, name, keys_json, body, now_ms()],
                    )?;
                    Ok(tx.last_insert_rowid())
                }
            }
        })?;
        Ok(BibleEntry { id, kind: kind.into(), name: name.into(), keys: keys.to_vec(), body: body.into() })
    }

    pub fn bible(&self, project: &Project) -> Result<Vec<BibleEntry>> {
        let mut st = self.conn.prepare("SELECT id, kind, name, keys, body FROM bible_entries WHERE project_id = ?1 ORDER BY kind, name")?;
        let rows = st
            .query_map([project.id], |r| {
                Ok(BibleEntry { id: r.get(0)?, kind: r.get(1)?, name: r.get(2)?, keys: serde_json::from_str(&r.get::<_, String>(3)?).unwrap_or_default(), body: r.get(4)? })
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }

    pub fn delete_bible_entry(&mut self, id: i64) -> Result<()> {
        self.write(|tx| {
            tx.execute("DELETE FROM bible_entries WHERE id = ?1", [id])?;
            Ok(())
        })
    }
}
