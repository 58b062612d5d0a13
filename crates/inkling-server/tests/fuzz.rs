//! Bad input, fuzzed (see inkling-engine/tests/fuzz.rs): every body the server accepts. Each
//! case picks a documented endpoint, fills its path with names and numbers that exist or not,
//! and sends a JSON body built from that endpoint's documented fields with values of any
//! type, or bytes that are not JSON at all. The answer must be a success or a client error
//! (4xx), or the model's own 502/503 and the queue's 429: never a 500, never a panic.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use inkling_craft::Toolbox;
use inkling_engine::testing::TinyModel;
use inkling_engine::{Engine, EngineConfig};
use inkling_server::openapi::ENDPOINTS;
use inkling_server::{AppState, ServerConfig, app};
use proptest::prelude::*;
use serde_json::{Value, json};
use std::sync::{Arc, OnceLock};
use tower::ServiceExt;

fn cases() -> u32 {
    std::env::var("INKLING_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(64)
}

struct Desk {
    _dir: tempfile::TempDir,
    runtime: tokio::runtime::Runtime,
    app: axum::Router,
}

/// The desk the fuzzing shares across cases.
fn desk() -> &'static Desk {
    static D: OnceLock<Desk> = OnceLock::new();
    D.get_or_init(new_desk)
}

fn new_desk() -> Desk {
    {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tiny.gguf");
        TinyModel { context: 4096, ..TinyModel::default() }.write(&path).unwrap();
        let engine = Engine::load(&path, &EngineConfig { threads: Some(1), ..Default::default() }).unwrap();
        let config = ServerConfig { db: dir.path().join("inkling.db"), model_id: "tiny".into(), ..ServerConfig::default() };
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let app = runtime.block_on(async { app(AppState::new(Arc::new(engine), Toolbox::builtin().unwrap(), config).unwrap()) });
        let desk = Desk { _dir: dir, runtime, app };
        // Something to find: a project with a chapter.
        send(&desk, "POST", "/api/projects", Some(json!({"name": "fz"}).to_string().into_bytes()));
        send(&desk, "POST", "/api/projects/fz/documents", Some(json!({"title": "One", "text": "The tide came in."}).to_string().into_bytes()));
        desk
    }
}

fn send(d: &Desk, method: &str, path: &str, body: Option<Vec<u8>>) -> (StatusCode, String) {
    d.runtime.block_on(async {
        let req = Request::builder().method(method).uri(path);
        let req = match body {
            Some(b) => req.header(header::CONTENT_TYPE, "application/json").body(Body::from(b)).unwrap(),
            None => req.body(Body::empty()).unwrap(),
        };
        let res = d.app.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let body = res.into_body().collect().await.map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned()).unwrap_or_default();
        (status, body)
    })
}

/// A value of any JSON type, small enough that a number never asks for a long generation.
fn value() -> impl Strategy<Value = Value> {
    // Mostly strings and small numbers, the types most fields take, so that cases get past
    // the body's parsing into the handlers as often as they are refused by it.
    let leaf = prop_oneof![
        1 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::Bool),
        3 => (-3i64..40).prop_map(Value::from),
        1 => any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        4 => prop_oneof![Just("continue"), Just("synopsis"), Just("outline"), Just("fz"), Just("zh"), Just("text"), Just("rejected"), Just("user"), Just("今天天气很好")].prop_map(|s| Value::String(s.to_string())),
        4 => ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(1, 8, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::vec(("[a-z_]{1,8}", inner), 0..4).prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// A path segment: one that exists, a number, or anything.
fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("fz".to_string()),
        Just("1".to_string()),
        Just("continue".to_string()),
        Just("synopsis".to_string()),
        Just("beats".to_string()),
        (0i64..5).prop_map(|n| n.to_string()),
        "[a-zA-Z0-9%._-]{1,10}"
    ]
}

#[derive(Debug, Clone)]
enum Payload {
    Fields(Vec<(usize, Value)>, Vec<(String, Value)>),
    Bytes(Vec<u8>),
}

fn payload() -> impl Strategy<Value = Payload> {
    prop_oneof![
        5 => (proptest::collection::vec((0usize..32, value()), 0..6), proptest::collection::vec(("[a-z_]{1,8}", value()), 0..2)).prop_map(|(f, x)| Payload::Fields(f, x)),
        1 => proptest::collection::vec(any::<u8>(), 0..40).prop_map(Payload::Bytes),
    ]
}

/// Valid requests to the endpoints that do the most, for mutating one field at a time: a
/// random body rarely gets past parsing, a valid one with one wrong field reaches the handler.
fn seeds() -> Vec<(&'static str, &'static str, Value)> {
    vec![
        ("POST", "/v1/completions", json!({"model": "tiny", "prompt": "The tide", "max_tokens": 4, "n": 2, "seed": 1, "logprobs": 2, "stop": ["."], "temperature": 0.7})),
        (
            "POST",
            "/v1/chat/completions",
            json!({"model": "tiny", "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 16, "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object", "properties": {"a": {"type": "string"}}}}}}),
        ),
        ("POST", "/api/tools/continue", json!({"text": "The tide came in.", "n": 2, "max_tokens": 4, "project": "fz", "document": 1, "alternatives": 2, "answer_start": "She"})),
        ("POST", "/api/tools/character", json!({"text": "a smuggler", "max_tokens": 4, "count": 2, "language": "zh"})),
        ("POST", "/api/tools/brainstorm", json!({"text": "a lighthouse", "max_tokens": 4, "count": 3, "bans": {"phrases": ["the"], "regex": ["a+"]}})),
        ("POST", "/api/projects/fz/documents/1/revisions", json!({"text": "The tide went out.", "origin": "typed"})),
        ("POST", "/api/projects/fz/documents", json!({"title": "Two", "text": "第二章。"})),
        ("POST", "/api/projects/fz/bible", json!({"kind": "character", "name": "Mara", "keys": ["the keeper"], "body": "A keeper.", "rules": {"order": 3}})),
        ("PUT", "/api/projects/fz/book/outline", json!({"text": "1. One: a start.\n2. Two: an end."})),
        ("PUT", "/api/projects/fz/book/beats", json!({"chapter": 1, "text": "1. A.\n2. B."})),
        ("POST", "/api/projects/fz/book/beats/generate", json!({"chapter": 1, "seed": 2})),
        ("PUT", "/api/projects/fz/book/beats/locks", json!({"chapter": 1, "whole": false, "parts": [1]})),
        ("POST", "/api/projects/fz/chapters/1/done", json!({"done": true, "seed": 1})),
        ("PUT", "/api/projects/fz/bans", json!({"defaults": false, "phrases": ["suddenly"]})),
        ("PUT", "/api/projects/fz/context", json!({"memory": "m", "authors_note": "n"})),
        ("POST", "/api/proofread", json!({"text": "Their is a error here."})),
    ]
}

#[derive(Debug, Clone)]
enum Mutation {
    Set(usize, Value),
    Remove(usize),
    Add(String, Value),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => (0usize..16, value()).prop_map(|(i, v)| Mutation::Set(i, v)),
        1 => (0usize..16).prop_map(Mutation::Remove),
        1 => ("[a-z_]{1,8}", value()).prop_map(|(k, v)| Mutation::Add(k, v)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn a_valid_request_with_a_wrong_field_gets_an_answer_not_a_500(which in 0usize..16, mutations in proptest::collection::vec(mutation(), 0..3), stream in any::<bool>()) {
        let d = desk();
        let seeds = seeds();
        let (method, path, mut body) = seeds[which % seeds.len()].clone();
        let o = body.as_object_mut().unwrap();
        for m in mutations {
            let keys: Vec<String> = o.keys().cloned().collect();
            match m {
                Mutation::Set(i, v) if !keys.is_empty() => { o.insert(keys[i % keys.len()].clone(), v); }
                Mutation::Remove(i) if !keys.is_empty() => { o.remove(&keys[i % keys.len()]); }
                Mutation::Add(k, v) => { o.insert(k, v); }
                _ => {}
            }
        }
        // Keep generations short whatever else the case says.
        if o.contains_key("max_tokens") {
            o.insert("max_tokens".into(), json!(16));
        }
        o.insert("stream".into(), json!(stream));
        let (status, text) = send(d, method, path, Some(body.to_string().into_bytes()));
        prop_assert!(status != StatusCode::INTERNAL_SERVER_ERROR, "{method} {path}: {status} {text}");
    }

    #[test]
    fn every_body_gets_an_answer_not_a_500(which in 0usize..100, segments in proptest::collection::vec(segment(), 4), body in payload(), stream in any::<bool>()) {
        let d = desk();
        let (method, template, _, _, fields) = ENDPOINTS[which % ENDPOINTS.len()];
        let mut path = String::new();
        let mut k = 0;
        for part in template.split('/') {
            if part.is_empty() { continue; }
            path.push('/');
            if part.starts_with('{') {
                path.push_str(&segments[k % segments.len()]);
                k += 1;
            } else {
                path.push_str(part);
            }
        }
        let names: Vec<&str> = fields.split(',').map(|f| f.trim().trim_end_matches("{}")).filter(|f| !f.is_empty()).collect();
        let bytes = match body {
            Payload::Bytes(b) => b,
            Payload::Fields(f, extra) => {
                let mut o = serde_json::Map::new();
                for (i, v) in f {
                    if let Some(name) = names.get(i % names.len().max(1)) {
                        o.insert(name.to_string(), v);
                    }
                }
                o.extend(extra);
                // Keep generations short whatever else the case says.
                if o.contains_key("max_tokens") || names.contains(&"max_tokens") {
                    o.insert("max_tokens".into(), json!(4));
                }
                o.insert("stream".into(), json!(stream));
                Value::Object(o).to_string().into_bytes()
            }
        };
        let body = (!matches!(method.to_ascii_uppercase().as_str(), "GET" | "DELETE")).then_some(bytes);
        let (status, text) = send(d, &method.to_ascii_uppercase(), &path, body);
        prop_assert!(status != StatusCode::INTERNAL_SERVER_ERROR, "{method} {path}: {status} {text}");
    }
}

/// The seeds are requests the server takes (else mutating them would test only parsing).
#[test]
fn the_seeds_are_valid_requests() {
    // A desk of its own: the fuzzing changes the shared one's project as it goes.
    let d = &new_desk();
    for (method, path, body) in seeds() {
        let (status, text) = send(d, method, path, Some(body.to_string().into_bytes()));
        assert!(status.is_success() || status == StatusCode::BAD_GATEWAY, "{method} {path}: {status} {text}");
    }
}
