//! The toolbox on the real default model (SmolLM2-135M-Instruct): lists parse into items,
//! tighten comes out shorter and expand longer, profiles parse, continue neither echoes nor
//! leaks template tokens, Chinese works. `.ci/run` sets INKLING_REQUIRE_REAL_MODEL=1 so these
//! cannot silently skip in CI; Qwen2.5 (which writes Chinese) is used when it is present.

use inkling_craft::{StoryContext, ToolOutput, ToolRequest, Toolbox, run};
use inkling_engine::{Engine, EngineConfig, catalog};
use std::sync::OnceLock;

fn load(name: &str) -> Option<Engine> {
    let m = catalog::find(name).expect("catalog name");
    if !m.is_present() {
        if name == catalog::DEFAULT_MODEL && std::env::var("INKLING_REQUIRE_REAL_MODEL").is_ok_and(|v| v == "1") {
            panic!("the default model is missing at {}; run `inkling model pull`", m.path().display());
        }
        eprintln!("skipping: {name} is not downloaded (`inkling model pull {name}`)");
        return None;
    }
    Some(Engine::load(&m.path(), &EngineConfig::default()).expect("model loads"))
}

fn engine() -> Option<&'static Engine> {
    static E: OnceLock<Option<Engine>> = OnceLock::new();
    E.get_or_init(|| load(catalog::DEFAULT_MODEL)).as_ref()
}

fn tool(e: &Engine, name: &str, text: &str, n: usize) -> ToolOutput {
    let tb = Toolbox::builtin().unwrap();
    run(&tb, e, &ToolRequest { tool: name.into(), text: text.into(), n, seed: Some(7), ..ToolRequest::default() }, &mut |_| true).unwrap_or_else(|err| panic!("{name}: {err}"))
}

const WORDY: &str = "In my personal opinion, I think that it is absolutely essential and necessary for each and every one of us to make an effort to try to arrive at the meeting at the scheduled time that was agreed upon in advance, due to the fact that being late causes delays for everyone else who is there.";

#[test]
fn brainstorm_and_titles_give_parsed_lists() {
    let Some(e) = engine() else { return };
    let out = tool(e, "brainstorm", "a lighthouse keeper who finds a message in a bottle", 2);
    // A small model sometimes stops early; the writer gets a list from at least one candidate.
    assert!(out.candidates.iter().any(|c| c.items.len() >= 3), "{:?}", out.candidates);
    for c in &out.candidates {
        assert!(!c.items.is_empty() && c.items.iter().all(|i| !i.trim().is_empty() && !i.starts_with("1.")), "{:?}", c.items);
    }
    // Likewise for titles: a sampled candidate can run on as prose (which candidate does
    // moves with the last bits of the arithmetic), and the writer picks from those that list.
    let out = tool(e, "titles", "a lighthouse keeper who finds a message in a bottle", 2);
    assert!(out.candidates.iter().any(|c| c.items.len() >= 3), "{:?}", out.candidates.iter().map(|c| &c.text).collect::<Vec<_>>());
}

#[test]
fn tighten_is_shorter_and_expand_is_longer() {
    let Some(e) = engine() else { return };
    let out = tool(e, "tighten", WORDY, 3);
    let best = &out.candidates[0];
    assert_eq!(best.meets_length, Some(true), "{:?}", best.text);
    assert!(best.text.chars().count() < WORDY.chars().count() && best.text.split_whitespace().count() >= 5, "{:?}", best.text);
    assert!(best.diff.as_ref().is_some_and(|d| !d.is_empty()));

    let short = "The old man walked to the harbour at dawn.";
    let out = tool(e, "expand", short, 2);
    let best = &out.candidates[0];
    assert_eq!(best.meets_length, Some(true), "{:?}", best.text);
    assert!(best.text.chars().count() > short.chars().count());
}

#[test]
fn profiles_are_json_with_every_field() {
    let Some(e) = engine() else { return };
    let out = tool(e, "character", "a retired cartographer who forges maps", 2);
    assert!(!out.candidates.is_empty());
    for c in &out.candidates {
        let v = c.json.as_ref().unwrap();
        for f in ["name", "role", "wants", "fears", "voice", "appearance", "backstory"] {
            assert!(v[f].as_str().is_some_and(|s| !s.trim().is_empty()), "{f} in {v}");
        }
    }
    let out = tool(e, "place", "a night market under a bridge", 1);
    assert!(out.candidates[0].json.as_ref().unwrap()["smell"].is_string());
}

#[test]
fn continue_carries_on_without_echo_or_template_tokens() {
    let Some(e) = engine() else { return };
    let story = "The lighthouse had been dark for three winters. On the first night of spring, Mara climbed the iron stairs with a can of oil and a box of matches.";
    let tb = Toolbox::builtin().unwrap();
    let ctx = StoryContext { memory: "Mara is the last keeper of the Gull Rock light.".into(), ..StoryContext::default() };
    let out = run(&tb, e, &ToolRequest { tool: "continue".into(), text: story.into(), n: 3, seed: Some(11), context: ctx, ..ToolRequest::default() }, &mut |_| true).unwrap();
    assert!(!out.candidates.is_empty());
    for c in &out.candidates {
        assert!(c.text.split_whitespace().count() >= 3, "{:?}", c.text);
        assert!(!c.text.contains("<|im_"), "{:?}", c.text);
        assert!(!c.text.trim_start().starts_with("The lighthouse had been dark"), "{:?}", c.text);
    }
    // KV reuse: the same story again computes only what changed.
    let again = run(&tb, e, &ToolRequest { tool: "continue".into(), text: story.into(), n: 1, seed: Some(12), ..ToolRequest::default() }, &mut |_| true).unwrap();
    assert!(again.prompt.prompt_tokens > 0);
}

#[test]
fn proofread_by_rule_finds_the_known_errors() {
    let f = inkling_craft::proofread::proofread("Me and him goes to the libary every tuesday, its our favorite place.", inkling_craft::proofread::Dialect::American);
    assert!(f.len() >= 3, "{f:#?}");
}

#[test]
fn chinese_input_works_for_the_tools() {
    let Some(e) = engine() else { return };
    let out = tool(e, "continue", "那天夜里，雨下得很大。她独自坐在窗前，", 1);
    assert!(!out.candidates.is_empty() && !out.candidates[0].text.contains('\u{FFFD}'));
    let out = tool(e, "brainstorm", "灯塔 守护人 秘密", 1);
    assert!(!out.candidates.is_empty());
    if let Some(q) = load("qwen2.5-coder-0.5b-instruct") {
        let tb = Toolbox::builtin().unwrap();
        let out = run(&tb, &q, &ToolRequest { tool: "poem".into(), text: "秋天的月亮".into(), options: [("form".into(), "jueju".into())].into(), seed: Some(3), ..ToolRequest::default() }, &mut |_| true).unwrap();
        let zh = out.candidates[0].text.chars().filter(|c| inkling_craft::text::is_cjk(*c)).count();
        assert!(zh >= 10, "{:?}", out.candidates[0].text);
    }
}
