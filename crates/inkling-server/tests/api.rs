//! The whole HTTP surface on a tiny random-weight model, through `app()` in process:
//! OpenAI-compatible endpoints, the writing API, projects, the queue and the security rules.

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use inkling_craft::Toolbox;
use inkling_engine::testing::TinyModel;
use inkling_engine::{Engine, EngineConfig, GenerateRequest, Prompt};
use inkling_server::{AppState, ServerConfig, app};
use serde_json::{Value, json};
use std::sync::Arc;
use tower::ServiceExt;

struct Desk {
    _dir: tempfile::TempDir,
    app: Router,
    state: AppState,
}

fn desk(config: ServerConfig) -> Desk {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.gguf");
    TinyModel { context: 1024, ..TinyModel::default() }.write(&path).unwrap();
    let engine = Engine::load(&path, &EngineConfig { threads: Some(2), ..Default::default() }).unwrap();
    let config = ServerConfig { db: dir.path().join("inkling.db"), model_id: "tiny".into(), ..config };
    let state = AppState::new(Arc::new(engine), Toolbox::builtin().unwrap(), config).unwrap();
    Desk { _dir: dir, app: app(state.clone()), state }
}

struct Reply {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }

    /// The `data:` payloads of a server-sent event stream.
    fn events(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.body).split("\n\n").filter_map(|b| b.lines().find_map(|l| l.strip_prefix("data: ")).map(String::from)).collect()
    }

    fn error(&self) -> String {
        self.json()["error"]["message"].as_str().unwrap_or_default().to_string()
    }
}

async fn call_with(app: &Router, method: &str, path: &str, body: Option<Value>, key: Option<&str>) -> Reply {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(k) = key {
        req = req.header(header::AUTHORIZATION, format!("Bearer {k}"));
    }
    let req = match body {
        Some(b) => req.header(header::CONTENT_TYPE, "application/json").body(Body::from(b.to_string())).unwrap(),
        None => req.body(Body::empty()).unwrap(),
    };
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let body = res.into_body().collect().await.unwrap().to_bytes().to_vec();
    Reply { status, headers, body }
}

async fn call(app: &Router, method: &str, path: &str, body: Option<Value>) -> Reply {
    call_with(app, method, path, body, None).await
}

#[tokio::test]
async fn openai_completions_whole_streamed_with_candidates_stop_seed_and_logprobs() {
    let d = desk(ServerConfig::default());
    let models = call(&d.app, "GET", "/v1/models", None).await;
    assert_eq!(models.status, StatusCode::OK);
    assert_eq!(models.json()["data"][0]["id"], "tiny");
    assert_eq!(models.json()["data"][0]["max_model_len"], 1024);

    let ask = json!({"model": "tiny", "prompt": "the cat", "max_tokens": 12, "n": 3, "seed": 7, "temperature": 3.0});
    let a = call(&d.app, "POST", "/v1/completions", Some(ask.clone())).await;
    assert_eq!(a.status, StatusCode::OK, "{}", String::from_utf8_lossy(&a.body));
    let a = a.json();
    assert_eq!(a["object"], "text_completion");
    assert_eq!(a["choices"].as_array().unwrap().len(), 3);
    assert!(a["usage"]["completion_tokens"].as_u64().unwrap() > 0);
    // Same seed, same text; the candidates differ from each other.
    let b = call(&d.app, "POST", "/v1/completions", Some(ask.clone())).await.json();
    assert_eq!(a["choices"], b["choices"]);
    // (The tiny model's random weights are too peaked for its candidates to differ; the
    // engine's and the real-model tests check that they do.)
    let texts: Vec<&str> = a["choices"].as_array().unwrap().iter().map(|c| c["text"].as_str().unwrap()).collect();
    assert_eq!(a["choices"].as_array().unwrap().iter().map(|c| c["index"].as_u64().unwrap()).collect::<Vec<_>>(), [0, 1, 2]);

    // A stop string ends the text just before it.
    let first = texts[0];
    let word: String = first.chars().skip(3).take(2).collect();
    let stop = call(&d.app, "POST", "/v1/completions", Some(json!({"prompt": "the cat", "max_tokens": 12, "seed": 7, "temperature": 3.0, "stop": word}))).await.json();
    let cut = stop["choices"][0]["text"].as_str().unwrap();
    assert_eq!(cut, &first[..first.find(&word).unwrap()], "{first:?} stopped at {word:?}");
    assert_eq!(stop["choices"][0]["finish_reason"], "stop");

    // Streamed: chunks that add up to the same text, usage on request, then [DONE].
    let s =
        call(&d.app, "POST", "/v1/completions", Some(json!({"prompt": "the cat", "max_tokens": 12, "n": 3, "seed": 7, "temperature": 3.0, "stream": true, "stream_options": {"include_usage": true}})))
            .await;
    assert_eq!(s.status, StatusCode::OK);
    assert!(s.headers[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/event-stream"));
    let events = s.events();
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let mut streamed = vec![String::new(); 3];
    let mut usage = None;
    for e in &events[..events.len() - 1] {
        let v: Value = serde_json::from_str(e).unwrap();
        for c in v["choices"].as_array().unwrap() {
            streamed[c["index"].as_u64().unwrap() as usize].push_str(c["text"].as_str().unwrap_or(""));
        }
        if !v["usage"].is_null() {
            usage = Some(v["usage"].clone());
        }
    }
    assert_eq!(streamed, texts);
    assert_eq!(usage.unwrap()["completion_tokens"], a["usage"]["completion_tokens"]);

    // Log-probabilities: one per token, the greedy token first among its rivals.
    let lp = call(&d.app, "POST", "/v1/completions", Some(json!({"prompt": "the cat", "max_tokens": 5, "temperature": 0, "logprobs": 2}))).await.json();
    let l = &lp["choices"][0]["logprobs"];
    assert_eq!(l["tokens"].as_array().unwrap().len(), 5);
    assert_eq!(l["tokens"].as_array().unwrap().concat_text(), lp["choices"][0]["text"].as_str().unwrap());
    assert!(l["token_logprobs"].as_array().unwrap().iter().all(|x| x.as_f64().unwrap() <= 0.0));
    assert_eq!(l["top_logprobs"][0].as_object().unwrap().len(), 2);

    // Streamed, each chunk carries the reports of the tokens its text completes: together
    // they are the whole answer's, in order, with offsets that run on across chunks.
    let sampled = json!({"prompt": "the cat", "max_tokens": 12, "seed": 7, "temperature": 3.0, "logprobs": 3});
    let whole = call(&d.app, "POST", "/v1/completions", Some(sampled.clone())).await.json();
    let mut stream_ask = sampled.clone();
    stream_ask["stream"] = json!(true);
    let s = call(&d.app, "POST", "/v1/completions", Some(stream_ask)).await;
    assert_eq!(s.status, StatusCode::OK, "{}", String::from_utf8_lossy(&s.body));
    let (mut tokens, mut lps, mut offsets, mut text) = (Vec::new(), Vec::new(), Vec::new(), String::new());
    for e in s.events().iter().filter(|e| *e != "[DONE]") {
        let v: Value = serde_json::from_str(e).unwrap();
        let Some(c) = v["choices"].as_array().and_then(|c| c.first()) else { continue };
        text.push_str(c["text"].as_str().unwrap_or(""));
        if let Some(l) = c["logprobs"].as_object() {
            tokens.extend(l["tokens"].as_array().unwrap().iter().cloned());
            lps.extend(l["token_logprobs"].as_array().unwrap().iter().cloned());
            offsets.extend(l["text_offset"].as_array().unwrap().iter().cloned());
        }
    }
    let w = &whole["choices"][0]["logprobs"];
    assert_eq!(text, whole["choices"][0]["text"].as_str().unwrap());
    assert_eq!(tokens, *w["tokens"].as_array().unwrap());
    assert_eq!(lps, *w["token_logprobs"].as_array().unwrap());
    assert_eq!(offsets, *w["text_offset"].as_array().unwrap());
}

trait ConcatText {
    fn concat_text(&self) -> String;
}

impl ConcatText for Vec<Value> {
    fn concat_text(&self) -> String {
        self.iter().filter_map(Value::as_str).collect()
    }
}

#[tokio::test]
async fn chat_completions_whole_and_streamed() {
    let d = desk(ServerConfig::default());
    let ask = json!({"model": "tiny", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": [{"type": "text", "text": "Name a colour."}]}], "max_tokens": 8, "seed": 3, "n": 2});
    let whole = call(&d.app, "POST", "/v1/chat/completions", Some(ask.clone())).await;
    assert_eq!(whole.status, StatusCode::OK, "{}", String::from_utf8_lossy(&whole.body));
    let whole = whole.json();
    assert_eq!(whole["object"], "chat.completion");
    assert_eq!(whole["choices"][0]["message"]["role"], "assistant");
    let mut stream_ask = ask.clone();
    stream_ask["stream"] = json!(true);
    let s = call(&d.app, "POST", "/v1/chat/completions", Some(stream_ask)).await;
    let mut text = vec![String::new(); 2];
    let mut roles = 0;
    for e in s.events().iter().filter(|e| *e != "[DONE]") {
        let v: Value = serde_json::from_str(e).unwrap();
        assert_eq!(v["object"], "chat.completion.chunk");
        for c in v["choices"].as_array().unwrap() {
            roles += usize::from(c["delta"]["role"] == "assistant");
            text[c["index"].as_u64().unwrap() as usize].push_str(c["delta"]["content"].as_str().unwrap_or(""));
        }
    }
    assert_eq!(roles, 2, "each candidate's first chunk names the role");
    assert_eq!(text[0], whole["choices"][0]["message"]["content"].as_str().unwrap());
    assert_eq!(text[1], whole["choices"][1]["message"]["content"].as_str().unwrap());
    let lp = call(&d.app, "POST", "/v1/chat/completions", Some(json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 3, "logprobs": true, "top_logprobs": 2}))).await.json();
    let content = lp["choices"][0]["logprobs"]["content"].as_array().unwrap();
    assert_eq!(content.len(), 3);
    assert_eq!(content[0]["top_logprobs"].as_array().unwrap().len(), 2);
    assert!(content[0]["bytes"].is_array());

    // Streamed chat chunks carry `logprobs.content` beside the delta, as OpenAI's do.
    let s = call(&d.app, "POST", "/v1/chat/completions", Some(json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 3, "logprobs": true, "top_logprobs": 2, "stream": true}))).await;
    assert_eq!(s.status, StatusCode::OK, "{}", String::from_utf8_lossy(&s.body));
    let streamed: Vec<Value> = s
        .events()
        .iter()
        .filter(|e| *e != "[DONE]")
        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
        .flat_map(|v| v["choices"][0]["logprobs"]["content"].as_array().cloned().unwrap_or_default())
        .collect();
    assert_eq!(streamed, *content);
}

#[tokio::test]
async fn bad_requests_get_openai_errors_with_the_right_status() {
    let d = desk(ServerConfig::default());
    let cases = [
        (json!({"model": "gpt-4", "prompt": "x"}), StatusCode::NOT_FOUND, "not served here"),
        (json!({"prompt": "x", "n": 0}), StatusCode::BAD_REQUEST, "n must be"),
        (json!({"prompt": "x", "temperature": -1}), StatusCode::BAD_REQUEST, "temperature"),
        (json!({"prompt": "x", "max_tokens": 0}), StatusCode::BAD_REQUEST, "max_tokens"),
        (json!({"prompt": "x", "logprobs": 21}), StatusCode::BAD_REQUEST, "at most 20"),
        (json!({"prompt": ["a", "b"]}), StatusCode::BAD_REQUEST, "one prompt"),
        (json!({"prompt": 5}), StatusCode::BAD_REQUEST, "invalid request"),
        (json!({"prompt": ""}), StatusCode::BAD_REQUEST, "empty"),
        (json!({"prompt": "x", "speculative": "draft:big"}), StatusCode::BAD_REQUEST, "use auto, lookup or off"),
    ];
    for (body, status, words) in cases {
        let r = call(&d.app, "POST", "/v1/completions", Some(body.clone())).await;
        assert_eq!(r.status, status, "{body}: {}", String::from_utf8_lossy(&r.body));
        assert!(r.error().contains(words), "{body}: {}", r.error());
        assert!(r.json()["error"]["type"].is_string());
    }
    let r = call(&d.app, "POST", "/v1/chat/completions", Some(json!({"messages": [{"role": "wizard", "content": "x"}]}))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let raw = d.app.clone().oneshot(Request::post("/v1/completions").header(header::CONTENT_TYPE, "application/json").body(Body::from("{not json")).unwrap()).await.unwrap();
    assert_eq!(raw.status(), StatusCode::BAD_REQUEST);
    let r = call(&d.app, "GET", "/v2/nothing", None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.error().contains("/docs"));
}

#[tokio::test]
async fn security_keys_body_limits_and_export_names() {
    use std::net::SocketAddr;
    let open: SocketAddr = "0.0.0.0:8077".parse().unwrap();
    assert!(inkling_server::check_bind(&open, None).unwrap_err().contains("API key"));
    assert!(inkling_server::check_bind(&open, Some("  ")).is_err());
    assert!(inkling_server::check_bind(&open, Some("k")).is_ok());
    assert!(inkling_server::check_bind(&"127.0.0.1:0".parse().unwrap(), None).is_ok());
    assert!(inkling_server::check_bind(&"[::1]:0".parse().unwrap(), None).is_ok());

    let d = desk(ServerConfig { api_key: Some("s3cret".into()), max_body_bytes: 2048, ..ServerConfig::default() });
    let none = call(&d.app, "GET", "/v1/models", None).await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    assert_eq!(none.json()["error"]["type"], "authentication_error");
    assert_eq!(call_with(&d.app, "GET", "/api/projects", None, Some("wrong")).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(call_with(&d.app, "GET", "/v1/models", None, Some("s3cret")).await.status, StatusCode::OK);
    // The page itself and the health check load without the key.
    assert_eq!(call(&d.app, "GET", "/", None).await.status, StatusCode::OK);
    assert_eq!(call(&d.app, "GET", "/health", None).await.status, StatusCode::OK);

    let big = json!({"prompt": "x".repeat(4096)});
    let r = call_with(&d.app, "POST", "/v1/completions", Some(big), Some("s3cret")).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(r.error().contains("max-body"));

    let key = Some("s3cret");
    assert_eq!(call_with(&d.app, "POST", "/api/projects", Some(json!({"name": "Book"})), key).await.status, StatusCode::CREATED);
    call_with(&d.app, "POST", "/api/projects/Book/documents", Some(json!({"title": "One", "text": "It began."})), key).await;
    for name in ["../escape.md", "..%2Fescape.md", "/etc/passwd", "a/b.md", ".hidden"] {
        let r = call_with(&d.app, "GET", &format!("/api/projects/Book/export?format=md&name={name}"), None, key).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{name}");
    }
    let ok = call_with(&d.app, "GET", "/api/projects/Book/export?format=md&name=book.md", None, key).await;
    assert_eq!(ok.status, StatusCode::OK);
    assert!(String::from_utf8_lossy(&ok.body).contains("It began."));
    assert!(ok.headers[header::CONTENT_DISPOSITION].to_str().unwrap().contains("book.md"));
}

#[tokio::test]
async fn a_writers_session_save_undo_run_accept_report() {
    let d = desk(ServerConfig::default());
    let app = &d.app;
    assert_eq!(call(app, "POST", "/api/projects", Some(json!({"name": "灯塔"}))).await.status, StatusCode::CREATED);
    assert_eq!(call(app, "POST", "/api/projects", Some(json!({"name": "灯塔"}))).await.status, StatusCode::CONFLICT);
    let p = "/api/projects/%E7%81%AF%E5%A1%94";
    let doc = call(app, "POST", &format!("{p}/documents"), Some(json!({"title": "Chapter 1"}))).await.json();
    let id = doc["document"]["id"].as_i64().unwrap();
    let dp = format!("{p}/documents/{id}");
    // Typing lands in revisions; the same text twice is one revision.
    for text in ["The lamp", "The lamp went out.", "The lamp went out.", "The lamp went out. 她笑了。"] {
        assert_eq!(call(app, "POST", &format!("{dp}/revisions"), Some(json!({"text": text}))).await.status, StatusCode::OK);
    }
    let history = call(app, "GET", &format!("{dp}/revisions"), None).await.json();
    assert_eq!(history["revisions"].as_array().unwrap().len(), 4, "{history}");

    // A tool run inside the project files its candidates in the generation tree.
    // The page itself, not a chat turn: the random model answers a chat turn with line breaks.
    let run =
        call(app, "POST", "/api/tools/continue", Some(json!({"text": "The lamp went out. 她笑了。", "n": 2, "seed": 1, "max_tokens": 12, "frame": "text", "project": "灯塔", "document": id}))).await;
    assert_eq!(run.status, StatusCode::OK, "{}", String::from_utf8_lossy(&run.body));
    let run = run.json();
    let gens = run["generations"].as_array().unwrap();
    assert_eq!(gens.len(), run["candidates"].as_array().unwrap().len());
    assert!(!gens.is_empty());
    let first_gen = gens[0].as_i64().unwrap();
    let suggestion = run["candidates"][0]["text"].as_str().unwrap();
    let accepted_text = format!("The lamp went out. 她笑了。{suggestion}");
    let acc = call(app, "POST", &format!("{dp}/accept"), Some(json!({"generation": first_gen, "text": accepted_text}))).await.json();
    assert_eq!(acc["text"], accepted_text.as_str());
    assert!(acc["share"]["model"].as_u64().unwrap() > 0);
    let tree = call(app, "GET", &format!("{p}/generations?document={id}"), None).await.json();
    assert_eq!(tree["generations"][0]["status"], "accepted");
    if gens.len() > 1 {
        let st = call(app, "POST", &format!("{p}/generations/{}/status", gens[1]), Some(json!({"status": "rejected"}))).await;
        assert_eq!(st.status, StatusCode::NO_CONTENT);
    }

    // Undo takes back the accepted suggestion alone, then the typing; redo returns.
    let u = call(app, "POST", &format!("{dp}/undo"), None).await.json();
    assert_eq!(u["text"], "The lamp went out. 她笑了。");
    let u = call(app, "POST", &format!("{dp}/undo"), None).await.json();
    assert_eq!(u["text"], "The lamp went out.");
    let r = call(app, "POST", &format!("{dp}/redo"), None).await.json();
    assert_eq!(r["text"], "The lamp went out. 她笑了。");
    let shown = call(app, "GET", &dp, None).await.json();
    assert_eq!(shown["revision"]["text"], "The lamp went out. 她笑了。");
    for _ in 0..3 {
        call(app, "POST", &format!("{dp}/undo"), None).await;
    }
    let nothing = call(app, "POST", &format!("{dp}/undo"), None).await;
    assert_eq!(nothing.status, StatusCode::CONFLICT);
    assert!(nothing.error().contains("nothing to undo"), "{}", nothing.error());

    // The report and the bible.
    let report = call(app, "GET", &format!("{p}/report"), None).await.json();
    assert_eq!(report["documents"][0]["title"], "Chapter 1");
    let e = call(app, "POST", &format!("{p}/bible"), Some(json!({"kind": "character", "name": "Mara", "keys": ["the keeper"], "body": "Keeper of the light."}))).await.json();
    let bible = call(app, "GET", &format!("{p}/bible"), None).await.json();
    assert_eq!(bible["entries"][0]["keys"], json!(["Mara", "the keeper"]));
    assert_eq!(call(app, "DELETE", &format!("{p}/bible/{}", e["id"]), None).await.status, StatusCode::NO_CONTENT);
    assert_eq!(call(app, "DELETE", &format!("{p}/bible/{}", e["id"]), None).await.status, StatusCode::NOT_FOUND);

    // Lorebook rules, and world info in and out.
    let bad = call(app, "POST", &format!("{p}/bible"), Some(json!({"kind": "item", "name": "Blade", "body": "x", "rules": {"secondary": ["/(oops/"]}}))).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.error().contains("regular expression"), "{}", bad.error());
    let ruled = call(app, "POST", &format!("{p}/bible"), Some(json!({"kind": "character", "name": "Oren", "body": "A smith.", "rules": {"sticky": 2, "from_chapter": 15}}))).await.json();
    assert_eq!(ruled["rules"], json!({"sticky": 2, "from_chapter": 15}));
    let world = json!({"entries": {"0": {"uid": 0, "key": ["Vale"], "comment": "Vale", "content": "A valley.", "position": 4, "depth": 2, "order": 7}}});
    let imported = call(app, "POST", &format!("{p}/lore/import"), Some(world)).await.json();
    assert_eq!(imported["imported"], 1);
    let out = call(app, "GET", &format!("{p}/lore/export"), None).await.json();
    let names: Vec<&str> = out["entries"].as_object().unwrap().values().map(|e| e["comment"].as_str().unwrap()).collect();
    assert_eq!(names, ["Oren", "Vale"]);
    assert_eq!(out["entries"]["1"]["depth"], 2);
    assert_eq!(call(app, "POST", &format!("{p}/lore/import"), Some(json!({"title": "no entries"}))).await.status, StatusCode::BAD_REQUEST);

    // Another project's document is not reachable through this one.
    call(app, "POST", "/api/projects", Some(json!({"name": "Other"}))).await;
    assert_eq!(call(app, "GET", &format!("/api/projects/Other/documents/{id}"), None).await.status, StatusCode::NOT_FOUND);
    assert_eq!(call(app, "GET", "/api/projects/Nope", None).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn tools_stream_their_text_then_the_cleaned_result() {
    let d = desk(ServerConfig::default());
    let tools = call(&d.app, "GET", "/api/tools", None).await.json();
    let rewrite = tools.as_array().unwrap().iter().find(|t| t["name"] == "rewrite").unwrap();
    assert!(rewrite["options"]["style"]["values"].as_array().unwrap().iter().any(|v| v == "casual"));
    assert_eq!(rewrite["diff"], true);

    let s = call(&d.app, "POST", "/api/tools/brainstorm", Some(json!({"text": "a lighthouse", "n": 2, "seed": 4, "max_tokens": 24, "stream": true}))).await;
    assert_eq!(s.status, StatusCode::OK);
    let events: Vec<Value> = s.events().iter().map(|e| serde_json::from_str(e).unwrap()).collect();
    assert!(events.iter().any(|e| e["type"] == "text"));
    assert_eq!(events.iter().filter(|e| e["type"] == "finished").count(), 2);
    let last = events.last().unwrap();
    assert_eq!(last["type"], "result", "{last}");
    assert_eq!(last["result"]["tool"], "brainstorm");

    let bad = call(&d.app, "POST", "/api/tools/rewrite", Some(json!({"text": "Hi.", "options": {"mood": "x"}}))).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.error().contains("mood"));
    assert_eq!(call(&d.app, "POST", "/api/tools/nonsense", Some(json!({"text": "x"}))).await.status, StatusCode::NOT_FOUND);
    let empty = call(&d.app, "POST", "/api/tools/tighten", Some(json!({"text": "  "}))).await;
    assert_eq!(empty.status, StatusCode::BAD_REQUEST);
}

/// The writing API takes the answer's language and a list's count, and carries a short list
/// on through its queue like any generation.
#[tokio::test]
async fn tools_take_a_language_and_a_count_and_short_lists_are_carried_on() {
    let dir = tempfile::tempdir().unwrap();
    let scripted = Arc::new(inkling_engine::testing::ScriptedBackend::new(&[&[" Alpha\n2. Beta"], &[" Gamma"]]).unwrap());
    let config = ServerConfig { db: dir.path().join("inkling.db"), model_id: "scripted".into(), ..ServerConfig::default() };
    let state = AppState::new(scripted.clone(), Toolbox::builtin().unwrap(), config).unwrap();
    let app = app(state);
    let r = call(&app, "POST", "/api/tools/brainstorm", Some(json!({"text": "a lighthouse", "count": 3, "language": "French", "seed": 1}))).await;
    assert_eq!(r.status, StatusCode::OK);
    let v = r.json();
    assert_eq!(v["language"], "French");
    let rendered = v["prompt"]["rendered"].as_str().unwrap();
    assert!(rendered.contains("Brainstorm 3 plot ideas") && rendered.contains("Write the answer in French."), "{rendered}");
    assert_eq!(v["candidates"][0]["items"], json!(["Alpha", "Beta", "Gamma"]));
    let asked = scripted.requests();
    assert_eq!(asked.len(), 2);
    assert_eq!(asked[1].prefill, "1. Alpha\n2. Beta\n3.");
}

/// A long prompt's reading is reported: as `progress` events in the writing API's stream,
/// and as llama.cpp's `prompt_progress` chunks on `/v1` when asked with `return_progress`
/// (never otherwise), ahead of any text.
#[tokio::test]
async fn long_prompts_report_their_reading_progress() {
    let d = desk(ServerConfig::default());
    let chapter = "the sea and the wind and the rain by the harbour wall, ".repeat(40);
    let s = call(&d.app, "POST", "/api/tools/continue", Some(json!({"text": chapter, "n": 1, "seed": 1, "max_tokens": 4, "stream": true}))).await;
    assert_eq!(s.status, StatusCode::OK);
    let events: Vec<Value> = s.events().iter().map(|e| serde_json::from_str(e).unwrap()).collect();
    let progress: Vec<&Value> = events.iter().filter(|e| e["type"] == "progress").collect();
    assert!(progress.len() >= 2, "a prompt of several chunks reports each: {progress:?}");
    let last = progress.last().unwrap();
    assert_eq!(last["processed"], last["total"], "{last}");
    let first_text = events.iter().position(|e| e["type"] == "text").unwrap_or(events.len());
    let last_progress = events.iter().rposition(|e| e["type"] == "progress").unwrap();
    assert!(last_progress < first_text, "the reading ends before the text starts");

    // Within the tiny model's context of 1,024 (its vocabulary spends a token on most letters).
    let prompt = "the sea and the wind and the rain by the harbour wall, ".repeat(12);
    let body = |progress: bool| json!({"prompt": prompt, "max_tokens": 2, "seed": 1, "stream": true, "return_progress": progress});
    let with = call(&d.app, "POST", "/v1/completions", Some(body(true))).await;
    let chunks: Vec<Value> = with.events().iter().filter(|e| *e != "[DONE]").map(|e| serde_json::from_str(e).unwrap()).collect();
    let reported: Vec<&Value> = chunks.iter().filter_map(|c| c.get("prompt_progress")).collect();
    assert!(reported.len() >= 2, "{chunks:?}");
    let p = reported.last().unwrap();
    assert_eq!(p["processed"], p["total"]);
    assert!(p["total"].as_u64().unwrap() > 256 && p["time_ms"].as_f64().unwrap() > 0.0, "more than one chunk: {p}");
    assert!(chunks.iter().filter(|c| c.get("prompt_progress").is_some()).all(|c| c["choices"].as_array().unwrap().is_empty()));
    let without = call(&d.app, "POST", "/v1/completions", Some(body(false))).await;
    assert!(without.events().iter().all(|e| !e.contains("prompt_progress")), "only when asked");
}

#[tokio::test]
async fn proofreading_reports_spans_the_browser_can_use() {
    let d = desk(ServerConfig::default());
    // An emoji is one char but two UTF-16 units: the browser's offsets differ from Rust's.
    let text = "🙂 We went to the libary.";
    let r = call(&d.app, "POST", "/api/proofread", Some(json!({"text": text}))).await.json();
    let f = r["findings"].as_array().unwrap().iter().find(|f| f["original"] == "libary").expect("libary flagged");
    let utf16: Vec<u16> = text.encode_utf16().collect();
    let (a, b) = (f["utf16_start"].as_u64().unwrap() as usize, f["utf16_end"].as_u64().unwrap() as usize);
    assert_eq!(String::from_utf16(&utf16[a..b]).unwrap(), "libary");
    assert_eq!(f["start"].as_u64().unwrap() as usize + 1, a);
    assert!(f["replacements"].as_array().unwrap().iter().any(|x| x == "library"));
    // The same dialect names as the CLI's.
    assert_eq!(call(&d.app, "POST", "/api/proofread", Some(json!({"text": text, "dialect": "indian"}))).await.status, StatusCode::OK);
    let bad = call(&d.app, "POST", "/api/proofread", Some(json!({"text": text, "dialect": "martian"}))).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.error().contains("indian (in)"), "{}", bad.error());
}

fn short() -> GenerateRequest {
    GenerateRequest { max_tokens: 2, ..GenerateRequest::new(Prompt::Text("the".into())) }
}

type Held = tokio::sync::oneshot::Receiver<Result<inkling_engine::Generation, inkling_engine::EngineError>>;

/// Occupies the model with a generation whose first text waits for the returned sender.
async fn hold(d: &Desk) -> (std::sync::mpsc::Sender<()>, Held) {
    let (release, wait) = std::sync::mpsc::channel::<()>();
    let (started, running) = std::sync::mpsc::channel::<()>();
    let mut wait = Some(wait);
    // Only the first event waits; the rest of the generation runs freely.
    let busy = d
        .state
        .queue
        .generate(short(), move |_| {
            wait.take().is_none_or(|w| {
                let _ = started.send(());
                w.recv().is_ok()
            })
        })
        .unwrap();
    // Until its first event the generation may still be in line (the worker's `running`
    // count can still be the last request's), and requests queued now would join its batch.
    while running.try_recv().is_err() {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    (release, busy)
}

#[tokio::test]
async fn a_full_queue_answers_429_with_retry_after() {
    let d = desk(ServerConfig { max_queue: 1, ..ServerConfig::default() });
    // Hold the model with one generation and fill the line with another.
    let (release, busy) = hold(&d).await;
    let waiting = d.state.queue.generate(short(), |_| true).unwrap();
    let r = call(&d.app, "POST", "/v1/completions", Some(json!({"prompt": "x", "max_tokens": 2}))).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers[header::RETRY_AFTER].to_str().unwrap().parse::<u64>().unwrap() >= 1);
    assert_eq!(r.json()["error"]["type"], "rate_limit_error");
    release.send(()).unwrap();
    busy.await.unwrap().unwrap();
    waiting.await.unwrap().unwrap();
    assert_eq!(call(&d.app, "POST", "/v1/completions", Some(json!({"prompt": "x", "max_tokens": 2}))).await.status, StatusCode::OK);
    let metrics = String::from_utf8(call(&d.app, "GET", "/metrics", None).await.body).unwrap();
    assert!(metrics.contains("inkling_requests_rejected_total 1"), "{metrics}");
}

#[tokio::test]
async fn a_client_that_leaves_cancels_its_generation() {
    let d = desk(ServerConfig::default());
    let req =
        Request::post("/v1/completions").header(header::CONTENT_TYPE, "application/json").body(Body::from(json!({"prompt": "the", "max_tokens": 900, "stream": true, "seed": 1}).to_string())).unwrap();
    let res = d.app.clone().oneshot(req).await.unwrap();
    let mut body = res.into_body();
    // Read one chunk, then hang up.
    let first = body.frame().await.unwrap().unwrap();
    assert!(first.is_data());
    drop(body);
    let m = d.state.queue.metrics();
    let t0 = std::time::Instant::now();
    while m.cancelled.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        assert!(t0.elapsed().as_secs() < 30, "the generation was not cancelled");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    // It stopped early: far fewer than 900 tokens were generated before it noticed.
    while m.running.load(std::sync::atomic::Ordering::SeqCst) > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(m.completion_tokens.load(std::sync::atomic::Ordering::SeqCst) < 900);
}

#[tokio::test]
async fn every_documented_endpoint_is_routed() {
    let d = desk(ServerConfig::default());
    let spec = call(&d.app, "GET", "/openapi.json", None).await.json();
    assert_eq!(spec["openapi"], "3.1.0");
    let mut n = 0;
    for (path, ops) in spec["paths"].as_object().unwrap() {
        for method in ops.as_object().unwrap().keys() {
            let concrete =
                path.replace("{project}", "none").replace("{doc}", "1").replace("{rev}", "1").replace("{id}", "1").replace("{name}", "continue").replace("{stage}", "synopsis").replace("{n}", "1");
            let body = (method != "get" && method != "delete").then(|| json!({}));
            let r = call(&d.app, &method.to_uppercase(), &concrete, body).await;
            assert_ne!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            assert!(!(r.status == StatusCode::NOT_FOUND && r.error().contains("no such endpoint")), "{method} {path} is documented but not routed");
            n += 1;
        }
    }
    assert_eq!(n, inkling_server::openapi::ENDPOINTS.len());
    assert!(String::from_utf8(call(&d.app, "GET", "/docs", None).await.body).unwrap().contains("openapi.json"));
}

#[tokio::test]
async fn requests_waiting_together_decode_as_one_batch_with_the_same_text() {
    let d = desk(ServerConfig::default());
    let ask = |i: u64| json!({"prompt": format!("the {i}"), "max_tokens": 6, "n": 2, "seed": i, "temperature": 3.0});
    let mut alone = Vec::new();
    for i in 0..3 {
        alone.push(call(&d.app, "POST", "/v1/completions", Some(ask(i))).await.json()["choices"].clone());
    }
    let m = d.state.queue.metrics();
    let before = (m.batches.load(std::sync::atomic::Ordering::SeqCst), m.batched_requests.load(std::sync::atomic::Ordering::SeqCst));
    // Hold the model while three requests line up, then let them go.
    let (release, busy) = hold(&d).await;
    let mut tasks = Vec::new();
    for i in 0..3 {
        let app = d.app.clone();
        tasks.push(tokio::spawn(async move { call(&app, "POST", "/v1/completions", Some(ask(i))).await.json()["choices"].clone() }));
    }
    while m.waiting.load(std::sync::atomic::Ordering::SeqCst) < 3 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    release.send(()).unwrap();
    busy.await.unwrap().unwrap();
    for (i, t) in tasks.into_iter().enumerate() {
        assert_eq!(t.await.unwrap(), alone[i], "request {i}: batching must not change the text");
    }
    // The held generation was one batch; the three that waited behind it, the other.
    assert_eq!(m.batches.load(std::sync::atomic::Ordering::SeqCst) - before.0, 2, "the three decoded as one batch");
    assert_eq!(m.batched_requests.load(std::sync::atomic::Ordering::SeqCst) - before.1, 4);
}

#[tokio::test]
async fn speculative_decoding_is_on_by_default_keeps_the_text_and_is_counted() {
    let d = desk(ServerConfig::default());
    // A prompt whose words repeat: the guesses are kept.
    let prompt = "the sea and the wind and the rain and the cat ".repeat(6);
    let ask = |mode: Option<&str>| {
        let mut b = json!({"prompt": prompt, "max_tokens": 40, "temperature": 0, "seed": 1});
        if let Some(m) = mode {
            b["speculative"] = json!(m);
        }
        b
    };
    let off = call(&d.app, "POST", "/v1/completions", Some(ask(Some("off")))).await.json();
    let metrics = |body: Vec<u8>| -> u64 {
        let text = String::from_utf8(body).unwrap();
        text.lines().find_map(|l| l.strip_prefix("inkling_draft_accepted_total ")).and_then(|v| v.parse().ok()).expect("draft counter in /metrics")
    };
    assert_eq!(metrics(call(&d.app, "GET", "/metrics", None).await.body), 0, "off guesses nothing");
    for mode in [None, Some("lookup"), Some("auto")] {
        let on = call(&d.app, "POST", "/v1/completions", Some(ask(mode))).await.json();
        assert_eq!(on["choices"][0]["text"], off["choices"][0]["text"], "{mode:?}");
    }
    assert!(metrics(call(&d.app, "GET", "/metrics", None).await.body) > 0, "guesses were kept and counted");
    // The writing API takes the same field.
    let r = call(&d.app, "POST", "/api/tools/tighten", Some(json!({"text": prompt, "speculative": "off", "seed": 2}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", String::from_utf8_lossy(&r.body));
    let on = call(&d.app, "POST", "/api/tools/tighten", Some(json!({"text": prompt, "seed": 2}))).await;
    assert_eq!(on.json()["candidates"], r.json()["candidates"]);
}

/// `/v1` takes TabbyAPI's `banned_strings` and `banned_regex`; a project keeps its own list,
/// which the writing API applies over the config file's; bad patterns are 400s.
#[tokio::test]
async fn banned_phrases_on_v1_and_per_project() {
    let d = desk(ServerConfig::default());
    let two_letters = |text: &str| -> String {
        let chars: Vec<char> = text.chars().collect();
        (chars.len() / 3..chars.len() - 1)
            .map(|i| chars[i..i + 2].iter().collect::<String>())
            .find(|w| w.chars().all(|c| c.is_ascii_alphanumeric()))
            .expect("two ASCII letters in a row")
            .to_lowercase()
    };
    let ask = |extra: Value| {
        let mut b = json!({"prompt": "the", "max_tokens": 40, "temperature": 0, "seed": 1});
        b.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        b
    };
    let plain = call(&d.app, "POST", "/v1/completions", Some(ask(json!({})))).await.json();
    let text = plain["choices"][0]["text"].as_str().unwrap().to_string();
    let phrase = two_letters(&text);
    let r = call(&d.app, "POST", "/v1/completions", Some(ask(json!({"banned_regex": [phrase]})))).await.json();
    let out = r["choices"][0]["text"].as_str().unwrap().to_lowercase();
    assert!(!out.contains(&phrase), "{phrase:?} in {out:?}");
    assert_ne!(out, text.to_lowercase());
    let r = call(&d.app, "POST", "/v1/completions", Some(ask(json!({"banned_strings": ["the end"]})))).await;
    assert_eq!(r.status, StatusCode::OK);
    let bad = call(&d.app, "POST", "/v1/completions", Some(ask(json!({"banned_regex": ["("]})))).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(String::from_utf8_lossy(&bad.body).contains("not a valid regular expression"));

    assert_eq!(call(&d.app, "POST", "/api/projects", Some(json!({"name": "book"}))).await.status, StatusCode::CREATED);
    let tool = json!({"text": "the", "seed": 3, "temperature": 0, "max_tokens": 40, "frame": "text", "project": "book"});
    let before = call(&d.app, "POST", "/api/tools/continue", Some(tool.clone())).await.json();
    let before = before["candidates"][0]["text"].as_str().unwrap().to_lowercase();
    let phrase = two_letters(&before);
    let set = call(&d.app, "PUT", "/api/projects/book/bans", Some(json!({"defaults": false, "regex": [phrase]}))).await;
    assert_eq!(set.status, StatusCode::OK, "{}", String::from_utf8_lossy(&set.body));
    let got = call(&d.app, "GET", "/api/projects/book/bans", None).await.json();
    assert_eq!(got["project"], json!({"defaults": false, "regex": [phrase]}));
    assert!(got["builtin"]["phrases"].as_array().unwrap().iter().any(|p| p == "Elara"));
    assert_eq!(call(&d.app, "PUT", "/api/projects/book/bans", Some(json!({"regex": ["("]}))).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(call(&d.app, "PUT", "/api/projects/book/bans", Some(json!({"phrase": ["typo"]}))).await.status, StatusCode::BAD_REQUEST);
    // Inside the project the writing API applies its list.
    let after = call(&d.app, "POST", "/api/tools/continue", Some(tool)).await.json();
    let after = after["candidates"][0]["text"].as_str().unwrap().to_lowercase();
    assert!(!after.contains(&phrase), "{phrase:?} in {after:?}");
    assert_ne!(after, before);
}

/// The token view over the writing API: a run asked for alternatives files each candidate's
/// tokens; a branch from one of them starts with the old answer up to that token and the
/// alternative, and is filed as a child of the old one, which the whole tree shows.
#[tokio::test]
async fn alternatives_are_filed_and_a_branch_from_one_is_a_child() {
    let d = desk(ServerConfig::default());
    assert_eq!(call(&d.app, "POST", "/api/projects", Some(json!({"name": "Loom"}))).await.status, StatusCode::CREATED);
    let doc = call(&d.app, "POST", "/api/projects/Loom/documents", Some(json!({"title": "One", "text": "The tide came in"}))).await.json();
    let doc_id = doc["id"].as_i64().or_else(|| doc["document"]["id"].as_i64()).unwrap();
    let ask = json!({"text": "The tide came in", "n": 1, "seed": 2, "max_tokens": 12, "temperature": 1.5, "alternatives": 5, "project": "Loom", "document": doc_id, "frame": "text"});
    let r = call(&d.app, "POST", "/api/tools/continue", Some(ask.clone())).await;
    assert_eq!(r.status, StatusCode::OK, "{}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    let tokens = v["candidates"][0]["tokens"].as_array().unwrap().clone();
    assert!(tokens.len() >= 4, "{v}");
    for t in &tokens {
        assert_eq!(t["top"].as_array().unwrap().len(), 5);
        let p = t["sampled_logprob"].as_f64().unwrap();
        assert!(p <= 0.0 && p.is_finite());
    }
    let first = v["generations"][0].as_i64().unwrap();
    let node = call(&d.app, "GET", &format!("/api/projects/Loom/generations/{first}"), None).await.json();
    assert_eq!(node["tokens"], json!(tokens), "the tokens are filed with the candidate");

    // Branch at token 2 with an alternative other than the token taken there.
    let at = 2;
    let pick = tokens[at]["top"].as_array().unwrap().iter().find(|a| a["whole"] == true && a["text"] != tokens[at]["text"]).expect("a choosable alternative").clone();
    let start: String = tokens[..at].iter().map(|t| t["text"].as_str().unwrap()).collect::<String>() + pick["text"].as_str().unwrap();
    let mut branch = ask.clone();
    branch["answer_start"] = json!(start);
    branch["parent"] = json!(first);
    let b = call(&d.app, "POST", "/api/tools/continue", Some(branch)).await;
    assert_eq!(b.status, StatusCode::OK, "{}", String::from_utf8_lossy(&b.body));
    let b = b.json();
    let child = b["generations"][0].as_i64().unwrap();
    let text = b["candidates"][0]["text"].as_str().unwrap();
    assert!(text.trim_start().starts_with(start.trim()), "{text:?} starts with {start:?}");
    let tree = call(&d.app, "GET", &format!("/api/projects/Loom/generations?tree=true&document={doc_id}"), None).await.json();
    let nodes = tree["generations"].as_array().unwrap();
    assert_eq!(nodes.len(), 2);
    let kid = nodes.iter().find(|n| n["id"] == child).unwrap();
    assert_eq!(kid["parent_id"], first);
    assert_eq!(kid["request"]["answer_start"], json!(start));
    assert_eq!(kid["has_tokens"], true);
    assert!(kid.get("tokens").is_none(), "listings leave the tokens out");
    assert_eq!(call(&d.app, "GET", "/api/projects/Loom/generations/9999", None).await.status, StatusCode::NOT_FOUND);
}

/// The editor's files are compiled in; `web_dir` (the binary's `--web-dir`/INKLING_WEB_DIR)
/// serves them from disk instead, read on every request.
#[tokio::test]
async fn the_editor_is_compiled_in_or_read_from_the_web_dir() {
    let d = desk(ServerConfig::default());
    let compiled = call(&d.app, "GET", "/app.js", None).await;
    assert_eq!(compiled.status, StatusCode::OK);
    assert!(String::from_utf8_lossy(&compiled.body).contains("inkling's editor"));
    assert!(compiled.headers[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/javascript"));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("app.js"), "// on disk\n").unwrap();
    let d = desk(ServerConfig { web_dir: Some(dir.path().to_path_buf()), ..ServerConfig::default() });
    assert_eq!(call(&d.app, "GET", "/app.js", None).await.body, b"// on disk\n");
    std::fs::write(dir.path().join("app.js"), "// edited\n").unwrap();
    assert_eq!(call(&d.app, "GET", "/app.js", None).await.body, b"// edited\n", "read on every request");
    // A file the folder lacks falls back to the compiled copy.
    assert!(String::from_utf8_lossy(&call(&d.app, "GET", "/style.css", None).await.body).contains("--ink"));
}

#[tokio::test]
async fn the_binder_writes_generates_locks_and_marks_chapters_done() {
    let d = desk(ServerConfig::default());
    let app = &d.app;
    call(app, "POST", "/api/projects", Some(json!({"name": "Saga"}))).await;
    let p = "/api/projects/Saga";
    let put = |stage: &str, body: Value| {
        let url = format!("{p}/book/{stage}");
        async move { call(app, "PUT", &url, Some(body)).await }
    };
    // A random-weight model gives no usable answer for some seeds (502, nothing changed).
    let generate = |stage: &str, body: Value| {
        let url = format!("{p}/book/{stage}/generate");
        async move {
            for seed in 1..40 {
                let mut b = body.clone();
                b["seed"] = json!(seed);
                let r = call(app, "POST", &url, Some(b)).await;
                if r.status != StatusCode::BAD_GATEWAY {
                    return r;
                }
            }
            panic!("no seed gave an answer for {url}");
        }
    };
    assert_eq!(put("synopsis", json!({"text": "Mara keeps the light until Oren washes ashore."})).await.status, StatusCode::OK);
    let g = generate("outline", json!({"count": 2})).await;
    assert_eq!(g.status, StatusCode::OK, "{}", g.error());
    assert_eq!(g.json()["status"]["stages"][2]["document"]["generated"], true);
    let book = put("synopsis", json!({"text": "Mara keeps the light; Oren lies."})).await.json();
    assert!(book["stages"][2]["document"]["stale"].as_str().unwrap().contains("synopsis"));
    assert_eq!(call(app, "POST", &format!("{p}/book/braindump/generate"), Some(json!({}))).await.status, StatusCode::BAD_REQUEST);

    put("outline", json!({"text": "1. The Wreck: Oren washes ashore.\n2. The Storm: the lamp fails."})).await;
    let book = put("beats", json!({"chapter": 1, "text": "1. Mara sees the wreck.\n2. She drags Oren up.\n3. He says nothing."})).await.json();
    assert_eq!(book["chapters"][0]["title"], "Chapter 1: The Wreck");
    let locked = call(app, "PUT", &format!("{p}/book/beats/locks"), Some(json!({"chapter": 1, "parts": [2]}))).await;
    assert_eq!(locked.status, StatusCode::OK, "{}", locked.error());
    assert_eq!(call(app, "PUT", &format!("{p}/book/beats/locks"), Some(json!({"chapter": 1, "parts": [4]}))).await.status, StatusCode::BAD_REQUEST);
    let g = generate("beats", json!({"chapter": 1})).await;
    assert_eq!(g.status, StatusCode::OK, "{}", g.error());
    let beats = call(app, "GET", &format!("{p}/book/beats?chapter=1"), None).await.json();
    assert_eq!(beats["parts"][1], "She drags Oren up.");
    call(app, "PUT", &format!("{p}/book/outline/locks"), Some(json!({"whole": true}))).await;
    assert_eq!(call(app, "POST", &format!("{p}/book/outline/generate"), Some(json!({}))).await.status, StatusCode::CONFLICT);

    // Done stands even when the model cannot summarize (the answer says why); a summary is
    // of the chapter as it was, and goes stale when the chapter changes.
    put("chapter", json!({"chapter": 1, "text": "Mara found the man on the rocks at dawn and carried him up the stair."})).await;
    let done = call(app, "POST", &format!("{p}/chapters/1/done"), Some(json!({"seed": 3}))).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.error());
    let book = done.json();
    assert_eq!(book["chapters"][0]["done"], true);
    assert!(book["summary_error"].is_null() || book["chapters"][0]["summary"].is_null(), "{book}");
    let book = put("summary", json!({"chapter": 1, "text": "Mara finds Oren and carries him up."})).await.json();
    assert!(book["chapters"][0]["summary"]["stale"].is_null(), "{book}");
    let book = put("chapter", json!({"chapter": 1, "text": "Mara found him at dawn."})).await.json();
    assert!(book["chapters"][0]["summary"]["stale"].as_str().unwrap().contains("chapter"), "{book}");
    // Rename and move keep the binder in order; titles stay unique.
    let id = book["chapters"][0]["id"].as_i64().unwrap();
    assert_eq!(call(app, "POST", &format!("{p}/documents/{id}/rename"), Some(json!({"title": "Synopsis"}))).await.status, StatusCode::CONFLICT);
    let r = call(app, "POST", &format!("{p}/documents/{id}/rename"), Some(json!({"title": "Chapter 1: Found"}))).await.json();
    assert_eq!(r["title"], "Chapter 1: Found");
    assert_eq!(call(app, "GET", &format!("{p}/book/beats"), None).await.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_voice_profile_is_built_shown_used_and_forgotten() {
    let d = desk(ServerConfig::default());
    assert_eq!(call(&d.app, "POST", "/api/projects", Some(json!({"name": "voice"}))).await.status, StatusCode::CREATED);
    assert_eq!(call(&d.app, "GET", "/api/projects/voice/voice", None).await.status, StatusCode::NOT_FOUND);
    let empty = call(&d.app, "POST", "/api/projects/voice/voice", None).await;
    assert_eq!(empty.status, StatusCode::CONFLICT);
    assert!(String::from_utf8_lossy(&empty.body).contains("at least 480 words"), "{}", String::from_utf8_lossy(&empty.body));

    let pages = "The tide came in over the flats; Mara watched it from the wall and said nothing. ".repeat(40);
    assert_eq!(call(&d.app, "POST", "/api/projects/voice/documents", Some(json!({"title": "One", "text": pages}))).await.status, StatusCode::CREATED);
    let built = call(&d.app, "POST", "/api/projects/voice/voice", None).await;
    assert_eq!(built.status, StatusCode::OK, "{}", String::from_utf8_lossy(&built.body));
    let built = built.json();
    assert_eq!(built["units"], json!(pages.split_whitespace().count()));
    assert!(built["description"][1].as_str().unwrap().starts_with("Your sentences average"), "{built}");
    assert_eq!(call(&d.app, "GET", "/api/projects/voice/voice", None).await.json()["built_at"], built["built_at"]);

    let tool = json!({"text": "the", "seed": 3, "max_tokens": 40, "frame": "text", "project": "voice", "n": 3});
    let ranked = call(&d.app, "POST", "/api/tools/continue", Some(tool.clone())).await.json();
    let candidates = ranked["candidates"].as_array().unwrap();
    assert!(!candidates.is_empty(), "{ranked}");
    for c in candidates {
        assert!(c["voice"]["reason"].as_str().unwrap().contains("your voice"), "{c}");
        assert!(c["voice"]["score"].is_number());
    }
    let mut off = tool.clone();
    off["voice"] = json!(false);
    let plain = call(&d.app, "POST", "/api/tools/continue", Some(off)).await.json();
    assert!(plain["candidates"].as_array().unwrap().iter().all(|c| c.get("voice").is_none()), "{plain}");

    assert_eq!(call(&d.app, "DELETE", "/api/projects/voice/voice", None).await.status, StatusCode::NO_CONTENT);
    assert_eq!(call(&d.app, "GET", "/api/projects/voice/voice", None).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn learning_from_choices_needs_a_trainer_and_says_so() {
    // The desk has no trainer, as a server of a remote model has none (the binary's test
    // `learn_cli` trains for real).
    let d = desk(ServerConfig::default());
    assert_eq!(call(&d.app, "POST", "/api/projects", Some(json!({"name": "p"}))).await.status, StatusCode::CREATED);
    let status = call(&d.app, "GET", "/api/projects/p/learning", None).await.json();
    assert_eq!(status["available"], false, "{status}");
    assert_eq!(status["pairs"], 0);
    assert!(status["why_not"].as_str().unwrap().contains("remote"));
    for method in ["POST", "DELETE"] {
        let r = call(&d.app, method, "/api/projects/p/learning", None).await;
        assert_eq!(r.status, StatusCode::CONFLICT);
        assert!(r.error().contains("finetune --from-feedback"), "{}", r.error());
    }
    assert_eq!(call(&d.app, "GET", "/api/projects/none/learning", None).await.status, StatusCode::NOT_FOUND);
    // Generations are filed under the served model.
    let run = call(&d.app, "POST", "/api/tools/continue", Some(json!({"text": "the", "seed": 1, "max_tokens": 4, "frame": "text", "project": "p"}))).await.json();
    assert_eq!(run["model"], "tiny", "{run}");
}

#[tokio::test]
async fn json_mode_answers_a_json_object() {
    // OpenAI's JSON mode names no schema: any object will do, and it must parse.
    let d = desk(ServerConfig::default());
    for seed in 0..3 {
        let body = json!({"model": "tiny", "messages": [{"role": "user", "content": "Describe Mara as JSON."}], "max_tokens": 60, "seed": seed, "response_format": {"type": "json_object"}});
        let r = call(&d.app, "POST", "/v1/chat/completions", Some(body)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", String::from_utf8_lossy(&r.body));
        let content = r.json()["choices"][0]["message"]["content"].as_str().unwrap().to_string();
        let parsed: serde_json::Map<String, Value> = serde_json::from_str(&content).unwrap_or_else(|e| panic!("{e}: {content:?}"));
        eprintln!("seed {seed}: {} member(s): {content}", parsed.len());
    }
}

#[test]
fn a_voice_profile_is_parsed_once_per_build() {
    use inkling_server::writing::VoiceCache;
    use inkling_store::{Origin, Store};
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("inkling.db")).unwrap();
    let project = store.create_project("voice").unwrap();
    let cache = VoiceCache::default();
    assert!(cache.get(&store, &project).unwrap().is_none());
    let pages = "The tide came in over the flats; Mara watched it from the wall and said nothing. ".repeat(40);
    let doc = store.add_document(&project, "One", "chapter", &pages, Origin::Typed).unwrap();
    store.build_voice(&project).unwrap();
    let first = cache.get(&store, &project).unwrap().unwrap();
    let again = cache.get(&store, &project).unwrap().unwrap();
    assert!(Arc::ptr_eq(&first, &again), "an unchanged profile is not parsed again");
    store.save(&doc, &format!("{pages}{}", "Gulls rose from the harbour wall. ".repeat(30)), Origin::Typed).unwrap();
    store.build_voice(&project).unwrap();
    let rebuilt = cache.get(&store, &project).unwrap().unwrap();
    assert!(!Arc::ptr_eq(&first, &rebuilt), "a rebuilt profile is read anew");
    assert!(rebuilt.units > first.units);
    store.clear_voice(&project).unwrap();
    assert!(cache.get(&store, &project).unwrap().is_none(), "a forgotten profile is not served from the cache");
}

#[tokio::test]
async fn drafting_a_chapter_checks_its_beats_and_changes_nothing_when_the_model_writes_nothing() {
    // The tiny random model's prose never survives the draft tool's clean-up; the binary's
    // `binder_http` test drafts with a real model.
    let d = desk(ServerConfig::default());
    let app = &d.app;
    call(app, "POST", "/api/projects", Some(json!({"name": "Saga"}))).await;
    let p = "/api/projects/Saga";
    call(app, "PUT", &format!("{p}/book/outline"), Some(json!({"text": "1. The Wreck: Oren washes ashore.\n2. The Storm: the lamp fails."}))).await;
    let no_beats = call(app, "POST", &format!("{p}/chapters/1/draft"), Some(json!({}))).await;
    assert_eq!(no_beats.status, StatusCode::BAD_REQUEST, "{}", no_beats.error());
    assert!(no_beats.error().contains("no beats"), "{}", no_beats.error());
    call(app, "PUT", &format!("{p}/book/beats"), Some(json!({"chapter": 1, "text": "1. Mara sees the wreck.\n2. She drags Oren up."}))).await;
    assert_eq!(call(app, "POST", &format!("{p}/chapters/1/draft"), Some(json!({"words_per_beat": 0}))).await.status, StatusCode::BAD_REQUEST);
    let empty = call(app, "POST", &format!("{p}/chapters/1/draft"), Some(json!({"words_per_beat": 12, "seed": 1}))).await;
    assert_eq!(empty.status, StatusCode::BAD_GATEWAY, "{}", empty.error());
    assert!(empty.error().contains("nothing was changed"), "{}", empty.error());
    let report = call(app, "GET", &format!("{p}/report"), None).await.json();
    assert_eq!(report["total"]["model"], 0, "{report}");
    // Words already there are not drafted over unasked.
    call(app, "PUT", &format!("{p}/book/chapter"), Some(json!({"chapter": 1, "text": "Mara found him at dawn."}))).await;
    let again = call(app, "POST", &format!("{p}/chapters/1/draft"), Some(json!({"words_per_beat": 12}))).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert!(again.error().contains("already has 5 words"), "{}", again.error());
}

/// A trainer whose adapter is any file at its path, "loaded" as the served model itself: it
/// counts the loads, so a test sees when the server reads an adapter again.
struct CountingTrainer {
    dir: std::path::PathBuf,
    base: Arc<dyn inkling_engine::Backend>,
    loads: std::sync::atomic::AtomicUsize,
}

impl inkling_server::learning::FeedbackTrainer for CountingTrainer {
    fn adapter_path(&self, project: &str) -> std::path::PathBuf {
        self.dir.join(format!("{project}.feedback.gguf"))
    }
    fn plan(&self, _pairs: &[inkling_server::learning::PairSize]) -> inkling_server::learning::TrainingPlan {
        inkling_server::learning::TrainingPlan { needed: 1, steps: 1, held_out: 0, seconds: 1.0 }
    }
    fn train(
        &self,
        _pairs: &[inkling_store::preferences::FeedbackPair],
        out: &std::path::Path,
        _on_step: &mut dyn FnMut(&inkling_server::learning::TrainingStep) -> bool,
    ) -> Result<inkling_server::learning::TrainingReport, inkling_server::learning::LearningError> {
        std::fs::write(out, b"adapter").map_err(|e| inkling_server::learning::LearningError::Failed(e.to_string()))?;
        Ok(inkling_server::learning::TrainingReport { pairs: 1, held_out: 0, preferred_before: 0, preferred_after: 0, steps: 1, seconds: 0.0, base: "tiny".into() })
    }
    fn load(&self, _adapter: &std::path::Path) -> Result<Arc<dyn inkling_engine::Backend>, inkling_server::learning::LearningError> {
        self.loads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(self.base.clone())
    }
}

#[tokio::test]
async fn an_adapter_trained_again_or_deleted_outside_the_server_is_noticed() {
    let d = desk(ServerConfig::default());
    let adapters = tempfile::tempdir().unwrap();
    let trainer = Arc::new(CountingTrainer { dir: adapters.path().into(), base: d.state.backend.clone(), loads: Default::default() });
    let app = app(d.state.clone().with_trainer(trainer.clone()));
    let loads = || trainer.loads.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(call(&app, "POST", "/api/projects", Some(json!({"name": "p"}))).await.status, StatusCode::CREATED);
    let doc = call(&app, "POST", "/api/projects/p/documents", Some(json!({"title": "One", "text": "The lamp went out. 她笑了。"}))).await.json();
    let id = doc["document"]["id"].as_i64().unwrap();
    let run = || async {
        call(&app, "POST", "/api/tools/continue", Some(json!({"text": "The lamp went out. 她笑了。", "n": 4, "seed": 1, "max_tokens": 12, "frame": "text", "project": "p", "document": id})))
            .await
            .json()
    };

    // No choices yet, no adapter: the served model writes.
    let status = call(&app, "GET", "/api/projects/p/learning", None).await.json();
    assert_eq!((status["pairs"].as_u64(), status["adapter"].is_null()), (Some(0), true), "{status}");
    let first = run().await;
    assert_eq!(first["model"], "tiny", "{first}");
    // Keeping one of the candidates makes pairs, and the count (kept between polls) follows.
    let gens = first["generations"].as_array().unwrap().clone();
    assert!(gens.len() >= 2, "{first}");
    let kept = format!("The lamp went out. 她笑了。{}", first["candidates"][0]["text"].as_str().unwrap());
    assert_eq!(call(&app, "POST", &format!("/api/projects/p/documents/{id}/accept"), Some(json!({"generation": gens[0], "text": kept}))).await.status, StatusCode::OK);
    let status = call(&app, "GET", "/api/projects/p/learning", None).await.json();
    assert_eq!(status["pairs"].as_u64(), Some(gens.len() as u64 - 1), "{status}");

    // The CLI trains an adapter while the server runs: the next run uses it, loaded once.
    let path = adapters.path().join("p.feedback.gguf");
    std::fs::write(&path, b"first adapter").unwrap();
    assert_eq!(run().await["model"], "tiny+feedback");
    assert_eq!(run().await["model"], "tiny+feedback");
    assert_eq!(loads(), 1, "an adapter in use is kept");
    // Trained again: the new file is loaded.
    std::fs::write(&path, b"the second adapter, trained on more choices").unwrap();
    assert_eq!(run().await["model"], "tiny+feedback");
    assert_eq!(loads(), 2, "a changed adapter file is loaded again");
    assert_eq!(call(&app, "GET", "/api/projects/p/learning", None).await.json()["adapter"]["in_use"], true);
    // Deleted by hand: the served model writes again.
    std::fs::remove_file(&path).unwrap();
    assert_eq!(run().await["model"], "tiny");
    assert!(call(&app, "GET", "/api/projects/p/learning", None).await.json()["adapter"].is_null());
}
