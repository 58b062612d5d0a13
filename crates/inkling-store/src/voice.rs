//! The writer's voice profile: built from the text the ledger marks as the writer's own,
//! kept one per project (schema 6) apart from the project row, which is read on every
//! request while a profile runs to megabytes.

use crate::error::Result;
use crate::ledger::Author;
use crate::store::{Project, Store, now_ms};
use inkling_voice::Profile;
use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};

/// A stored profile and when it was built.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct VoiceRecord {
    pub built_at: i64,
    pub profile: Profile,
}

impl Store {
    /// The manuscript's runs of writer-typed text, in the writer's order. Model text is left
    /// out, accepted as it came or edited since: a profile of it would learn the model's
    /// voice back.
    pub fn writers_own_text(&self, project: &Project) -> Result<Vec<String>> {
        let mut runs = Vec::new();
        for doc in self.documents(project)? {
            let rev = self.head(&doc)?;
            let chars: Vec<char> = rev.text.chars().collect();
            for span in rev.ledger.spans().iter().filter(|s| s.author == Author::Writer) {
                let run: String = chars[span.start.min(chars.len())..span.end.min(chars.len())].iter().collect();
                if !run.trim().is_empty() {
                    runs.push(run);
                }
            }
        }
        Ok(runs)
    }

    /// Builds the project's profile from the writer's own text and keeps it.
    pub fn build_voice(&mut self, project: &Project) -> Result<VoiceRecord> {
        let runs = self.writers_own_text(project)?;
        let profile = Profile::build(&runs.iter().map(String::as_str).collect::<Vec<_>>())?;
        // A profile is numbers and strings: it always serializes.
        let json = serde_json::to_string(&profile).unwrap_or_default();
        let built_at = now_ms();
        self.write(|tx| {
            tx.execute(
                "INSERT INTO voice_profiles (project_id, built_at, profile) VALUES (?1, ?2, ?3) ON CONFLICT(project_id) DO UPDATE SET built_at = ?2, profile = ?3",
                params![project.id, built_at, json],
            )?;
            Ok(())
        })?;
        Ok(VoiceRecord { built_at, profile })
    }

    /// The project's profile, if one was built.
    pub fn voice(&self, project: &Project) -> Result<Option<VoiceRecord>> {
        let row: Option<(i64, String)> = self.conn.query_row("SELECT built_at, profile FROM voice_profiles WHERE project_id = ?1", [project.id], |r| Ok((r.get(0)?, r.get(1)?))).optional()?;
        let Some((built_at, json)) = row else { return Ok(None) };
        // A profile from an older layout is rebuilt, not trusted.
        Ok(serde_json::from_str(&json).ok().map(|profile| VoiceRecord { built_at, profile }))
    }

    /// Which build of the project's profile is stored (its time and size), without reading
    /// it: a caller keeping a parsed profile knows from this whether it is still current.
    pub fn voice_version(&self, project: &Project) -> Result<Option<(i64, i64)>> {
        Ok(self.conn.query_row("SELECT built_at, length(profile) FROM voice_profiles WHERE project_id = ?1", [project.id], |r| Ok((r.get(0)?, r.get(1)?))).optional()?)
    }

    /// Forgets the project's profile (candidates go back to the model's order).
    pub fn clear_voice(&mut self, project: &Project) -> Result<()> {
        self.write(|tx| {
            tx.execute("DELETE FROM voice_profiles WHERE project_id = ?1", [project.id])?;
            Ok(())
        })
    }
}
