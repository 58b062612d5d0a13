//! Backups a writer can take while the editor is open, and bring back. Both go through
//! SQLite's online backup API, which copies a consistent snapshot page by page while other
//! connections keep reading and writing.

use crate::error::{Result, StoreError};
use crate::relocate::{checked_copy, sibling};
use crate::store::Store;
use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};

impl Store {
    /// Copies the whole database to `to`, a file that must not exist yet (a backup never
    /// overwrites anything). The copy is written beside it first and renamed once it checks
    /// out, so `to` is either absent or whole. Returns the rows copied.
    pub fn backup(&self, to: &Path) -> Result<u64> {
        if to.exists() {
            return Err(StoreError::Io {
                path: to.to_path_buf(),
                error: std::io::Error::new(std::io::ErrorKind::AlreadyExists, "already exists; a backup never overwrites a file, choose another name"),
            });
        }
        let partial = sibling(to, ".partial");
        // Other connections may write while it runs: the copy is a snapshot, so its rows are
        // its own, not compared with the live database's.
        let rows = checked_copy(&self.conn, self.path(), &partial)?.iter().map(|(_, n)| n).sum();
        std::fs::rename(&partial, to).map_err(|error| StoreError::Io { path: to.to_path_buf(), error })?;
        Ok(rows)
    }

    /// Replaces this database's contents with the backup at `from`, after checking it is a
    /// healthy inkling database this version can open. What was here first is saved beside
    /// the database (returned), so a restore can itself be undone.
    pub fn restore_backup(&mut self, from: &Path) -> Result<PathBuf> {
        let source = Connection::open_with_flags(from, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
        let not_ours = |reason: String| StoreError::CopyFailed { from: from.to_path_buf(), to: self.path().to_path_buf(), reason };
        let verdict: String = source.query_row("PRAGMA integrity_check", [], |r| r.get(0)).map_err(|e| not_ours(format!("not a database: {e}")))?;
        if verdict != "ok" {
            return Err(not_ours(format!("integrity check: {verdict}")));
        }
        let version: i64 = source.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        let has_projects: bool = source.query_row("SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'projects'", [], |r| r.get(0))?;
        if !has_projects {
            return Err(not_ours("it holds no inkling projects".into()));
        }
        if version > crate::schema::VERSION {
            return Err(StoreError::NewerSchema { path: from.to_path_buf(), found: version, known: crate::schema::VERSION });
        }
        let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let before = sibling(self.path(), &format!(".before-restore-{stamp}"));
        self.backup(&before)?;
        rusqlite::backup::Backup::new(&source, &mut self.conn)?.run_to_completion(256, std::time::Duration::from_millis(5), None)?;
        let path = self.path().to_path_buf();
        crate::schema::migrate(&mut self.conn, &path)?;
        Ok(before)
    }
}

#[cfg(test)]
mod tests {
    use crate::{Origin, Store};

    #[test]
    fn a_backup_taken_while_another_writer_works_comes_back() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("inkling.db");
        let mut editor = Store::open(&db).unwrap();
        let p = editor.create_project("Mill").unwrap();
        let doc = editor.add_document(&p, "One", "chapter", "The wheel turned.", Origin::Typed).unwrap();
        // The CLI takes the backup through its own connection while the editor's stays open.
        let cli = Store::open(&db).unwrap();
        let copy = dir.path().join("mill-backup.db");
        assert!(cli.backup(&copy).unwrap() >= 3);
        assert!(cli.backup(&copy).is_err(), "never overwrites");
        editor.save(&doc, "The wheel turned. Then it stopped.", Origin::Typed).unwrap();

        let mut store = Store::open(&db).unwrap();
        let before = store.restore_backup(&copy).unwrap();
        assert_eq!(store.head(&store.document_by_id(doc.id).unwrap()).unwrap().text, "The wheel turned.");
        // What was there before the restore is kept.
        let kept = Store::open(&before).unwrap();
        assert_eq!(kept.head(&kept.document_by_id(doc.id).unwrap()).unwrap().text, "The wheel turned. Then it stopped.");

        let junk = dir.path().join("notes.txt");
        std::fs::write(&junk, "not a database").unwrap();
        assert!(store.restore_backup(&junk).is_err());
        assert_eq!(store.head(&store.document_by_id(doc.id).unwrap()).unwrap().text, "The wheel turned.", "a bad backup changes nothing");
    }
}
