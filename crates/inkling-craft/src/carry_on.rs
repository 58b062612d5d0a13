//! Lists that stop short are carried on. A small model asked for six ideas often ends its
//! turn after two; the writer asked for six. Each short candidate is asked again with its
//! own answer written for it and the next number after it ("…\n3."), so the model writes the
//! missing items in the same turn. It costs little: the prompt is the same, so the engine
//! reuses its cached prefix. Rounds stop when the list is long enough, when the candidate's
//! token budget is spent, or when a round adds no item.
//!
//! The steps are data ([`CarryOn::requests`] and [`CarryOn::absorb`]) so that a caller who
//! queues generations (the server) drives them the same way [`complete_lists`] does.

use crate::output::{dedupe_key, parse_list, strip_control, strip_preamble};
use crate::run::Prepared;
use inkling_engine::{Event, FinishReason, GenerateRequest, Generation};

/// Fewer tokens than this left is no room for another item.
const MIN_ROOM: usize = 16;

/// One candidate's next request and the text that joins it to the answer so far.
pub struct Step {
    pub candidate: usize,
    pub request: GenerateRequest,
    /// Written for the model after the candidate's text: a line break and the next number.
    pub seam: String,
}

/// The carry-on of one generation's list candidates.
pub struct CarryOn {
    asked: usize,
    /// The answer's start written for the model ("1."): items are counted with it.
    prefill: String,
    stalled: Vec<bool>,
    round: u64,
}

impl CarryOn {
    /// `None` unless the tool is a list with a set number of items.
    pub fn new(prepared: &Prepared, generation: &Generation) -> Option<Self> {
        let asked = prepared.items?;
        Some(Self { asked, prefill: prepared.request.prefill.clone(), stalled: vec![false; generation.candidates.len()], round: 0 })
    }

    /// The next round: one step per numbered list that ended by itself short of the count
    /// with room left. Empty when nothing is left to carry on.
    pub fn requests(&mut self, prepared: &Prepared, generation: &Generation) -> Vec<Step> {
        self.round += 1;
        let base = &prepared.request;
        let mut steps = Vec::new();
        for (i, c) in generation.candidates.iter().enumerate() {
            let room = base.max_tokens.saturating_sub(c.completion_tokens);
            if self.stalled[i] || c.finish_reason != FinishReason::Stop || room < MIN_ROOM {
                continue;
            }
            let answer = format!("{}{}", base.prefill, c.text);
            let (numbered, distinct) = count_items(&answer);
            if numbered == 0 || distinct >= self.asked {
                continue;
            }
            let seam = format!("\n{}.", numbered.max(distinct) + 1);
            let request = GenerateRequest {
                n: 1,
                max_tokens: room,
                min_tokens: 0,
                prefill: format!("{}{seam}", answer.trim_end()),
                seed: Some(generation.seed.wrapping_add(self.round * 1_000 + i as u64 + 1)),
                logprobs: base.logprobs,
                ..base.clone()
            };
            steps.push(Step { candidate: i, request, seam });
        }
        steps
    }

    /// Joins what a step generated to its candidate. A round that adds no item ends that
    /// candidate's carry-on and leaves its answer as it was.
    pub fn absorb(&mut self, generation: &mut Generation, step: Step, extra: Generation) {
        let Some(more) = extra.candidates.into_iter().next() else {
            self.stalled[step.candidate] = true;
            return;
        };
        let c = &mut generation.candidates[step.candidate];
        let before = count_items(&format!("{}{}", self.prefill, c.text)).1;
        let joined = format!("{}{}{}", c.text.trim_end(), step.seam, more.text);
        if count_items(&format!("{}{joined}", self.prefill)).1 <= before {
            self.stalled[step.candidate] = true;
            return;
        }
        c.text = joined;
        c.completion_tokens += more.completion_tokens;
        c.finish_reason = more.finish_reason;
        c.tokens.extend(more.tokens);
        c.logprobs.extend(more.logprobs);
        let t = &mut generation.timings;
        t.prompt_ms += extra.timings.prompt_ms;
        t.prompt_tokens_computed += extra.timings.prompt_tokens_computed;
        t.prompt_tokens_reused += extra.timings.prompt_tokens_reused;
        t.decode_ms += extra.timings.decode_ms;
        let tokens: usize = generation.candidates.iter().map(|c| c.completion_tokens).sum();
        if t.decode_ms > 0.0 {
            t.decode_tokens_per_s = tokens as f64 * 1000.0 / t.decode_ms;
        }
    }
}

/// Items in a list answer: how many are numbered, and how many differ.
fn count_items(answer: &str) -> (usize, usize) {
    let text = strip_control(answer);
    let text = strip_preamble(&text);
    let numbered = text.lines().filter(|l| l.trim_start().chars().next().is_some_and(|c| c.is_ascii_digit())).count();
    let items = parse_list(text);
    let distinct: std::collections::HashSet<String> = items.iter().map(|i| dedupe_key(i)).collect();
    (numbered, distinct.len())
}

/// A way to generate: a backend's `generate`, or anything that stands in for it.
pub type GenerateFn<'a> = dyn FnMut(&GenerateRequest, &mut dyn FnMut(Event<'_>) -> bool) -> Result<Generation, inkling_engine::EngineError> + 'a;

/// Carries on every short list in `generation` through `generate`, streaming the added text
/// to `on_event` under the candidate's own index (its `Finished` was sent already).
pub fn complete_lists(prepared: &Prepared, generation: &mut Generation, generate: &mut GenerateFn<'_>, on_event: &mut dyn FnMut(Event<'_>) -> bool) -> crate::Result<()> {
    let Some(mut carry) = CarryOn::new(prepared, generation) else { return Ok(()) };
    loop {
        let steps = carry.requests(prepared, generation);
        if steps.is_empty() {
            return Ok(());
        }
        for step in steps {
            let index = step.candidate;
            if !on_event(Event::Text { candidate: index, text: &step.seam, logprobs: &[] }) {
                return Ok(());
            }
            let extra = generate(&step.request, &mut |e| match e {
                Event::Text { text, logprobs, .. } => on_event(Event::Text { candidate: index, text, logprobs }),
                Event::Finished { .. } => true,
                prefill @ Event::Prefill { .. } => on_event(prefill),
            })?;
            carry.absorb(generation, step, extra);
        }
    }
}
