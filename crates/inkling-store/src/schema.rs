//! Schema migrations, numbered by `PRAGMA user_version`. Each step runs in one transaction;
//! a database from a newer inkling is refused before anything is touched.

use crate::error::{Result, StoreError};
use rusqlite::Connection;
use std::path::Path;

const MIGRATIONS: &[&str] = &[
    // 1: the first schema.
    r#"
    CREATE TABLE projects (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        created_at INTEGER NOT NULL,
        memory TEXT NOT NULL DEFAULT '',
        authors_note TEXT NOT NULL DEFAULT '',
        authors_note_depth INTEGER NOT NULL DEFAULT 3
    );
    CREATE TABLE documents (
        id INTEGER PRIMARY KEY,
        project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
        title TEXT NOT NULL,
        kind TEXT NOT NULL DEFAULT 'chapter',
        position REAL NOT NULL,
        head_revision INTEGER REFERENCES revisions(id),
        tip_revision INTEGER REFERENCES revisions(id),
        created_at INTEGER NOT NULL,
        UNIQUE (project_id, title)
    );
    CREATE TABLE revisions (
        id INTEGER PRIMARY KEY,
        document_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
        parent_id INTEGER REFERENCES revisions(id),
        created_at INTEGER NOT NULL,
        origin TEXT NOT NULL,
        text TEXT NOT NULL,
        ledger TEXT NOT NULL
    );
    CREATE INDEX revisions_by_document ON revisions(document_id, id);
    CREATE TABLE generations (
        id INTEGER PRIMARY KEY,
        project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
        document_id INTEGER REFERENCES documents(id) ON DELETE SET NULL,
        parent_id INTEGER REFERENCES generations(id),
        created_at INTEGER NOT NULL,
        recipe TEXT NOT NULL,
        model TEXT NOT NULL,
        request TEXT NOT NULL,
        sampling TEXT NOT NULL,
        seed INTEGER NOT NULL,
        text TEXT NOT NULL,
        timings TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'proposed'
    );
    CREATE INDEX generations_by_parent ON generations(parent_id);
    CREATE TABLE bible_entries (
        id INTEGER PRIMARY KEY,
        project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
        kind TEXT NOT NULL,
        name TEXT NOT NULL,
        keys TEXT NOT NULL,
        body TEXT NOT NULL,
        updated_at INTEGER NOT NULL
    );
    CREATE TABLE feedback (
        id INTEGER PRIMARY KEY,
        generation_id INTEGER NOT NULL REFERENCES generations(id) ON DELETE CASCADE,
        kind TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT '',
        created_at INTEGER NOT NULL
    );
    "#,
    // 2: the project's banned phrases (an inkling_api::BanList as JSON; '' is none).
    r#"
    ALTER TABLE projects ADD COLUMN bans TEXT NOT NULL DEFAULT '';
    "#,
    // 3: a generation's tokens with their alternatives (JSON; '' when none were asked for).
    r#"
    ALTER TABLE generations ADD COLUMN tokens TEXT NOT NULL DEFAULT '';
    "#,
    // 4: the lorebook: each entry's rules beyond kind, name, keys and body, and the project's
    // lorebook settings and timers (JSON objects; '' is none).
    r#"
    ALTER TABLE bible_entries ADD COLUMN rules TEXT NOT NULL DEFAULT '';
    ALTER TABLE projects ADD COLUMN lorebook TEXT NOT NULL DEFAULT '';
    "#,
    // 5: the story pipeline. Stage documents (braindump, synopsis, outline) and a chapter's
    // beats and summary are documents of their own kinds; `of_document` ties beats and a
    // summary to their chapter, `made_from` names the revision a document was generated from
    // (NULL: written by hand), `locks` says what regeneration must keep (JSON, '' is none),
    // and `done` marks a finished chapter.
    r#"
    ALTER TABLE documents ADD COLUMN of_document INTEGER REFERENCES documents(id) ON DELETE CASCADE;
    ALTER TABLE documents ADD COLUMN made_from INTEGER REFERENCES revisions(id);
    ALTER TABLE documents ADD COLUMN locks TEXT NOT NULL DEFAULT '';
    ALTER TABLE documents ADD COLUMN done INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX documents_by_chapter ON documents(of_document);
    "#,
    // 6: the writer's voice profile (an inkling_voice::Profile as JSON), one per project.
    r#"
    CREATE TABLE voice_profiles (
        project_id INTEGER PRIMARY KEY REFERENCES projects(id) ON DELETE CASCADE,
        built_at INTEGER NOT NULL,
        profile TEXT NOT NULL
    );
    "#,
];

pub const VERSION: i64 = MIGRATIONS.len() as i64;

pub fn migrate(conn: &mut Connection, path: &Path) -> Result<()> {
    let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if found > VERSION {
        return Err(StoreError::NewerSchema { path: path.to_path_buf(), found, known: VERSION });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}
