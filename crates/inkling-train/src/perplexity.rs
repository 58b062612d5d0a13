//! Perplexity of a model over a text, with a sliding window: `exp(mean(-log p(token | the
//! tokens before it)))`.
//!
//! A text longer than the context is read in windows of `window` tokens that advance by
//! `stride`; each window scores only the tokens no earlier window scored, so every token is
//! scored once, with up to `window - stride` tokens of context before it (Hugging Face's
//! "perplexity of fixed-length models" method). The first token has no context and is not
//! scored. Runs on any model the engine loads, GGUF or trained here.

use crate::error::{Result, TrainError};
use inkling_engine::Engine;
use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
pub struct Perplexity {
    pub perplexity: f64,
    /// Mean negative log-likelihood per token, in nats.
    pub mean_nll: f64,
    pub tokens_scored: usize,
    pub window: usize,
    pub stride: usize,
    pub seconds: f64,
}

/// Scores `tokens` with `engine`; `on_progress(scored, total)` after each window.
pub fn perplexity_of_tokens(engine: &Engine, tokens: &[u32], window: usize, stride: usize, on_progress: &mut dyn FnMut(usize, usize)) -> Result<Perplexity> {
    let t0 = std::time::Instant::now();
    let window = window.min(engine.context_length());
    if window < 2 {
        return Err(TrainError::InvalidSetting("the window must hold at least 2 tokens".into()));
    }
    let stride = stride.clamp(1, window);
    if tokens.len() < 2 {
        return Err(TrainError::CorpusTooSmall { have: tokens.len(), need: 2, why: "perplexity needs a token to predict after the first".into() });
    }
    let total = tokens.len() - 1;
    let (mut nll, mut scored) = (0f64, 0usize);
    // `done`: tokens[..done] are scored (token 0 never is).
    let mut done = 1;
    let mut begin = 0;
    loop {
        let end = (begin + window).min(tokens.len());
        let logits = engine.logits(&tokens[begin..end])?;
        let vocab = logits.len() / (end - begin);
        for pos in done.max(begin + 1)..end {
            // Row pos-1-begin predicts the token at pos.
            let row = &logits[(pos - 1 - begin) * vocab..(pos - begin) * vocab];
            nll -= log_softmax_at(row, tokens[pos] as usize);
            scored += 1;
        }
        done = end;
        on_progress(scored, total);
        if end == tokens.len() {
            break;
        }
        begin += stride;
    }
    let mean_nll = nll / scored as f64;
    Ok(Perplexity { perplexity: mean_nll.exp(), mean_nll, tokens_scored: scored, window, stride, seconds: t0.elapsed().as_secs_f64() })
}

/// Perplexity of `text` (tokenized by the model's own tokenizer).
pub fn perplexity(engine: &Engine, text: &str, window: usize, stride: usize, on_progress: &mut dyn FnMut(usize, usize)) -> Result<Perplexity> {
    let mut tokens = Vec::new();
    if let Some(bos) = engine.tokenizer().bos.filter(|_| engine.tokenizer().add_bos) {
        tokens.push(bos);
    }
    tokens.extend(engine.tokenizer().encode(text, false));
    perplexity_of_tokens(engine, &tokens, window, stride, on_progress)
}

/// `log softmax(row)[i]`, computed in f64.
fn log_softmax_at(row: &[f32], i: usize) -> f64 {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let sum: f64 = row.iter().map(|&x| (x as f64 - max).exp()).sum();
    row[i] as f64 - max - sum.ln()
}
