//! The editor's binder drafting a chapter from its beats over HTTP, on the small real model
//! (a random-weight model's prose never survives the draft tool's clean-up). CI fetches it;
//! elsewhere this skips with a note unless INKLING_REQUIRE_REAL_MODEL is set.

mod common;

use common::Server;
use serde_json::json;
use std::process::Command;

#[test]
fn the_binder_drafts_a_chapter_beat_by_beat_and_only_over_words_when_asked() {
    let m = inkling_catalog::find(inkling_catalog::SMALL_MODEL).unwrap();
    if !m.is_present_in(&inkling_engine::testing::models_dir()) {
        assert!(std::env::var("INKLING_REQUIRE_REAL_MODEL").is_err(), "the small real model is missing; run `inkling model pull smollm2-135m-instruct`");
        eprintln!("skipping: {} is not fetched", m.name);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(
        Command::new(env!("CARGO_BIN_EXE_inkling"))
            .args(["--model", m.path_in(&inkling_engine::testing::models_dir()).to_str().unwrap(), "serve", "--port", "0", "--db"])
            .arg(dir.path().join("inkling.db")),
    );
    assert_eq!(s.call("POST", "/api/projects", Some(json!({"name": "Saga"}))).0, 201);
    let p = "/api/projects/Saga";
    s.call("PUT", &format!("{p}/book/synopsis"), Some(json!({"text": "Mara keeps the lighthouse on a cold northern island. One night a ship breaks on the rocks."})));
    s.call("PUT", &format!("{p}/book/outline"), Some(json!({"text": "1. The Wreck: a sailor, Oren, washes ashore.\n2. The Storm: the lamp fails."})));
    s.call("PUT", &format!("{p}/book/beats"), Some(json!({"chapter": 1, "text": "1. Mara sees the wreck from the lamp room.\n2. She drags Oren up the stair."})));

    let (status, drafted) = s.call("POST", &format!("{p}/chapters/1/draft"), Some(json!({"words_per_beat": 30, "seed": 1})));
    assert_eq!(status, 200, "{drafted}");
    let text = drafted["text"].as_str().unwrap();
    eprintln!("drafted {:?} words a beat:\n{text}", drafted["beats"]);
    assert_eq!(drafted["beats"].as_array().unwrap().len(), 2, "{drafted}");
    assert!(inkling_craft::pipeline::words(text) >= 10, "{text}");
    let chapter = &drafted["status"]["chapters"][0];
    assert_eq!(chapter["title"], "Chapter 1: The Wreck");
    assert_eq!(chapter["words"], json!(inkling_craft::pipeline::words(text)));
    let (_, report) = s.call("GET", &format!("{p}/report"), None);
    assert!(report["total"]["model"].as_u64().unwrap() > 0, "the draft is the model's text in the ledger: {report}");

    // Not over words already there unless asked; asked, the old draft stays in the history.
    let id = drafted["document"]["id"].as_i64().unwrap();
    let revisions = |s: &Server| s.call("GET", &format!("{p}/documents/{id}/revisions"), None).1["revisions"].as_array().map_or(0, Vec::len);
    let before = revisions(&s);
    let (status, refused) = s.call("POST", &format!("{p}/chapters/1/draft"), Some(json!({"words_per_beat": 30, "seed": 2})));
    assert_eq!(status, 409, "{refused}");
    let (status, redrafted) = s.call("POST", &format!("{p}/chapters/1/draft"), Some(json!({"words_per_beat": 30, "seed": 2, "replace": true})));
    assert_eq!(status, 200, "{redrafted}");
    assert_eq!(redrafted["document"]["id"], id);
    assert_eq!(revisions(&s), before + 1, "the redraft is a new revision over the old draft");
}
