//! The toolbox on the real default model (Qwen2.5-Coder-0.5B-Instruct): lists parse into items,
//! tighten comes out shorter and expand longer, profiles parse, continue neither echoes nor
//! leaks template tokens, answers are the text (no talk about the edit) in the writer's
//! language, Chinese included. `.ci/run` sets INKLING_REQUIRE_REAL_MODEL=1 so these cannot
//! silently skip in CI.

use inkling_catalog as catalog;
use inkling_craft::{StoryContext, ToolOutput, ToolRequest, Toolbox, run};
use inkling_engine::{Engine, EngineConfig};
use std::sync::OnceLock;

fn load(name: &str) -> Option<Engine> {
    let m = catalog::find(name).expect("catalog name");
    if !m.is_present_in(&inkling_engine::testing::models_dir()) {
        if name == catalog::DEFAULT_MODEL && std::env::var("INKLING_REQUIRE_REAL_MODEL").is_ok_and(|v| v == "1") {
            panic!("the default model is missing at {}; run `inkling model pull`", m.path_in(&inkling_engine::testing::models_dir()).display());
        }
        eprintln!("skipping: {name} is not downloaded (`inkling model pull {name}`)");
        return None;
    }
    Some(Engine::load(&m.path_in(&inkling_engine::testing::models_dir()), &EngineConfig::default()).expect("model loads"))
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
    // A list that stops short is carried on to the six asked for.
    assert!(out.candidates.iter().any(|c| c.items.len() >= 6), "{:?}", out.candidates);
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
    let out = tool(e, "character", "a retired cartographer who forges maps", 1);
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
    let out = run(&tb, e, &ToolRequest { tool: "continue".into(), text: story.into(), n: 2, seed: Some(11), context: ctx, ..ToolRequest::default() }, &mut |_| true).unwrap();
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
fn chinese_text_gets_chinese_answers() {
    let Some(e) = engine() else { return };
    let zh = |t: &str| t.chars().filter(|c| inkling_craft::text::is_cjk(*c)).count();
    let out = tool(e, "continue", "那天夜里，雨下得很大。她独自坐在窗前，", 1);
    let c = &out.candidates[0];
    assert!(!c.text.contains('\u{FFFD}') && zh(&c.text) >= 10, "{:?}", c.text);
    // The seed's own example, tightened: Chinese in, Chinese out, no talk about the edit.
    let out = tool(e, "tighten", "今天天气非常非常好，所以我心里想着我想要去公园里面散一散步。", 2);
    let best = &out.candidates[0];
    assert_eq!(out.language, "Chinese");
    assert!(best.flags.is_empty() && zh(&best.text) >= 5 && best.meets_length == Some(true), "{best:?}");
    let out = tool(e, "brainstorm", "以丝绸之路为背景的悬疑小说点子", 1);
    let ideas = &out.candidates[0].items;
    assert!(ideas.len() >= 6 && ideas.iter().all(|i| zh(i) >= 4), "{ideas:?}");
    let out = tool(e, "character", "一位退休的京剧演员，现在开了一家自行车修理铺", 2);
    let v = out.candidates[0].json.as_ref().unwrap();
    assert!(zh(v["backstory"].as_str().unwrap_or_default()) >= 10, "{v}");
}

#[test]
fn edits_are_the_text_not_talk_about_it() {
    let Some(e) = engine() else { return };
    let tb = Toolbox::builtin().unwrap();
    let request = ToolRequest {
        tool: "rewrite".into(),
        text: "yo the report's gonna be late, printer died lol".into(),
        options: [("style".into(), "formal".into())].into(),
        n: 3,
        seed: Some(5),
        ..ToolRequest::default()
    };
    let out = run(&tb, e, &request, &mut |_| true).unwrap();
    let best = &out.candidates[0];
    assert!(best.flags.is_empty(), "{best:?}");
    let lower = best.text.to_lowercase();
    assert!(lower.contains("report") && !lower.contains("rewrit") && !lower.contains("lol"), "{:?}", best.text);
}
