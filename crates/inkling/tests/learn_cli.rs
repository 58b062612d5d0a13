//! "Learn from my choices" end to end, as the editor drives it: `inkling serve` as a real
//! process on a tiny random-weight model, a writer's accepts over HTTP, a DPO training in the
//! background with its progress, the project's generations made through the adapter once it
//! is ready (and filed as such), and the adapter forgotten on request.

mod common;

use common::Server;
use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn serve(dir: &Path) -> Server {
    let model = dir.join("tiny.gguf");
    inkling_engine::testing::TinyModel { context: 1024, ..Default::default() }.write(&model).unwrap();
    Server::start(
        Command::new(env!("CARGO_BIN_EXE_inkling")).args(["--model", model.to_str().unwrap(), "--threads", "2", "serve", "--port", "0", "--db"]).arg(dir.join("inkling.db")).env("INKLING_HOME", dir),
    )
}

fn call(s: &Server, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    s.call(method, path, body)
}

fn probe(s: &Server) -> Value {
    let (status, run) =
        call(s, "POST", "/api/tools/continue", Some(json!({"text": "The harbour at dusk.", "seed": 77, "max_tokens": 8, "frame": "text", "project": "harbour", "alternatives": 5, "voice": false})));
    assert_eq!(status, 200, "{run}");
    run
}

#[test]
fn the_editor_learns_from_choices_in_the_background_and_uses_the_adapter() {
    let dir = tempfile::tempdir().unwrap();
    let s = serve(dir.path());
    assert_eq!(call(&s, "POST", "/api/projects", Some(json!({"name": "harbour"}))).0, 201);
    let doc = ok(call(&s, "POST", "/api/projects/harbour/documents", Some(json!({"title": "One", "text": "The harbour at dusk."}))));
    let doc = doc["document"]["id"].as_i64().unwrap();

    let (status, nothing) = call(&s, "GET", "/api/projects/harbour/learning", None);
    assert_eq!(status, 200, "{nothing}");
    assert_eq!(nothing["pairs"], 0);
    assert_eq!(nothing["available"], true);
    assert_eq!(nothing["plan"]["needed"], 8);
    let (status, refused) = call(&s, "POST", "/api/projects/harbour/learning", None);
    assert_eq!(status, 409);
    assert!(refused["error"]["message"].as_str().unwrap().contains("at least 8"), "{refused}");

    // The writer's choices: of three candidates each time, the first accepted.
    let mut text = "The harbour at dusk.".to_string();
    let mut pairs = 0;
    for i in 0..12 {
        let (status, run) =
            call(&s, "POST", "/api/tools/continue", Some(json!({"text": text, "n": 3, "seed": i, "max_tokens": 10, "frame": "text", "project": "harbour", "document": doc, "voice": false})));
        assert_eq!(status, 200, "{run}");
        assert_eq!(run["model"], "tiny");
        let shown = run["generations"].as_array().unwrap().len();
        if shown < 2 {
            continue;
        }
        pairs += shown - 1;
        text.push_str(run["candidates"][0]["text"].as_str().unwrap());
        let (status, accepted) = call(&s, "POST", &format!("/api/projects/harbour/documents/{doc}/accept"), Some(json!({"generation": run["generations"][0], "text": text})));
        assert_eq!(status, 200, "{accepted}");
    }
    let (_, ready) = call(&s, "GET", "/api/projects/harbour/learning", None);
    assert!(pairs >= 8, "the tiny model gave only {pairs} pairs");
    assert_eq!(ready["pairs"], pairs, "{ready}");
    assert_eq!(ready["plan"]["held_out"], pairs / 5);
    assert!(ready["plan"]["seconds"].as_f64().unwrap() > 0.0);
    assert!(ready["adapter"].is_null());

    let before = probe(&s);
    assert_eq!(before["model"], "tiny");
    let (status, started) = call(&s, "POST", "/api/projects/harbour/learning", None);
    assert_eq!(status, 202, "{started}");
    let t0 = Instant::now();
    let mut seen = Vec::new();
    let done = loop {
        let (_, now) = call(&s, "GET", "/api/projects/harbour/learning", None);
        let state = now["training"]["state"].as_str().unwrap_or("none").to_string();
        if !seen.contains(&state) {
            seen.push(state.clone());
        }
        match state.as_str() {
            "done" => break now,
            "failed" => panic!("the training failed: {now}"),
            _ => {}
        }
        assert!(t0.elapsed() < Duration::from_secs(300), "still training after 300 s: {now}");
        std::thread::sleep(Duration::from_millis(100));
    };
    eprintln!("training went through {seen:?}: {}", done["training"]["report"]);
    let report = &done["training"]["report"];
    assert_eq!(report["pairs"], pairs);
    assert_eq!(report["held_out"], pairs / 5);
    assert!(report["steps"].as_u64().unwrap() >= 10, "{report}");
    assert_eq!(done["adapter"]["in_use"], true, "{done}");
    assert_eq!(done["adapter"]["report"], *report);
    let adapter = dir.path().join("adapters").join("harbour.feedback.gguf");
    assert!(adapter.is_file() && adapter.with_extension("json").is_file());
    assert!(!dir.path().join("adapters").join("harbour.feedback.training.gguf").exists());

    // The project's next suggestion comes from the adapted model, and is filed as its.
    let after = probe(&s);
    assert_eq!(after["model"], "tiny+feedback", "{after}");
    assert_ne!(after["candidates"][0]["tokens"], before["candidates"][0]["tokens"], "the adapter changed nothing the model computes");
    let (_, filed) = call(&s, "POST", "/api/tools/continue", Some(json!({"text": text, "seed": 9, "max_tokens": 6, "frame": "text", "project": "harbour", "document": doc, "voice": false})));
    let (_, node) = call(&s, "GET", &format!("/api/projects/harbour/generations/{}", filed["generations"][0]), None);
    assert_eq!(node["model"], "tiny+feedback", "{node}");
    // Another project has no adapter.
    assert_eq!(call(&s, "POST", "/api/projects", Some(json!({"name": "other"}))).0, 201);
    let (_, other) = call(&s, "POST", "/api/tools/continue", Some(json!({"text": "The lamp", "seed": 1, "max_tokens": 4, "frame": "text", "project": "other"})));
    assert_eq!(other["model"], "tiny", "{other}");

    // Forgetting deletes the adapter, not the choices.
    assert_eq!(call(&s, "DELETE", "/api/projects/harbour/learning", None).0, 204);
    assert!(!adapter.exists() && !adapter.with_extension("json").exists());
    assert_eq!(probe(&s)["model"], "tiny");
    let (_, forgot) = call(&s, "GET", "/api/projects/harbour/learning", None);
    assert!(forgot["adapter"].is_null(), "{forgot}");
    assert_eq!(forgot["pairs"], pairs);
}

/// The body of a successful answer.
fn ok((status, body): (u16, Value)) -> Value {
    assert_eq!(status / 100, 2, "{body}");
    body
}
