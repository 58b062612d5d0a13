//! The story pipeline, without storage: braindump → synopsis → outline → a chapter's beats →
//! the chapter → its summary. Each stage is generated from the one above it by an existing
//! tool ([`stage_request`]); list stages (the outline, a chapter's beats) have parts that a
//! writer can lock one by one, and [`keep_locked`] puts them back after regenerating.
//! [`draft_chapter`] writes a chapter beat by beat, each beat at about the writer's length,
//! with the story so far (the chapter before, then the beats already drafted) in the prompt.

use crate::context::StoryContext;
use crate::error::{CraftError, Result};
use crate::output::parse_list;
use crate::run::{ToolRequest, run};
use crate::text::is_cjk;
use crate::toolbox::Toolbox;
use inkling_engine::{Backend, Event};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// One level of the pipeline, top down.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Braindump,
    Synopsis,
    Outline,
    Beats,
    Chapter,
    Summary,
}

impl Stage {
    pub const ALL: [Stage; 6] = [Stage::Braindump, Stage::Synopsis, Stage::Outline, Stage::Beats, Stage::Chapter, Stage::Summary];

    pub fn name(self) -> &'static str {
        match self {
            Stage::Braindump => "braindump",
            Stage::Synopsis => "synopsis",
            Stage::Outline => "outline",
            Stage::Beats => "beats",
            Stage::Chapter => "chapter",
            Stage::Summary => "summary",
        }
    }

    pub fn parse(name: &str) -> Result<Stage> {
        let name = name.trim().to_ascii_lowercase();
        Stage::ALL.into_iter().find(|s| s.name() == name).ok_or_else(|| CraftError::UnknownStage { name, known: Stage::ALL.iter().map(|s| s.name()).collect::<Vec<_>>().join(", ") })
    }

    /// The stage this one is generated from.
    pub fn source(self) -> Option<Stage> {
        match self {
            Stage::Braindump => None,
            Stage::Synopsis => Some(Stage::Braindump),
            Stage::Outline => Some(Stage::Synopsis),
            Stage::Beats => Some(Stage::Outline),
            Stage::Chapter => Some(Stage::Beats),
            Stage::Summary => Some(Stage::Chapter),
        }
    }

    /// Whether its parts are list items, each lockable on its own.
    pub fn is_list(self) -> bool {
        matches!(self, Stage::Outline | Stage::Beats)
    }

    /// Whether each chapter has one of its own.
    pub fn per_chapter(self) -> bool {
        matches!(self, Stage::Beats | Stage::Chapter | Stage::Summary)
    }
}

/// A list stage's parts: its items, without their numbers.
pub fn parts(text: &str) -> Vec<String> {
    parse_list(text)
}

/// Parts as the numbered list a list stage is stored as.
pub fn numbered(parts: &[String]) -> String {
    parts.iter().enumerate().map(|(i, p)| format!("{}. {p}", i + 1)).collect::<Vec<_>>().join("\n")
}

/// Chapter `chapter`'s (1-based) entry in an outline, the text its beats are made from.
pub fn outline_entry(outline: &str, chapter: u32) -> Option<String> {
    parts(outline).into_iter().nth((chapter as usize).checked_sub(1)?)
}

/// A regenerated list with the locked parts of the old one back in their places. Where the
/// new list is shorter than a locked part's place, the old parts up to it are kept too, so
/// a locked part never moves.
pub fn keep_locked(old: &[String], new: Vec<String>, locked: &BTreeSet<usize>) -> Vec<String> {
    let last_locked = locked.iter().copied().filter(|&i| i < old.len()).max();
    let len = new.len().max(last_locked.map_or(0, |i| i + 1));
    (0..len).map(|i| if locked.contains(&i) || i >= new.len() { old[i].clone() } else { new[i].clone() }).collect()
}

/// The tool run that generates `stage` from its source's text: a synopsis from the
/// braindump, the outline (`count` chapters) from the synopsis, a chapter's beats (`count`)
/// from its outline entry, a summary from the chapter. The braindump is the writer's own and
/// a chapter is drafted by [`draft_chapter`].
pub fn stage_request(stage: Stage, source: &str, count: Option<usize>, context: StoryContext) -> Result<ToolRequest> {
    let (tool, option, value) = match stage {
        Stage::Synopsis => ("outline", "level", "synopsis"),
        Stage::Outline => ("outline", "level", "chapters"),
        Stage::Beats => ("outline", "level", "beats"),
        Stage::Summary => ("summarize", "length", "chapter"),
        Stage::Braindump | Stage::Chapter => return Err(CraftError::NotGenerated { stage: stage.name() }),
    };
    if source.trim().is_empty() {
        let what = stage.source().map_or("", |s| s.name());
        return Err(CraftError::EmptyInput { tool: format!("{} (from the {what})", stage.name()), what: format!("the {what}") });
    }
    Ok(ToolRequest {
        tool: tool.into(),
        text: source.into(),
        options: [(option.to_string(), value.to_string())].into(),
        context,
        count: if stage.is_list() { count } else { None },
        ..ToolRequest::default()
    })
}

/// The text a tool's answer files as `stage`: a list stage's items, numbered (the first
/// `count` when the writer asked for that many and the model wrote more); a synopsis (the
/// `outline` tool reads its answer as items) as paragraphs, without the lines that only
/// introduce or head one ("Here's my synopsis:", "Middle:"); otherwise the answer's text.
pub fn answer_text(stage: Stage, answer: &crate::run::ToolCandidate, count: Option<usize>) -> String {
    let items = &answer.items[..count.map_or(answer.items.len(), |n| n.min(answer.items.len()))];
    filed_text(stage, &answer.text, items)
}

fn filed_text(stage: Stage, text: &str, items: &[String]) -> String {
    if stage.is_list() {
        return numbered(items);
    }
    let prose: Vec<&str> = items.iter().map(|i| i.trim()).filter(|i| !i.is_empty() && !i.ends_with([':', '：'])).collect();
    if stage == Stage::Synopsis && !prose.is_empty() {
        // Small models end with a note on their own answer ("This synopsis captures...").
        crate::output::strip_commentary(&prose.join("\n\n"), "")
    } else {
        text.trim().to_string()
    }
}

/// What a chapter is drafted from, besides the story context.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ChapterBrief {
    /// 1-based place among the chapters.
    pub chapter: u32,
    pub title: String,
    /// The chapter's outline entry.
    pub entry: String,
    pub beats: Vec<String>,
    /// The writer's chosen length of each beat, in words (characters in Chinese or Japanese).
    pub words_per_beat: usize,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BeatDraft {
    pub beat: String,
    pub text: String,
    pub words: usize,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ChapterDraft {
    /// The beats' prose, a paragraph break between beats.
    pub text: String,
    pub beats: Vec<BeatDraft>,
    /// The lorebook's timers after the last beat.
    pub lore_state: crate::lore::LoreState,
}

/// Words in a text: runs of letters and digits, and each CJK character but punctuation (the
/// way a Chinese or Japanese writer counts length).
pub fn words(text: &str) -> usize {
    let mut n = 0;
    let mut in_word = false;
    for c in text.chars() {
        if is_cjk(c) && c.is_alphanumeric() {
            n += 1;
            in_word = false;
        } else if c.is_alphanumeric() {
            if !in_word {
                n += 1;
            }
            in_word = true;
        } else if c != '\'' && c != '’' {
            in_word = false;
        }
    }
    n
}

/// The answer room for a beat of `words` words: about 4/3 tokens a word in English, one a
/// character in CJK text, with a little over so the last sentence can end (at 7/5 a word,
/// Qwen2.5-1.5B's beats asked for 150 words ran to 188-204).
fn beat_tokens(words: usize, cjk: bool) -> usize {
    if cjk { words + words / 5 + 16 } else { words * 4 / 3 + 16 }
}

/// What one beat's prompt asks for (in Chinese for a CJK brief): the chapter, its beats, and
/// which to write now.
fn beat_text(brief: &ChapterBrief, k: usize, cjk: bool) -> String {
    let list = numbered(&brief.beats);
    if cjk {
        format!("第{}章《{}》：{}\n本章的情节节拍：\n{list}\n现在写第{}个节拍：{}\n（约{}字）", brief.chapter, brief.title, brief.entry, k + 1, brief.beats[k], brief.words_per_beat)
    } else {
        format!("Chapter {} ({}): {}\nThe chapter's beats:\n{list}\n\nWrite beat {} now: {}\n(about {} words)", brief.chapter, brief.title, brief.entry, k + 1, brief.beats[k], brief.words_per_beat)
    }
}

/// The `draft` request for beat `k` (0-based) of `brief`, after the beats drafted so far.
pub fn beat_request(brief: &ChapterBrief, base: &ToolRequest, k: usize, so_far: &str) -> ToolRequest {
    let cjk = brief.entry.chars().chain(brief.beats.iter().flat_map(|b| b.chars())).any(is_cjk);
    let mut context = base.context.clone();
    context.chapter = Some(brief.chapter);
    let previous = context.before.trim_end().to_string();
    context.before = [previous.as_str(), so_far].into_iter().filter(|p| !p.is_empty()).collect::<Vec<_>>().join("\n\n");
    ToolRequest {
        tool: "draft".into(),
        text: beat_text(brief, k, cjk),
        context,
        n: 1,
        count: None,
        max_tokens: Some(beat_tokens(brief.words_per_beat, cjk)),
        seed: base.seed.map(|s| s.wrapping_add(k as u64)),
        ..base.clone()
    }
}

/// The last `n` paragraphs of a text.
fn last_paragraphs(text: &str, n: usize) -> &str {
    let starts = crate::text::paragraph_starts(text);
    starts.len().checked_sub(n).map_or(text, |i| &text[starts[i]..]).trim_start()
}

/// Drafts the chapter of `brief` one beat at a time with the `draft` tool. `base` carries the
/// story context (memory with the synopsis, earlier chapters' summaries, the lorebook, and
/// in `before` the last pages of the chapter before) and the sampling flags. Each beat goes
/// on from the last paragraphs drafted before it, and knows the rest from the beat list. `on_beat` hears of each beat as it is done.
pub fn draft_chapter(
    toolbox: &Toolbox,
    backend: &dyn Backend,
    brief: &ChapterBrief,
    base: &ToolRequest,
    on_beat: &mut dyn FnMut(usize, &BeatDraft),
    on_event: &mut dyn FnMut(Event<'_>) -> bool,
) -> Result<ChapterDraft> {
    let mut drafting = ChapterDrafting::start(brief, base)?;
    while let Some(req) = drafting.next_request() {
        let out = run(toolbox, backend, &req, on_event)?;
        let k = drafting.beats_drafted();
        if let Some(beat) = drafting.absorb(out) {
            on_beat(k, beat);
        }
    }
    Ok(drafting.finish())
}

/// A chapter being drafted beat by beat: the next beat's `draft` request, then its answer
/// taken in. [`draft_chapter`] runs the requests on a backend; the server runs each through
/// its queue.
pub struct ChapterDrafting<'a> {
    brief: &'a ChapterBrief,
    base: &'a ToolRequest,
    lore_state: crate::lore::LoreState,
    drafted: Vec<BeatDraft>,
}

impl<'a> ChapterDrafting<'a> {
    pub fn start(brief: &'a ChapterBrief, base: &'a ToolRequest) -> Result<Self> {
        if brief.beats.is_empty() {
            return Err(CraftError::EmptyInput { tool: "draft-chapter".into(), what: format!("beats for chapter {}", brief.chapter) });
        }
        Ok(Self { brief, base, lore_state: base.context.lore_state.clone(), drafted: Vec::new() })
    }

    pub fn beats_drafted(&self) -> usize {
        self.drafted.len()
    }

    fn so_far(&self) -> String {
        self.drafted.iter().map(|b| b.text.as_str()).collect::<Vec<_>>().join("\n\n")
    }

    /// The next beat's request, or `None` when every beat is drafted. The beat goes on from
    /// the last paragraphs drafted; the beats before are in the brief's list (given the whole
    /// chapter so far, small models wrote it again).
    pub fn next_request(&self) -> Option<ToolRequest> {
        let k = self.drafted.len();
        if k >= self.brief.beats.len() {
            return None;
        }
        let so_far = self.so_far();
        let mut req = beat_request(self.brief, self.base, k, last_paragraphs(&so_far, 2));
        req.context.lore_state = self.lore_state.clone();
        Some(req)
    }

    /// Takes in the answer to [`ChapterDrafting::next_request`]: the beat as drafted, or
    /// `None` when every beat already was.
    pub fn absorb(&mut self, out: crate::run::ToolOutput) -> Option<&BeatDraft> {
        let beat = self.brief.beats.get(self.drafted.len())?.clone();
        self.lore_state = out.prompt.lore_state.clone();
        // Paragraphs that write the story so far again are no part of this beat.
        let story = [self.base.context.before.as_str(), self.so_far().as_str()].join("\n\n");
        // So are a next chapter's heading and beat list that a small model goes on to write.
        let text = out.candidates.into_iter().next().map(|c| crate::output::drop_retold_paragraphs(&crate::output::cut_at_scaffold(&c.text), &story)).unwrap_or_default();
        self.drafted.push(BeatDraft { beat, words: words(&text), text });
        self.drafted.last()
    }

    /// The chapter: the beats' prose, a paragraph break between beats.
    pub fn finish(self) -> ChapterDraft {
        let text = self.drafted.iter().map(|b| b.text.as_str()).filter(|t| !t.is_empty()).collect::<Vec<_>>().join("\n\n");
        ChapterDraft { text, beats: self.drafted, lore_state: self.lore_state }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn locked_parts_stay_in_their_places() {
        let old = items(&["a", "b", "c"]);
        let locked: BTreeSet<usize> = [1].into();
        assert_eq!(keep_locked(&old, items(&["x", "y", "z", "w"]), &locked), items(&["x", "b", "z", "w"]));
        // A shorter new list keeps the old parts up to the last locked one.
        let locked: BTreeSet<usize> = [2].into();
        assert_eq!(keep_locked(&old, items(&["x"]), &locked), items(&["x", "b", "c"]));
        // A lock past the old list's end is ignored.
        let locked: BTreeSet<usize> = [7].into();
        assert_eq!(keep_locked(&old, items(&["x"]), &locked), items(&["x"]));
    }

    #[test]
    fn a_synopsis_answer_keeps_its_paragraphs_and_drops_its_headings() {
        let answer = items(&["Here's my starting paragraph:", "Mara keeps the light.", "Middle Paragraph:", "Oren washes ashore."]);
        let text = "1. Here's my starting paragraph:\n2. Mara keeps the light.";
        assert_eq!(filed_text(Stage::Synopsis, text, &answer), "Mara keeps the light.\n\nOren washes ashore.");
        assert!(filed_text(Stage::Outline, text, &answer).starts_with("1. Here's my starting paragraph:\n2. Mara keeps the light."));
        assert_eq!(filed_text(Stage::Summary, text, &answer), text);
        let noted = items(&["Mara keeps the light.", "This synopsis captures the essence of the premise while providing enough detail."]);
        assert_eq!(filed_text(Stage::Synopsis, "", &noted), "Mara keeps the light.");
    }

    #[test]
    fn an_outline_entry_is_its_numbered_item() {
        let outline = "1. The Ferry: Mara crosses.\n2. The Storm: the lamp fails.\n3. Dawn: Oren speaks.";
        assert_eq!(outline_entry(outline, 2).as_deref(), Some("The Storm: the lamp fails."));
        assert_eq!(outline_entry(outline, 4), None);
        assert_eq!(outline_entry(outline, 0), None);
        assert_eq!(numbered(&parts(outline)), outline);
    }

    #[test]
    fn a_beat_goes_on_from_the_last_paragraphs() {
        assert_eq!(last_paragraphs("One.\n\nTwo.\n\nThree.", 2), "Two.\n\nThree.");
        assert_eq!(last_paragraphs("One.", 2), "One.");
        assert_eq!(last_paragraphs("", 2), "");
    }

    #[test]
    fn words_count_latin_words_and_cjk_characters() {
        assert_eq!(words("Mara's lamp went out, twice."), 5);
        assert_eq!(words("今天天气很好。"), 6);
        assert_eq!(words("Oren说：好。"), 3);
    }

    #[test]
    fn stages_chain_top_down_and_parse_by_name() {
        let mut s = Stage::Summary;
        let mut chain = vec![s];
        while let Some(up) = s.source() {
            chain.push(up);
            s = up;
        }
        assert_eq!(chain.len(), Stage::ALL.len());
        assert_eq!(Stage::parse(" Outline ").unwrap(), Stage::Outline);
        assert!(Stage::parse("act").unwrap_err().to_string().contains("braindump, synopsis"));
        assert!(stage_request(Stage::Chapter, "x", None, StoryContext::default()).is_err());
        assert!(stage_request(Stage::Synopsis, "  ", None, StoryContext::default()).unwrap_err().to_string().contains("braindump"));
    }
}
