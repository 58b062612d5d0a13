//! Speculative decoding by prompt lookup: guess the next tokens from the text so far, check
//! them all in one forward pass, keep the ones the model would have chosen.
//!
//! A rewrite, tighten or proofread copies most of its input, and a continuation repeats its
//! names: the tokens that followed the last few tokens the previous time they occurred are
//! a good guess for what follows now. [`lookup`] finds them (the longest recent n-gram match,
//! as prompt-lookup decoding does); the engine feeds the last sampled token and the guesses
//! together, with every row computed as decoding would compute it alone, and samples each
//! row in turn. A guess is kept while it equals the token sampled at its position; at the
//! first difference the sampled token stands and the rest are dropped (their cache
//! positions taken back).
//!
//! **Exactness.** Every kept token was sampled, by the candidate's own sampler, from logits
//! bit-identical to plain decoding's (the model computes drafted rows with the decoding
//! arithmetic, and a row's products do not depend on its company). So a guess changes only
//! how many forward passes the text takes, never the text: greedy and sampled output, with
//! the same seed, are token-for-token what plain decoding gives. A guess is a point proposal,
//! and accepting it exactly when the target's own sample matches it is the standard
//! rejection rule for such a proposal.
//!
//! **Paying for itself.** [`DraftLength`] adapts how many tokens are guessed to how many were
//! kept, and stops guessing for a while when fewer are kept than the checking costs.

use serde::{Deserialize, Serialize};

/// Whether a request guesses tokens ahead (`--speculative`, the APIs' `speculative`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Speculation {
    /// One forward pass per token.
    #[default]
    Off,
    /// Guesses from the text so far ([`lookup`]). `auto` picks it: it needs no second model,
    /// and it turns itself off where it does not pay.
    #[serde(alias = "auto")]
    Lookup,
}

impl std::str::FromStr for Speculation {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            // The names serde takes (the writing API), so every surface takes the same ones.
            "off" => Ok(Self::Off),
            "auto" | "lookup" => Ok(Self::Lookup),
            other => Err(format!("unknown speculative decoding mode {other:?}: use auto, lookup or off")),
        }
    }
}

/// Longest and shortest n-grams matched against the history.
const MAX_NGRAM: usize = 4;
const MIN_NGRAM: usize = 2;

/// Up to `max` tokens that followed the latest earlier occurrence of the longest suffix of
/// `history` (of `MAX_NGRAM` down to `MIN_NGRAM` tokens) that occurred before; empty when no
/// suffix did. The match must leave at least one token after it.
pub fn lookup(history: &[u32], max: usize) -> Vec<u32> {
    if max == 0 {
        return Vec::new();
    }
    let len = history.len();
    for n in (MIN_NGRAM..=MAX_NGRAM.min(len.saturating_sub(1))).rev() {
        let suffix = &history[len - n..];
        // Latest first: the nearer occurrence is the likelier continuation (the line being
        // copied, not a line like it pages back).
        if let Some(start) = (0..len - n).rev().find(|&i| &history[i..i + n] == suffix) {
            let from = start + n;
            return history[from..(from + max).min(len)].to_vec();
        }
    }
    Vec::new()
}

/// How many tokens a candidate guesses next, adapted to how many it has had kept.
#[derive(Clone, Debug)]
pub struct DraftLength {
    len: usize,
    /// Guessed and kept tokens over the recent window (decayed, see [`DraftLength::record`]).
    drafted: f32,
    accepted: f32,
    /// Steps left with guessing paused, and how long the next pause lasts.
    paused: usize,
    pause: usize,
    /// The first guess after a pause: keeping none of it pauses again, for twice as long.
    probation: bool,
    /// Every token guessed, and every one kept, for the timings.
    pub drafted_total: usize,
    pub accepted_total: usize,
}

/// Most tokens guessed at once: checking more rows costs more than the odds of keeping them.
pub const MAX_DRAFT: usize = 8;
const START_DRAFT: usize = 4;
/// Kept tokens per guessed token below which guessing costs more than it saves: each guessed
/// row adds about a sixth of a decoding step (the weights are read once for all rows, the
/// arithmetic grows with them; measured on the 1.5B at 2 threads, a pass over 9 rows took
/// 2.3x one over a single row), rounded up.
const BREAK_EVEN: f32 = 0.2;
/// Steps without guessing after the rate falls below break-even, before trying again; each
/// failed retry doubles it, up to `MAX_PAUSE_STEPS` (a continuation that never repeats itself
/// then pays for two guessed rows every few hundred tokens).
const PAUSE_STEPS: usize = 16;
const MAX_PAUSE_STEPS: usize = 512;
/// Guessed tokens seen before the rate is trusted.
const WARM_UP: f32 = 16.0;

impl Default for DraftLength {
    fn default() -> Self {
        Self { len: START_DRAFT, drafted: 0.0, accepted: 0.0, paused: 0, pause: PAUSE_STEPS, probation: false, drafted_total: 0, accepted_total: 0 }
    }
}

impl DraftLength {
    /// Tokens to guess this step (0 while paused); counts the step.
    pub fn take(&mut self) -> usize {
        if self.paused > 0 {
            self.paused -= 1;
            return 0;
        }
        self.len
    }

    /// `accepted` of `drafted` guessed tokens were kept. A fully kept guess grows the next
    /// one; a partly kept one sets it just past what was kept; a rate below break-even over
    /// the recent window pauses guessing, and so does a retry after a pause that keeps nothing.
    pub fn record(&mut self, drafted: usize, accepted: usize) {
        if drafted == 0 {
            return;
        }
        self.drafted_total += drafted;
        self.accepted_total += accepted;
        if std::mem::take(&mut self.probation) {
            if accepted == 0 {
                self.pause = (self.pause * 2).min(MAX_PAUSE_STEPS);
                self.paused = self.pause;
                self.probation = true;
                return;
            }
            self.pause = PAUSE_STEPS;
        }
        // A window of about 64 guessed tokens.
        let keep = 0.985f32.powi(drafted as i32);
        self.drafted = self.drafted * keep + drafted as f32;
        self.accepted = self.accepted * keep + accepted as f32;
        self.len = if accepted == drafted { (self.len + 2).min(MAX_DRAFT) } else { (accepted + 1).clamp(2, MAX_DRAFT) };
        if self.drafted >= WARM_UP && self.accepted < BREAK_EVEN * self.drafted {
            self.paused = self.pause;
            self.probation = true;
            // Start over small, and give the next try a fair hearing.
            self.len = 2;
            self.drafted = 0.0;
            self.accepted = 0.0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_latest_match_proposes_what_followed_it() {
        // "a b c d" ... "x b c" → after "b c" came "d e".
        let h = [1, 2, 3, 4, 5, 9, 2, 3];
        assert_eq!(lookup(&h, 2), vec![4, 5]);
        assert_eq!(lookup(&h, 10), vec![4, 5, 9, 2, 3]);
        // The latest occurrence wins over an earlier one.
        let h = [2, 3, 7, 2, 3, 8, 1, 2, 3];
        assert_eq!(lookup(&h, 1), vec![8]);
        // A longer match wins over a later shorter one.
        let h = [1, 2, 3, 6, 9, 2, 3, 7, 1, 2, 3];
        assert_eq!(lookup(&h, 1), vec![6]);
        // Nothing repeats, or nothing to guess.
        assert!(lookup(&[1, 2, 3, 4], 4).is_empty());
        assert!(lookup(&[1, 2, 1, 2], 0).is_empty());
        assert!(lookup(&[], 4).is_empty());
        assert!(lookup(&[5], 4).is_empty());
        // One token repeated: the match right behind proposes it again.
        assert_eq!(lookup(&[7, 7, 7], 3), vec![7]);
    }

    #[test]
    fn the_draft_grows_while_kept_and_pauses_below_break_even() {
        let mut d = DraftLength::default();
        assert_eq!(d.take(), START_DRAFT);
        d.record(4, 4);
        assert_eq!(d.take(), 6);
        d.record(6, 6);
        d.record(8, 8);
        assert_eq!(d.take(), MAX_DRAFT);
        d.record(8, 3);
        assert_eq!(d.take(), 4);
        // Nothing kept for a while: guessing pauses, then tries again small.
        let mut d = DraftLength::default();
        for _ in 0..8 {
            let n = d.take();
            if n > 0 {
                d.record(n, 0);
            }
        }
        let paused = (0..PAUSE_STEPS + 1).map(|_| d.take()).take_while(|&n| n == 0).count();
        assert!(paused > 0, "guessing never paused");
        assert_eq!(d.take(), 2);
        // A retry that keeps nothing pauses again at once, for twice as long, and again...
        let mut pauses = Vec::new();
        for _ in 0..8 {
            d.record(2, 0);
            pauses.push(std::iter::from_fn(|| Some(d.take())).take_while(|&n| n == 0).count());
        }
        assert_eq!(pauses[..3], [2 * PAUSE_STEPS, 4 * PAUSE_STEPS, 8 * PAUSE_STEPS]);
        assert_eq!(*pauses.last().unwrap(), MAX_PAUSE_STEPS);
        // ... until one keeps something: the pause is short again, guessing goes on.
        d.record(2, 2);
        assert_eq!(d.take(), 4);
        assert_eq!(d.pause, PAUSE_STEPS);
        // Recording nothing changes nothing.
        let mut d = DraftLength::default();
        d.record(0, 0);
        assert_eq!(d.take(), START_DRAFT);
    }
}
