//! Context assembly: a tool's recipe, the writer's text and the story around it (memory,
//! story-bible entries, author's note, the text before the cursor) become one prompt that fits
//! the model's context under an explicit token budget.
//!
//! Priorities when space runs out: the text nearest the cursor first (up to half the room),
//! then the lore entries that fire ([`crate::lore`]; under the lorebook's own budget, if it
//! has one, the lowest `order` dropped first), then memory, then the summaries of earlier
//! chapters (nearest first; never a later chapter's), then more of the story. Cuts
//! fall on paragraph, then sentence, then word boundaries, never inside a character. Stable
//! parts come first (memory, chapter summaries, then entries by order, then the story) so that repeated
//! requests share a prompt prefix and the engine reuses its KV cache; entries placed at a
//! depth go inside the story, that many paragraphs before its end.

use crate::error::{CraftError, Result};
use crate::lore::{self, LoreEntry, LoreSettings, LoreState, Position};
use crate::recipe::Recipe;
use crate::text::longest_fitting_tail;
use inkling_engine::{Backend, ChatMessage, Prompt};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What the writer keeps around their text.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct StoryContext {
    /// Always in the prompt (premise, tone, what matters now).
    #[serde(default)]
    pub memory: String,
    /// A short steer inserted near the cursor ("Mara is lying.").
    #[serde(default)]
    pub author_note: String,
    /// Paragraphs before the cursor at which the note goes.
    #[serde(default = "default_note_depth")]
    pub note_depth: usize,
    #[serde(default)]
    pub lore: Vec<LoreEntry>,
    /// The story before the passage a selection tool works on (continue uses its own text).
    #[serde(default)]
    pub before: String,
    /// The chapter being written (1-based), for lore that starts later in the book.
    #[serde(default)]
    pub chapter: Option<u32>,
    #[serde(default)]
    pub lore_settings: LoreSettings,
    /// Sticky and cooldown timers from earlier generations.
    #[serde(default)]
    pub lore_state: LoreState,
    /// Summaries of the book's chapters: the prompt gets those before `chapter` (nearest
    /// first when room is short), never a later one's.
    #[serde(default)]
    pub summaries: Vec<ChapterSummary>,
    /// The project's voice profile, which prose tools rank their candidates by (filled from
    /// the store by the caller, never from a request body).
    #[serde(skip)]
    pub voice: Option<std::sync::Arc<inkling_voice::Profile>>,
}

/// What happened in one chapter, the rolling memory of a book.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ChapterSummary {
    /// 1-based place among the chapters.
    pub chapter: u32,
    pub title: String,
    pub text: String,
}

impl ChapterSummary {
    fn line(&self) -> String {
        format!("Chapter {} ({}): {}", self.chapter, self.title, self.text.trim())
    }
}

fn default_note_depth() -> usize {
    3
}

/// How the prompt is framed for the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Frame {
    /// Messages through the model's chat template (instruct models).
    Chat,
    /// Plain text the model continues (base models, and prose continuation).
    Text,
}

/// One part of the prompt and what it cost, for `--show-prompt`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Part {
    pub name: String,
    pub tokens: usize,
    /// What happened to it: "whole", "last 3 of 9 paragraphs", "left out (budget)".
    pub fate: String,
}

/// A prompt ready for the backend.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Assembled {
    pub frame: Frame,
    pub prompt: Prompt,
    pub prefill: String,
    /// Exactly what the model reads.
    pub rendered: String,
    pub prompt_tokens: usize,
    /// Room the prompt had: the context window less the answer's tokens.
    pub budget: usize,
    pub parts: Vec<Part>,
    /// The lorebook's timers after this prompt: keep them for the next one.
    pub lore_state: LoreState,
}

/// The variable parts of one rendering.
#[derive(Default, Clone)]
struct Fill {
    story: String,
    memory: String,
    summaries: String,
    lore: String,
}

/// What one prompt is built from, besides the recipe.
pub struct Ask<'a> {
    /// The writer's text.
    pub text: &'a str,
    /// Template variables: each option's resolved phrase (see [`Recipe::resolve_options`]),
    /// and `count` and `language`.
    pub vars: &'a BTreeMap<String, String>,
    pub context: &'a StoryContext,
    /// Room kept for the answer.
    pub max_tokens: usize,
    /// Forced frame; `None` picks chat when the model has a template.
    pub frame: Option<Frame>,
    /// A line appended to the chat instruction (the answer's language, in that language).
    pub directive: Option<&'a str>,
}

/// Builds the prompt for `recipe` on the writer's text.
pub fn assemble(backend: &dyn Backend, recipe: &Recipe, ask: &Ask<'_>) -> Result<Assembled> {
    let Ask { text, vars: options, context: ctx, max_tokens, frame, directive } = *ask;
    let frame = frame.unwrap_or(if recipe.prompt.chat.is_some() && backend.info().chat_template { Frame::Chat } else { Frame::Text });
    let frame = if recipe.prompt.chat.is_none() { Frame::Text } else { frame };
    let context = backend.context_length();
    let budget = context.saturating_sub(max_tokens);
    // The story the tool looks back on: the text itself for continue, else what precedes it.
    let continues = recipe.continues;
    let story_src = if continues { text } else { ctx.before.as_str() };
    let own_text = if continues { "" } else { text };

    let render = |fill: &Fill| render(recipe, frame, own_text, options, directive, fill);
    let (prompt, prefill) = render(&Fill::default())?;
    let fixed = count_prompt(backend, &prompt, &prefill)?;
    if fixed > budget {
        let tokens = backend.count_tokens(text)?;
        return Err(CraftError::TextTooLong { tool: recipe.name.clone(), tokens, budget: budget.saturating_sub(fixed - tokens.min(fixed)), context });
    }
    let count = |s: &str| backend.count_tokens(s);
    let mut room = budget - fixed;
    let mut parts = vec![Part { name: "recipe and text".into(), tokens: fixed, fate: format!("{} frame", if frame == Frame::Chat { "chat" } else { "text" }) }];

    // The author's note rides inside the story, so it is reserved first (it is short).
    let note = ctx.author_note.trim();
    let note_tokens = if note.is_empty() || story_src.trim().is_empty() { 0 } else { count(&note_line(note))? + 1 };
    let note_fits = note_tokens > 0 && note_tokens <= room / 4;
    if note_fits {
        room -= note_tokens;
    }

    // 1. The text nearest the cursor, up to half the room.
    let mut story_start = story_src.len();
    let mut story_tokens = 0;
    let take_story = |allow: usize, story_start: &mut usize, story_tokens: &mut usize| -> Result<()> {
        let mut err = None;
        let start = longest_fitting_tail(story_src, &mut |s| match count(s) {
            Ok(n) => n <= allow,
            Err(e) => {
                err = Some(e);
                false
            }
        });
        if let Some(e) = err {
            return Err(e.into());
        }
        if let Some(start) = start
            && start < *story_start
        {
            *story_start = start;
            *story_tokens = count(&story_src[start..])?;
        }
        Ok(())
    };
    if !story_src.trim().is_empty() {
        take_story(room / 2, &mut story_start, &mut story_tokens)?;
    }
    let mut left = room - story_tokens;

    // 2. Lore entries that fire, under the lorebook's budget.
    let activation = lore::activate(&ctx.lore, &lore::Scan { story: story_src, own_text, chapter: ctx.chapter }, &ctx.lore_settings, &ctx.lore_state);
    let placed = place_lore(&ctx.lore, &activation, ctx, !story_src.trim().is_empty(), &mut left, &mut parts, &count)?;
    let lore = placed.before_story;

    // 3. Memory, whole or not at all.
    let memory = ctx.memory.trim();
    let mut memory_in = String::new();
    if !memory.is_empty() {
        let n = count(memory)? + 2;
        if n <= left {
            left -= n;
            memory_in = memory.to_string();
            parts.push(Part { name: "memory".into(), tokens: n, fate: "whole".into() });
        } else {
            parts.push(Part { name: "memory".into(), tokens: n, fate: "left out (budget)".into() });
        }
    }

    // 4. Summaries of the chapters before this one, nearest first.
    let summaries = place_summaries(ctx, &mut left, &mut parts, &count)?;

    // 5. The rest of the room goes to more story.
    if !story_src.trim().is_empty() {
        take_story(story_tokens + left, &mut story_start, &mut story_tokens)?;
    }

    // Render; a token or two can merge differently across part boundaries, so shrink the
    // story until the whole prompt truly fits.
    let mut allow = story_tokens;
    for _ in 0..4 {
        let story_text = &story_src[story_start..];
        let mut inserts = placed.at_depth.clone();
        if note_fits {
            inserts.push((ctx.note_depth, note_line(note)));
        }
        let story = insert_lines(story_text, &inserts);
        let fill = Fill { story, memory: memory_in.clone(), summaries: summaries.clone(), lore: lore.join("\n") };
        let (prompt, prefill) = render(&fill)?;
        let total = count_prompt(backend, &prompt, &prefill)?;
        if total <= budget {
            if !story_src.trim().is_empty() {
                let paras = |s: &str| s.split("\n\n").filter(|p| !p.trim().is_empty()).count();
                let fate = if story_start == 0 { "whole".to_string() } else { format!("last {} of {} paragraphs (cut at a boundary)", paras(story_text), paras(story_src)) };
                parts.insert(1, Part { name: if continues { "story (your text)".into() } else { "story before the passage".into() }, tokens: story_tokens, fate });
            }
            if note_fits {
                parts.push(Part { name: "author's note".into(), tokens: note_tokens, fate: format!("{} paragraphs before the cursor", ctx.note_depth) });
            } else if !note.is_empty() {
                parts.push(Part { name: "author's note".into(), tokens: note_tokens, fate: "left out (budget)".into() });
            }
            let rendered = backend.render_prompt(&prompt, &prefill)?;
            return Ok(Assembled { frame, prompt, prefill, rendered, prompt_tokens: total, budget, parts, lore_state: activation.state });
        }
        allow = allow.saturating_sub(total - budget + 4);
        let mut start = story_src.len();
        let mut tokens = 0;
        if allow > 0 {
            take_story(allow, &mut start, &mut tokens)?;
        }
        story_start = start;
        story_tokens = tokens;
    }
    Err(CraftError::TextTooLong { tool: recipe.name.clone(), tokens: count(text)?, budget, context })
}

/// Tokens of a whole prompt; a template with nothing filled in yet may render empty.
fn count_prompt(backend: &dyn Backend, prompt: &Prompt, prefill: &str) -> Result<usize> {
    match backend.count_prompt_tokens(prompt, prefill) {
        Err(inkling_engine::EngineError::EmptyPrompt) => Ok(0),
        other => Ok(other?),
    }
}

fn lore_line(e: &LoreEntry, chapter: Option<u32>) -> String {
    let body = e.body_at(chapter);
    if e.kind.is_empty() { format!("{}: {body}", e.name) } else { format!("{} ({}): {body}", e.name, e.kind) }
}

/// Fired entries as prompt lines: those before the story, and those inside it with their depth.
struct Placed {
    before_story: Vec<String>,
    at_depth: Vec<(usize, String)>,
}

/// Keeps what fits of the fired entries and says what became of every entry the scan
/// considered. Kept first: always-on entries, then higher `order`, then fewer recursion
/// steps, then bible order. Placed by `order` (higher nearer the story's end), then bible order.
fn place_lore(
    entries: &[LoreEntry],
    act: &lore::Activation,
    ctx: &StoryContext,
    has_story: bool,
    left: &mut usize,
    parts: &mut Vec<Part>,
    count: &dyn Fn(&str) -> inkling_engine::Result<usize>,
) -> Result<Placed> {
    let part = |i: usize, tokens, fate: String| Part { name: format!("bible: {}", entries[i].name), tokens, fate };
    let mut fired: Vec<(usize, &lore::Fired, String, usize)> = Vec::new();
    for (i, why) in &act.fired {
        let e = &entries[*i];
        let line = match e.position {
            Position::AtDepth(_) if has_story => format!("[{}]", lore_line(e, ctx.chapter)),
            _ => lore_line(e, ctx.chapter),
        };
        let n = count(&line)? + 1;
        fired.push((*i, why, line, n));
    }
    fired.sort_by_key(|(i, why, _, _)| (!matches!(why, lore::Fired::Always), std::cmp::Reverse(entries[*i].order), act.level(*i), *i));
    let mut room = ctx.lore_settings.budget.map_or(*left, |b| b.min(*left));
    let mut kept = Vec::new();
    for (i, why, line, n) in fired {
        if n <= room {
            room -= n;
            *left -= n;
            parts.push(part(i, n, why.to_string()));
            kept.push((i, line));
        } else {
            let fate = match ctx.lore_settings.budget {
                Some(b) if n <= *left => format!("left out (lore budget of {b} tokens; lower order is dropped first)"),
                _ => "left out (budget)".into(),
            };
            parts.push(part(i, n, format!("{why}, but {fate}")));
        }
    }
    for (i, held) in &act.held {
        parts.push(part(*i, 0, held.to_string()));
    }
    kept.sort_by_key(|(i, _)| (entries[*i].order, *i));
    let mut placed = Placed { before_story: Vec::new(), at_depth: Vec::new() };
    for (i, line) in kept {
        match entries[i].position {
            Position::AtDepth(d) if has_story => placed.at_depth.push((d, line)),
            _ => placed.before_story.push(line),
        }
    }
    Ok(placed)
}

/// The summaries that fit, oldest first, as one block; earlier chapters are cut first. Only
/// chapters before `ctx.chapter` are considered, so no later chapter can leak into a prompt.
fn place_summaries(ctx: &StoryContext, left: &mut usize, parts: &mut Vec<Part>, count: &dyn Fn(&str) -> inkling_engine::Result<usize>) -> Result<String> {
    let Some(current) = ctx.chapter else { return Ok(String::new()) };
    let mut earlier: Vec<&ChapterSummary> = ctx.summaries.iter().filter(|s| s.chapter < current && !s.text.trim().is_empty()).collect();
    earlier.sort_by_key(|s| std::cmp::Reverse(s.chapter));
    let head = count(SUMMARIES_HEADING)? + 2;
    let mut kept = Vec::new();
    let mut room_cut = false;
    for s in earlier {
        let line = s.line();
        let n = count(&line)? + 1 + if kept.is_empty() { head } else { 0 };
        let name = format!("summary: chapter {}", s.chapter);
        if !room_cut && n <= *left {
            *left -= n;
            parts.push(Part { name, tokens: n, fate: "whole".into() });
            kept.push(line);
        } else {
            // Once one is cut, every earlier one goes too: the memory stays a run of chapters.
            room_cut = true;
            parts.push(Part { name, tokens: n, fate: "left out (budget; earliest chapters go first)".into() });
        }
    }
    if kept.is_empty() {
        return Ok(String::new());
    }
    kept.reverse();
    Ok(format!("{SUMMARIES_HEADING}\n{}", kept.join("\n")))
}

const SUMMARIES_HEADING: &str = "The chapters so far:";

fn note_line(note: &str) -> String {
    format!("[Author's note: {note}]")
}

/// `story` with the note on its own line `depth` paragraphs before the end.
pub fn insert_note(story: &str, note: &str, depth: usize) -> String {
    insert_lines(story, &[(depth, note_line(note))])
}

/// `story` with each line on its own, its depth in paragraphs before the end (0: after the
/// last); lines at the same depth keep their order.
pub fn insert_lines(story: &str, lines: &[(usize, String)]) -> String {
    if lines.is_empty() {
        return story.to_string();
    }
    let starts: Vec<usize> = std::iter::once(0).chain(crate::text::paragraph_starts(story)).filter(|&i| !story[i..].trim().is_empty()).collect();
    let mut at: Vec<(usize, &str)> = lines.iter().map(|(d, l)| (if *d == 0 { story.len() } else { starts[starts.len().saturating_sub(*d)] }, l.as_str())).collect();
    at.sort_by_key(|(offset, _)| *offset);
    let mut out = String::with_capacity(story.len() + lines.iter().map(|(_, l)| l.len() + 1).sum::<usize>());
    let mut from = 0;
    for (offset, line) in at {
        if offset == story.len() {
            if from < story.len() {
                out.push_str(story[from..].trim_end());
                out.push('\n');
                from = story.len();
            }
        } else {
            out.push_str(&story[from..offset]);
            from = offset;
        }
        out.push_str(line);
        out.push('\n');
    }
    out.push_str(&story[from..]);
    out
}

/// Renders the recipe's templates for one fill: the prompt and the reply's start.
fn render(recipe: &Recipe, frame: Frame, text: &str, options: &BTreeMap<String, String>, directive: Option<&str>, fill: &Fill) -> Result<(Prompt, String)> {
    let context = [fill.memory.as_str(), fill.summaries.as_str(), fill.lore.as_str()].into_iter().filter(|p| !p.is_empty()).collect::<Vec<_>>().join("\n\n");
    let mut vars: BTreeMap<&str, minijinja::Value> = BTreeMap::new();
    for (k, v) in options {
        vars.insert(k.as_str(), v.as_str().into());
    }
    vars.insert("text", text.into());
    vars.insert("story", fill.story.as_str().into());
    vars.insert("memory", fill.memory.as_str().into());
    vars.insert("lore", fill.lore.as_str().into());
    vars.insert("summaries", fill.summaries.as_str().into());
    vars.insert("context", context.as_str().into());
    let mut env = minijinja::Environment::new();
    // A frame ending in a blank line means it: keep it.
    env.set_keep_trailing_newline(true);
    let r = |name: &str, tmpl: &str| -> Result<String> {
        env.render_str(tmpl, &vars).map_err(|e| CraftError::Recipe { file: recipe.source.clone().into(), line: e.line().unwrap_or(0), column: 0, message: format!("template `prompt.{name}`: {e}") })
    };
    let prefill = r("prefill", &recipe.prompt.prefill)?;
    let prompt = match (frame, &recipe.prompt.chat) {
        (Frame::Chat, Some(chat)) => {
            let mut system = r("system", &recipe.prompt.system)?;
            if !context.is_empty() {
                system = format!("{}\n\nWhat you know about the story:\n{context}", system.trim_end()).trim_start().to_string();
            }
            let mut messages = Vec::new();
            if !system.trim().is_empty() {
                messages.push(ChatMessage::new("system", &system));
            }
            let mut user = r("chat", chat)?;
            if let Some(d) = directive {
                user = format!("{}\n\n{d}", user.trim_end());
            }
            messages.push(ChatMessage::new("user", &user));
            Prompt::Chat(messages)
        }
        _ => {
            // A trailing space would be its own token, one the model rarely saw before a word.
            let t = r("text", &recipe.prompt.text)?;
            Prompt::Text(t.trim_end_matches([' ', '\t']).to_string())
        }
    };
    Ok((prompt, prefill))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_note_sits_depth_paragraphs_before_the_end() {
        let story = "One.\n\nTwo.\n\nThree.";
        assert_eq!(insert_note(story, "n", 1), "One.\n\nTwo.\n\n[Author's note: n]\nThree.");
        assert_eq!(insert_note(story, "n", 3), "[Author's note: n]\nOne.\n\nTwo.\n\nThree.");
        assert_eq!(insert_note(story, "n", 9), "[Author's note: n]\nOne.\n\nTwo.\n\nThree.");
        assert_eq!(insert_note(story, "n", 0), "One.\n\nTwo.\n\nThree.\n[Author's note: n]\n");
    }
}
