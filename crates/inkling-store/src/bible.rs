//! Story-bible (lorebook) entries: characters, places, items and style notes, each with the
//! keys that bring it into the model's context and the rules for when and where (the
//! toolbox owns those rules' meaning; here they are a JSON object kept beside the entry).

use crate::error::Result;
use crate::store::{Project, Store, json_object, now_ms};
use rusqlite::params;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BibleEntry {
    pub id: i64,
    /// character, place, item or style.
    pub kind: String,
    pub name: String,
    /// Trigger keywords and aliases.
    pub keys: Vec<String>,
    pub body: String,
    /// Everything else about the entry (secondary keys, placement, timing, chapters).
    #[serde(default)]
    pub rules: Map<String, Value>,
}

impl Store {
    /// Adds an entry, or replaces the one of the same kind and name; an existing entry keeps
    /// its rules.
    pub fn put_bible_entry(&mut self, project: &Project, kind: &str, name: &str, keys: &[String], body: &str) -> Result<BibleEntry> {
        self.put_entry(project, kind, name, keys, body, None)
    }

    /// Adds or replaces an entry together with its rules.
    pub fn put_lore_entry(&mut self, project: &Project, kind: &str, name: &str, keys: &[String], body: &str, rules: &Map<String, Value>) -> Result<BibleEntry> {
        self.put_entry(project, kind, name, keys, body, Some(rules))
    }

    fn put_entry(&mut self, project: &Project, kind: &str, name: &str, keys: &[String], body: &str, rules: Option<&Map<String, Value>>) -> Result<BibleEntry> {
        let keys_json = serde_json::to_string(keys).unwrap_or_else(|_| "[]".into());
        let rules_json = rules.map(|r| if r.is_empty() { String::new() } else { Value::Object(r.clone()).to_string() });
        let (id, rules_json) = self.write(|tx| {
            let existing: Option<(i64, String)> =
                tx.query_row("SELECT id, rules FROM bible_entries WHERE project_id = ?1 AND kind = ?2 AND name = ?3", params![project.id, kind, name], |r| Ok((r.get(0)?, r.get(1)?))).ok();
            match existing {
                Some((id, old_rules)) => {
                    let rules_json = rules_json.clone().unwrap_or(old_rules);
                    tx.execute("UPDATE bible_entries SET keys = ?1, body = ?2, rules = ?3, updated_at = ?4 WHERE id = ?5", params![keys_json, body, rules_json, now_ms(), id])?;
                    Ok((id, rules_json))
                }
                None => {
                    let rules_json = rules_json.clone().unwrap_or_default();
                    tx.execute(
                        "INSERT INTO bible_entries (project_id, kind, name, keys, body, rules, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                        params![project.id, kind, name, keys_json, body, rules_json, now_ms()],
                    )?;
                    Ok((tx.last_insert_rowid(), rules_json))
                }
            }
        })?;
        Ok(BibleEntry { id, kind: kind.into(), name: name.into(), keys: keys.to_vec(), body: body.into(), rules: json_object(&rules_json) })
    }

    /// The entries in the order the writer filed them.
    pub fn bible(&self, project: &Project) -> Result<Vec<BibleEntry>> {
        let mut st = self.conn.prepare("SELECT id, kind, name, keys, body, rules FROM bible_entries WHERE project_id = ?1 ORDER BY id")?;
        let rows = st
            .query_map([project.id], |r| {
                Ok(BibleEntry {
                    id: r.get(0)?,
                    kind: r.get(1)?,
                    name: r.get(2)?,
                    keys: serde_json::from_str(&r.get::<_, String>(3)?).unwrap_or_default(),
                    body: r.get(4)?,
                    rules: json_object(&r.get::<_, String>(5)?),
                })
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
