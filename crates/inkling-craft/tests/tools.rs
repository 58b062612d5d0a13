//! Every tool on a tiny random-weight model: prompt assembly (snapshots), the token budget,
//! story-bible triggers, CJK text, parsing, and the errors a writer can run into.

use inkling_craft::context::Frame;
use inkling_craft::{CraftError, LoreEntry, StoryContext, ToolRequest, Toolbox, run};
use inkling_engine::testing::TinyModel;
use inkling_engine::{Backend, Engine, EngineConfig};

fn engine(context: usize, chat: bool) -> (tempfile::TempDir, Engine) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.gguf");
    let m = TinyModel { context, chat_template: if chat { TinyModel::default().chat_template } else { None }, ..TinyModel::default() };
    m.write(&path).unwrap();
    let e = Engine::load(&path, &EngineConfig { threads: Some(2), ..Default::default() }).unwrap();
    (dir, e)
}

fn req(tool: &str, text: &str) -> ToolRequest {
    ToolRequest { tool: tool.into(), text: text.into(), n: 2, seed: Some(3), ..ToolRequest::default() }
}

fn lore() -> Vec<LoreEntry> {
    vec![
        LoreEntry { kind: "style".into(), name: "Style".into(), body: "Past tense, close third person.".into(), always: true, ..LoreEntry::default() },
        LoreEntry { kind: "character".into(), name: "Mara".into(), keys: vec!["the keeper".into()], body: "Lighthouse keeper, 60, distrusts the sea.".into(), ..LoreEntry::default() },
        LoreEntry { kind: "place".into(), name: "Gull Rock".into(), keys: vec![], body: "A bare island of granite and birds.".into(), ..LoreEntry::default() },
        LoreEntry { kind: "character".into(), name: "林黛玉".into(), keys: vec!["黛玉".into()], body: "多愁善感的少女。".into(), ..LoreEntry::default() },
    ]
}

#[test]
fn every_tool_runs_and_returns_clean_candidates() {
    let tb = Toolbox::builtin().unwrap();
    for chat in [true, false] {
        let (_d, e) = engine(1024, chat);
        for name in tb.names() {
            let text = if name == "continue" { "The lamp went out at midnight. Mara climbed the stairs." } else { "a lighthouse keeper who finds a message in a bottle" };
            let out = run(&tb, &e, &ToolRequest { max_tokens: Some(24), ..req(&name, text) }, &mut |_| true).unwrap_or_else(|err| panic!("{name}: {err}"));
            let expected = if chat && tb.get(&name).unwrap().prompt.chat.is_some() { Frame::Chat } else { Frame::Text };
            assert_eq!(out.prompt.frame, expected, "{name}");
            assert!(out.prompt.prompt_tokens <= out.prompt.budget, "{name}");
            for c in &out.candidates {
                assert!(!c.text.contains("<|im_start|>") && !c.text.contains("<|im_end|>"), "{name}: {:?}", c.text);
                assert!(!c.text.trim().is_empty(), "{name}");
            }
            let keys: std::collections::HashSet<String> = out.candidates.iter().map(|c| inkling_craft::output::dedupe_key(&c.text)).collect();
            assert_eq!(keys.len(), out.candidates.len(), "{name}: duplicates were not dropped");
        }
    }
}

#[test]
fn json_tools_always_parse_on_a_random_model() {
    let tb = Toolbox::builtin().unwrap();
    let (_d, e) = engine(4096, true);
    for tool in ["character", "place"] {
        let out = run(&tb, &e, &ToolRequest { n: 3, ..req(tool, "a smuggler with a conscience") }, &mut |_| true).unwrap();
        assert!(!out.candidates.is_empty());
        for c in &out.candidates {
            let v = c.json.as_ref().expect("parsed");
            let fields: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
            let want: Vec<&str> = if tool == "character" {
                vec!["name", "role", "wants", "fears", "voice", "appearance", "backstory"]
            } else {
                vec!["name", "summary", "sight", "sound", "smell", "touch", "taste", "history"]
            };
            assert_eq!(fields, want);
        }
    }
}

#[test]
fn prompts_are_assembled_as_the_snapshots_show() {
    let tb = Toolbox::builtin().unwrap();
    let (_d, e) = engine(1024, true);
    let ctx = StoryContext { memory: "A story of a lighthouse on a cold coast.".into(), author_note: "Mara is hiding something.".into(), note_depth: 1, lore: lore(), ..StoryContext::default() };
    let story = "The storm came in at dusk.\n\nThe keeper lit the lamp. Below, the sea boiled.\n\nA knock at the door.";
    let cont = inkling_craft::run::prepare(tb.get("continue").unwrap(), &e, &ToolRequest { context: ctx.clone(), frame: Some(Frame::Text), ..req("continue", story) }).unwrap();
    insta::assert_snapshot!("continue_text_frame", cont.assembled.rendered);
    let cont = inkling_craft::run::prepare(tb.get("continue").unwrap(), &e, &ToolRequest { context: ctx.clone(), ..req("continue", story) }).unwrap();
    insta::assert_snapshot!("continue_chat_frame", cont.assembled.rendered);
    let rewrite = inkling_craft::run::prepare(
        tb.get("rewrite").unwrap(),
        &e,
        &ToolRequest { options: [("style".into(), "hardboiled".into())].into(), context: ctx, ..req("rewrite", "Mara opened the door slowly.") },
    )
    .unwrap();
    insta::assert_snapshot!("rewrite_chat_frame", rewrite.assembled.rendered);
    let brainstorm = inkling_craft::run::prepare(
        tb.get("brainstorm").unwrap(),
        &e,
        &ToolRequest { frame: Some(Frame::Text), options: [("kind".into(), "titles".into())].into(), ..req("brainstorm", "lighthouse, grief") },
    )
    .unwrap();
    insta::assert_snapshot!("brainstorm_text_frame", brainstorm.assembled.rendered);
}

#[test]
fn a_long_story_is_cut_at_a_boundary_to_fit_with_its_bible_entries() {
    let tb = Toolbox::builtin().unwrap();
    let (_d, e) = engine(512, true);
    let para = |i: usize| format!("Paragraph {i} tells how the waves rose and the wind sang against the glass.");
    let mut story: String = (0..200).map(|i| para(i) + "\n\n").collect();
    story.push_str("Then the keeper saw a light on Gull Rock.");
    let ctx = StoryContext { memory: "A lighthouse story.".into(), lore: lore(), ..StoryContext::default() };
    let p = inkling_craft::run::prepare(tb.get("continue").unwrap(), &e, &ToolRequest { context: ctx, max_tokens: Some(64), frame: Some(Frame::Text), ..req("continue", &story) }).unwrap();
    let a = &p.assembled;
    assert!(a.prompt_tokens <= a.budget && a.budget == 512 - 64, "{} > {}", a.prompt_tokens, a.budget);
    assert!(a.prompt_tokens > a.budget - 40, "the room is used: {} of {}", a.prompt_tokens, a.budget);
    assert!(a.rendered.ends_with("Then the keeper saw a light on Gull Rock."));
    // The story part starts at a paragraph start, and the triggered entries came in.
    let story_part = a.rendered.split("***\n").nth(1).unwrap();
    assert!(story_part.starts_with("Paragraph "), "{story_part:.80}");
    assert!(a.rendered.contains("Mara (character)") && a.rendered.contains("Gull Rock (place)") && a.rendered.contains("Style (style)"));
    assert!(!a.rendered.contains("林黛玉"), "an entry nobody mentioned stays out");
    assert!(a.rendered.contains("A lighthouse story."));
    let names: Vec<&str> = a.parts.iter().map(|p| p.name.as_str()).collect();
    assert!(names.contains(&"memory") && names.contains(&"story (your text)"), "{names:?}");
    assert_eq!(e.count_prompt_tokens(&a.prompt, &a.prefill).unwrap(), a.prompt_tokens);
}

#[test]
fn chinese_text_works_through_assembly_triggers_and_generation() {
    let tb = Toolbox::builtin().unwrap();
    let (_d, e) = engine(2048, true);
    let story = "那天夜里，雨下得很大。\n\n宝玉看见黛玉独自坐在窗前，手里拿着一封信。";
    let ctx = StoryContext { lore: lore(), ..StoryContext::default() };
    let out = run(&tb, &e, &ToolRequest { context: ctx, max_tokens: Some(16), ..req("continue", story) }, &mut |_| true).unwrap();
    assert!(out.prompt.rendered.contains("林黛玉 (character): 多愁善感的少女。"));
    // In a chat turn, the story ends the writer's message.
    assert!(out.prompt.rendered.contains("手里拿着一封信。<|im_end|>"), "{}", out.prompt.rendered);
    for c in &out.candidates {
        assert!(!c.text.contains('\u{FFFD}') || c.finish_reason == inkling_engine::FinishReason::Length);
    }
    let out = run(&tb, &e, &ToolRequest { options: [("form".into(), "jueju".into())].into(), max_tokens: Some(16), ..req("poem", "秋天的月亮") }, &mut |_| true).unwrap();
    assert!(out.prompt.rendered.contains("秋天的月亮") && out.prompt.rendered.contains("绝句"));
}

#[test]
fn bad_input_gets_a_clear_error() {
    let tb = Toolbox::builtin().unwrap();
    let (_d, e) = engine(256, true);
    let err = |r: ToolRequest| run(&tb, &e, &r, &mut |_| true).unwrap_err();
    assert!(matches!(err(req("tighten", "  \n")), CraftError::EmptyInput { .. }));
    let long = "word ".repeat(2000);
    let e1 = err(req("tighten", &long));
    assert!(matches!(e1, CraftError::TextTooLong { .. }), "{e1}");
    assert!(e1.to_string().contains("select a shorter passage"));
    assert!(matches!(err(req("summarise", "x")), CraftError::UnknownTool { .. }));
    let e2 = err(ToolRequest { options: [("style".into(), "   ".into())].into(), ..req("rewrite", "x") });
    assert!(e2.to_string().contains("choose one of"), "{e2}");
    assert!(matches!(err(ToolRequest { options: [("colour".into(), "red".into())].into(), ..req("rewrite", "x") }), CraftError::UnknownOption { .. }));
    // A story longer than the context is not an error for continue: it is cut.
    let cut = run(&tb, &e, &ToolRequest { max_tokens: Some(8), frame: Some(Frame::Text), ..req("continue", &long) }, &mut |_| true);
    assert!(cut.is_ok(), "{:?}", cut.err());
}

#[test]
fn free_form_styles_and_length_goals_shape_the_request() {
    let tb = Toolbox::builtin().unwrap();
    let (_d, e) = engine(1024, true);
    let text = "It was a very, very dark and extremely stormy night, and it was raining quite heavily.";
    let p = inkling_craft::run::prepare(tb.get("rewrite").unwrap(), &e, &ToolRequest { options: [("style".into(), "like a pirate".into())].into(), ..req("rewrite", text) }).unwrap();
    assert!(p.assembled.rendered.contains("so that it is like a pirate"));
    let tokens = e.count_tokens(text).unwrap();
    let tighten = inkling_craft::run::prepare(tb.get("tighten").unwrap(), &e, &req("tighten", text)).unwrap();
    assert!(tighten.request.max_tokens <= tokens.max(8));
    let expand = inkling_craft::run::prepare(tb.get("expand").unwrap(), &e, &req("expand", text)).unwrap();
    assert!(expand.request.min_tokens > tokens && expand.request.max_tokens > expand.request.min_tokens);
    let out = run(&tb, &e, &req("expand", text), &mut |_| true).unwrap();
    for c in &out.candidates {
        assert!(c.diff.is_some());
        assert!(c.meets_length.is_some());
    }
}

/// Asked for alternatives, a candidate comes token by token in whole characters that join
/// to the answer, even where a CJK character spans byte tokens; `answer_start` begins the
/// answer, and the model's tokens come after it.
#[test]
fn an_answer_token_by_token_joins_to_the_answer_and_can_be_started() {
    let tb = Toolbox::builtin().unwrap();
    let (_d, e) = engine(1024, false);
    let story = "雨下得很大。她打开门";
    let asked = ToolRequest { max_tokens: Some(24), frame: Some(Frame::Text), alternatives: Some(10), n: 1, ..req("continue", story) };
    let out = run(&tb, &e, &asked, &mut |_| true).unwrap();
    let c = &out.candidates[0];
    assert!(!c.tokens.is_empty());
    let joined: String = c.tokens.iter().map(|t| t.text.as_str()).collect();
    assert_eq!(joined.trim(), c.text.trim(), "tokens {:?}", c.tokens.iter().map(|t| &t.text).collect::<Vec<_>>());
    for t in &c.tokens {
        assert_eq!(t.top.len(), 10);
        assert!(t.sampled_top.len() <= 10 && !t.sampled_top.is_empty());
        assert!(t.top.windows(2).all(|w| w[0].logprob >= w[1].logprob));
    }
    let start = "，外面";
    let started = run(&tb, &e, &ToolRequest { answer_start: start.into(), ..asked }, &mut |_| true).unwrap();
    let c = &started.candidates[0];
    assert!(c.text.starts_with(start), "{:?}", c.text);
    let joined: String = c.tokens.iter().map(|t| t.text.as_str()).collect();
    assert_eq!(format!("{start}{joined}").trim(), c.text.trim());
}

#[test]
fn prose_candidates_rank_by_the_writers_voice_when_the_project_has_one() {
    use inkling_engine::{Candidate, FinishReason, Generation, TokenLogprob};
    let tb = Toolbox::builtin().unwrap();
    let (_d, e) = engine(1024, true);
    let pages = "The lamp went out at midnight. Mara climbed the stairs, counting each one; the sea below her was loud and black. She waited for the ship. ".repeat(30);
    let profile = std::sync::Arc::new(inkling_voice::Profile::build(&[&pages]).unwrap());
    let context = StoryContext { voice: Some(profile), ..StoryContext::default() };
    let ask = |tool: &str, voice: bool| ToolRequest { n: 2, context: context.clone(), voice, ..req(tool, "The lamp went out at midnight. Mara climbed the stairs.") };
    // Two answers as a backend returns them: a stranger's first, and the likelier of the two.
    let answers = [
        "Notwithstanding the aforementioned considerations, quarterly revenue projections remain fundamentally contingent upon macroeconomic volatility.",
        " She counted the stairs again; the sea below her was loud and black. She waited.",
    ];
    let generation = || Generation {
        candidates: answers
            .iter()
            .enumerate()
            .map(|(index, text)| Candidate {
                index,
                text: text.to_string(),
                finish_reason: FinishReason::Stop,
                completion_tokens: 12,
                tokens: Vec::new(),
                logprobs: vec![TokenLogprob { token: 1, logprob: if index == 0 { -0.5 } else { -2.0 }, top: Vec::new(), sampled_logprob: 0.0, sampled_top: Vec::new() }; 12],
            })
            .collect(),
        prompt_tokens: 10,
        seed: 3,
        timings: Default::default(),
    };
    let finish = |request: &ToolRequest| {
        let recipe = tb.get(&request.tool).unwrap();
        let prepared = inkling_craft::run::prepare(recipe, &e, request).unwrap();
        let asked = prepared.request.logprobs;
        (asked, inkling_craft::run::finish(recipe, &e, request, prepared, generation()).unwrap())
    };
    let (asked, out) = finish(&ask("continue", true));
    assert_eq!(asked, Some(0), "ranking asks for the sampled tokens' likelihood, no alternatives");
    assert!(out.candidates[0].text.contains("counted the stairs"), "the writer's voice ranks first: {:?}", out.candidates);
    let first = out.candidates[0].voice.as_ref().expect("ranked");
    assert_eq!(first.mean_logprob, Some(-2.0));
    assert!(first.reason.contains("your voice") && first.reason.contains("farthest in"), "{}", first.reason);
    assert!(out.candidates[1].voice.as_ref().unwrap().score > first.score);
    assert!(out.candidates.iter().all(|c| c.tokens.is_empty()), "alternatives were not asked for");

    // Turned off, or a tool whose answer is not the writer's prose: the model's order.
    let (asked, off) = finish(&ask("continue", false));
    assert_eq!(asked, None);
    assert!(off.candidates[0].text.contains("Notwithstanding"), "{:?}", off.candidates);
    assert!(off.candidates.iter().all(|c| c.voice.is_none()));
    let (asked, _) = finish(&ask("rewrite", true));
    assert_eq!(asked, None);
}
