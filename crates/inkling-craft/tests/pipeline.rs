//! The story pipeline in real prompts, on a tiny random-weight model: chapter summaries as a
//! book's rolling memory (never a later chapter's, the earliest cut first), each stage's
//! prompt as the snapshots show, and a chapter drafted beat by beat.

use inkling_craft::pipeline::{self, ChapterBrief, Stage};
use inkling_craft::run::prepare;
use inkling_craft::{ChapterSummary, StoryContext, ToolRequest, Toolbox};
use inkling_engine::testing::TinyModel;
use inkling_engine::{Engine, EngineConfig};

fn engine(context: usize) -> (tempfile::TempDir, Engine) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.gguf");
    TinyModel { context, ..TinyModel::default() }.write(&path).unwrap();
    let e = Engine::load(&path, &EngineConfig { threads: Some(2), ..Default::default() }).unwrap();
    (dir, e)
}

const REVEAL: &str = "Oren is the drowned king's son";

/// Twenty chapters' summaries; chapter 15's holds the reveal.
fn summaries() -> Vec<ChapterSummary> {
    (1..=20)
        .map(|n| ChapterSummary {
            chapter: n,
            title: format!("Tide {n}"),
            text: if n == 15 { format!("{REVEAL}, and Mara learns it at last.") } else { format!("Mara keeps the light through storm number {n} while Oren mends the boats.") },
        })
        .collect()
}

fn continue_in(e: &Engine, chapter: u32, story: &str) -> inkling_craft::Assembled {
    let tb = Toolbox::builtin().unwrap();
    let ctx = StoryContext { chapter: Some(chapter), summaries: summaries(), ..StoryContext::default() };
    let req = ToolRequest { tool: "continue".into(), text: story.into(), context: ctx, max_tokens: Some(32), ..ToolRequest::default() };
    prepare(tb.get("continue").unwrap(), e, &req).unwrap().assembled
}

#[test]
fn a_chapter_sees_the_summaries_before_it_and_never_a_later_one() {
    let (_d, e) = engine(2048);
    let a = continue_in(&e, 3, "The fog lifted over Gull Rock.");
    assert!(a.rendered.contains("Chapter 1 (Tide 1): Mara keeps the light through storm number 1"), "{}", a.rendered);
    assert!(a.rendered.contains("Chapter 2 (Tide 2)"));
    assert!(!a.rendered.contains("Chapter 3 (Tide 3)"), "a chapter's own summary is not memory");
    assert!(!a.rendered.contains(REVEAL));
    // Earlier chapters in order, before the story.
    let (one, two) = (a.rendered.find("Chapter 1 (").unwrap(), a.rendered.find("Chapter 2 (").unwrap());
    assert!(one < two && two < a.rendered.find("The fog lifted").unwrap());
    let names: Vec<&str> = a.parts.iter().map(|p| p.name.as_str()).collect();
    assert!(names.contains(&"summary: chapter 1") && names.contains(&"summary: chapter 2"), "{names:?}");
    // From chapter 16 on, the reveal is memory.
    assert!(continue_in(&e, 16, "The fog lifted.").rendered.contains(REVEAL));
    // Outside a chapter (a note, a stage) no summary is given at all.
    let tb = Toolbox::builtin().unwrap();
    let req = ToolRequest { tool: "continue".into(), text: "x y z".into(), context: StoryContext { summaries: summaries(), ..StoryContext::default() }, max_tokens: Some(8), ..ToolRequest::default() };
    assert!(!prepare(tb.get("continue").unwrap(), &e, &req).unwrap().assembled.rendered.contains("Tide 1"));
}

#[test]
fn when_room_is_short_the_earliest_summaries_go_first_and_the_prompt_fits() {
    let (_d, e) = engine(640);
    let story = "The keeper climbed the stair.\n\n".repeat(10);
    let a = continue_in(&e, 20, &story);
    assert!(a.prompt_tokens <= a.budget);
    let fate = |n: u32| a.parts.iter().find(|p| p.name == format!("summary: chapter {n}")).map(|p| p.fate.clone()).unwrap();
    assert_eq!(fate(19), "whole");
    assert!(fate(1).starts_with("left out"), "{}", fate(1));
    // Kept summaries are a run ending at the chapter before: no gaps.
    let kept: Vec<u32> = (1..20).filter(|&n| fate(n) == "whole").collect();
    assert!(!kept.is_empty() && kept.windows(2).all(|w| w[1] == w[0] + 1) && *kept.last().unwrap() == 19, "{kept:?}");
    assert!(a.rendered.contains("Chapter 19 (Tide 19)") && !a.rendered.contains("Chapter 1 (Tide 1)"));
    // The story is cut at a paragraph boundary.
    assert!(a.rendered.contains("The keeper climbed the stair."));
}

fn stage_prompt(e: &Engine, stage: Stage, source: &str, count: Option<usize>) -> String {
    let tb = Toolbox::builtin().unwrap();
    let ctx = StoryContext { memory: "A lighthouse novel; quiet, cold, salt.".into(), ..StoryContext::default() };
    let req = pipeline::stage_request(stage, source, count, ctx).unwrap();
    prepare(tb.get(&req.tool).unwrap(), e, &req).unwrap().assembled.rendered
}

#[test]
fn each_stage_prompt_is_as_the_snapshots_show() {
    let (_d, e) = engine(2048);
    let braindump = "A keeper, a storm, a smith who will not say where he is from.";
    insta::assert_snapshot!("synopsis_from_braindump", stage_prompt(&e, Stage::Synopsis, braindump, None));
    let synopsis = "Mara keeps the Gull Rock light alone until Oren washes ashore; the storm season reveals who he is.";
    insta::assert_snapshot!("outline_from_synopsis", stage_prompt(&e, Stage::Outline, synopsis, Some(3)));
    insta::assert_snapshot!("beats_from_outline_entry", stage_prompt(&e, Stage::Beats, "The Wreck: Oren washes ashore.", Some(4)));
    insta::assert_snapshot!("summary_of_chapter", stage_prompt(&e, Stage::Summary, "Mara found the man on the rocks at dawn.\n\nShe carried him up.", None));

    let brief = ChapterBrief {
        chapter: 2,
        title: "The Wreck".into(),
        entry: "Oren washes ashore.".into(),
        beats: vec!["Mara sees the wreck.".into(), "She drags Oren up the stair.".into()],
        words_per_beat: 120,
    };
    let base = ToolRequest {
        context: StoryContext { memory: "Synopsis: Mara keeps the light.".into(), chapter: Some(2), before: "Chapter one ended in fog.".into(), summaries: summaries(), ..StoryContext::default() },
        ..ToolRequest::default()
    };
    let req = pipeline::beat_request(&brief, &base, 1, "Mara saw the wreck at dawn.");
    let tb = Toolbox::builtin().unwrap();
    let a = prepare(tb.get("draft").unwrap(), &e, &req).unwrap().assembled;
    // The beat sees the chapter before, then the beats drafted so far.
    let (prev, so_far) = (a.rendered.find("Chapter one ended in fog.").unwrap(), a.rendered.find("Mara saw the wreck at dawn.").unwrap());
    assert!(prev < so_far);
    insta::assert_snapshot!("draft_second_beat", a.rendered);
}

#[test]
fn a_chapter_is_drafted_beat_by_beat() {
    let (_d, e) = engine(2048);
    let tb = Toolbox::builtin().unwrap();
    let beats: Vec<String> = ["Mara sees the wreck.", "She drags Oren up the stair.", "He will not say his name."].iter().map(|s| s.to_string()).collect();
    let brief = ChapterBrief { chapter: 2, title: "The Wreck".into(), entry: "Oren washes ashore.".into(), beats: beats.clone(), words_per_beat: 12 };
    let base = ToolRequest { seed: Some(5), ..ToolRequest::default() };
    let mut heard = Vec::new();
    let draft = pipeline::draft_chapter(&tb, &e, &brief, &base, &mut |k, b| heard.push((k, b.words)), &mut |_| true).unwrap();
    assert_eq!(draft.beats.len(), 3);
    assert_eq!(heard.iter().map(|(k, _)| *k).collect::<Vec<_>>(), vec![0, 1, 2]);
    for (b, want) in draft.beats.iter().zip(&beats) {
        assert_eq!(&b.beat, want);
        assert_eq!(b.words, pipeline::words(&b.text));
    }
    // The chapter is the beats' prose in order.
    let written: Vec<&str> = draft.beats.iter().map(|b| b.text.as_str()).filter(|t| !t.is_empty()).collect();
    assert_eq!(draft.text, written.join("\n\n"));
    // Each beat's room follows the length asked: 12 words is at most about 41 tokens.
    let req = pipeline::beat_request(&brief, &base, 0, "");
    assert!(req.max_tokens.unwrap() < 60, "{:?}", req.max_tokens);
    let long = ChapterBrief { words_per_beat: 300, ..brief };
    assert!(pipeline::beat_request(&long, &base, 0, "").max_tokens.unwrap() > 400);
}
