//! The writing tools on the command line, on a tiny model written by the test.

use inkling_engine::testing::TinyModel;
use std::process::{Command, Output, Stdio};

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        TinyModel { context: 2048, ..TinyModel::default() }.write(&dir.path().join("tiny.gguf")).unwrap();
        std::fs::create_dir(dir.path().join("recipes")).unwrap();
        Fixture { dir }
    }

    fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_inkling"));
        cmd.env("INKLING_HOME", self.dir.path().join("home"))
            .env("INKLING_RECIPES", self.dir.path().join("recipes"))
            .env("INKLING_MODEL", self.dir.path().join("tiny.gguf"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        {
            use std::io::Write;
            let mut input = child.stdin.take().unwrap();
            input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
        }
        child.wait_with_output().unwrap()
    }
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn tools_lists_every_tool_with_its_options() {
    let f = Fixture::new();
    let o = f.run(&["tools"], None);
    assert!(o.status.success(), "{}", err(&o));
    for t in ["continue", "brainstorm", "outline", "character", "place", "draft", "describe", "expand", "tighten", "rewrite", "poem", "summarize", "business", "first-lines", "titles", "proofread"] {
        assert!(out(&o).contains(t), "{t} missing");
    }
    assert!(out(&o).contains("--style casual|children|formal"));
    let o = f.run(&["tools", "--show", "tighten"], None);
    assert!(out(&o).contains("[prompt]") && out(&o).contains("length = \"shorter\""));
}

#[test]
fn a_tool_runs_from_an_argument_a_file_or_stdin_with_json_output() {
    let f = Fixture::new();
    let o = f.run(&["brainstorm", "a lighthouse keeper", "-n", "3", "--seed", "1", "--json", "--kind", "titles"], None);
    assert!(o.status.success(), "{}", err(&o));
    let v: serde_json::Value = serde_json::from_str(&out(&o)).unwrap();
    assert_eq!(v["tool"], "brainstorm");
    assert!(v["prompt"]["rendered"].as_str().unwrap().contains("book titles for a story about: a lighthouse keeper"));
    assert!(!v["candidates"].as_array().unwrap().is_empty());

    let file = f.dir.path().join("passage.txt");
    std::fs::write(&file, "The rain fell and fell on the roof all night long.").unwrap();
    let o = f.run(&["rewrite", "--file", file.to_str().unwrap(), "--style", "casual", "--max-tokens", "12", "--json"], None);
    assert!(o.status.success(), "{}", err(&o));
    let v: serde_json::Value = serde_json::from_str(&out(&o)).unwrap();
    assert!(v["prompt"]["rendered"].as_str().unwrap().contains("The rain fell and fell"));
    assert!(v["candidates"].as_array().unwrap().iter().all(|c| c["diff"].is_array()));

    let o = f.run(&["continue", "--max-tokens", "8", "--stream", "--show-prompt", "--memory", "A sea story."], Some("The storm came in at dusk."));
    assert!(o.status.success(), "{}", err(&o));
    // A chat model is asked to continue: memory in the system message, the story in the writer's.
    assert!(err(&o).contains("memory") && err(&o).contains("What you know about the story:\nA sea story.") && err(&o).contains("\n\nThe storm came in at dusk.<|im_end|>"), "{}", err(&o));
}

#[test]
fn structured_tools_print_json_that_parses() {
    let f = Fixture::new();
    let o = f.run(&["character", "a smuggler", "--seed", "4"], None);
    assert!(o.status.success(), "{}", err(&o));
    let v: serde_json::Value = serde_json::from_str(&out(&o)).unwrap();
    assert!(v["backstory"].is_string());

    // Saved into a project's story bible, the profile comes back into later prompts.
    let db = f.dir.path().join("p.db");
    let db = db.to_str().unwrap();
    assert!(f.run(&["project", "new", "Saga", "--db", db], None).status.success());
    let o = f.run(&["character", "a smuggler", "--seed", "4", "--project", "Saga", "--db", db, "--save"], None);
    assert!(o.status.success() && err(&o).contains("saved character"), "{}", err(&o));
    let name = v["name"].as_str().unwrap().to_string();
    let o = f.run(&["continue", "--project", "Saga", "--db", db, "--max-tokens", "4", "--json"], Some(&format!("Then {name} came in.")));
    let p: serde_json::Value = serde_json::from_str(&out(&o)).unwrap();
    assert!(p["prompt"]["rendered"].as_str().unwrap().contains(&format!("{name} (character): role:")), "{}", p["prompt"]["rendered"]);
}

#[test]
fn a_writers_recipe_becomes_a_command_and_a_broken_one_is_named() {
    let f = Fixture::new();
    std::fs::write(f.dir.path().join("recipes/villain.toml"), "description = \"A villain's monologue.\"\n[options.mood]\nvalues = { cold = \"icy\", hot = \"furious\" }\ndefault = \"cold\"\n[prompt]\ntext = \"A {{ mood }} villain speaks about {{ text }}:\\n\"\n").unwrap();
    let o = f.run(&["villain", "the sea", "--mood", "hot", "--max-tokens", "4", "--json"], None);
    assert!(o.status.success(), "{}", err(&o));
    assert!(out(&o).contains("A furious villain speaks about the sea"));
    let o = f.run(&["villain", "the sea", "--mood", "lukewarm"], None);
    assert!(!o.status.success() && err(&o).contains("choose one of: cold, hot"), "{}", err(&o));

    std::fs::write(f.dir.path().join("recipes/broken.toml"), "description = \"x\"\n[prompt]\ntext = \"{{ oops\"\n").unwrap();
    let o = f.run(&["tools"], None);
    assert!(!o.status.success());
    assert!(err(&o).contains("broken.toml:3:") && err(&o).contains("prompt.text"), "{}", err(&o));
}

#[test]
fn bad_input_gets_a_clear_message() {
    let f = Fixture::new();
    let o = f.run(&["tighten", ""], None);
    assert!(!o.status.success() && err(&o).contains("the text is empty"), "{}", err(&o));
    let o = f.run(&["tigthen", "x"], None);
    assert!(!o.status.success() && err(&o).contains("unknown tool `tigthen`"), "{}", err(&o));
    let bin = f.dir.path().join("img.png");
    std::fs::write(&bin, [0x89, b'P', b'N', b'G', 0, 0, 1, 2, 0, 0]).unwrap();
    let o = f.run(&["tighten", "--file", bin.to_str().unwrap()], None);
    assert!(!o.status.success() && !err(&o).contains("panicked"), "{}", err(&o));
    let long = "word ".repeat(5000);
    let o = f.run(&["tighten", "--ctx", "256"], Some(&long));
    assert!(!o.status.success() && err(&o).contains("select a shorter passage") && err(&o).contains("raise --ctx"), "{}", err(&o));
}

#[test]
fn proofread_lists_findings_and_applies_fixes() {
    let f = Fixture::new();
    let bad = "Me and him goes to the libary every tuesday, its our favorite place.";
    let o = f.run(&["proofread", "--json"], Some(bad));
    assert!(o.status.success(), "{}", err(&o));
    let v: serde_json::Value = serde_json::from_str(&out(&o)).unwrap();
    let findings = v["findings"].as_array().unwrap();
    assert!(findings.len() >= 3);
    assert!(findings.iter().any(|x| x["original"] == "libary"));
    let o = f.run(&["proofread", "--apply", bad], None);
    assert!(out(&o).contains("Tuesday"), "{}", out(&o));
    let o = f.run(&["proofread", "The library opens on Tuesday."], None);
    assert!(out(&o).contains("No problems found"));
}

#[test]
fn the_lorebook_cli_feeds_prompts_by_chapter_and_keeps_timers() {
    let f = Fixture::new();
    let db = f.dir.path().join("p.db");
    let db = db.to_str().unwrap();
    let lore = |args: &[&str]| {
        let mut all = vec!["project", "lore", "Saga"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--db", db]);
        f.run(&all, None)
    };
    assert!(f.run(&["project", "new", "Saga", "--db", db], None).status.success());
    let o = lore(&["add", "Oren", "--body", "A smith.", "--key", "the smith", "--progression", "15:He is the drowned king's son.", "--sticky", "1"]);
    assert!(o.status.success(), "{}", err(&o));
    let o = lore(&["add", "Tide Court", "--kind", "lore", "--body", "It meets beneath the harbour.", "--from-chapter", "15"]);
    assert!(o.status.success(), "{}", err(&o));
    let listed = out(&lore(&["list"]));
    assert!(listed.contains("Oren  keys: the smith  [sticky 1; from chapter 15: He is the drowned king's son.]"), "{listed}");
    // Bad input names what is wrong.
    let o = lore(&["add", "Blade", "--body", "x", "--key", "/(oops/"]);
    assert!(!o.status.success() && err(&o).contains("not a valid regular expression"), "{}", err(&o));
    let o = lore(&["edit", "Nobody", "--sticky", "2"]);
    assert!(!o.status.success() && err(&o).contains("has no entry `Nobody`"), "{}", err(&o));
    let o = lore(&["add", "Ilse", "--body", "x", "--progression", "soon: y"]);
    assert!(!o.status.success() && err(&o).contains("not a chapter number"), "{}", err(&o));

    let prompt = |chapter: &str, text: &str| {
        let o = f.run(&["continue", "--project", "Saga", "--db", db, "--chapter", chapter, "--max-tokens", "4", "--json"], Some(text));
        assert!(o.status.success(), "{}", err(&o));
        let v: serde_json::Value = serde_json::from_str(&out(&o)).unwrap();
        v["prompt"].clone()
    };
    let early = prompt("3", "The smith and the Tide Court.");
    let rendered = early["rendered"].as_str().unwrap();
    assert!(rendered.contains("Oren (character): A smith.") && !rendered.contains("drowned king") && !rendered.contains("beneath the harbour"), "{rendered}");
    let court = early["parts"].as_array().unwrap().iter().find(|p| p["name"] == "bible: Tide Court").unwrap();
    assert_eq!(court["fate"], "held back: exists from chapter 15, this is chapter 3");
    // Oren fired in generation 1 and is sticky through generation 2, unnamed.
    let sticky = prompt("3", "Rain.");
    assert!(sticky["rendered"].as_str().unwrap().contains("Oren (character)"), "{}", sticky["rendered"]);
    let late = prompt("16", "The smith and the Tide Court.");
    let rendered = late["rendered"].as_str().unwrap();
    assert!(rendered.contains("He is the drowned king's son.") && rendered.contains("beneath the harbour"), "{rendered}");
    let settings = out(&lore(&["settings"]));
    assert!(settings.contains("generations so far: 3"), "{settings}");

    // Out as SillyTavern world info and back into another project.
    let file = f.dir.path().join("world.json");
    assert!(lore(&["export", file.to_str().unwrap()]).status.success());
    assert!(f.run(&["project", "new", "Copy", "--db", db], None).status.success());
    let o = f.run(&["project", "lore", "Copy", "import", file.to_str().unwrap(), "--db", db], None);
    assert!(o.status.success() && out(&o).contains("imported 2 entries"), "{}", err(&o));
    let copied = out(&f.run(&["project", "lore", "Copy", "list", "--json", "--db", db], None));
    let copied: serde_json::Value = serde_json::from_str(&copied).unwrap();
    assert_eq!(copied[0]["entry"]["progressions"][0]["from_chapter"], 15);
    assert_eq!(copied[1]["entry"]["from_chapter"], 15);
    assert!(lore(&["remove", "Oren"]).status.success());
    assert!(!out(&lore(&["list"])).contains("Oren"));
}
