//! A candidate token by token, each with the model's likeliest alternatives: what the
//! editor's token view shows and what branching from an alternative starts from.
//!
//! Texts are whole characters: a token that ends inside a character shows nothing and the
//! one that completes it shows the character, so the tokens' texts join to the answer. An
//! alternative is `whole` when it could start an answer on its own (it begins at a
//! character boundary and is valid UTF-8); the others are shown but cannot be chosen.

use inkling_engine::stream::{Step, TextStream};
use inkling_engine::{Backend, TokenLogprob};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TokenView {
    pub text: String,
    /// Under the model, before the samplers (OpenAI's figure).
    pub logprob: f32,
    /// In the distribution it was drawn from, after the samplers.
    pub sampled_logprob: f32,
    /// The likeliest tokens before the samplers, most likely first.
    pub top: Vec<Alternative>,
    /// After the samplers: only what they left a chance.
    pub sampled_top: Vec<Alternative>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Alternative {
    pub text: String,
    pub logprob: f32,
    pub whole: bool,
}

/// The views of `logprobs`, the reports of the tokens of `answer` (the backend's raw text),
/// cut where the answer ends (a stop string may end it inside a token).
pub fn token_views(backend: &dyn Backend, answer: &str, logprobs: &[TokenLogprob]) -> Vec<TokenView> {
    // The engine's own decoder: whole characters, U+FFFD for what is not UTF-8.
    let mut stream = TextStream::new(&[]);
    let mut shown = 0;
    let mut views = Vec::new();
    for lp in logprobs {
        if shown >= answer.len() {
            break;
        }
        let at_boundary = stream.pending_bytes().is_empty();
        let Step::Text(mut text) = stream.push(&backend.token_bytes(lp.token)) else { break };
        if shown + text.len() > answer.len() {
            let mut keep = answer.len() - shown;
            while !text.is_char_boundary(keep) {
                keep -= 1;
            }
            text.truncate(keep);
        }
        shown += text.len();
        let alternative = |&(t, logprob): &(u32, f32)| {
            let bytes = backend.token_bytes(t);
            let whole = at_boundary && std::str::from_utf8(&bytes).is_ok();
            Alternative { text: String::from_utf8_lossy(&bytes).into_owned(), logprob, whole }
        };
        views.push(TokenView {
            text,
            logprob: lp.logprob,
            sampled_logprob: lp.sampled_logprob,
            top: lp.top.iter().map(alternative).collect(),
            sampled_top: lp.sampled_top.iter().map(alternative).collect(),
        });
    }
    views
}
