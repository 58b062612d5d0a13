//! The story pipeline on the command line, on a tiny model written by the test: stages
//! written by hand and generated, stale marks, locks that regeneration keeps, a chapter
//! drafted from its beats, a chapter marked done, its summary going stale, and that summary
//! in the next chapter's prompt.

use inkling_engine::testing::TinyModel;
use std::process::{Command, Output, Stdio};

struct Book {
    dir: tempfile::TempDir,
}

impl Book {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        TinyModel { context: 2048, ..TinyModel::default() }.write(&dir.path().join("tiny.gguf")).unwrap();
        std::fs::create_dir(dir.path().join("recipes")).unwrap();
        Book { dir }
    }

    fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_inkling"));
        cmd.env("INKLING_HOME", self.dir.path().join("home"))
            .env("INKLING_RECIPES", self.dir.path().join("recipes"))
            .env("INKLING_MODEL", self.dir.path().join("tiny.gguf"))
            .env("INKLING_DB", self.dir.path().join("book.db"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(stdin.unwrap_or("").as_bytes()).unwrap();
        }
        child.wait_with_output().unwrap()
    }

    fn ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let o = self.run(args, stdin);
        assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    }

    fn fails(&self, args: &[&str]) -> String {
        let o = self.run(args, None);
        assert!(!o.status.success(), "{args:?} should fail");
        String::from_utf8_lossy(&o.stderr).into_owned()
    }

    fn status(&self) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["project", "status", "Book", "--json"], None)).unwrap()
    }
}

fn stage<'a>(s: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    &s["stages"].as_array().unwrap().iter().find(|x| x["stage"] == name).unwrap()["document"]
}

#[test]
fn stages_go_stale_locks_hold_and_a_chapter_is_drafted_done_and_remembered() {
    let b = Book::new();
    b.ok(&["project", "new", "Book"], None);
    b.ok(&["project", "stage", "Book", "braindump", "-f", "-"], Some("A keeper, a storm, a smith who will not say where he is from."));
    b.ok(&["project", "stage", "Book", "synopsis", "-f", "-"], Some("Mara keeps the Gull Rock light alone until Oren washes ashore."));
    // A synopsis written by hand came from nothing, so it is never stale.
    assert_eq!(stage(&b.status(), "synopsis")["generated"], false);
    b.ok(&["project", "generate", "Book", "outline", "--count", "2", "--seed", "1"], None);
    let s = b.status();
    assert_eq!(stage(&s, "outline")["generated"], true);
    assert!(stage(&s, "outline")["stale"].is_null());
    // Editing the synopsis makes the outline stale; nothing is regenerated.
    let outline = b.ok(&["project", "stage", "Book", "outline"], None);
    b.ok(&["project", "stage", "Book", "synopsis", "-f", "-"], Some("Mara keeps the light; Oren is not who he says."));
    let s = b.status();
    assert!(stage(&s, "outline")["stale"].as_str().unwrap().contains("synopsis"), "{s}");
    assert_eq!(b.ok(&["project", "stage", "Book", "outline"], None), outline);
    assert!(b.ok(&["project", "status", "Book"], None).contains("STALE"));
    assert!(b.fails(&["project", "generate", "Book", "chapter", "--chapter", "1"]).contains("draft-chapter"));

    // An outline by hand; beats for chapter 1 create the chapter, titled after its entry.
    b.ok(&["project", "stage", "Book", "outline", "-f", "-"], Some("1. The Wreck: Oren washes ashore.\n2. The Storm: the lamp fails."));
    b.ok(&["project", "generate", "Book", "beats", "--chapter", "1", "--count", "3", "--seed", "2"], None);
    let s = b.status();
    assert_eq!(s["chapters"][0]["title"], "Chapter 1: The Wreck");
    assert!(s["chapters"][0]["beats"]["items"].as_u64().unwrap() >= 1, "{s}");

    // A locked beat is kept through regeneration, in its place.
    b.ok(&["project", "stage", "Book", "beats", "--chapter", "1", "-f", "-"], Some("1. Mara sees the wreck.\n2. She drags Oren up the stair.\n3. He will not say his name."));
    b.ok(&["project", "lock", "Book", "beats", "--chapter", "1", "--part", "2"], None);
    b.ok(&["project", "generate", "Book", "beats", "--chapter", "1", "--seed", "3"], None);
    let beats = b.ok(&["project", "stage", "Book", "beats", "--chapter", "1"], None);
    assert!(beats.lines().nth(1).unwrap().ends_with("She drags Oren up the stair."), "{beats}");
    assert!(b.fails(&["project", "lock", "Book", "beats", "--chapter", "1", "--part", "9"]).contains("numbered from 1"));
    b.ok(&["project", "lock", "Book", "outline"], None);
    assert!(b.fails(&["project", "generate", "Book", "outline"]).contains("locked"));
    b.ok(&["project", "unlock", "Book", "outline"], None);

    // Changing chapter 2's outline entry leaves chapter 1's beats fresh; its own makes them stale.
    b.ok(&["project", "stage", "Book", "outline", "-f", "-"], Some("1. The Wreck: Oren washes ashore.\n2. The Storm: the lamp fails twice."));
    assert!(b.status()["chapters"][0]["beats"]["stale"].is_null());
    b.ok(&["project", "stage", "Book", "outline", "-f", "-"], Some("1. The Wreck: Oren is found on the rocks.\n2. The Storm: the lamp fails twice."));
    assert!(b.status()["chapters"][0]["beats"]["stale"].as_str().unwrap().contains("outline entry"));

    // The chapter is drafted beat by beat, and never over the writer's text unasked.
    // (A random-weight model's prose rarely survives clean-up: then nothing is changed.)
    let o = b.run(&["project", "draft-chapter", "Book", "1", "--words-per-beat", "12", "--seed", "4"], None);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(err.contains("beats of about 12 words") && err.contains("beat 1:") && err.contains("beat 2:"), "{err}");
    let chapter = b.ok(&["project", "cat", "Book", "Chapter 1: The Wreck"], None);
    if o.status.success() {
        assert!(!chapter.trim().is_empty());
        assert!(b.fails(&["project", "draft-chapter", "Book", "1"]).contains("--replace"));
    } else {
        assert!(err.contains("nothing was changed") && chapter.trim().is_empty(), "{err}");
    }
    b.ok(&["project", "save", "Book", "Chapter 1: The Wreck"], Some("Mara saw the wreck at dawn."));
    assert!(b.fails(&["project", "draft-chapter", "Book", "1"]).contains("--replace"));
    b.ok(&["project", "stage", "Book", "chapter", "--chapter", "1", "-f", "-"], Some("Mara saw the wreck at dawn. She drags him up."));
    if o.status.success() {
        // Its beats changing makes the drafted chapter stale.
        b.ok(&["project", "stage", "Book", "beats", "--chapter", "1", "-f", "-"], Some("1. Mara sees the wreck.\n2. She drags Oren up the stair."));
        assert!(b.status()["chapters"][0]["stale"].as_str().unwrap().contains("beats"));
    }

    // Done marks the chapter (and summarizes it when the model can); a summary is of the
    // chapter as it was, and goes stale when the chapter changes.
    let o = b.run(&["project", "done", "Book", "1", "--seed", "5"], None);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(b.status()["chapters"][0]["done"], true);
    let summary = "Mara finds Oren on the rocks and carries him up the stair of the light.";
    b.ok(&["project", "stage", "Book", "summary", "--chapter", "1", "-f", "-"], Some(summary));
    assert!(b.status()["chapters"][0]["summary"]["stale"].is_null());
    b.ok(&["project", "save", "Book", "Chapter 1: The Wreck"], Some("Mara found him at dawn."));
    assert!(b.status()["chapters"][0]["summary"]["stale"].as_str().unwrap().contains("chapter"));
    let o = b.run(&["continue", "The lamp guttered.", "--project", "Book", "--chapter", "2", "--show-prompt", "--max-tokens", "4"], None);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("summary: chapter 1") && err.contains(summary), "{err}");

    // The binder: rename and move; exports are the manuscript alone.
    b.ok(&["project", "rename", "Book", "Chapter 1: The Wreck", "Chapter 1: Found"], None);
    b.ok(&["project", "stage", "Book", "beats", "--chapter", "2", "-f", "-"], Some("1. The lamp fails."));
    let order = b.ok(&["project", "move", "Book", "Chapter 2: The Storm", "1"], None);
    assert!(order.find("Chapter 2: The Storm").unwrap() < order.find("Chapter 1: Found").unwrap(), "{order}");
    let md = b.dir.path().join("book.md");
    b.ok(&["project", "export", "Book", "--format", "md", "-o", md.to_str().unwrap()], None);
    let md = std::fs::read_to_string(md).unwrap();
    assert!(md.contains("Mara found him at dawn.") && !md.contains("Oren is found on the rocks") && !md.contains(summary), "{md}");
}
