//! The store's behaviour: revisions, undo/redo/restore, authorship, the generation tree,
//! import/export and every bad input the issue lists.

use inkling_store::export::Format;
use inkling_store::generations::{NewGeneration, Status};
use inkling_store::{Origin, Store, StoreError};
use std::io::Read;

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&dir.path().join("inkling.db")).unwrap();
    (dir, s)
}

fn accepted(g: Option<i64>) -> Origin {
    Origin::Accepted { tool: "continue".into(), model: "smollm2".into(), seed: 7, generation: g }
}

#[test]
fn undo_and_redo_walk_every_kind_of_change_and_restore_keeps_newer_revisions() {
    let (_d, mut s) = store();
    let p = s.create_project("Novel").unwrap();
    let doc = s.add_document(&p, "Chapter 1", "chapter", "It was dark.", Origin::Typed).unwrap();
    let r2 = s.save(&doc, "It was dark. The wind howled.", accepted(None)).unwrap();
    let r3 = s.save(&doc, "It was very dark. The wind howled.", Origin::Typed).unwrap();
    assert_eq!(s.undo(&doc).unwrap().id, r2.id, "undo covers the writer's typing");
    assert_eq!(s.undo(&doc).unwrap().text, "It was dark.", "and the accepted suggestion");
    assert!(matches!(s.undo(&doc), Err(StoreError::NothingTo("undo"))));
    assert_eq!(s.redo(&doc).unwrap().id, r2.id);
    assert_eq!(s.redo(&doc).unwrap().id, r3.id);
    assert!(matches!(s.redo(&doc), Err(StoreError::NothingTo("redo"))));
    // Restoring the first revision adds a revision; nothing is deleted.
    let first = s.history(&doc).unwrap()[0].id;
    let restored = s.restore(&doc, first).unwrap();
    assert_eq!(restored.text, "It was dark.");
    let h = s.history(&doc).unwrap();
    assert_eq!(h.len(), 4);
    assert!(h.iter().any(|r| r.id == r3.id));
    assert!(h.last().unwrap().is_head);
    // Undo after a restore goes back to the text before it.
    assert_eq!(s.undo(&doc).unwrap().id, r3.id);
    // Saving after an undo branches; the abandoned branch is still in history.
    s.undo(&doc).unwrap();
    let branch = s.save(&doc, "It was dark. Rain fell.", Origin::Typed).unwrap();
    assert_eq!(branch.parent_id, Some(r2.id));
    assert!(s.revision(r3.id).is_ok());
    // Saving identical text is not a new revision.
    assert_eq!(s.save(&doc, "It was dark. Rain fell.", Origin::Typed).unwrap().id, branch.id);
}

#[test]
fn the_ledger_and_report_show_who_wrote_what() {
    let (_d, mut s) = store();
    let p = s.create_project("Story").unwrap();
    let doc = s.add_document(&p, "One", "chapter", "She opened the door.", Origin::Typed).unwrap();
    let g = s
        .record_generation(
            &p,
            &NewGeneration {
                document_id: Some(doc.id),
                parent_id: None,
                recipe: "continue".into(),
                model: "smollm2".into(),
                request: serde_json::json!({"prompt": "She opened the door."}),
                sampling: serde_json::json!({"temperature": 0.8}),
                seed: 7,
                text: " The room was dark.".into(),
                timings: serde_json::json!({}),
                tokens: None,
            },
        )
        .unwrap();
    let rev = s.accept(&doc, g.id, "She opened the door. The room was dark.").unwrap();
    assert_eq!(rev.ledger.share().model, 19);
    assert_eq!(s.generation(g.id).unwrap().status, Status::Accepted);
    s.save(&doc, "She opened the door. The room was very dark.", Origin::Typed).unwrap();
    s.set_status(g.id, Status::Edited, "added 'very'").unwrap();
    let two = s.add_document(&p, "Two", "chapter", "第二章。", Origin::Typed).unwrap();
    let _ = two;
    let report = s.report(&p).unwrap();
    assert_eq!(report.documents.len(), 2);
    let one = &report.documents[0].share;
    assert_eq!((one.writer, one.model, one.model_edited), (20 + 5, 0, 19));
    assert_eq!(report.total.total(), 44 + 4);
    let fb = s.feedback(&p).unwrap();
    assert_eq!(fb.iter().map(|f| f.1.as_str()).collect::<Vec<_>>(), ["accepted", "edited_after_accept"]);
}

#[test]
fn the_generation_tree_keeps_alternatives_as_siblings() {
    let (_d, mut s) = store();
    let p = s.create_project("Loom").unwrap();
    let mk = |parent: Option<i64>, text: &str, seed: u64| NewGeneration {
        document_id: None,
        parent_id: parent,
        recipe: "continue".into(),
        model: "m".into(),
        request: serde_json::json!({"n": 3}),
        sampling: serde_json::json!({}),
        seed,
        text: text.into(),
        timings: serde_json::json!({"decode_ms": 12.5}),
        tokens: None,
    };
    let root = s.record_generation(&p, &mk(None, "A", 1)).unwrap();
    for (i, t) in ["B1", "B2", "B3"].iter().enumerate() {
        s.record_generation(&p, &mk(Some(root.id), t, 10 + i as u64)).unwrap();
    }
    let kids = s.children(&p, Some(root.id)).unwrap();
    assert_eq!(kids.iter().map(|k| k.generation.text.as_str()).collect::<Vec<_>>(), ["B1", "B2", "B3"]);
    assert_eq!(kids[1].generation.seed, 11, "enough to regenerate reproducibly");
    assert_eq!(s.children(&p, None).unwrap().len(), 1);
    s.set_status(kids[0].id, Status::Rejected, "").unwrap();
    assert_eq!(s.generation(kids[0].id).unwrap().status, Status::Rejected);
    assert!(matches!(s.generation(999), Err(StoreError::NoGeneration(999))));

    // A branch from an alternative is a child that keeps its tokens; the whole tree comes
    // back in one read, each node naming its parent.
    let tokens = serde_json::json!([{"text": "B", "logprob": -0.1, "top": [{"text": "C", "logprob": -2.0, "whole": true}]}]);
    let branch = s.record_generation(&p, &NewGeneration { tokens: Some(tokens.clone()), ..mk(Some(kids[1].id), "B2 then C", 12) }).unwrap();
    assert_eq!(s.generation(branch.id).unwrap().generation.tokens, Some(tokens));
    assert_eq!(s.generation(root.id).unwrap().generation.tokens, None);
    let tree = s.generation_tree(&p, None).unwrap();
    assert_eq!(tree.len(), 5);
    assert_eq!(tree.last().unwrap().generation.parent_id, Some(kids[1].id));
    assert!(s.generation_tree(&p, Some(12345)).unwrap().is_empty(), "only the document's");
}

#[test]
fn lore_rules_and_the_lorebook_state_are_kept() {
    let (_d, mut s) = store();
    let p = s.create_project("Lore").unwrap();
    let rules: serde_json::Map<String, serde_json::Value> = serde_json::from_str(r#"{"sticky": 2, "from_chapter": 15}"#).unwrap();
    s.put_lore_entry(&p, "character", "Oren", &["the smith".into()], "A smith.", &rules).unwrap();
    s.put_bible_entry(&p, "place", "Vale", &[], "A valley.").unwrap();
    // The editor's form knows only kind, name, keys and body: saving it keeps the rules.
    s.put_bible_entry(&p, "character", "Oren", &["the smith".into()], "A smith, 50.").unwrap();
    let b = s.bible(&p).unwrap();
    assert_eq!(b.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(), ["Oren", "Vale"], "filing order");
    assert_eq!((b[0].body.as_str(), &b[0].rules), ("A smith, 50.", &rules));
    assert!(b[1].rules.is_empty());
    s.put_lore_entry(&p, "character", "Oren", &[], "A smith.", &serde_json::Map::new()).unwrap();
    assert!(s.bible(&p).unwrap()[0].rules.is_empty(), "rules given are rules set, even none");
    let state: serde_json::Map<String, serde_json::Value> = serde_json::from_str(r#"{"state": {"generation": 4}}"#).unwrap();
    s.set_lorebook(&p, &state).unwrap();
    assert_eq!(s.project("Lore").unwrap().lorebook, state);
}

#[test]
fn the_pipeline_keeps_stages_beats_summaries_locks_and_done_apart_from_the_manuscript() {
    let (_d, mut s) = store();
    let p = s.create_project("Book").unwrap();
    let ch1 = s.add_document(&p, "Chapter 1", "chapter", "Mara lit the lamp.", Origin::Typed).unwrap();
    let notes = s.add_document(&p, "Notes", "notes", "ideas", Origin::Typed).unwrap();
    assert!(s.stage(&p, "synopsis").unwrap().is_none());
    let brain = s.put_pipeline(&p, "braindump", None, "a keeper, a storm", Origin::Typed, None).unwrap();
    let brain_rev = s.head(&brain).unwrap().id;
    let syn = s.put_pipeline(&p, "synopsis", None, "Mara keeps the light.", accepted(None), Some(brain_rev)).unwrap();
    assert_eq!((syn.title.as_str(), syn.made_from), ("Synopsis", Some(brain_rev)));
    // A hand edit is a new revision of the same document and keeps where it came from.
    let syn2 = s.put_pipeline(&p, "synopsis", None, "Mara keeps the light alone.", Origin::Typed, None).unwrap();
    assert_eq!((syn2.id, syn2.made_from), (syn.id, Some(brain_rev)));
    assert_eq!(s.history(&syn2).unwrap().len(), 2);
    let beats = s.put_pipeline(&p, "beats", Some(&ch1), "1. Dusk.\n2. Storm.", accepted(None), None).unwrap();
    assert_eq!(beats.title, "Chapter 1 beats");
    assert_eq!(beats.of_document, Some(ch1.id));
    assert_eq!(s.chapter_part(&ch1, "beats").unwrap().unwrap().id, beats.id);
    assert!(s.chapter_part(&ch1, "summary").unwrap().is_none());
    // The manuscript is the chapters and notes only: exports and reports stay the book.
    let titles: Vec<String> = s.documents(&p).unwrap().into_iter().map(|d| d.title).collect();
    assert_eq!(titles, ["Chapter 1", "Notes"]);
    assert_eq!(s.chapters(&p).unwrap().len(), 1);
    assert_eq!(s.report(&p).unwrap().documents.len(), 2);
    // Titles still find the pipeline's documents, and stay unique across both.
    assert_eq!(s.document(&p, "Synopsis").unwrap().id, syn.id);
    assert!(matches!(s.rename_document(&notes, "Synopsis"), Err(StoreError::TitleTaken(_))));
    assert_eq!(s.rename_document(&notes, "World notes").unwrap().title, "World notes");
    // Locks and done survive a reopen.
    let locks = inkling_store::Locks { whole: false, parts: [1].into() };
    s.set_locks(&beats, &locks).unwrap();
    s.set_done(&ch1, true).unwrap();
    let path = s.path().to_path_buf();
    drop(s);
    let s = Store::open(&path).unwrap();
    assert_eq!(s.document_by_id(beats.id).unwrap().locks, locks);
    assert!(s.document_by_id(ch1.id).unwrap().done);
    assert!(matches!(s.stage(&p, "act"), Err(StoreError::UnknownKind { .. })));
}

#[test]
fn bible_memory_authors_note_and_document_order() {
    let (_d, mut s) = store();
    let p = s.create_project("World").unwrap();
    s.put_bible_entry(&p, "character", "Mara", &["Mara".into(), "the keeper".into()], "Lighthouse keeper, 40.").unwrap();
    s.put_bible_entry(&p, "character", "Mara", &["Mara".into()], "Lighthouse keeper, 41.").unwrap();
    let b = s.bible(&p).unwrap();
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].body, "Lighthouse keeper, 41.");
    s.set_memory(&p, "Set in 1890s Cornwall.").unwrap();
    s.set_authors_note(&p, "Keep it eerie.", 2).unwrap();
    let p = s.project("World").unwrap();
    assert_eq!((p.memory.as_str(), p.authors_note.as_str(), p.authors_note_depth), ("Set in 1890s Cornwall.", "Keep it eerie.", 2));
    for t in ["A", "B", "C"] {
        s.add_document(&p, t, "chapter", t, Origin::Typed).unwrap();
    }
    let c = s.document(&p, "C").unwrap();
    s.move_document(&c, 0).unwrap();
    let order: Vec<String> = s.documents(&p).unwrap().into_iter().map(|d| d.title).collect();
    assert_eq!(order, ["C", "A", "B"]);
    assert_eq!(s.document(&p, "2").unwrap().title, "A", "documents by 1-based place");
    s.delete_bible_entry(b[0].id).unwrap();
    assert!(s.bible(&p).unwrap().is_empty());
}

#[test]
fn import_splits_and_export_writes_real_containers() {
    let (dir, mut s) = store();
    let p = s.create_project("Book").unwrap();
    let src = dir.path().join("book.md");
    std::fs::write(&src, "# Chapter One\nIt began & ended.\n\nSecond <para>.\n\n# 第二章\n他回来了。\n").unwrap();
    let docs = s.import_file(&p, &src, true).unwrap();
    assert_eq!(docs.iter().map(|d| d.title.as_str()).collect::<Vec<_>>(), ["Chapter One", "第二章"]);
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let md = s.export(&p, Format::Markdown, &out, "book.md").unwrap();
    let text = std::fs::read_to_string(md).unwrap();
    assert!(text.contains("## 第二章") && text.contains("It began & ended."));
    let epub = s.export(&p, Format::Epub, &out, "book.epub").unwrap();
    let bytes = std::fs::read(&epub).unwrap();
    // EPUB: a zip whose first entry is the uncompressed "mimetype".
    assert_eq!(&bytes[0..2], b"PK");
    assert_eq!(&bytes[30..38], b"mimetype");
    assert_eq!(&bytes[38..58], b"application/epub+zip");
    epubcheck(&epub);
    let docx = s.export(&p, Format::Docx, &out, "book.docx").unwrap();
    let bytes = std::fs::read(&docx).unwrap();
    assert_eq!(&bytes[0..2], b"PK");
    let s_bytes = String::from_utf8_lossy(&bytes);
    assert!(s_bytes.contains("word/document.xml"));
    let txt = s.export(&p, Format::Text, &out, "book.txt").unwrap();
    let mut t = String::new();
    std::fs::File::open(txt).unwrap().read_to_string(&mut t).unwrap();
    assert!(t.starts_with("Chapter One\n\nIt began"));
    assert!(matches!(s.export(&p, Format::Epub, &out, "../escape.epub"), Err(StoreError::PathEscapes(_))));
}

#[test]
fn bad_import_files_are_named_and_nothing_is_added() {
    let (dir, mut s) = store();
    let p = s.create_project("P").unwrap();
    let e = s.export(&p, Format::Epub, dir.path(), "empty.epub").unwrap_err();
    assert!(e.to_string().contains("no documents yet"), "{e}");
    let gbk = dir.path().join("gbk.txt");
    std::fs::write(&gbk, [0xC4, 0xE3, 0xBA, 0xC3, b'\n']).unwrap();
    let e = s.import_file(&p, &gbk, false).unwrap_err();
    assert!(matches!(e, StoreError::NotUtf8 { .. }), "{e}");
    assert!(e.to_string().contains("iconv"));
    let bin = dir.path().join("pic.txt");
    std::fs::write(&bin, [0x89, b'P', b'N', b'G', 0, 0, 0, 13]).unwrap();
    assert!(s.import_file(&p, &bin, false).unwrap_err().to_string().contains("binary"));
    let pdf = dir.path().join("book.pdf");
    std::fs::write(&pdf, b"%PDF").unwrap();
    assert!(s.import_file(&p, &pdf, false).unwrap_err().to_string().contains(".pdf"));
    assert!(matches!(s.import_file(&p, &dir.path().join("missing.txt"), false), Err(StoreError::Io { .. })));
    assert!(s.documents(&p).unwrap().is_empty());
    assert!(matches!(s.project("nope"), Err(StoreError::NoProject(_))));
    assert!(matches!(s.create_project("P"), Err(StoreError::ProjectExists(_))));
}

#[test]
fn a_full_disk_loses_only_the_change_that_did_not_fit() {
    let (_d, mut s) = store();
    let p = s.create_project("Full").unwrap();
    let doc = s.add_document(&p, "One", "chapter", "Saved text.", Origin::Typed).unwrap();
    let pages: i64 = 64;
    s.limit_pages_for_tests(pages).unwrap();
    let huge = "word ".repeat(200_000);
    let e = s.save(&doc, &huge, Origin::Pasted).unwrap_err();
    assert!(matches!(e, StoreError::DiskFull), "{e}");
    assert!(e.to_string().contains("disk is full"));
    assert_eq!(s.head(&doc).unwrap().text, "Saved text.");
    assert_eq!(s.integrity_check().unwrap(), "ok");
}

#[test]
fn a_read_only_database_is_readable_and_refuses_writes_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ro.db");
    {
        let mut s = Store::open(&path).unwrap();
        let p = s.create_project("Kept").unwrap();
        s.add_document(&p, "One", "chapter", "Text.", Origin::Typed).unwrap();
    }
    let mut perms = std::fs::metadata(&path).unwrap().permissions();
    perms.set_readonly(true);
    std::fs::set_permissions(&path, perms).unwrap();
    let mut s = Store::open(&path).unwrap();
    let p = s.project("Kept").unwrap();
    let doc = s.document(&p, "One").unwrap();
    assert_eq!(s.head(&doc).unwrap().text, "Text.");
    let e = s.save(&doc, "New", Origin::Typed).unwrap_err();
    assert!(matches!(e, StoreError::ReadOnly(_)), "{e}");
    assert!(e.to_string().contains("read-only"));
}

#[test]
fn a_database_from_a_newer_inkling_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.db");
    write_newer_database(&path);
    let before = std::fs::read(&path).unwrap();
    let e = Store::open(&path).err().unwrap();
    assert!(matches!(e, StoreError::NewerSchema { found: 99, .. }), "{e}");
    assert!(e.to_string().contains("newer inkling"));
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

/// Writes a database whose schema version is 99 without going through `Store`.
fn write_newer_database(path: &std::path::Path) {
    // A minimal SQLite file: let the store create it, then bump the version in the header
    // (bytes 60..64 hold user_version, big-endian).
    {
        Store::open(path).unwrap();
    }
    let mut bytes = std::fs::read(path).unwrap();
    bytes[60..64].copy_from_slice(&99u32.to_be_bytes());
    std::fs::write(path, bytes).unwrap();
    for ext in ["db-wal", "db-shm"] {
        let _ = std::fs::remove_file(path.with_extension(ext));
    }
}

#[test]
fn concurrent_writers_never_see_database_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    {
        let mut s = Store::open(&path).unwrap();
        let p = s.create_project("Shared").unwrap();
        for i in 0..4 {
            s.add_document(&p, &format!("Doc {i}"), "chapter", "", Origin::Typed).unwrap();
        }
    }
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let path = path.clone();
            std::thread::spawn(move || {
                let mut s = Store::open(&path).unwrap();
                let p = s.project("Shared").unwrap();
                let doc = s.document(&p, &format!("Doc {i}")).unwrap();
                for n in 0..40 {
                    s.save(&doc, &format!("revision {n} from writer {i}"), Origin::Typed).unwrap();
                    let _ = s.report(&p).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let s = Store::open(&path).unwrap();
    let p = s.project("Shared").unwrap();
    for d in s.documents(&p).unwrap() {
        assert_eq!(s.history(&d).unwrap().len(), 41);
    }
}

/// Validates an EPUB with epubcheck (Debian's package; `.ci/run` installs it and sets
/// INKLING_REQUIRE_EPUBCHECK=1 so this cannot skip in CI).
fn epubcheck(path: &std::path::Path) {
    let jar = std::path::Path::new("/usr/share/java/epubcheck.jar");
    if !jar.exists() {
        assert!(std::env::var("INKLING_REQUIRE_EPUBCHECK").is_err(), "epubcheck is required but not installed");
        eprintln!("skipping epubcheck: not installed (apt-get install epubcheck)");
        return;
    }
    let o = std::process::Command::new("java").arg("-jar").arg(jar).arg(path).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success() && text.contains("No errors or warnings"), "epubcheck rejected the EPUB:\n{text}");
}

#[test]
fn the_voice_profile_is_built_from_the_writers_own_text_only() {
    let (_d, mut s) = store();
    let p = s.create_project("Voice").unwrap();
    let mine = "The rain came down on the harbour; she waited by the boats and counted them. ".repeat(40);
    let doc = s.add_document(&p, "Chapter 1", "chapter", &mine, Origin::Typed).unwrap();
    // A suggestion accepted as it came, and one the writer then cut into: neither is theirs.
    let model = " Suddenly, a mysterious figure emerged from the shadows, his eyes gleaming with ancient secrets.";
    s.save(&doc, &format!("{mine}{model}"), accepted(None)).unwrap();
    let edited = format!("{mine}{}", model.replace("ancient ", ""));
    s.save(&doc, &edited, Origin::Typed).unwrap();
    // Pipeline documents are notes about the book, not its prose.
    s.put_pipeline(&p, "synopsis", None, "A synopsis of the book, in the writer's words but not the book's.", Origin::Typed, None).unwrap();
    let own = s.writers_own_text(&p).unwrap().concat();
    assert_eq!(own, mine);

    assert!(s.voice(&p).unwrap().is_none());
    let built = s.build_voice(&p).unwrap();
    assert_eq!(built.profile.units, mine.split_whitespace().count());
    let kept = s.voice(&p).unwrap().expect("kept");
    assert_eq!((kept.built_at, kept.profile.units), (built.built_at, built.profile.units));
    s.clear_voice(&p).unwrap();
    assert!(s.voice(&p).unwrap().is_none());

    let short = s.create_project("Short").unwrap();
    s.add_document(&short, "Chapter 1", "chapter", "Only a little of my own.", Origin::Typed).unwrap();
    let err = s.build_voice(&short).unwrap_err();
    assert!(err.to_string().contains("at least 480 words"), "{err}");
}

#[test]
fn the_writers_choices_become_preference_pairs() {
    use inkling_store::preferences::PairKind;
    let (_d, mut s) = store();
    let p = s.create_project("Choices").unwrap();
    let story = "She opened the door.";
    let doc = s.add_document(&p, "One", "chapter", story, Origin::Typed).unwrap();
    let candidate = |text: &str| NewGeneration {
        document_id: Some(doc.id),
        parent_id: None,
        recipe: "continue".into(),
        model: "tiny".into(),
        request: serde_json::json!({"text": story, "n": 3}),
        sampling: serde_json::json!({}),
        seed: 7,
        text: text.into(),
        timings: serde_json::json!({}),
        tokens: None,
    };
    let run: Vec<i64> = [" The room was dark.", " Suddenly, a dragon.", " A cold draught met her."].iter().map(|t| s.record_generation(&p, &candidate(t)).unwrap().id).collect();
    // Another run (another seed) with nothing accepted makes no pairs.
    s.record_generation(&p, &NewGeneration { seed: 8, ..candidate(" Nothing.") }).unwrap();
    s.accept(&doc, run[0], "She opened the door. The room was dark.").unwrap();
    s.set_status(run[1], Status::Rejected, "").unwrap();
    let pairs = s.feedback_pairs(&p).unwrap();
    assert_eq!(pairs.len(), 2, "{pairs:?}");
    assert!(pairs.iter().all(|x| x.kind == PairKind::AcceptedOverSibling && x.chosen == " The room was dark." && x.prompt == story));
    let rejected: Vec<&str> = pairs.iter().map(|x| x.rejected.as_str()).collect();
    assert_eq!(rejected, [" Suddenly, a dragon.", " A cold draught met her."]);

    // The writer edits the accepted words: their version is preferred to the model's.
    s.save(&doc, "She opened the door. The room was very dark.", Origin::Typed).unwrap();
    let pairs = s.feedback_pairs(&p).unwrap();
    let edit = pairs.iter().find(|x| x.kind == PairKind::EditedAfterAccept).expect("an edit pair");
    assert_eq!((edit.chosen.trim(), edit.rejected.as_str(), edit.generation), ("The room was very dark.", " The room was dark.", run[0]));
}

#[test]
fn the_change_stamp_moves_with_every_write_from_any_connection() {
    let (d, mut s) = store();
    let p = s.create_project("Novel").unwrap();
    let before = s.change_stamp().unwrap();
    assert_eq!(s.change_stamp().unwrap(), before, "reading changes nothing");
    let doc = s.add_document(&p, "Chapter 1", "chapter", "It was dark.", Origin::Typed).unwrap();
    let after_own = s.change_stamp().unwrap();
    assert_ne!(after_own, before, "a write through this connection");
    // A write by another process (the CLI beside the editor) is seen too.
    let mut other = Store::open(&d.path().join("inkling.db")).unwrap();
    other.save(&doc, "It was dark. The wind howled.", Origin::Typed).unwrap();
    assert_ne!(s.change_stamp().unwrap(), after_own, "a write through another connection");
}
