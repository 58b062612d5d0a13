//! inkling against a real peer: llama.cpp's OpenAI-compatible server (llama-cpp-python[server])
//! serving the small real model (SmolLM2) on 127.0.0.1. `.ci/run` installs the peer and sets
//! INKLING_LLAMA_SERVER_PYTHON to its Python; without it this test skips with a note.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Peer {
    child: Child,
    url: String,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn peer() -> Option<Peer> {
    let Ok(python) = std::env::var("INKLING_LLAMA_SERVER_PYTHON") else {
        eprintln!("skipping: INKLING_LLAMA_SERVER_PYTHON is not set (.ci/run sets it after installing llama-cpp-python[server])");
        return None;
    };
    let model = inkling_catalog::find(inkling_catalog::SMALL_MODEL).unwrap();
    assert!(model.is_present_in(&inkling_engine::testing::models_dir()), "the small real model is missing; run `inkling model pull smollm2-135m-instruct`");
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/llama_server.py");
    let child = Command::new(python)
        .args([
            script,
            "--model",
            model.path_in(&inkling_engine::testing::models_dir()).to_str().unwrap(),
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--n_ctx",
            "2048",
            "--model_alias",
            "smollm2",
        ])
        .env("INKLING_LLAMA_NO_EXTRA_BUFTS", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the peer starts");
    let url = format!("http://127.0.0.1:{port}/v1");
    let peer = Peer { child, url };
    let t0 = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(t0.elapsed() < Duration::from_secs(60), "the peer did not start listening in 60 s");
        std::thread::sleep(Duration::from_millis(200));
    }
    Some(peer)
}

fn inkling(p: &Peer, args: &[&str]) -> (bool, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_inkling")).env("INKLING_BACKEND", "openai").env("INKLING_BASE_URL", &p.url).env_remove("INKLING_MODEL").args(args).stdin(Stdio::null()).output().unwrap();
    (o.status.success(), String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

#[test]
fn every_path_works_against_llama_cpp_server() {
    let Some(p) = peer() else { return };
    let (ok, out, err) = inkling(&p, &["model", "list", "--remote"]);
    assert!(ok && out.contains("smollm2"), "{out}{err}");

    // Non-streaming, three candidates (this server ignores n, so they come from parallel requests).
    let (ok, out, err) = inkling(&p, &["generate", "Once upon a time", "-n", "3", "--max-tokens", "16", "--seed", "1", "--json"]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let c = v["candidates"].as_array().unwrap();
    assert_eq!(c.len(), 3);
    assert!(c.iter().all(|c| !c["text"].as_str().unwrap().is_empty()));

    // Streaming, with a stop string the server enforces.
    let (ok, out, err) = inkling(&p, &["generate", "Count: one, two, three,", "--stream", "--max-tokens", "24", "--seed", "2", "--stop", ","]);
    assert!(ok, "{err}");
    assert!(!out.trim().is_empty() && !out.contains(','), "{out:?}");

    // Same seed, same text.
    let a = inkling(&p, &["generate", "The sea was", "--max-tokens", "12", "--seed", "9", "--json"]).1;
    let b = inkling(&p, &["generate", "The sea was", "--max-tokens", "12", "--seed", "9", "--json"]).1;
    let text = |s: &str| serde_json::from_str::<serde_json::Value>(s).unwrap()["candidates"][0]["text"].as_str().unwrap().to_string();
    assert_eq!(text(&a), text(&b));

    // A toolbox tool end to end, and a structured one.
    let (ok, out, err) = inkling(&p, &["brainstorm", "a lighthouse keeper", "-n", "2", "--seed", "1", "--json"]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(v["candidates"].as_array().unwrap().iter().any(|c| c["items"].as_array().is_some_and(|i| !i.is_empty())), "{out}");
    let (ok, out, err) = inkling(&p, &["character", "a smuggler with a conscience", "--seed", "2", "--json"]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    for f in ["name", "role", "wants", "fears", "voice", "appearance", "backstory"] {
        assert!(v["candidates"][0]["json"][f].is_string(), "{f}: {out}");
    }
    let (ok, out, err) = inkling(&p, &["chat", "Say hello.", "--max-tokens", "12"]);
    assert!(ok && !out.trim().is_empty(), "{err}");
}
