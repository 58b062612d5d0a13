//! `inkling project ...` end to end on a temporary database.

use std::path::Path;
use std::process::{Command, Output, Stdio};

fn run(db: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_inkling"));
    cmd.arg("project").arg("--db").arg(db).args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).stdin(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    if let Some(s) = stdin {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
    } else {
        drop(child.stdin.take());
    }
    child.wait_with_output().unwrap()
}

fn ok(o: Output) -> String {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap()
}

#[test]
fn import_edit_undo_redo_restore_report_and_export() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("p.db");
    let src = dir.path().join("novel.md");
    std::fs::write(&src, "# One\nThe mill wheel turned.\n\n# Two\n那年冬天。\n").unwrap();
    let out = ok(run(&db, &["import", "Mill", src.to_str().unwrap(), "--split"], None));
    assert!(out.contains("imported 2 document(s)"), "{out}");
    ok(run(&db, &["save", "Mill", "One"], Some("The mill wheel turned. Nobody slept.")));
    assert_eq!(ok(run(&db, &["cat", "Mill", "One"], None)), "The mill wheel turned. Nobody slept.");
    ok(run(&db, &["undo", "Mill", "One"], None));
    assert_eq!(ok(run(&db, &["cat", "Mill", "1"], None)), "The mill wheel turned.");
    ok(run(&db, &["redo", "Mill", "One"], None));
    assert_eq!(ok(run(&db, &["cat", "Mill", "One"], None)), "The mill wheel turned. Nobody slept.");
    let h: Vec<serde_json::Value> = serde_json::from_str(&ok(run(&db, &["history", "Mill", "One", "--json"], None))).unwrap();
    assert_eq!(h.len(), 2);
    let first = h[0]["id"].as_i64().unwrap().to_string();
    ok(run(&db, &["restore", "Mill", "One", &first], None));
    assert_eq!(ok(run(&db, &["cat", "Mill", "One"], None)), "The mill wheel turned.");
    assert_eq!(serde_json::from_str::<Vec<serde_json::Value>>(&ok(run(&db, &["history", "Mill", "One", "--json"], None))).unwrap().len(), 3);
    let report: serde_json::Value = serde_json::from_str(&ok(run(&db, &["report", "Mill", "--json"], None))).unwrap();
    assert_eq!(report["total"]["model"], 0);
    assert!(ok(run(&db, &["report", "Mill"], None)).contains("whole project"));
    let show = ok(run(&db, &["show", "Mill"], None));
    assert!(show.contains("1. One") && show.contains("2. Two"), "{show}");
    let epub = dir.path().join("mill.epub");
    ok(run(&db, &["export", "Mill", "--format", "epub", "-o", epub.to_str().unwrap()], None));
    assert!(std::fs::metadata(&epub).unwrap().len() > 500);
    assert!(ok(run(&db, &["list"], None)).contains("Mill"));
}

#[test]
fn project_errors_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("p.db");
    let o = run(&db, &["show", "Nope"], None);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("no project named `Nope`"));
    ok(run(&db, &["new", "A"], None));
    let o = run(&db, &["new", "A"], None);
    assert!(String::from_utf8_lossy(&o.stderr).contains("already exists"));
    let o = run(&db, &["undo", "A", "missing"], None);
    assert!(String::from_utf8_lossy(&o.stderr).contains("has no document `missing`"));
    let o = run(&db, &["export", "A", "--format", "pdf", "-o", "x.pdf"], None);
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown format"));
}

/// Manuscripts left in the cache folder by an older inkling move to the data folder on first
/// run, checked, with the old file kept; every command then opens the new place.
#[test]
fn projects_move_out_of_the_cache_folder_on_first_run() {
    let dir = tempfile::tempdir().unwrap();
    let (cache, data) = (dir.path().join("cache"), dir.path().join("data"));
    let inkling = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_inkling"))
            .env("HOME", dir.path())
            .env("XDG_CACHE_HOME", &cache)
            .env("XDG_DATA_HOME", &data)
            .env_remove("INKLING_HOME")
            .env_remove("INKLING_DB")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    // Where an older inkling kept them.
    let old = cache.join("inkling/inkling.db");
    ok(run(&old, &["new", "Mill"], None));
    ok(run(&old, &["save", "Mill", "One"], Some("The mill wheel turned.")));

    let o = inkling(&["project", "list"]);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(ok(o).contains("Mill"));
    let new = data.join("inkling/inkling.db");
    assert!(err.contains("moved your projects") && err.contains(&new.display().to_string()), "{err}");
    assert!(new.exists() && !old.exists() && cache.join("inkling/inkling.db.moved").exists());
    assert!(std::fs::read_to_string(cache.join("inkling/inkling.db.moved.txt")).unwrap().contains(&new.display().to_string()));
    // Once moved, quietly the new place, for every command.
    let o = inkling(&["project", "cat", "Mill", "One"]);
    assert!(String::from_utf8_lossy(&o.stderr).is_empty(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(ok(o), "The mill wheel turned.");
}

#[test]
fn a_backup_comes_back_and_the_restore_keeps_what_was_there() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("p.db");
    ok(run(&db, &["save", "Mill", "One"], Some("The wheel turned.")));
    let copy = dir.path().join("mill.backup");
    assert!(ok(run(&db, &["backup", "--to", copy.to_str().unwrap()], None)).contains("backed up"));
    let again = run(&db, &["backup", "--to", copy.to_str().unwrap()], None);
    assert!(!again.status.success() && String::from_utf8_lossy(&again.stderr).contains("never overwrites"), "{}", String::from_utf8_lossy(&again.stderr));
    ok(run(&db, &["save", "Mill", "One"], Some("The wheel turned. Then it stopped.")));
    let out = ok(run(&db, &["restore-backup", copy.to_str().unwrap()], None));
    assert!(out.contains("before-restore"), "{out}");
    assert_eq!(ok(run(&db, &["cat", "Mill", "One"], None)), "The wheel turned.");
}
