//! `inkling train gpt`, `inkling finetune` and `inkling eval perplexity` end to end.
//! The pretraining test is offline and small; the fine-tuning test runs on the small real model (SmolLM2)
//! (required in CI through INKLING_REQUIRE_REAL_MODEL=1) over a writer's pages kept in
//! tests/data/writer: perplexity on held-out pages must drop, and on unrelated text must not
//! explode.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn inkling(home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_inkling")).env("INKLING_HOME", home).env_remove("INKLING_MODEL").env_remove("INKLING_ADAPTER").env_remove("INKLING_DB").args(args).output().unwrap()
}

fn ok(o: &Output) -> String {
    assert!(o.status.success(), "failed: {}\n{}", String::from_utf8_lossy(&o.stderr), String::from_utf8_lossy(&o.stdout));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn json_lines(s: &str) -> Vec<serde_json::Value> {
    s.lines().filter(|l| l.starts_with('{')).map(|l| serde_json::from_str(l).unwrap()).collect()
}

const VERSE: &str = "Shall I compare thee to a summer's day?\nThou art more lovely and more temperate:\nRough winds do shake the darling buds of May,\nAnd summer's lease hath all too short a date.\n";

#[test]
fn train_a_gpt_stop_resume_generate_and_evaluate() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("sonnet.txt");
    std::fs::write(&corpus, VERSE.repeat(10)).unwrap();
    let out = dir.path().join("sonnet-gpt");
    let (c, o) = (corpus.to_str().unwrap(), out.to_str().unwrap());
    let args = |iters: &str| {
        [
            "train",
            "gpt",
            "--corpus",
            c,
            "--out",
            o,
            "--layers",
            "2",
            "--heads",
            "2",
            "--embd",
            "32",
            "--block",
            "32",
            "--batch",
            "8",
            "--lr",
            "1e-2",
            "--warmup",
            "5",
            "--eval-interval",
            "20",
            "--eval-iters",
            "2",
            "--iters",
            iters,
            "--json",
        ]
        .map(String::from)
        .to_vec()
    };
    let run = |a: Vec<String>| inkling(dir.path(), &a.iter().map(String::as_str).collect::<Vec<_>>());
    let first = json_lines(&ok(&run(args("40"))));
    assert_eq!(first.iter().map(|e| e["iter"].as_u64().unwrap()).collect::<Vec<_>>(), vec![20, 40]);
    // The same folder again without --resume is refused rather than overwritten.
    let again = run(args("40"));
    assert!(!again.status.success() && String::from_utf8_lossy(&again.stderr).contains("--resume"));
    // --resume continues the saved run to its end (settings come from the checkpoint).
    let mut resume = args("40");
    resume.push("--resume".into());
    let o2 = run(resume);
    assert!(String::from_utf8_lossy(&o2.stderr).contains("40 iterations"), "{}", String::from_utf8_lossy(&o2.stderr));
    // The folder is a model for every other command.
    let text = ok(&inkling(dir.path(), &["--model", o, "generate", "Rough winds", "--max-tokens", "10", "--temperature", "0"]));
    assert!(!text.trim().is_empty());
    let ppl: serde_json::Value = serde_json::from_str(&ok(&inkling(dir.path(), &["--model", o, "eval", "perplexity", "--corpus", c, "--json"]))).unwrap();
    let p = ppl["result"]["perplexity"].as_f64().unwrap();
    assert!(p > 1.0 && p < 10.0, "perplexity {p} on the training text of a 40-iteration model");
    // Bad corpora are refused with the reason.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let e = inkling(dir.path(), &["train", "gpt", "--corpus", empty.to_str().unwrap(), "--out", dir.path().join("x").to_str().unwrap()]);
    assert!(!e.status.success() && String::from_utf8_lossy(&e.stderr).contains("holds no text"));
}

/// The "N training tokens" figure `inkling finetune` prints before training.
fn training_tokens(stderr: &str) -> usize {
    let tail = stderr.split(" training tokens").next().unwrap_or_default();
    tail.rsplit(' ').next().and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("no token count in: {stderr}"))
}

#[test]
fn finetuning_on_a_project_learns_from_its_documents() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("tiny.gguf");
    inkling_engine::testing::TinyModel::default().write(&model).unwrap();
    let m = model.to_str().unwrap();
    let pages = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/writer/pages");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&pages).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    for f in &files {
        ok(&inkling(dir.path(), &["project", "import", "Ysolde's Book", f.to_str().unwrap()]));
    }
    let short = ["--iters", "2", "--block", "32", "--batch", "2", "--json"];
    // A suggestion the writer accepted, and one they accepted and then edited: the model's
    // words are not the writer's pages, so training leaves both out.
    {
        let mut store = inkling_store::Store::open(&dir.path().join("inkling.db")).unwrap();
        let project = store.project("Ysolde's Book").unwrap();
        let doc = store.documents(&project).unwrap().remove(0);
        let head = store.head(&doc).unwrap().text;
        let accepted = inkling_store::Origin::Accepted { tool: "continue".into(), model: "tiny".into(), seed: 1, generation: None };
        let model_words = " Suddenly a mysterious stranger arrived, eyes gleaming with untold secrets.";
        store.save(&doc, &format!("{head}{model_words}"), accepted).unwrap();
        store.save(&doc, &format!("{head}{}", model_words.replace("untold ", "")), inkling_store::Origin::Typed).unwrap();
    }

    let from_project = inkling(dir.path(), &[&["--model", m, "finetune", "--project", "Ysolde's Book"], &short[..]].concat());
    ok(&from_project);
    let said = String::from_utf8_lossy(&from_project.stderr);
    assert!(said.contains("learning from project `Ysolde's Book`: 6 document(s)") && said.contains("(68 characters the model wrote left out)"), "{said}");
    // The project's own text is the same corpus as the folder it was imported from.
    let from_folder = inkling(dir.path(), &[&["--model", m, "finetune", "--corpus", pages.to_str().unwrap(), "--out", dir.path().join("f.gguf").to_str().unwrap()], &short[..]].concat());
    ok(&from_folder);
    assert_eq!(training_tokens(&said), training_tokens(&String::from_utf8_lossy(&from_folder.stderr)));
    // The adapter lands under the home's adapters folder and generation runs with it.
    let adapter = dir.path().join("adapters/Ysolde_s_Book.gguf");
    assert!(adapter.is_file(), "{said}");
    ok(&inkling(dir.path(), &["--model", m, "--adapter", adapter.to_str().unwrap(), "generate", "The lamp", "--max-tokens", "4"]));

    // Clear refusals: an unknown project, an empty one, both sources, neither.
    let e = inkling(dir.path(), &["--model", m, "finetune", "--project", "Nope"]);
    assert!(!e.status.success() && String::from_utf8_lossy(&e.stderr).contains("no project named `Nope`"), "{}", String::from_utf8_lossy(&e.stderr));
    ok(&inkling(dir.path(), &["project", "new", "Empty"]));
    let e = inkling(dir.path(), &["--model", m, "finetune", "--project", "Empty"]);
    assert!(String::from_utf8_lossy(&e.stderr).contains("holds no text of your own yet"), "{}", String::from_utf8_lossy(&e.stderr));
    let e = inkling(dir.path(), &["--model", m, "finetune", "--project", "Empty", "--corpus", pages.to_str().unwrap()]);
    assert!(!e.status.success() && String::from_utf8_lossy(&e.stderr).contains("cannot be used with"));
    let e = inkling(dir.path(), &["--model", m, "finetune"]);
    assert!(!e.status.success() && String::from_utf8_lossy(&e.stderr).contains("--project"));
}

fn small_model() -> Option<PathBuf> {
    let m = inkling_catalog::find(inkling_catalog::SMALL_MODEL).unwrap();
    if m.is_present_in(&inkling_engine::testing::models_dir()) {
        return Some(m.path_in(&inkling_engine::testing::models_dir()));
    }
    assert!(std::env::var("INKLING_REQUIRE_REAL_MODEL").is_err(), "the small real model is missing; run `inkling model pull smollm2-135m-instruct`");
    eprintln!("skipping: the small real model is not downloaded (`inkling model pull smollm2-135m-instruct`)");
    None
}

fn perplexity(home: &Path, model: &str, adapter: Option<&str>, corpus: &Path) -> f64 {
    let mut args = vec!["--model", model];
    if let Some(a) = adapter {
        args.extend(["--adapter", a]);
    }
    args.extend(["eval", "perplexity", "--corpus", corpus.to_str().unwrap(), "--json"]);
    let v: serde_json::Value = serde_json::from_str(&ok(&inkling(home, &args))).unwrap();
    v["result"]["perplexity"].as_f64().unwrap()
}

#[test]
fn finetuning_a_real_model_learns_a_writers_pages() {
    let Some(model) = small_model() else { return };
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/writer");
    let dir = tempfile::tempdir().unwrap();
    let adapter = dir.path().join("voice.gguf");
    let (m, a) = (model.to_str().unwrap(), adapter.to_str().unwrap());
    let out =
        inkling(dir.path(), &["--model", m, "finetune", "--corpus", data.join("pages").to_str().unwrap(), "--out", a, "--iters", "30", "--block", "64", "--batch", "2", "--lr", "1e-3", "--json"]);
    let evals = json_lines(&ok(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("the whole run takes about"), "a time estimate comes first: {stderr}");
    let (first, last) = (&evals[0], evals.last().unwrap());
    assert!(last["train_loss"].as_f64() < first["train_loss"].as_f64(), "{evals:?}");
    // The adapter is small beside the model.
    let size = std::fs::metadata(&adapter).unwrap().len();
    assert!(size < 4 << 20, "adapter is {size} bytes");

    let held_out = data.join("heldout.md");
    let unrelated = data.join("unrelated.txt");
    let (base_own, tuned_own) = (perplexity(dir.path(), m, None, &held_out), perplexity(dir.path(), m, Some(a), &held_out));
    let (base_other, tuned_other) = (perplexity(dir.path(), m, None, &unrelated), perplexity(dir.path(), m, Some(a), &unrelated));
    eprintln!("held-out pages: {base_own:.2} -> {tuned_own:.2}; unrelated text: {base_other:.2} -> {tuned_other:.2}");
    assert!(tuned_own < base_own * 0.9, "held-out perplexity {base_own:.2} -> {tuned_own:.2} did not drop by 10%");
    assert!(tuned_other < base_other * 1.5, "unrelated perplexity exploded: {base_other:.2} -> {tuned_other:.2}");

    // The toolbox and generation run with the adapter.
    let text = ok(&inkling(dir.path(), &["--model", m, "--adapter", a, "generate", "Ysolde Marrow climbed the", "--max-tokens", "16", "--temperature", "0"]));
    assert!(text.split_whitespace().count() >= 3, "{text}");
}

#[test]
fn finetuning_from_feedback_learns_from_the_writers_choices() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("tiny.gguf");
    inkling_engine::testing::TinyModel::default().write(&model).unwrap();
    let m = model.to_str().unwrap();
    ok(&inkling(dir.path(), &["project", "new", "Choices"]));
    ok(&inkling(dir.path(), &["project", "new", "Few"]));
    {
        let mut store = inkling_store::Store::open(&dir.path().join("inkling.db")).unwrap();
        for (name, runs) in [("Choices", 12), ("Few", 3)] {
            let project = store.project(name).unwrap();
            let doc = store.add_document(&project, "One", "chapter", "The harbour at dusk.", inkling_store::Origin::Typed).unwrap();
            for i in 0..runs {
                let candidate = |text: String| inkling_store::generations::NewGeneration {
                    document_id: Some(doc.id),
                    parent_id: None,
                    recipe: "continue".into(),
                    model: "tiny".into(),
                    request: serde_json::json!({"text": format!("The harbour at dusk, day {i}.")}),
                    sampling: serde_json::json!({}),
                    seed: i,
                    text,
                    timings: serde_json::json!({}),
                    tokens: None,
                };
                let kept = store.record_generation(&project, &candidate(format!(" She waited {i} minutes."))).unwrap();
                store.record_generation(&project, &candidate(format!(" SUDDENLY, {i} DRAGONS!!!"))).unwrap();
                let head = store.head(&doc).unwrap().text;
                store.accept(&doc, kept.id, &format!("{head} She waited {i} minutes.")).unwrap();
            }
        }
    }
    let out = inkling(dir.path(), &["--model", m, "finetune", "--from-feedback", "--project", "Choices", "--iters", "6", "--json"]);
    ok(&out);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("learning from your choices in `Choices`: 12 pairs (12 accepted over a candidate shown beside it, 0 of your edits"), "{said}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((v["pairs"].as_u64(), v["held_out"].as_u64()), (Some(12), Some(2)), "{v}");
    assert!(Path::new(v["adapter"].as_str().unwrap()).is_file());
    assert!(v["adapter"].as_str().unwrap().ends_with("adapters/Choices.feedback.gguf"));

    let e = inkling(dir.path(), &["--model", m, "finetune", "--from-feedback", "--project", "Few"]);
    assert!(!e.status.success() && String::from_utf8_lossy(&e.stderr).contains("3 usable feedback pairs, and learning from your choices needs at least 8"), "{}", String::from_utf8_lossy(&e.stderr));
    let e = inkling(dir.path(), &["--model", m, "finetune", "--from-feedback", "--corpus", "x"]);
    assert!(!e.status.success());
}
