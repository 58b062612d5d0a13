//! The remote backend against a fault-injecting OpenAI-compatible server written here: the
//! happy path (streaming, n, the fields sent), and every failure a writer will meet.

use inkling_engine::{Backend, EngineError, Event, FinishReason, GenerateRequest, Prompt};
use inkling_remote::{RemoteBackend, RemoteConfig};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the server does with the request number `i` to a path.
type Script = Arc<dyn Fn(&str, usize, &serde_json::Value) -> Reply + Send + Sync>;

enum Reply {
    Json(u16, String, Vec<(&'static str, String)>),
    /// SSE chunks; `cut` drops the connection before `[DONE]`.
    Sse(Vec<String>, bool),
    Silence,
}

struct Server {
    url: String,
    bodies: Arc<Mutex<Vec<(String, serde_json::Value)>>>,
}

fn serve(script: Script) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let bodies: Arc<Mutex<Vec<(String, serde_json::Value)>>> = Arc::default();
    let seen = bodies.clone();
    std::thread::spawn(move || {
        let counts: Mutex<std::collections::HashMap<String, usize>> = Mutex::default();
        for stream in listener.incoming().flatten() {
            let (path, body) = read_request(&stream);
            let n = {
                let mut c = counts.lock().unwrap();
                let e = c.entry(path.clone()).or_default();
                *e += 1;
                *e - 1
            };
            seen.lock().unwrap().push((path.clone(), body.clone()));
            let reply = script(&path, n, &body);
            write_reply(stream, reply);
        }
    });
    Server { url, bodies }
}

fn read_request(stream: &TcpStream) -> (String, serde_json::Value) {
    let mut r = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
    let mut len = 0;
    loop {
        let mut h = String::new();
        r.read_line(&mut h).unwrap();
        if h.trim().is_empty() {
            break;
        }
        if let Some(v) = h.to_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap();
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).unwrap();
    (path, serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null))
}

fn write_reply(mut s: TcpStream, reply: Reply) {
    match reply {
        Reply::Json(code, body, headers) => {
            let extra: String = headers.iter().map(|(k, v)| format!("{k}: {v}\r\n")).collect();
            let _ = write!(s, "HTTP/1.1 {code} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n{extra}\r\n{body}", body.len());
        }
        Reply::Sse(chunks, cut) => {
            let _ = write!(s, "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n");
            for c in chunks {
                let _ = write!(s, "data: {c}\n\n");
                let _ = s.flush();
            }
            if !cut {
                let _ = write!(s, "data: [DONE]\n\n");
            }
        }
        Reply::Silence => std::thread::sleep(Duration::from_secs(5)),
    }
}

fn models() -> Reply {
    Reply::Json(200, r#"{"object":"list","data":[{"id":"served-model","max_model_len":2048}]}"#.into(), vec![])
}

fn chunk(index: usize, text: &str, finish: Option<&str>) -> String {
    serde_json::json!({"choices": [{"index": index, "text": text, "finish_reason": finish}]}).to_string()
}

fn config(url: &str) -> RemoteConfig {
    RemoteConfig { read_timeout: Duration::from_millis(800), backoff: Duration::from_millis(20), max_retries: 2, ..RemoteConfig::new(url) }
}

fn request(n: usize) -> GenerateRequest {
    GenerateRequest { n, max_tokens: 16, seed: Some(5), stop: vec!["\n\n".into()], ..GenerateRequest::new(Prompt::Text("Once".into())) }
}

fn collect(b: &RemoteBackend, r: &GenerateRequest) -> (Result<inkling_engine::Generation, EngineError>, Vec<(usize, String)>) {
    let mut events = Vec::new();
    let g = b.generate(r, &mut |e| {
        if let Event::Text { candidate, text, .. } = e {
            events.push((candidate, text.to_string()));
        }
        true
    });
    (g, events)
}

#[test]
fn streams_n_candidates_and_sends_the_fields_servers_read() {
    let s = serve(Arc::new(|path, _, _| match path {
        "/v1/models" => models(),
        _ => Reply::Sse(
            vec![chunk(0, " upon", None), chunk(1, " there", None), chunk(2, " in", None), chunk(0, " a time", Some("stop")), chunk(1, " was", Some("length")), chunk(2, " May", Some("stop"))],
            false,
        ),
    }));
    let b = RemoteBackend::connect(config(&s.url)).unwrap();
    assert_eq!(b.info().name, "served-model");
    assert_eq!(b.context_length(), 2048);
    let mut r = request(3);
    r.sampling.top_k = 20;
    r.sampling.min_p = 0.1;
    r.sampling.repeat_penalty = 1.2;
    let (g, events) = collect(&b, &r);
    let g = g.unwrap();
    let texts: Vec<&str> = g.candidates.iter().map(|c| c.text.as_str()).collect();
    assert_eq!(texts, [" upon a time", " there was", " in May"]);
    assert_eq!(g.candidates[1].finish_reason, FinishReason::Length);
    assert_eq!(events.len(), 6);
    let bodies = s.bodies.lock().unwrap();
    let (path, body) = bodies.iter().find(|(p, _)| p == "/v1/completions").unwrap();
    assert_eq!(path, "/v1/completions");
    assert_eq!(body["model"], "served-model");
    assert_eq!(body["n"], 3);
    assert_eq!(body["stream"], true);
    assert_eq!(body["stop"][0], "\n\n");
    assert_eq!(body["seed"], 5);
    assert_eq!(body["top_k"], 20);
    assert!((body["min_p"].as_f64().unwrap() - 0.1).abs() < 1e-6);
    assert!((body["repetition_penalty"].as_f64().unwrap() - 1.2).abs() < 1e-6);
}

#[test]
fn a_server_without_n_gets_parallel_requests() {
    let s = serve(Arc::new(|path, i, body| match path {
        "/v1/models" => models(),
        _ => Reply::Sse(vec![chunk(0, &format!("answer {i} seed {}", body["seed"]), Some("stop"))], false),
    }));
    let b = RemoteBackend::connect(config(&s.url)).unwrap();
    let (g, _) = collect(&b, &request(3));
    let g = g.unwrap();
    assert_eq!(g.candidates.len(), 3);
    let mut seeds: Vec<String> = g.candidates.iter().map(|c| c.text.split("seed ").nth(1).unwrap().to_string()).collect();
    seeds.sort();
    assert_eq!(seeds, ["5", "6", "7"]);
    assert_eq!(g.candidates.iter().map(|c| c.index).collect::<Vec<_>>(), [0, 1, 2]);
}

#[test]
fn rate_limits_and_server_errors_are_retried_with_backoff() {
    let s = serve(Arc::new(|path, i, _| match (path, i) {
        ("/v1/models", _) => models(),
        (_, 0) => Reply::Json(429, r#"{"error":{"message":"slow down","type":"rate_limit"}}"#.into(), vec![("retry-after", "0.05".into())]),
        (_, 1) => Reply::Json(503, "overloaded".into(), vec![]),
        _ => Reply::Sse(vec![chunk(0, "fine", Some("stop"))], false),
    }));
    let b = RemoteBackend::connect(config(&s.url)).unwrap();
    let (g, _) = collect(&b, &request(1));
    assert_eq!(g.unwrap().candidates[0].text, "fine");
}

#[test]
fn retries_end_with_a_clear_message() {
    let s = serve(Arc::new(|path, _, _| match path {
        "/v1/models" => models(),
        _ => Reply::Json(500, r#"{"error":{"message":"CUDA out of memory"}}"#.into(), vec![]),
    }));
    let b = RemoteBackend::connect(config(&s.url)).unwrap();
    let e = collect(&b, &request(1)).0.unwrap_err().to_string();
    assert!(e.contains("500") && e.contains("CUDA out of memory") && e.contains("gave up after 2 retries"), "{e}");
}

#[test]
fn a_wrong_key_is_not_retried_and_the_key_is_never_shown() {
    let s = serve(Arc::new(|_, _, _| Reply::Json(401, r#"{"error":{"message":"invalid api key"}}"#.into(), vec![])));
    let cfg = RemoteConfig { api_key: Some("sk-secret-123".into()), ..config(&s.url) };
    assert!(!format!("{cfg:?}").contains("sk-secret-123"));
    let err = RemoteBackend::connect(cfg).err().unwrap();
    assert_eq!(err.remedy(), Some(inkling_engine::Remedy::ApiKey), "the caller is told the key is what to change");
    let e = err.to_string();
    assert!(e.contains("refused the API key") && !e.contains("sk-secret-123"), "{e}");
    assert!(!e.contains("--") && !e.contains("INKLING_"), "a library error names no CLI flag: {e}");
    assert_eq!(s.bodies.lock().unwrap().len(), 1, "401 is not retried");
}

#[test]
fn a_stream_cut_midway_keeps_the_text_received() {
    let s = serve(Arc::new(|path, _, _| match path {
        "/v1/models" => models(),
        _ => Reply::Sse(vec![chunk(0, "The lamp", None), chunk(0, " flickered", None)], true),
    }));
    let b = RemoteBackend::connect(config(&s.url)).unwrap();
    match collect(&b, &request(1)).0 {
        Err(EngineError::Interrupted { reason, partial }) => {
            assert!(reason.contains("ended early"), "{reason}");
            assert_eq!(partial.candidates[0].text, "The lamp flickered");
        }
        other => panic!("expected an interrupted stream, got {other:?}"),
    }
}

#[test]
fn malformed_json_mid_stream_keeps_the_text_and_names_the_problem() {
    let s = serve(Arc::new(|path, _, _| match path {
        "/v1/models" => models(),
        _ => Reply::Sse(vec![chunk(0, "Half", None), "{not json".into()], false),
    }));
    let b = RemoteBackend::connect(config(&s.url)).unwrap();
    match collect(&b, &request(1)).0 {
        Err(EngineError::Interrupted { reason, partial }) => {
            assert!(reason.contains("malformed JSON") && reason.contains("{not json"), "{reason}");
            assert_eq!(partial.candidates[0].text, "Half");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn refused_connections_and_silent_servers_fail_clearly() {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let e = RemoteBackend::connect(config(&format!("http://127.0.0.1:{port}/v1"))).err().unwrap().to_string();
    assert!(e.contains("cannot connect") && e.contains("is the server running"), "{e}");

    let s = serve(Arc::new(|path, _, _| match path {
        "/v1/models" => models(),
        _ => Reply::Silence,
    }));
    let b = RemoteBackend::connect(RemoteConfig { max_retries: 0, ..config(&s.url) }).unwrap();
    let e = collect(&b, &request(1)).0.unwrap_err().to_string();
    assert!(e.contains("did not answer in time") || e.contains("timed out"), "{e}");
}

#[test]
fn cancelling_closes_the_request_and_returns_what_arrived() {
    let s = serve(Arc::new(|path, _, _| match path {
        "/v1/models" => models(),
        _ => Reply::Sse((0..50).map(|i| chunk(0, &format!(" w{i}"), None)).collect(), false),
    }));
    let b = RemoteBackend::connect(config(&s.url)).unwrap();
    let mut seen = 0;
    let g = b.generate(&request(1), &mut |e| {
        if matches!(e, Event::Text { .. }) {
            seen += 1;
        }
        seen < 3
    });
    let g = g.unwrap();
    assert_eq!(g.candidates[0].finish_reason, FinishReason::Cancelled);
    assert_eq!(g.candidates[0].text, " w0 w1 w2");
}

#[test]
fn tokens_are_counted_by_the_server_or_estimated_on_the_safe_side() {
    let s = serve(Arc::new(|path, _, body| match path {
        "/v1/models" => models(),
        "/tokenize" if body.get("content").is_some() => Reply::Json(200, serde_json::json!({"tokens": vec![1; body["content"].as_str().unwrap().split(' ').count()]}).to_string(), vec![]),
        _ => Reply::Json(404, "{}".into(), vec![]),
    }));
    let b = RemoteBackend::connect(config(&s.url)).unwrap();
    assert_eq!(b.count_tokens("one two three").unwrap(), 3);
    let s = serve(Arc::new(|path, _, _| if path == "/v1/models" { models() } else { Reply::Json(404, "{}".into(), vec![]) }));
    let b = RemoteBackend::connect(config(&s.url)).unwrap();
    let english = "The quick brown fox jumps over the lazy dog and keeps running.";
    assert!(b.count_tokens(english).unwrap() >= english.split_whitespace().count() + 2);
    assert!(b.count_tokens("那天夜里雨下得很大").unwrap() >= 9);
}

/// A server that cannot ban: an answer holding a banned phrase is asked for again with
/// another seed, and one still holding it after the retries is cut before it; nothing
/// banned is ever shown, and the list is sent for servers that ban themselves.
#[test]
fn banned_phrases_are_checked_after_the_fact_and_asked_for_again() {
    let s = serve(Arc::new(|path, i, _| match path {
        "/v1/models" => models(),
        // Request 0 (n = 2): one clean answer, one with the name. Retries: the name again,
        // then a clean one.
        _ if i == 0 => Reply::Sse(vec![chunk(0, "The sea was calm.", Some("stop")), chunk(1, "Then Elara smiled.", Some("stop"))], false),
        _ if i == 1 => Reply::Sse(vec![chunk(0, "And ELARA wept.", Some("stop"))], false),
        _ => Reply::Sse(vec![chunk(0, "Then Mara smiled.", Some("stop"))], false),
    }));
    let b = RemoteBackend::connect(config(&s.url)).unwrap();
    let r = GenerateRequest { banned_strings: vec!["Elara".into()], ..request(2) };
    let (g, events) = collect(&b, &r);
    let g = g.unwrap();
    let texts: Vec<&str> = g.candidates.iter().map(|c| c.text.as_str()).collect();
    assert_eq!(texts, ["The sea was calm.", "Then Mara smiled."]);
    assert_eq!(g.timings.ban_rewinds, 2);
    assert!(events.iter().all(|(_, t)| !t.to_lowercase().contains("elara")), "{events:?}");
    let bodies = s.bodies.lock().unwrap();
    let first = bodies.iter().find(|(p, _)| p == "/v1/completions").unwrap();
    assert_eq!(first.1["banned_strings"][0], "Elara");
    drop(bodies);

    // Every retry holds it: the answer is cut before the phrase and says why it ended.
    let s = serve(Arc::new(|path, _, _| match path {
        "/v1/models" => models(),
        _ => Reply::Sse(vec![chunk(0, "Then Elara smiled.", Some("stop"))], false),
    }));
    let b = RemoteBackend::connect(config(&s.url)).unwrap();
    let (g, _) = collect(&b, &GenerateRequest { banned_strings: vec!["Elara".into()], ..request(1) });
    let c = &g.unwrap().candidates[0];
    assert_eq!((c.text.as_str(), c.finish_reason), ("Then ", FinishReason::Banned));
}
