//! Moving the project database to a new place with no chance of loss: a writer's manuscripts
//! used to live in a cache folder, which cleaners and backup tools skip or empty.
//!
//! The steps, each safe to interrupt:
//! 1. copy the old database into `NEW.moving` with SQLite's online backup API (it reads
//!    committed data, write-ahead log included, while another process may be writing);
//! 2. check the copy: `PRAGMA integrity_check` and every table's row count against the old;
//! 3. write the note beside the old file saying where the data went;
//! 4. flush the copy to disk and rename it to `NEW`;
//! 5. rename the old file to `OLD.moved` (its write-ahead log files too). Nothing is deleted.
//!
//! A crash before step 4 leaves the old database in use and a stale `.moving` copy, redone on
//! the next run. A crash between 4 and 5 leaves both, and the note says the new one is ours:
//! the next run finishes step 5. Two databases without the note are the writer's own, and
//! are left alone.

use crate::error::{Result, StoreError};
use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};

/// What [`relocate`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Relocation {
    /// No database at the old place.
    Nothing,
    /// Copied, checked and moved; the old file is kept at `kept`.
    Moved { rows: u64, kept: PathBuf },
    /// Both places hold a database that this move did not make; neither was touched.
    BothExist,
}

/// Moves the database at `from` to `to` (see the module docs).
pub fn relocate(from: &Path, to: &Path) -> Result<Relocation> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |error| StoreError::Io { path, error }
    };
    let note = sibling(from, ".moved.txt");
    if !from.exists() {
        return Ok(Relocation::Nothing);
    }
    if to.exists() {
        if !note.exists() {
            return Ok(Relocation::BothExist);
        }
        // Interrupted after the copy was in place: finish setting the old file aside.
        let kept = set_aside(from)?;
        return Ok(Relocation::Moved { rows: count_rows(&Connection::open(to)?)?, kept });
    }
    if let Some(dir) = to.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    let moving = sibling(to, ".moving");
    let source = Connection::open_with_flags(from, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    source.busy_timeout(std::time::Duration::from_secs(10))?;
    let copied = checked_copy(&source, from, &moving)?;
    // Nothing writes to the old place while it moves, so the copy must hold every row.
    let want = table_rows(&source)?;
    if want != copied {
        return Err(StoreError::CopyFailed { from: from.to_path_buf(), to: moving, reason: format!("rows {want:?} against {copied:?}") });
    }
    let rows = copied.iter().map(|(_, n)| n).sum::<u64>();
    drop(source);
    std::fs::write(
        &note,
        format!(
            "Your inkling projects moved to {}.\nThis file is the copy they were made from ({} rows, checked); inkling no longer reads it.\nDelete it once you have checked your projects there.\n",
            to.display(),
            rows
        ),
    )
    .map_err(io(&note))?;
    std::fs::rename(&moving, to).map_err(io(to))?;
    if let Some(dir) = to.parent().filter(|d| !d.as_os_str().is_empty()) {
        // The rename is durable once the folder is.
        std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))?;
    }
    let kept = set_aside(from)?;
    Ok(Relocation::Moved { rows, kept })
}

/// Copies `source` (the database at `from`) into `partial` with the online backup API (a
/// stale file there is replaced), checks the copy with `integrity_check` and flushes it to
/// disk. Returns the copy's rows by table; `partial` is ready to be renamed into place.
pub(crate) fn checked_copy(source: &Connection, from: &Path, partial: &Path) -> Result<Vec<(String, u64)>> {
    for stale in [partial.to_path_buf(), sibling(partial, "-wal"), sibling(partial, "-shm")] {
        if stale.exists() {
            std::fs::remove_file(&stale).map_err(|error| StoreError::Io { path: stale.clone(), error })?;
        }
    }
    let mut copy = Connection::open(partial)?;
    rusqlite::backup::Backup::new(source, &mut copy)?.run_to_completion(256, std::time::Duration::from_millis(5), None)?;
    let verdict: String = copy.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
    if verdict != "ok" {
        return Err(StoreError::CopyFailed { from: from.to_path_buf(), to: partial.to_path_buf(), reason: format!("integrity check: {verdict}") });
    }
    let rows = table_rows(&copy)?;
    copy.close().map_err(|(_, e)| StoreError::from(e))?;
    std::fs::File::open(partial).and_then(|f| f.sync_all()).map_err(|error| StoreError::Io { path: partial.to_path_buf(), error })?;
    Ok(rows)
}

/// `path` with `suffix` appended to its file name.
pub(crate) fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(suffix);
    path.with_file_name(name)
}

/// Renames the old database (and its write-ahead log files) to `OLD.moved`.
fn set_aside(from: &Path) -> Result<PathBuf> {
    let kept = sibling(from, ".moved");
    for (a, b) in [(from.to_path_buf(), kept.clone()), (sibling(from, "-wal"), sibling(&kept, "-wal")), (sibling(from, "-shm"), sibling(&kept, "-shm"))] {
        if a.exists() {
            std::fs::rename(&a, &b).map_err(|error| StoreError::Io { path: a.clone(), error })?;
        }
    }
    Ok(kept)
}

/// Every table's row count, by name.
fn table_rows(conn: &Connection) -> Result<Vec<(String, u64)>> {
    let mut st = conn.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")?;
    let names: Vec<String> = st.query_map([], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?;
    names
        .into_iter()
        .map(|name| {
            let n: i64 = conn.query_row(&format!("SELECT count(*) FROM \"{}\"", name.replace('"', "\"\"")), [], |r| r.get(0))?;
            Ok((name, n as u64))
        })
        .collect()
}

/// All rows of all tables: what a copy is reported by.
fn count_rows(conn: &Connection) -> Result<u64> {
    Ok(table_rows(conn)?.iter().map(|(_, n)| n).sum())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Origin, Store};

    fn novel(path: &Path) -> i64 {
        let mut s = Store::open(path).unwrap();
        let p = s.create_project("Gull Rock").unwrap();
        let d = s.add_document(&p, "Chapter 1", "chapter", "The lamp went out.", Origin::Typed).unwrap();
        s.save(&d, "The lamp went out. 她笑了。", Origin::Typed).unwrap();
        d.id
    }

    fn chapter(path: &Path, doc: i64) -> String {
        let s = Store::open(path).unwrap();
        s.head(&s.document_by_id(doc).unwrap()).unwrap().text
    }

    #[test]
    fn a_database_moves_checked_and_the_old_one_is_kept_with_a_note() {
        let dir = tempfile::tempdir().unwrap();
        let (old, new) = (dir.path().join("cache/inkling.db"), dir.path().join("data/inkling/inkling.db"));
        let doc = novel(&old);
        let moved = relocate(&old, &new).unwrap();
        let Relocation::Moved { rows, kept } = moved else { panic!("{moved:?}") };
        assert!(rows >= 4, "{rows}");
        assert_eq!(chapter(&new, doc), "The lamp went out. 她笑了。");
        assert!(!old.exists() && kept.exists(), "the old file is renamed, never deleted");
        assert_eq!(chapter(&kept, doc), "The lamp went out. 她笑了。");
        let note = std::fs::read_to_string(dir.path().join("cache/inkling.db.moved.txt")).unwrap();
        assert!(note.contains(&new.display().to_string()), "{note}");
        assert_eq!(relocate(&old, &new).unwrap(), Relocation::Nothing);
    }

    #[test]
    fn a_move_interrupted_anywhere_loses_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (old, new) = (dir.path().join("old/inkling.db"), dir.path().join("new/inkling.db"));
        let doc = novel(&old);
        // Killed during the copy: a half-written copy lies beside the new place.
        std::fs::create_dir_all(new.parent().unwrap()).unwrap();
        std::fs::write(sibling(&new, ".moving"), b"SQLite format 3\0 half a page").unwrap();
        assert!(matches!(relocate(&old, &new).unwrap(), Relocation::Moved { .. }));
        assert_eq!(chapter(&new, doc), "The lamp went out. 她笑了。");

        // Killed after the copy was in place, before the old file was set aside.
        let dir = tempfile::tempdir().unwrap();
        let (old, new) = (dir.path().join("old/inkling.db"), dir.path().join("new/inkling.db"));
        let doc = novel(&old);
        relocate(&old, &new).unwrap();
        std::fs::rename(sibling(&old, ".moved"), &old).unwrap();
        assert!(matches!(relocate(&old, &new).unwrap(), Relocation::Moved { .. }), "the note says the new one is ours: finish");
        assert!(!old.exists() && sibling(&old, ".moved").exists());
        assert_eq!(chapter(&new, doc), "The lamp went out. 她笑了。");
    }

    #[test]
    fn two_databases_of_the_writers_own_are_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let (old, new) = (dir.path().join("a.db"), dir.path().join("b.db"));
        let (a, b) = (novel(&old), novel(&new));
        assert_eq!(relocate(&old, &new).unwrap(), Relocation::BothExist);
        assert!(old.exists() && new.exists());
        assert_eq!((chapter(&old, a), chapter(&new, b)), ("The lamp went out. 她笑了。".to_string(), "The lamp went out. 她笑了。".to_string()));
    }
}
