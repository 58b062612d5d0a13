//! Running a tool: recipe + text + story context → prompt → candidates from the backend →
//! clean, parsed candidates (items for lists, a value for JSON, a diff for rewrites).

use crate::context::{Ask, Assembled, Frame, StoryContext, assemble};
use crate::diff::{Span, word_diff};
use crate::error::{CraftError, Result};
use crate::language::Language;
use crate::output::{dedupe_key, is_chatter, is_unusable_value, join_to_story, keeps_the_input, parse_list, strip_commentary, strip_control, strip_echo, strip_preamble, strip_restatement};
use crate::recipe::{LengthGoal, OutputKind, Recipe, Trim};
use crate::text::trim_to_sentence;
use crate::toolbox::Toolbox;
use inkling_engine::{Backend, Event, FinishReason, GenerateRequest, SamplingConfig, Speculation, Timings};
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
    /// The answer's language, as the writer names it ("French", "zh"); `None` answers in the
    /// language of the writer's text.
    #[serde(default)]
    pub language: Option<String>,
    /// How many items a list tool gives (default: the recipe's `output.items`).
    #[serde(default)]
    pub count: Option<usize>,
    /// Guess tokens ahead from the text (prompt lookup): the same answer, in fewer forward
    /// passes where it copies its input (tighten, rewrite, proofread).
    #[serde(default = "default_speculation")]
    pub speculative: Speculation,
    /// Banned phrases, stacked by the caller (config file, project, request); the built-in
    /// list applies unless a level turns it off (see [`crate::bans`]).
    #[serde(default)]
    pub bans: inkling_api::BanList,
    /// Report each answer token's likeliest alternatives, this many (at most 20): the
    /// editor's token view.
    #[serde(default)]
    pub alternatives: Option<usize>,
    /// The start of the answer, written by the writer or chosen from an alternative: the
    /// model goes on from it, and it is part of the answer (SillyTavern's "start reply with").
    #[serde(default)]
    pub answer_start: String,
    /// Rank the candidates by the writer's voice (`context.voice`) where the tool writes the
    /// writer's prose; false keeps the order the model gave them in.
    #[serde(default = "yes")]
    pub voice: bool,
}

fn yes() -> bool {
    true
}

/// What a tool uses unless asked otherwise: guessing, since it never changes the answer
/// and stops itself where it does not pay.
pub fn default_speculation() -> Speculation {
    Speculation::Lookup
}

fn one() -> usize {
    1
}

impl Default for ToolRequest {
    fn default() -> Self {
        Self {
            tool: String::new(),
            text: String::new(),
            options: BTreeMap::new(),
            context: StoryContext::default(),
            n: 1,
            seed: None,
            max_tokens: None,
            temperature: None,
            frame: None,
            language: None,
            count: None,
            speculative: default_speculation(),
            bans: inkling_api::BanList::default(),
            alternatives: None,
            answer_start: String::new(),
            voice: true,
        }
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
    /// What reading the answer back found wrong with it; flagged answers rank last.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<Flag>,
    pub finish_reason: FinishReason,
    pub completion_tokens: usize,
    /// When alternatives were asked for: the model's answer token by token (after the
    /// request's `answer_start`), before cleaning.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tokens: Vec<crate::tokens::TokenView>,
    /// Where the writer's voice placed it, and why (prose tools, when the project has a
    /// voice profile and the request did not turn ranking off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voice: Option<inkling_voice::VoiceRank>,
}

/// Something wrong with an answer that cleaning could not fix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Flag {
    /// It talks to the writer or about the edit instead of being the text.
    Commentary,
    /// It is not in the language asked for (the input's, unless the writer named another).
    WrongLanguage,
    /// A list with fewer items than asked for, even after carrying on.
    ShortList,
    /// A profile field holds code, a placeholder or nothing a writer could use.
    UnusableField,
    /// A profile keeps nothing of what the writer described (no word of it, no pair of its
    /// CJK characters).
    IgnoresInput,
}

impl Flag {
    /// In words, after "this answer", for the CLI and the editor.
    pub fn describe(self) -> &'static str {
        match self {
            Flag::Commentary => "talks about the edit instead of being the text",
            Flag::WrongLanguage => "is not in the language asked for",
            Flag::ShortList => "has fewer items than asked for",
            Flag::UnusableField => "has a field that holds nothing a writer could use",
            Flag::IgnoresInput => "keeps nothing of what you described",
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ToolOutput {
    pub tool: String,
    pub candidates: Vec<ToolCandidate>,
    /// Candidates dropped because they repeated an earlier one.
    pub duplicates_dropped: usize,
    pub prompt: Assembled,
    /// The language the answers were asked for, in English ("Chinese").
    pub language: String,
    pub seed: u64,
    pub timings: Timings,
}

/// Runs `request` on `backend`, streaming raw text through `on_event` (return false to
/// cancel); the returned candidates are cleaned and parsed.
pub fn run(toolbox: &Toolbox, backend: &dyn Backend, request: &ToolRequest, on_event: &mut dyn FnMut(Event<'_>) -> bool) -> Result<ToolOutput> {
    let recipe = toolbox.get(&request.tool)?;
    let prepared = prepare(recipe, backend, request)?;
    let mut generation = backend.generate(&prepared.request, on_event)?;
    crate::carry_on::complete_lists(&prepared, &mut generation, &mut |r, on| backend.generate(r, on), on_event)?;
    finish(recipe, backend, request, prepared, generation)
}

/// A request ready for the backend, and what it was built from.
pub struct Prepared {
    pub request: GenerateRequest,
    pub assembled: Assembled,
    /// The language the answer is asked for.
    pub language: Language,
    /// For a list tool: how many items were asked for.
    pub items: Option<usize>,
    /// What the request bans, and the built-in phrases its prompt uses.
    pub bans: crate::bans::Effective,
}

/// Checks the input, assembles the prompt and sets the sampling (`--show-prompt` stops here).
pub fn prepare(recipe: &Recipe, backend: &dyn Backend, request: &ToolRequest) -> Result<Prepared> {
    if recipe.needs_text && request.text.trim().is_empty() {
        return Err(CraftError::EmptyInput { tool: recipe.name.clone(), what: recipe.input.clone() });
    }
    let language = answer_language(request);
    let mut vars = recipe.resolve_options(&request.options)?;
    vars.insert("language".into(), language.name());
    let items = recipe.items(&vars, request.count)?;
    if let Some(n) = items {
        vars.insert("count".into(), n.to_string());
    }
    let schema = if recipe.output.kind == OutputKind::Json { recipe.schema() } else { None };
    let (mut max_tokens, min_tokens) = answer_room(recipe, backend, request, schema.as_ref())?;
    // More items than the recipe's own number need room in proportion.
    if let (None, Some(n), Some(set)) = (request.max_tokens, items, recipe.items(&vars, None)?)
        && n > set
    {
        max_tokens = (max_tokens * n / set.max(1)).min(backend.context_length() / 2);
    }
    // English prompts need no directive for English answers unless the writer named one; a
    // continuation is in its story's language already (and the story ends the message).
    let directive = (request.language.is_some() || (!language.is_english() && !recipe.continues)).then(|| language.directive(recipe.output.kind == OutputKind::Json));
    let ask = Ask { text: &request.text, vars: &vars, context: &request.context, max_tokens, frame: request.frame, directive: directive.as_deref() };
    let assembled = assemble(backend, recipe, &ask)?;
    let bans = crate::bans::effective(&request.bans, &assembled.rendered);
    let request = GenerateRequest {
        n: request.n,
        max_tokens,
        min_tokens,
        sampling: sampling(recipe, request),
        stop: recipe.output.stop.clone(),
        seed: request.seed,
        prefill: format!("{}{}", assembled.prefill, request.answer_start),
        json_schema: schema,
        // Ranking by voice weighs each candidate's likelihood too: the sampled tokens'
        // log-probabilities, without alternatives unless the writer asked for them.
        logprobs: request.alternatives.or(voice_profile(recipe, request).map(|_| 0)),
        speculative: request.speculative,
        banned_strings: bans.phrases.clone(),
        banned_regex: bans.regex.clone(),
        ..GenerateRequest::new(assembled.prompt.clone())
    };
    Ok(Prepared { request, assembled, language, items, bans })
}

/// The recipe's sampling, with the writer's temperature.
fn sampling(recipe: &Recipe, request: &ToolRequest) -> SamplingConfig {
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
    if let Some(m) = d.dry_multiplier {
        sampling.dry.multiplier = m;
    }
    sampling
}

/// The answer's room (`max_tokens`, `min_tokens`): asked for, else what the tool's shape needs.
fn answer_room(recipe: &Recipe, backend: &dyn Backend, request: &ToolRequest, schema: Option<&serde_json::Value>) -> Result<(usize, usize)> {
    let input_tokens = backend.count_tokens(&request.text)?;
    let half = backend.context_length() / 2;
    let json_room = schema.map(|s| inkling_engine::constraint::JsonGrammar::compile(s).map(|g| g.max_bytes().min(half))).transpose()?;
    Ok(match (request.max_tokens, recipe.output.length, json_room) {
        // A JSON answer cut short would not parse: it gets the room its schema needs.
        (asked, _, Some(room)) => (asked.unwrap_or(0).max(room), 0),
        (Some(m), Some(LengthGoal::Longer), _) => (m, (input_tokens + input_tokens / 4).min(m)),
        (Some(m), _, _) => (m, 0),
        // No more tokens than the input: the answer cannot come out longer.
        (None, Some(LengthGoal::Shorter), _) => (input_tokens.max(8), 0),
        (None, Some(LengthGoal::Longer), _) => ((input_tokens * 3 + 48).min(half), (input_tokens + input_tokens / 4).min(half)),
        (None, None, None) => (recipe.sampling.max_tokens.unwrap_or(200), 0),
    })
}

/// The language the writer named, else their text's, else the story's around it.
fn answer_language(request: &ToolRequest) -> Language {
    if let Some(named) = request.language.as_deref().filter(|l| !l.trim().is_empty()) {
        return Language::named(named);
    }
    let ctx = &request.context;
    let source = [request.text.as_str(), ctx.before.as_str(), ctx.memory.as_str()].into_iter().find(|t| !t.trim().is_empty()).unwrap_or_default();
    Language::of(source)
}

/// Cleans, parses and deduplicates the backend's candidates, flags what cleaning could not
/// fix, and ranks the flagged and those that miss the length goal last.
pub fn finish(recipe: &Recipe, backend: &dyn Backend, request: &ToolRequest, prepared: Prepared, generation: inkling_engine::Generation) -> Result<ToolOutput> {
    let source = request.text.as_str();
    let mut seen = std::collections::HashSet::new();
    let mut candidates = Vec::new();
    let mut duplicates_dropped = 0;
    let mut parse_errors = Vec::new();
    for c in generation.candidates {
        let tokens = if c.logprobs.is_empty() || request.alternatives.is_none() { Vec::new() } else { crate::tokens::token_views(backend, &c.text, &c.logprobs) };
        let mean_logprob = (!c.logprobs.is_empty()).then(|| c.logprobs.iter().map(|l| f64::from(l.logprob)).sum::<f64>() / c.logprobs.len() as f64);
        // The answer continues the prefill, unless the server could not prefill and the
        // model wrote it again itself.
        let prefill = prepared.request.prefill.as_str();
        let raw = if !prefill.trim().is_empty() && c.text.trim_start().starts_with(prefill.trim()) { c.text.clone() } else { format!("{prefill}{}", c.text) };
        let raw = strip_control(&raw);
        let cut = c.finish_reason == FinishReason::Length;
        let mut text = if recipe.continues {
            // A continuation keeps its leading space: it is glued to the writer's text.
            let fresh = strip_restatement(strip_echo(&raw, source), source).trim_end();
            if fresh.trim().is_empty() { String::new() } else { join_to_story(fresh, source) }
        } else if recipe.output.kind == OutputKind::Text {
            strip_commentary(strip_preamble(&raw), source)
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
                items = read_list(recipe, &text, cut);
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
        let mut candidate =
            ToolCandidate { index: 0, text, items, json, diff, meets_length, flags: Vec::new(), finish_reason: c.finish_reason, completion_tokens: c.completion_tokens, tokens, voice: None };
        candidate.flags = flags(recipe, &prepared, source, &candidate);
        candidates.push((candidate, mean_logprob));
    }
    if candidates.is_empty() && !parse_errors.is_empty() {
        return Err(CraftError::Unparsable { tool: recipe.name.clone(), expected: "JSON", reason: parse_errors.join("; ") });
    }
    let mut candidates = rank_by_voice(recipe, request, candidates);
    // Clean answers that meet the tool's length goal first; then, with a voice profile, the
    // nearest the writer's voice; otherwise in the order generated (the sort is stable).
    let voice_score = |c: &ToolCandidate| c.voice.as_ref().map_or(0.0, |v| v.score);
    candidates.sort_by(|a, b| (a.flags.len(), a.meets_length == Some(false)).cmp(&(b.flags.len(), b.meets_length == Some(false))).then_with(|| voice_score(a).total_cmp(&voice_score(b))));
    for (i, c) in candidates.iter_mut().enumerate() {
        c.index = i;
    }
    Ok(ToolOutput { tool: recipe.name.clone(), candidates, duplicates_dropped, prompt: prepared.assembled, language: prepared.language.name(), seed: generation.seed, timings: generation.timings })
}

/// The writer's voice profile, where this tool's answer is their prose and the request ranks by it.
fn voice_profile<'a>(recipe: &Recipe, request: &'a ToolRequest) -> Option<&'a inkling_voice::Profile> {
    request.context.voice.as_deref().filter(|_| request.voice && recipe.output.voice)
}

/// Each candidate's place by the writer's voice, with its likelihood (mean token
/// log-probability) beside it; unranked where there is no profile to rank by.
fn rank_by_voice(recipe: &Recipe, request: &ToolRequest, candidates: Vec<(ToolCandidate, Option<f64>)>) -> Vec<ToolCandidate> {
    let Some(profile) = voice_profile(recipe, request) else {
        return candidates.into_iter().map(|(c, _)| c).collect();
    };
    let ranks = inkling_voice::rank(profile, &candidates.iter().map(|(c, lp)| (c.text.as_str(), *lp)).collect::<Vec<_>>());
    candidates.into_iter().zip(ranks).map(|((c, _), rank)| ToolCandidate { voice: Some(rank), ..c }).collect()
}

/// A list answer's items: the half item a token limit cut off dropped, lines that only head
/// a group ("Section 3:", "Conclusion:", "Here are five ideas:") dropped, repeats removed.
fn read_list(recipe: &Recipe, text: &str, cut: bool) -> Vec<String> {
    let mut items = parse_list(text);
    items.retain(|i| !(i.ends_with([':', '：']) && i.split_whitespace().count() <= 6 && i.chars().count() <= 40));
    if cut && items.len() > 1 {
        items.pop();
    }
    if recipe.output.trim == Trim::Sentence && items.len() == 1 {
        items[0] = trim_to_sentence(&items[0]).to_string();
    }
    let mut seen = std::collections::HashSet::new();
    items.retain(|i| seen.insert(dedupe_key(i)));
    items
}

/// What is still wrong with a cleaned answer.
fn flags(recipe: &Recipe, prepared: &Prepared, source: &str, c: &ToolCandidate) -> Vec<Flag> {
    let mut flags = Vec::new();
    if !recipe.continues && recipe.output.kind == OutputKind::Text && is_chatter(&c.text) {
        flags.push(Flag::Commentary);
    }
    // A profile is judged by its values, not its English keys.
    let values: Vec<&str> = match &c.json {
        Some(serde_json::Value::Object(fields)) => fields.values().filter_map(|v| v.as_str()).collect(),
        _ => Vec::new(),
    };
    let judged = if c.json.is_some() { values.join("\n") } else { c.text.clone() };
    if !prepared.language.matches(&judged) {
        flags.push(Flag::WrongLanguage);
    }
    if prepared.items.is_some_and(|asked| c.items.len() < asked) {
        flags.push(Flag::ShortList);
    }
    if c.json.is_some() && values.iter().any(|v| is_unusable_value(v)) {
        flags.push(Flag::UnusableField);
    }
    if c.json.is_some() && !keeps_the_input(source, &judged) {
        flags.push(Flag::IgnoresInput);
    }
    flags
}
