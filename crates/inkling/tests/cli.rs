//! The `inkling` binary end to end, on a tiny model written by the test.

use inkling_engine::testing::TinyModel;
use std::path::PathBuf;
use std::process::{Command, Output};

struct Fixture {
    dir: tempfile::TempDir,
    model: PathBuf,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("tiny.gguf");
    TinyModel::default().write(&model).unwrap();
    Fixture { dir, model }
}

impl Fixture {
    fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_inkling"));
        cmd.env("INKLING_HOME", self.dir.path().join("home")).env_remove("INKLING_MODEL").args(args);
        match stdin {
            Some(input) => {
                use std::io::Write;
                cmd.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
                let mut child = cmd.spawn().unwrap();
                child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
                child.wait_with_output().unwrap()
            }
            None => cmd.output().unwrap(),
        }
    }

    fn m(&self) -> &str {
        self.model.to_str().unwrap()
    }
}

fn stdout(o: &Output) -> String {
    assert!(o.status.success(), "failed: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout.clone()).unwrap()
}

#[test]
fn generate_json_gives_n_candidates_with_counts_seed_and_timings() {
    let f = fixture();
    let out = stdout(&f.run(&["--model", f.m(), "generate", "the cat", "-n", "3", "--max-tokens", "8", "--json", "--seed", "5"], None));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let cands = v["candidates"].as_array().unwrap();
    assert_eq!(cands.len(), 3);
    for c in cands {
        assert!(c["text"].is_string());
        assert!(c["completion_tokens"].as_u64().unwrap() <= 8);
        assert!(["stop", "length"].contains(&c["finish_reason"].as_str().unwrap()));
    }
    assert_eq!(v["seed"], 5);
    assert!(v["prompt_tokens"].as_u64().unwrap() > 0);
    assert!(v["timings"]["decode_tokens_per_s"].as_f64().is_some());
}

#[test]
fn stream_labels_candidates_and_json_stream_emits_events() {
    let f = fixture();
    let out = stdout(&f.run(&["--model", f.m(), "generate", "the", "-n", "2", "--max-tokens", "6", "--stream", "--seed", "1"], None));
    assert!(out.contains("── candidate 1 ──") && out.contains("── candidate 2 ──"), "{out}");
    let out = stdout(&f.run(&["--model", f.m(), "generate", "the", "-n", "2", "--max-tokens", "6", "--stream", "--json"], None));
    let lines: Vec<serde_json::Value> = out.lines().filter(|l| l.starts_with('{') && l.ends_with('}')).map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(lines.iter().any(|e| e["event"] == "finished" && e["candidate"] == 1), "{out}");
}

#[test]
fn prompt_from_stdin_and_model_from_the_environment() {
    let f = fixture();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_inkling"));
    let o = cmd
        .env("INKLING_HOME", f.dir.path().join("home"))
        .env("INKLING_MODEL", f.m())
        .args(["generate", "--max-tokens", "4", "--json"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all("今天天气很好".as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(v["prompt_tokens"].as_u64().unwrap() >= 6, "Chinese prompt tokenized byte-wise on the tiny vocab");
}

#[test]
fn chat_answers_one_message_and_a_conversation_on_stdin() {
    let f = fixture();
    let out = stdout(&f.run(&["--model", f.m(), "chat", "hello", "--max-tokens", "5", "--greedy"], None));
    assert!(!out.is_empty());
    let o = f.run(&["--model", f.m(), "chat", "--max-tokens", "3"], Some("first\nsecond\n/exit\n"));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn clear_errors_for_missing_model_empty_prompt_and_bad_settings() {
    let f = fixture();
    let o = f.run(&["--model", "/no/such/model.gguf", "generate", "x"], None);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("no model file") && err.contains("/no/such/model.gguf"), "{err}");
    assert!(!err.contains("panicked"));

    let o = f.run(&["--model", f.m(), "generate", "   "], None);
    assert!(String::from_utf8_lossy(&o.stderr).contains("empty"));

    let o = f.run(&["--model", f.m(), "generate", "x", "--top-p", "3"], None);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("top_p"));

    let o = f.run(&["--model", f.m(), "generate", "x", "-n", "99"], None);
    assert!(String::from_utf8_lossy(&o.stderr).contains("n must be"));

    // A missing input file is named once, with the system's reason once (the reason was
    // printed twice when the I/O error was both in the message and its chained source).
    let missing = f.dir.path().join("no-such-chapter.txt");
    let o = f.run(&["--model", f.m(), "generate", "--file", missing.to_str().unwrap()], None);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("no-such-chapter.txt"), "{err}");
    assert_eq!(err.matches("No such file").count(), 1, "{err}");
}

#[test]
fn model_list_describes_a_local_file_and_the_catalog() {
    let f = fixture();
    let out = stdout(&f.run(&["--model", f.m(), "model", "list", "--json"], None));
    let rows: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    let tiny = rows.iter().find(|r| r["id"].as_str().unwrap().ends_with("tiny.gguf")).unwrap();
    assert_eq!(tiny["architecture"], "llama");
    assert_eq!(tiny["quantization"], "Q8_0");
    assert_eq!(tiny["context_length"], 256);
    assert!(tiny["parameters"].as_u64().unwrap() > 10_000);
    assert!(rows.iter().any(|r| r["id"] == "smollm2-135m-instruct"));
    let text = stdout(&f.run(&["--model", f.m(), "model", "list"], None));
    assert!(text.contains("(default)") && text.contains("arch llama"), "{text}");
}

#[test]
fn pull_of_an_unknown_name_lists_the_catalog() {
    let f = fixture();
    let o = f.run(&["model", "pull", "no-such-model"], None);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("smollm2-135m-instruct"));
}

#[test]
fn bench_reports_throughput_and_memory() {
    let f = fixture();
    let out = stdout(&f.run(&["--model", f.m(), "bench", "--prompt-tokens", "32", "--gen-tokens", "8", "-n", "2", "--json"], None));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["prompt_tokens"], 32);
    assert!(v["decode_tokens_per_s"].as_f64().unwrap() > 0.0);
    assert!(v["prompt_tokens_per_s"].as_f64().unwrap() > 0.0);
    assert!(v["peak_rss_mib"].as_f64().unwrap() > 1.0);

    let o = f.run(&["--model", f.m(), "bench", "--prompt-tokens", "0"], None);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--prompt-tokens must be at least 2"), "{}", String::from_utf8_lossy(&o.stderr));
}

/// A Chinese text given to the default model (which writes English only) gets a note on
/// stderr naming the models that write Chinese; an English text, or a model that writes
/// Chinese, gets none. The catalog knows its models by file name, so a tiny model under
/// SmolLM2's name stands in for it.
#[test]
fn a_language_the_model_cannot_write_gets_a_note_naming_one_that_can() {
    let f = fixture();
    let smol = f.dir.path().join("SmolLM2-135M-Instruct.Q4_1.gguf");
    // Room for a tool's prompt around the text.
    TinyModel { context: 2048, ..TinyModel::default() }.write(&smol).unwrap();
    let smol = smol.to_str().unwrap();
    let note = |args: &[&str]| {
        let o = f.run(args, None);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stderr).lines().find(|l| l.starts_with("note: ")).map(str::to_string)
    };
    let zh = "今天天气很好，我想去公园散步。";
    let told = note(&["--model", smol, "generate", zh, "--max-tokens", "2"]).expect("a note for Chinese on SmolLM2");
    assert!(told.contains("does not write Chinese") && told.contains("--model qwen2.5-coder-1.5b-instruct"), "{told}");
    let told = note(&["--model", smol, "tighten", zh, "--max-tokens", "4"]).expect("tools too");
    assert!(told.contains("qwen2.5-coder-0.5b-instruct"), "{told}");
    assert_eq!(note(&["--model", smol, "generate", "Once upon a time", "--max-tokens", "2"]), None);
    assert_eq!(note(&["--model", f.m(), "generate", zh, "--max-tokens", "2"]), None, "a model outside the catalog");
}

#[test]
fn serve_names_its_own_flags_and_opens_the_database_every_command_does() {
    let f = fixture();
    // Beyond this machine without a key: refused before anything loads, naming serve's flags.
    let o = Command::new(env!("CARGO_BIN_EXE_inkling"))
        .env("INKLING_HOME", f.dir.path().join("home"))
        .env_remove("INKLING_SERVER_KEY")
        .args(["--model", f.m(), "serve", "--host", "0.0.0.0", "--port", "0"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("--key-file") && err.contains("INKLING_SERVER_KEY") && !err.contains("--api-key-file"), "{err}");
    // An empty key file is refused, not taken as no key.
    let empty = f.dir.path().join("empty.key");
    std::fs::write(&empty, "  \n").unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_inkling"))
        .env("INKLING_HOME", f.dir.path().join("home"))
        .args(["--model", f.m(), "serve", "--port", "0", "--key-file", empty.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("is empty") && err.contains("--key-file"), "{err}");

    // INKLING_DB is the database for serve as it is for `inkling project`.
    let db = f.dir.path().join("novel.db");
    let mut child = Command::new(env!("CARGO_BIN_EXE_inkling"))
        .env("INKLING_HOME", f.dir.path().join("home"))
        .env("INKLING_DB", &db)
        .args(["--model", f.m(), "serve", "--port", "0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    use std::io::BufRead;
    let lines: Vec<String> = std::io::BufReader::new(child.stdout.take().unwrap()).lines().take(2).map(Result::unwrap).collect();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(lines[1], format!("projects are saved in {}", db.display()), "{lines:?}");
}

/// `--speculative` is on by default, never changes the text, reports what it guessed and
/// kept, and a mode it does not know is refused with the ones it does.
#[test]
fn speculative_decoding_keeps_the_text_and_reports_its_guesses() {
    let f = fixture();
    let prompt = "the sea and the wind and the rain and the cat ".repeat(4);
    let run = |extra: &[&str]| -> serde_json::Value {
        let mut args = vec!["--model", f.m(), "generate", prompt.as_str(), "--greedy", "--ignore-eos", "--max-tokens", "40", "--json"];
        args.extend_from_slice(extra);
        serde_json::from_str(&stdout(&f.run(&args, None))).unwrap()
    };
    let off = run(&["--speculative", "off"]);
    let auto = run(&[]);
    assert_eq!(off["candidates"][0]["tokens"].as_array().map(Vec::len), Some(40));
    assert_eq!(off["candidates"][0]["tokens"], auto["candidates"][0]["tokens"]);
    assert_eq!(off["timings"]["draft_tokens"], 0);
    let kept = auto["timings"]["draft_accepted"].as_u64().unwrap();
    assert!(kept > 0 && kept <= auto["timings"]["draft_tokens"].as_u64().unwrap(), "{}", auto["timings"]);
    let bench: serde_json::Value =
        serde_json::from_str(&stdout(&f.run(&["--model", f.m(), "bench", "--prompt-tokens", "32", "--gen-tokens", "16", "--speculative", "lookup", "--json"], None))).unwrap();
    assert_eq!(bench["speculative"], "lookup");
    assert!(bench["draft_tokens"].as_u64().is_some());
    let o = f.run(&["--model", f.m(), "generate", "x", "--speculative", "draft:big"], None);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("use auto, lookup or off"), "{}", String::from_utf8_lossy(&o.stderr));
}

/// Banned phrases never reach the output, whether the request, the config file or a project
/// names them; `inkling config show` says what is set, and a bad config file is named.
#[test]
fn banned_phrases_come_from_the_request_the_config_file_and_the_project() {
    let f = fixture();
    let generate = |extra: &[&str]| -> serde_json::Value {
        let mut args = vec!["--model", f.m(), "generate", "the", "--greedy", "--ignore-eos", "--max-tokens", "40", "--json"];
        args.extend_from_slice(extra);
        let o = f.run(&args, None);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_str(&stdout(&o)).unwrap()
    };
    let plain = generate(&["--no-default-bans"]);
    let text = plain["candidates"][0]["text"].as_str().unwrap().to_string();
    let chars: Vec<char> = text.chars().collect();
    let phrase: String = (chars.len() / 3..chars.len() - 1)
        .map(|i| chars[i..i + 2].iter().collect::<String>())
        .find(|w| w.chars().all(|c| c.is_ascii_alphanumeric()))
        .expect("two ASCII letters in a row")
        .to_lowercase();
    let banned = generate(&["--ban-regex", &phrase]);
    let out = banned["candidates"][0]["text"].as_str().unwrap().to_lowercase();
    assert!(!out.contains(&phrase), "{phrase:?} in {out:?}");
    assert!(banned["timings"]["ban_rewinds"].as_u64().unwrap() > 0);
    let o = f.run(&["--model", f.m(), "generate", "the", "--greedy", "--ignore-eos", "--max-tokens", "40", "--ban-regex", &phrase], None);
    assert!(!stdout(&o).to_lowercase().contains(&phrase));
    assert!(String::from_utf8_lossy(&o.stderr).contains("written over"), "{}", String::from_utf8_lossy(&o.stderr));

    let config = f.dir.path().join("home").join("config.toml");
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    std::fs::write(&config, format!("[bans]\nregex = [{phrase:?}]\n")).unwrap();
    let via_config = generate(&[]);
    assert_eq!(via_config["candidates"][0]["tokens"], banned["candidates"][0]["tokens"]);
    let show = stdout(&f.run(&["config", "show"], None));
    assert!(show.contains(&phrase) && show.contains("built-in banned phrases (on)") && show.contains("Elara"), "{show}");
    std::fs::write(&config, "[bans]\nphrase = [\"typo\"]\n").unwrap();
    let o = f.run(&["--model", f.m(), "generate", "the", "--max-tokens", "4"], None);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("config.toml") && err.contains("phrase"), "{err}");
    std::fs::remove_file(&config).unwrap();

    assert!(f.run(&["project", "new", "book"], None).status.success());
    let set = f.run(&["project", "bans", "book", "--add", "Mara", "--add-regex", r"\bkael\w*", "--defaults", "off", "--json"], None);
    let bans: serde_json::Value = serde_json::from_str(&stdout(&set)).unwrap();
    assert_eq!(bans, serde_json::json!({"defaults": false, "phrases": ["Mara"], "regex": [r"\bkael\w*"]}));
    let shown = stdout(&f.run(&["project", "bans", "book", "--remove", "Mara"], None));
    assert!(shown.contains("built-in list: off") && shown.contains("phrases: (none)") && shown.contains(r"\bkael\w*"), "{shown}");
    let bad = f.run(&["project", "bans", "book", "--add-regex", "("], None);
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("not a valid regular expression"));
}

/// The config file's model, sampling, server and projects settings are used without flags,
/// under flags and their variables, and `config show` names where each came from.
#[test]
fn the_config_file_sets_the_model_sampling_and_database_and_show_names_each_source() {
    let f = fixture();
    let home = f.dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(home.join("config.toml"), "[model]\nname = \"../tiny.gguf\"\n[sampling]\nmax_tokens = 3\n[server]\nport = 9123\n[projects]\ndb = \"books.db\"\n").unwrap();
    let tokens = |o: &Output| -> u64 {
        let v: serde_json::Value = serde_json::from_str(&stdout(o)).unwrap();
        v["candidates"][0]["completion_tokens"].as_u64().unwrap()
    };
    assert_eq!(tokens(&f.run(&["generate", "the", "--ignore-eos", "--json"], None)), 3, "model and max_tokens from the file");
    assert_eq!(tokens(&f.run(&["generate", "the", "--ignore-eos", "--json", "--max-tokens", "5"], None)), 5, "a flag wins over the file");
    assert!(f.run(&["project", "new", "book"], None).status.success());
    assert!(home.join("books.db").is_file(), "[projects] db, relative to the config file's folder");

    let show = |extra_env: Option<(&str, &str)>, args: &[&str]| -> serde_json::Value {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_inkling"));
        cmd.env("INKLING_HOME", &home).env_remove("INKLING_MODEL").env_remove("INKLING_DB").args(args).args(["config", "show", "--json"]);
        if let Some((k, v)) = extra_env {
            cmd.env(k, v);
        }
        let v: serde_json::Value = serde_json::from_str(&stdout(&cmd.output().unwrap())).unwrap();
        let settings = v["settings"].as_array().unwrap();
        settings.iter().map(|s| (s["key"].as_str().unwrap().to_string(), serde_json::json!([s["value"], s["from"]]))).collect::<serde_json::Map<_, _>>().into()
    };
    let s = show(None, &[]);
    assert_eq!(s["model.name"][1], "config file");
    assert!(s["model.name"][0].as_str().unwrap().ends_with("tiny.gguf"), "{s}");
    assert_eq!(s["sampling.max_tokens"], serde_json::json!(["3", "config file"]));
    assert_eq!(s["sampling.temperature"], serde_json::json!(["0.8", "built-in"]));
    assert_eq!(s["server.port"], serde_json::json!(["9123", "config file"]));
    assert_eq!(s["projects.db"][1], "config file");
    assert_eq!(show(Some(("INKLING_MODEL", "smollm2-135m-instruct")), &[])["model.name"], serde_json::json!(["smollm2-135m-instruct", "INKLING_MODEL"]));
    assert_eq!(show(Some(("INKLING_MODEL", "smollm2-135m-instruct")), &["--model", "gemma3-270m"])["model.name"], serde_json::json!(["gemma3-270m", "--model"]));
    assert_eq!(show(Some(("INKLING_DB", "/tmp/elsewhere.db")), &[])["projects.db"], serde_json::json!(["/tmp/elsewhere.db", "INKLING_DB"]));
}

/// `--show-alternatives`: every generated token with the model's ten likeliest choices, in
/// order, as JSON and as a table after the text.
#[test]
fn show_alternatives_lists_each_tokens_likeliest_choices() {
    let f = fixture();
    let o = f.run(&["--model", f.m(), "generate", "the", "--greedy", "--ignore-eos", "--max-tokens", "8", "--show-alternatives", "--json"], None);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let c = &v["candidates"][0];
    let alts = c["alternatives"].as_array().unwrap();
    assert_eq!(alts.len(), 8);
    for (a, t) in alts.iter().zip(c["tokens"].as_array().unwrap()) {
        assert_eq!(&a["token"], t);
        let top = a["alternatives"].as_array().unwrap();
        assert_eq!(top.len(), 10);
        let lps: Vec<f64> = top.iter().map(|x| x["logprob"].as_f64().unwrap()).collect();
        assert!(lps.windows(2).all(|w| w[0] >= w[1]), "likeliest first: {lps:?}");
        // Greedy: the chosen token is the likeliest.
        assert_eq!(&top[0]["token"], t);
    }
    let table = stdout(&f.run(&["--model", f.m(), "generate", "the", "--greedy", "--max-tokens", "4", "--show-alternatives"], None));
    assert!(table.contains("token by token") && table.contains('%'), "{table}");
}
