//! The lorebook in real prompts, on a tiny random-weight model: a synthetic 20-chapter
//! novel whose chapter-15 reveal never reaches an earlier chapter's prompt, recursion,
//! placement at a depth, the lore budget's drop order, and timers across generations.

use inkling_craft::lore::{LoreEntry, Position, Progression};
use inkling_craft::run::prepare;
use inkling_craft::{LoreSettings, StoryContext, ToolRequest, Toolbox};
use inkling_engine::testing::TinyModel;
use inkling_engine::{Engine, EngineConfig};

const REVEAL: &str = "Oren is the drowned king's son";
const SECOND_REVEAL: &str = "The Tide Court meets beneath the harbour";

fn engine() -> (tempfile::TempDir, Engine) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.gguf");
    TinyModel { context: 2048, ..TinyModel::default() }.write(&path).unwrap();
    let e = Engine::load(&path, &EngineConfig { threads: Some(2), ..Default::default() }).unwrap();
    (dir, e)
}

/// Twenty chapters, each naming who is in it and where.
fn novel() -> Vec<String> {
    let cast = ["Mara", "Oren", "Ilse"];
    let places = ["Gull Rock", "the harbour", "the lamp room"];
    (1..=20)
        .map(|n| {
            let who = cast[n % 3];
            let other = cast[(n + 1) % 3];
            let place = places[n % 3];
            format!("Chapter {n}.\n\n{who} came to {place} before the tide turned.\n\n{other} waited there, saying nothing of the past.\n\nThe wind rose over the water.")
        })
        .collect()
}

fn lorebook() -> Vec<LoreEntry> {
    vec![
        LoreEntry { kind: "character".into(), name: "Mara".into(), body: "The lighthouse keeper, sixty, distrusts the sea.".into(), ..LoreEntry::default() },
        LoreEntry {
            kind: "character".into(),
            name: "Oren".into(),
            body: "A smith from the mainland who says little.".into(),
            progressions: vec![Progression { from_chapter: 15, body: format!("{REVEAL}.") }],
            ..LoreEntry::default()
        },
        LoreEntry { kind: "character".into(), name: "Ilse".into(), body: "A ferrywoman; she knows the Tide Court.".into(), ..LoreEntry::default() },
        LoreEntry { kind: "lore".into(), name: "Tide Court".into(), body: format!("{SECOND_REVEAL}."), from_chapter: Some(15), ..LoreEntry::default() },
        LoreEntry { kind: "place".into(), name: "Gull Rock".into(), body: "A bare island of granite and birds.".into(), ..LoreEntry::default() },
    ]
}

fn continue_in(e: &Engine, chapters: &[String], n: usize, ctx: StoryContext) -> inkling_craft::Assembled {
    let tb = Toolbox::builtin().unwrap();
    // The story so far: the chapter before and this one (the tail the tool continues).
    let story = format!("{}\n\n{}", chapters[n - 2], chapters[n - 1]);
    let req =
        ToolRequest { tool: "continue".into(), text: story, context: StoryContext { chapter: Some(n as u32), lore: lorebook(), ..ctx }, max_tokens: Some(32), seed: Some(1), ..ToolRequest::default() };
    prepare(tb.get("continue").unwrap(), e, &req).unwrap().assembled
}

#[test]
fn an_early_chapter_never_sees_a_late_reveal() {
    let (_d, e) = engine();
    let chapters = novel();
    for n in 2..=20 {
        let a = continue_in(&e, &chapters, n, StoryContext::default());
        // The chapter itself lies within the scan depth; the one before only in part.
        let has_oren = chapters[n - 1].contains("Oren");
        if n < 15 {
            assert!(!a.rendered.contains(REVEAL) && !a.rendered.contains(SECOND_REVEAL), "chapter {n} leaked a reveal:\n{}", a.rendered);
        } else if has_oren {
            assert!(a.rendered.contains(REVEAL), "chapter {n} lacks Oren's progression");
        }
        if has_oren {
            assert!(a.rendered.contains("A smith from the mainland"), "chapter {n}: Oren's entry fired");
        }
        // Ilse's entry names the Tide Court: recursion brings it in, but only from chapter 15.
        let ilse = a.parts.iter().any(|p| p.name == "bible: Ilse" && p.fate.starts_with("triggered"));
        let court = a.parts.iter().find(|p| p.name == "bible: Tide Court");
        if ilse && n < 15 {
            assert!(court.is_none(), "chapter {n}: the Tide Court does not exist yet, so it is not even traced: {court:?}");
        }
        if ilse && n >= 15 {
            let court = court.expect("traced");
            assert!(court.fate.contains("in the entry Ilse"), "{}", court.fate);
            assert!(a.rendered.contains(SECOND_REVEAL));
        }
    }
    let unknown = continue_in(&e, &chapters, 16, StoryContext::default());
    let tb = Toolbox::builtin().unwrap();
    let req =
        ToolRequest { tool: "continue".into(), text: chapters[15].clone(), context: StoryContext { lore: lorebook(), ..StoryContext::default() }, max_tokens: Some(32), ..ToolRequest::default() };
    let no_chapter = prepare(tb.get("continue").unwrap(), &e, &req).unwrap().assembled;
    assert!(chapters[15].contains("Oren") && unknown.rendered.contains(REVEAL));
    assert!(!no_chapter.rendered.contains(REVEAL), "a prompt whose chapter is not known gets no progression");
}

#[test]
fn entries_at_a_depth_sit_inside_the_story() {
    let (_d, e) = engine();
    let tb = Toolbox::builtin().unwrap();
    let lore = vec![LoreEntry { name: "Mara".into(), body: "Keeper of the light.".into(), position: Position::AtDepth(1), ..LoreEntry::default() }];
    let story = "Mara climbed.\n\nThe lamp was cold.\n\nShe struck a match.";
    let req = ToolRequest {
        tool: "continue".into(),
        text: story.into(),
        context: StoryContext { lore, ..StoryContext::default() },
        max_tokens: Some(16),
        frame: Some(inkling_craft::Frame::Text),
        ..ToolRequest::default()
    };
    let a = prepare(tb.get("continue").unwrap(), &e, &req).unwrap().assembled;
    assert!(a.rendered.contains("The lamp was cold.\n\n[Mara: Keeper of the light.]\nShe struck a match."), "{}", a.rendered);
}

#[test]
fn the_lore_budget_drops_the_lowest_order_first_and_says_so() {
    let (_d, e) = engine();
    let tb = Toolbox::builtin().unwrap();
    let entry = |name: &str, order| LoreEntry { name: name.into(), body: "A long description of this person that takes up a good many tokens in the prompt.".into(), order, ..LoreEntry::default() };
    let lore = vec![entry("Ann", 10), entry("Bo", 300), entry("Cy", 100)];
    let per_entry = {
        let req = ToolRequest {
            tool: "continue".into(),
            text: "Ann met Bo.".into(),
            context: StoryContext { lore: vec![entry("Bo", 300)], ..StoryContext::default() },
            max_tokens: Some(16),
            ..ToolRequest::default()
        };
        prepare(tb.get("continue").unwrap(), &e, &req).unwrap().assembled.parts.iter().find(|p| p.name == "bible: Bo").unwrap().tokens
    };
    let settings = LoreSettings { budget: Some(per_entry * 2 + 1), ..LoreSettings::default() };
    let req = ToolRequest {
        tool: "continue".into(),
        text: "Ann met Bo and Cy.".into(),
        context: StoryContext { lore, lore_settings: settings, ..StoryContext::default() },
        max_tokens: Some(16),
        ..ToolRequest::default()
    };
    let a = prepare(tb.get("continue").unwrap(), &e, &req).unwrap().assembled;
    let fate = |n: &str| a.parts.iter().find(|p| p.name == format!("bible: {n}")).unwrap().fate.clone();
    assert!(fate("Bo").starts_with("triggered") && fate("Cy").starts_with("triggered"), "{:?}", a.parts);
    assert!(fate("Ann").contains("lore budget"), "{}", fate("Ann"));
    // Placed by order: Cy (100) before Bo (300), nearer the story.
    let (cy, bo) = (a.rendered.find("Cy:").unwrap(), a.rendered.find("Bo:").unwrap());
    assert!(cy < bo);
}

#[test]
fn timers_carry_from_one_prompt_to_the_next() {
    let (_d, e) = engine();
    let tb = Toolbox::builtin().unwrap();
    let lore = vec![LoreEntry { name: "Mara".into(), body: "Keeper.".into(), sticky: 1, cooldown: 1, ..LoreEntry::default() }];
    let mut ctx = StoryContext { lore, ..StoryContext::default() };
    let mut seen = Vec::new();
    for text in ["Mara woke.", "The sea.", "Mara again.", "Mara once more."] {
        let req = ToolRequest { tool: "continue".into(), text: text.into(), context: ctx.clone(), max_tokens: Some(8), ..ToolRequest::default() };
        let a = prepare(tb.get("continue").unwrap(), &e, &req).unwrap().assembled;
        seen.push(a.rendered.contains("Mara: Keeper."));
        ctx.lore_state = a.lore_state;
    }
    // Fired, sticky, cooling down although named, free again.
    assert_eq!(seen, [true, true, false, true]);
}
