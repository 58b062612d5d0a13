//! `inkling voice build|show|clear` end to end, in English and Chinese, and a prose tool
//! run in the project ranking its candidates by the profile (on a tiny model the test writes).

use inkling_engine::testing::TinyModel;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_inkling"))
        .env("INKLING_HOME", dir.join("home"))
        .env("INKLING_MODEL", dir.join("tiny.gguf"))
        .env("INKLING_DB", dir.join("voice.db"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap()
}

fn ok(o: Output) -> String {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap()
}

#[test]
fn a_writers_voice_is_built_described_used_and_cleared() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    TinyModel { context: 1024, ..TinyModel::default() }.write(&d.join("tiny.gguf")).unwrap();
    let pages = d.join("pages.txt");
    std::fs::write(&pages, "The tide came in over the flats; Mara watched it from the wall. \"Not yet,\" she said.\n\n".repeat(40)).unwrap();
    ok(run(d, &["project", "import", "Tide", pages.to_str().unwrap()]));

    let missing = run(d, &["voice", "show", "--project", "Tide"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("inkling voice build --project Tide"), "{}", String::from_utf8_lossy(&missing.stderr));
    let built = ok(run(d, &["voice", "build", "--project", "Tide"]));
    assert!(built.contains("Your sentences average") && built.contains("Dialogue: "), "{built}");
    assert_eq!(ok(run(d, &["voice", "show", "--project", "Tide"])), built);
    let json: serde_json::Value = serde_json::from_str(&ok(run(d, &["voice", "show", "--project", "Tide", "--json"]))).unwrap();
    assert_eq!(json["script"], "latin");
    assert!(json["habits"]["quoted"].as_f64().unwrap() > 0.0);

    // A prose tool in the project ranks by it; --no-voice keeps the model's order.
    let tool = ["continue", "the", "--project", "Tide", "-n", "3", "--seed", "3", "--max-tokens", "40", "--frame", "text", "--json"];
    let out: serde_json::Value = serde_json::from_str(&ok(run(d, &tool))).unwrap();
    let candidates = out["candidates"].as_array().unwrap();
    assert!(!candidates.is_empty(), "{out}");
    assert!(candidates.iter().all(|c| c["voice"]["reason"].as_str().is_some_and(|r| r.contains("your voice"))), "{out}");
    let plain: serde_json::Value = serde_json::from_str(&ok(run(d, &[&tool[..], &["--no-voice"]].concat()))).unwrap();
    assert!(plain["candidates"].as_array().unwrap().iter().all(|c| c.get("voice").is_none()), "{plain}");

    ok(run(d, &["voice", "clear", "--project", "Tide"]));
    assert!(!run(d, &["voice", "show", "--project", "Tide"]).status.success());

    // Chinese pages are described in Chinese; too little writing says how much is needed.
    let zh = d.join("zh.txt");
    std::fs::write(&zh, "今天天气很好，我想去公园散步。你去吗？我们一起走吧。\n".repeat(40)).unwrap();
    ok(run(d, &["project", "import", "Park", zh.to_str().unwrap()]));
    let described = ok(run(d, &["voice", "build", "--project", "Park"]));
    assert!(described.contains("你的句子平均") && described.contains("句末语气词"), "{described}");
    let short = d.join("short.txt");
    std::fs::write(&short, "A few words.").unwrap();
    ok(run(d, &["project", "import", "Short", short.to_str().unwrap()]));
    let o = run(d, &["voice", "build", "--project", "Short"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("at least 480 words of your own writing and there are 3"), "{}", String::from_utf8_lossy(&o.stderr));
    let o = run(d, &["voice", "build"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("pass --project NAME"));
}
