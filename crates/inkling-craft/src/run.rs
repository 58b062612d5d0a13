//! Running a tool: recipe + text + story context → prompt → candidates from the backend →
//! clean, parsed candidates (items for lists, a value for JSON, a diff for rewrites).

use crate::context::{Assembled, Frame, StoryContext, assemble};
use crate::diff::{Span, word_diff};
use crate::error::{CraftError, Result};
use crate::output::{dedupe_key, is_chatter, parse_list, strip_control, strip_echo, strip_preamble};
use crate::recipe::{LengthGoal, OutputKind, Recipe, Trim};
use crate::text::trim_to_sentence;
use crate::toolbox::Toolbox;
use inkling_engine::{Backend, Event, FinishReason, GenerateRequest, SamplingConfig, Timings};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What the writer asks of a tool.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ToolRequest {
    pub tool: String,
    /// The writer's text: the story so far (continue), a selection, a premise, keywords.
    #[serde(default)]
    pub text: String,
    /// Option values by name (`style = "casual"`).
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    #[serde(default)]
    pub context: StoryContext,
    #[serde(default = "one")]
    pub n: usize,
    pub seed: Option<u64>,
    pub max_tokens: Option<usize>,
    pub temperature: Option<f32>,
    /// Force the chat or the plain-text frame (default: chat when the model has a template).
    pub frame: Option<Frame>,
}

fn one() -> usize {
    1
}

impl Default for ToolRequest {
    fn default() -> Self {
        Self { tool: String::new(), text: String::new(), options: BTreeMap::new(), context: StoryContext::default(), n: 1, seed: None, max_tokens: None, temperature: None, frame: None }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ToolCandidate {
    pub index: usize,
    /// The cleaned answer.
    pub text: String,
    /// List tools: the parsed items.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<String>,
    /// JSON tools: the parsed value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub json: Option<serde_json::Value>,
    /// Rewrites: word-level changes from the writer's text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<Vec<Span>>,
    /// For tools with a length goal: whether this answer meets it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meets_length: Option<bool>,
    pub finish_reason: FinishReason,
    pub completion_tokens: usize,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ToolOutput {
    pub tool: String,
    pub candidates: Vec<ToolCandidate>,
    /// Candidates dropped because they repeated an earlier one.
    pub duplicates_dropped: usize,
    pub prompt: Assembled,
    pub seed: u64,
    pub timings: Timings,
}

/// Runs `request` on `backend`, streaming raw text through `on_event` (return false to
/// cancel); the returned candidates are cleaned and parsed.
pub fn run(toolbox: &Toolbox, backend: &dyn Backend, request: &ToolRequest, on_event: &mut dyn FnMut(Event<'_>) -> bool) -> Result<ToolOutput> {
    let recipe = toolbox.get(&request.tool)?;
    let prepared = prepare(recipe, backend, request)?;
    let generation = backend.generate(&prepared.request, on_event)?;
    finish(recipe, request, prepared, generation)
}

/// A request ready for the backend, and what it was built from.
pub struct Prepared {
    pub request: GenerateRequest,
    pub assembled: Assembled,
}

/// Checks the input, assembles the prompt and sets the sampling (`--show-prompt` stops here).
pub fn prepare(recipe: &Recipe, backend: &dyn Backend, request: &ToolRequest) -> Result<Prepared> {
    if recipe.needs_text && request.text.trim().is_empty() {
        return Err(CraftError::EmptyInput { tool: recipe.name.clone(), what: recipe.input.clone() });
    }
    let options = recipe.resolve_options(&request.options)?;
    let mut sampling = SamplingConfig::default();
    let d = &recipe.sampling;
    if let Some(t) = request.temperature.or(d.temperature) {
        sampling.temperature = t;
    }
    if let Some(p) = d.top_p {
        sampling.top_p = p;
    }
    if let Some(k) = d.top_k {
        sampling.top_k = k;
    }
    if let Some(m) = d.min_p {
        sampling.min_p = m;
    }
    if let Some(r) = d.repeat_penalty {
        sampling.repeat_penalty = r;
    }
    let input_tokens = backend.count_tokens(&request.text)?;
    let schema = if recipe.output.kind == OutputKind::Json { recipe.schema() } else { None };
    let half = backend.context_length() / 2;
    // The answer's room: asked for, else what the tool's shape needs.
    let json_room = schema.as_ref().map(|s| inkling_engine::constraint::JsonGrammar::compile(s).map(|g| g.max_bytes().min(half))).transpose()?;
    let (max_tokens, min_tokens) = match (request.max_tokens, recipe.output.length, json_room) {
        // A JSON answer cut short would not parse: it gets the room its schema needs.
        (asked, _, Some(room)) => (asked.unwrap_or(0).max(room), 0),
        (Some(m), Some(LengthGoal::Longer), _) => (m, (input_tokens + input_tokens / 4).min(m)),
        (Some(m), _, _) => (m, 0),
        // No more tokens than the input: the answer cannot come out longer.
        (None, Some(LengthGoal::Shorter), _) => (input_tokens.max(8), 0),
        (None, Some(LengthGoal::Longer), _) => ((input_tokens * 3 + 48).min(half), (input_tokens + input_tokens / 4).min(half)),
        (None, None, None) => (d.max_tokens.unwrap_or(200), 0),
    };
    let assembled = assemble(backend, recipe, &request.text, &options, &request.context, max_tokens, request.frame)?;
    let request = GenerateRequest {
        n: request.n,
        max_tokens,
        min_tokens,
        sampling,
        stop: recipe.output.stop.clone(),
        seed: request.seed,
        prefill: assembled.prefill.clone(),
        json_schema: schema,
        ..GenerateRequest::new(assembled.prompt.clone())
    };
    Ok(Prepared { request, assembled })
}

/// Cleans, parses and deduplicates the backend's candidates.
pub fn finish(recipe: &Recipe, request: &ToolRequest, prepared: Prepared, generation: inkling_engine::Generation) -> Result<ToolOutput> {
    let source = request.text.as_str();
    let mut seen = std::collections::HashSet::new();
    let mut candidates = Vec::new();
    let mut duplicates_dropped = 0;
    let mut parse_errors = Vec::new();
    for c in generation.candidates {
        // The answer continues the prefill, unless the server could not prefill and the
        // model wrote it again itself.
        let prefill = prepared.request.prefill.as_str();
        let raw = if !prefill.trim().is_empty() && c.text.trim_start().starts_with(prefill.trim()) { c.text.clone() } else { format!("{prefill}{}", c.text) };
        let raw = strip_control(&raw);
        let cut = c.finish_reason == FinishReason::Length;
        let mut text = if recipe.continues {
            // A continuation keeps its leading space: it is glued to the writer's text.
            strip_echo(&raw, source).trim_end().to_string()
        } else {
            strip_preamble(&raw).trim().to_string()
        };
        let (mut items, mut json) = (Vec::new(), None);
        match recipe.output.kind {
            OutputKind::Text => {
                if recipe.output.trim == Trim::Sentence {
                    text = trim_to_sentence(&text).to_string();
                }
            }
            OutputKind::List => {
                items = parse_list(&text);
                // A list cut off by the token limit ends in half an item.
                if cut && items.len() > 1 {
                    items.pop();
                }
                if recipe.output.trim == Trim::Sentence && items.len() == 1 {
                    items[0] = trim_to_sentence(&items[0]).to_string();
                }
                let mut seen_items = std::collections::HashSet::new();
                items.retain(|i| seen_items.insert(dedupe_key(i)));
                text = items.iter().enumerate().map(|(i, x)| if items.len() > 1 { format!("{}. {x}", i + 1) } else { x.clone() }).collect::<Vec<_>>().join("\n");
            }
            OutputKind::Json => match serde_json::from_str::<serde_json::Value>(&text) {
                Ok(v) => json = Some(v),
                Err(e) => {
                    parse_errors.push(format!("candidate {}: {e}{}", c.index + 1, if cut { " (cut off by the token limit; raise --max-tokens)" } else { "" }));
                    continue;
                }
            },
        }
        // An empty or repeated answer is not a choice.
        if text.trim().is_empty() || !seen.insert(dedupe_key(&text)) {
            duplicates_dropped += usize::from(!text.trim().is_empty());
            continue;
        }
        let meets_length = recipe.output.length.map(|goal| {
            let (a, b) = (text.chars().count(), source.trim().chars().count());
            match goal {
                LengthGoal::Shorter => a < b,
                LengthGoal::Longer => a > b,
            }
        });
        let diff = recipe.output.diff.then(|| word_diff(source.trim(), &text));
        candidates.push(ToolCandidate { index: 0, text, items, json, diff, meets_length, finish_reason: c.finish_reason, completion_tokens: c.completion_tokens });
    }
    if candidates.is_empty() && !parse_errors.is_empty() {
        return Err(CraftError::Unparsable { tool: recipe.name.clone(), expected: "JSON", reason: parse_errors.join("; ") });
    }
    // Answers that meet the tool's length goal and are text rather than talk first; otherwise
    // in the order generated.
    if !recipe.continues && recipe.output.kind == OutputKind::Text {
        candidates.sort_by_key(|c| is_chatter(&c.text));
    }
    candidates.sort_by_key(|c| c.meets_length == Some(false));
    for (i, c) in candidates.iter_mut().enumerate() {
        c.index = i;
    }
    Ok(ToolOutput { tool: recipe.name.clone(), candidates, duplicates_dropped, prompt: prepared.assembled, seed: generation.seed, timings: generation.timings })
}
