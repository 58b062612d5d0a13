//! Token samplers: an ordered, composable chain over the logits of one step.
//!
//! The default order follows llama.cpp (penalties, DRY, top-k, typical-p, top-p, min-p, XTC,
//! temperature, then a draw); `SamplingConfig::order` changes it. Greedy decoding is
//! temperature 0. Every random choice comes from the sampler's own seeded RNG, so the same
//! seed gives the same tokens.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// One stage of the chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Penalties,
    Dry,
    TopK,
    TypicalP,
    TopP,
    MinP,
    Xtc,
    Temperature,
}

/// "Don't Repeat Yourself": penalises a token that would extend a sequence already seen,
/// growing exponentially with the length of the repeat.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DryConfig {
    /// 0 turns DRY off.
    pub multiplier: f32,
    pub base: f32,
    /// Repeats up to this length are free.
    pub allowed_length: usize,
    /// How many recent tokens to search (0 = all).
    pub last_n: usize,
    /// Text that ends a repeat (a token containing one of these breaks the sequence).
    pub sequence_breakers: Vec<String>,
}

impl Default for DryConfig {
    fn default() -> Self {
        Self { multiplier: 0.8, base: 1.75, allowed_length: 2, last_n: 0, sequence_breakers: ["\n", ":", "\"", "*"].map(String::from).to_vec() }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SamplingConfig {
    /// 0 means greedy (always the most likely token).
    pub temperature: f32,
    /// 0 turns top-k off.
    pub top_k: usize,
    pub top_p: f32,
    pub min_p: f32,
    pub typical_p: f32,
    /// Divides positive logits (multiplies negative ones) of recent tokens; 1 is off.
    pub repeat_penalty: f32,
    pub presence_penalty: f32,
    pub frequency_penalty: f32,
    /// Recent tokens the three penalties look at.
    pub penalty_last_n: usize,
    pub dry: DryConfig,
    /// Chance per step that XTC removes the top choices ("exclude top choices"); 0 is off.
    pub xtc_probability: f32,
    pub xtc_threshold: f32,
    /// Added to a token's logit before anything else; `f32::NEG_INFINITY` bans it.
    pub logit_bias: Vec<(u32, f32)>,
    pub order: Vec<Stage>,
}

impl Default for SamplingConfig {
    fn default() -> Self {
        Self {
            temperature: 0.8,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            typical_p: 1.0,
            repeat_penalty: 1.0,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
            penalty_last_n: 64,
            dry: DryConfig::default(),
            xtc_probability: 0.0,
            xtc_threshold: 0.1,
            logit_bias: Vec::new(),
            order: vec![Stage::Penalties, Stage::Dry, Stage::TopK, Stage::TypicalP, Stage::TopP, Stage::MinP, Stage::Xtc, Stage::Temperature],
        }
    }
}

impl SamplingConfig {
    /// Plain greedy decoding: no penalties, no randomness (for comparisons with other engines).
    pub fn greedy() -> Self {
        Self { temperature: 0.0, dry: DryConfig { multiplier: 0.0, ..DryConfig::default() }, ..Self::default() }
    }

    pub fn validate(&self) -> Result<(), String> {
        let in01 = |v: f32, name: &str| {
            if (0.0..=1.0).contains(&v) { Ok(()) } else { Err(format!("{name} must be between 0 and 1, got {v}")) }
        };
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            return Err(format!("temperature must be 0 or more, got {}", self.temperature));
        }
        in01(self.top_p, "top_p")?;
        in01(self.min_p, "min_p")?;
        in01(self.typical_p, "typical_p")?;
        in01(self.xtc_probability, "xtc_probability")?;
        in01(self.xtc_threshold, "xtc_threshold")?;
        // Written so that NaN fails too.
        #[allow(clippy::neg_cmp_op_on_partial_ord)]
        if !(self.repeat_penalty > 0.0) {
            return Err(format!("repeat_penalty must be above 0, got {}", self.repeat_penalty));
        }
        if self.dry.multiplier < 0.0 || self.dry.base < 1.0 {
            return Err("dry multiplier must be 0 or more and dry base at least 1".into());
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug)]
struct Cand {
    id: u32,
    logit: f32,
}

/// The sampler of one candidate stream.
/// The distribution a token was drawn from, as log-probabilities after the samplers.
#[derive(Clone, Debug, PartialEq)]
pub struct Drawn {
    /// The drawn token's.
    pub logprob: f32,
    /// The likeliest tokens left, most likely first; fewer than asked when truncation kept
    /// fewer.
    pub top: Vec<(u32, f32)>,
}

impl Drawn {
    fn of(cands: &[Cand], probs: &[f32], token: u32, k: usize) -> Drawn {
        let mut kept: Vec<(u32, f32)> = cands.iter().zip(probs).filter(|(_, p)| **p > 0.0).map(|(c, p)| (c.id, *p)).collect();
        let logprob = kept.iter().find(|(id, _)| *id == token).map_or(f32::NEG_INFINITY, |(_, p)| p.ln());
        kept.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        kept.truncate(k);
        Drawn { logprob, top: kept.into_iter().map(|(id, p)| (id, p.ln())).collect() }
    }
}

pub struct Sampler {
    config: SamplingConfig,
    rng: StdRng,
    /// Sorted ids of tokens that break DRY sequences.
    dry_breakers: Vec<u32>,
}

impl Sampler {
    /// `dry_breakers`: token ids whose text contains a sequence breaker (see `Engine`).
    pub fn new(config: SamplingConfig, seed: u64, mut dry_breakers: Vec<u32>) -> Self {
        dry_breakers.sort_unstable();
        Self { config, rng: StdRng::seed_from_u64(seed), dry_breakers }
    }

    pub fn config(&self) -> &SamplingConfig {
        &self.config
    }

    /// Picks the next token from `logits`, given the tokens so far (prompt and generated).
    pub fn sample(&mut self, logits: &[f32], history: &[u32]) -> u32 {
        self.sample_reporting(logits, history, None).0
    }

    /// [`Sampler::sample`], also reporting, when `report` asks for `k`, the distribution the
    /// token was drawn from: after every stage of the chain, so a token top-p cut has none.
    /// Reporting draws nothing from the RNG: the same seed gives the same tokens either way.
    pub fn sample_reporting(&mut self, logits: &[f32], history: &[u32], report: Option<usize>) -> (u32, Option<Drawn>) {
        let mut cands: Vec<Cand> = logits.iter().enumerate().map(|(i, &l)| Cand { id: i as u32, logit: l }).collect();
        for &(id, bias) in &self.config.logit_bias {
            if let Some(c) = cands.get_mut(id as usize) {
                c.logit += bias;
            }
        }
        let greedy = self.config.temperature <= 0.0;
        let order = self.config.order.clone();
        for stage in order {
            match stage {
                Stage::Penalties => self.penalties(&mut cands, history),
                Stage::Dry => self.dry(&mut cands, history),
                // Truncation stages do not change the argmax; skip them when greedy.
                _ if greedy => {}
                Stage::TopK => top_k(&mut cands, self.config.top_k),
                Stage::TypicalP => typical_p(&mut cands, self.config.typical_p),
                Stage::TopP => top_p(&mut cands, self.config.top_p),
                Stage::MinP => min_p(&mut cands, self.config.min_p),
                Stage::Xtc => self.xtc(&mut cands),
                Stage::Temperature => cands.iter_mut().for_each(|c| c.logit /= self.config.temperature),
            }
        }
        if greedy {
            // All the mass is on the argmax.
            let t = argmax(&cands);
            return (t, report.map(|_| Drawn { logprob: 0.0, top: vec![(t, 0.0)] }));
        }
        let probs = softmax(&cands);
        let t = self.draw(&cands, &probs);
        (t, report.map(|k| Drawn::of(&cands, &probs, t, k)))
    }

    fn draw(&mut self, cands: &[Cand], probs: &[f32]) -> u32 {
        let r: f32 = self.rng.random();
        let mut acc = 0.0;
        for (c, p) in cands.iter().zip(probs) {
            acc += p;
            if r < acc {
                return c.id;
            }
        }
        // Rounding left r above the total: the last candidate with any mass.
        cands.iter().zip(probs).rev().find(|(_, p)| **p > 0.0).map_or(argmax(cands), |(c, _)| c.id)
    }

    fn penalties(&self, cands: &mut [Cand], history: &[u32]) {
        let c = &self.config;
        if c.repeat_penalty == 1.0 && c.presence_penalty == 0.0 && c.frequency_penalty == 0.0 {
            return;
        }
        let recent = &history[history.len().saturating_sub(c.penalty_last_n)..];
        let mut counts: std::collections::HashMap<u32, u32> = std::collections::HashMap::new();
        for &t in recent {
            *counts.entry(t).or_default() += 1;
        }
        for (&t, &n) in &counts {
            // Candidates are still indexed by id here: penalties run before any truncation
            // in the default order; otherwise search.
            let cand = match cands.get_mut(t as usize) {
                Some(x) if x.id == t => Some(x),
                _ => cands.iter_mut().find(|x| x.id == t),
            };
            if let Some(x) = cand {
                if x.logit > 0.0 {
                    x.logit /= c.repeat_penalty
                } else {
                    x.logit *= c.repeat_penalty
                }
                x.logit -= n as f32 * c.frequency_penalty + c.presence_penalty;
            }
        }
    }

    /// DRY as in text-generation-webui / llama.cpp: for each earlier occurrence of the last
    /// token, measure how far the match extends backwards; the token that followed it would
    /// extend the repeat and is penalised by `multiplier * base^(len - allowed)`.
    fn dry(&self, cands: &mut [Cand], history: &[u32]) {
        let d = &self.config.dry;
        if d.multiplier == 0.0 || history.len() < 2 {
            return;
        }
        let h = if d.last_n == 0 { history } else { &history[history.len().saturating_sub(d.last_n)..] };
        let is_breaker = |t: u32| self.dry_breakers.binary_search(&t).is_ok();
        let n = h.len();
        let last = h[n - 1];
        if is_breaker(last) {
            return;
        }
        let mut worst: std::collections::HashMap<u32, usize> = std::collections::HashMap::new();
        for i in 0..n - 1 {
            if h[i] != last {
                continue;
            }
            let next = h[i + 1];
            if is_breaker(next) {
                continue;
            }
            let mut len = 1;
            while len <= i && h[i - len] == h[n - 1 - len] && !is_breaker(h[i - len]) {
                len += 1;
            }
            let e = worst.entry(next).or_default();
            *e = (*e).max(len);
        }
        for (t, len) in worst {
            if len >= d.allowed_length {
                let penalty = d.multiplier * d.base.powi((len - d.allowed_length) as i32);
                if let Some(x) = cands.iter_mut().find(|x| x.id == t) {
                    x.logit -= penalty;
                }
            }
        }
    }

    /// XTC: with some probability, drop every token above the threshold except the least likely
    /// of them, pushing the text away from the most predictable choices.
    fn xtc(&mut self, cands: &mut Vec<Cand>) {
        let c = &self.config;
        if c.xtc_probability <= 0.0 || self.rng.random::<f32>() >= c.xtc_probability {
            return;
        }
        sort_desc(cands);
        let probs = softmax(cands);
        let above = probs.iter().take_while(|p| **p >= c.xtc_threshold).count();
        if above >= 2 {
            cands.drain(..above - 1);
        }
    }
}

fn argmax(cands: &[Cand]) -> u32 {
    cands
        .iter()
        .fold(None::<Cand>, |best, c| match best {
            Some(b) if b.logit >= c.logit => Some(b),
            _ => Some(*c),
        })
        .map_or(0, |c| c.id)
}

fn sort_desc(cands: &mut [Cand]) {
    cands.sort_by(|a, b| b.logit.total_cmp(&a.logit).then(a.id.cmp(&b.id)));
}

fn softmax(cands: &[Cand]) -> Vec<f32> {
    let max = cands.iter().map(|c| c.logit).fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = cands.iter().map(|c| if max.is_finite() { (c.logit - max).exp() } else { 1.0 }).collect();
    let sum: f32 = exps.iter().sum();
    exps.into_iter().map(|e| e / sum).collect()
}

fn top_k(cands: &mut Vec<Cand>, k: usize) {
    if k == 0 || k >= cands.len() {
        return;
    }
    cands.select_nth_unstable_by(k - 1, |a, b| b.logit.total_cmp(&a.logit).then(a.id.cmp(&b.id)));
    cands.truncate(k);
}

/// Keeps the smallest set of most likely tokens whose probability reaches `p`.
fn top_p(cands: &mut Vec<Cand>, p: f32) {
    if p >= 1.0 {
        return;
    }
    sort_desc(cands);
    let probs = softmax(cands);
    let mut acc = 0.0;
    let mut keep = cands.len();
    for (i, q) in probs.iter().enumerate() {
        acc += q;
        if acc >= p {
            keep = i + 1;
            break;
        }
    }
    cands.truncate(keep.max(1));
}

/// Keeps tokens at least `p` times as likely as the most likely one.
fn min_p(cands: &mut Vec<Cand>, p: f32) {
    if p <= 0.0 || cands.is_empty() {
        return;
    }
    let max = cands.iter().map(|c| c.logit).fold(f32::NEG_INFINITY, f32::max);
    let floor = max + p.ln();
    cands.retain(|c| c.logit >= floor);
}

/// Locally typical sampling: keep tokens whose surprise is closest to the entropy.
fn typical_p(cands: &mut Vec<Cand>, p: f32) {
    if p >= 1.0 || cands.len() < 2 {
        return;
    }
    let probs = softmax(cands);
    let entropy: f32 = probs.iter().filter(|q| **q > 0.0).map(|q| -q * q.ln()).sum();
    let mut idx: Vec<usize> = (0..cands.len()).collect();
    let dev = |i: usize| if probs[i] > 0.0 { (-probs[i].ln() - entropy).abs() } else { f32::INFINITY };
    idx.sort_by(|&a, &b| dev(a).total_cmp(&dev(b)));
    let mut acc = 0.0;
    let mut keep = idx.len();
    for (n, &i) in idx.iter().enumerate() {
        acc += probs[i];
        if acc >= p {
            keep = n + 1;
            break;
        }
    }
    let kept: Vec<Cand> = idx[..keep.max(1)].iter().map(|&i| cands[i]).collect();
    *cands = kept;
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::{Strategy, any, prop, prop_assert, prop_assert_eq, prop_assert_ne, proptest};

    fn only(stage: Stage, f: impl FnOnce(&mut SamplingConfig)) -> SamplingConfig {
        let mut c = SamplingConfig { order: vec![stage], temperature: 1.0, ..SamplingConfig::greedy() };
        f(&mut c);
        c
    }

    fn logits_strategy() -> impl Strategy<Value = Vec<f32>> {
        prop::collection::vec(-10.0f32..10.0, 2..64)
    }

    fn arg_max(l: &[f32]) -> u32 {
        let mut best = 0;
        for i in 1..l.len() {
            if l[i] > l[best] {
                best = i;
            }
        }
        best as u32
    }

    proptest! {
        #[test]
        fn greedy_is_argmax(logits in logits_strategy(), seed in any::<u64>()) {
            let mut s = Sampler::new(SamplingConfig::greedy(), seed, vec![]);
            prop_assert_eq!(s.sample(&logits, &[]), arg_max(&logits));
        }

        #[test]
        fn top_k_one_is_argmax_at_any_temperature(logits in logits_strategy(), seed in any::<u64>(), t in 0.1f32..5.0) {
            let mut c = SamplingConfig::greedy();
            c.temperature = t;
            c.top_k = 1;
            let mut s = Sampler::new(c, seed, vec![]);
            prop_assert_eq!(s.sample(&logits, &[]), arg_max(&logits));
        }

        #[test]
        fn top_k_sample_is_among_the_k_best(logits in logits_strategy(), seed in any::<u64>(), k in 1usize..8) {
            let mut s = Sampler::new(only(Stage::TopK, |c| c.top_k = k), seed, vec![]);
            let t = s.sample(&logits, &[]) as usize;
            let better = logits.iter().filter(|&&l| l > logits[t]).count();
            prop_assert!(better < k);
        }

        #[test]
        fn reporting_the_draw_changes_no_token_and_shows_only_what_survived(logits in logits_strategy(), seed in any::<u64>(), k in 1usize..8) {
            let config = SamplingConfig { top_k: k, temperature: 0.7, ..SamplingConfig::default() };
            let (mut plain, mut told) = (Sampler::new(config.clone(), seed, vec![]), Sampler::new(config, seed, vec![]));
            for _ in 0..4 {
                let t = plain.sample(&logits, &[]);
                let (u, drawn) = told.sample_reporting(&logits, &[], Some(10));
                prop_assert_eq!(t, u);
                let drawn = drawn.unwrap();
                // Top-k left k tokens at most, and the drawn one is among them.
                prop_assert!(drawn.top.len() <= k);
                prop_assert!(drawn.top.iter().any(|&(id, lp)| id == u && (lp - drawn.logprob).abs() < 1e-5));
                let mass: f32 = drawn.top.iter().map(|(_, lp)| lp.exp()).sum();
                prop_assert!((mass - 1.0).abs() < 1e-3, "top-k's survivors hold all the mass: {}", mass);
                prop_assert!(drawn.top.windows(2).all(|w| w[0].1 >= w[1].1));
            }
        }

        #[test]
        fn min_p_sample_is_likely_enough(logits in logits_strategy(), seed in any::<u64>(), p in 0.01f32..1.0) {
            let mut s = Sampler::new(only(Stage::MinP, |c| c.min_p = p), seed, vec![]);
            let t = s.sample(&logits, &[]) as usize;
            let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            prop_assert!((logits[t] - max).exp() >= p * 0.999);
        }

        #[test]
        fn top_p_sample_is_in_the_nucleus(logits in logits_strategy(), seed in any::<u64>(), p in 0.05f32..1.0) {
            let mut s = Sampler::new(only(Stage::TopP, |c| c.top_p = p), seed, vec![]);
            let t = s.sample(&logits, &[]) as usize;
            // Mass of the tokens strictly more likely than the sample is below p.
            let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let z: f32 = logits.iter().map(|l| (l - max).exp()).sum();
            let above: f32 = logits.iter().filter(|&&l| l > logits[t]).map(|l| (l - max).exp() / z).sum();
            prop_assert!(above < p + 1e-4);
        }

        #[test]
        fn typical_p_keeps_at_least_one(logits in logits_strategy(), seed in any::<u64>(), p in 0.0f32..1.0) {
            let mut s = Sampler::new(only(Stage::TypicalP, |c| c.typical_p = p), seed, vec![]);
            let t = s.sample(&logits, &[]) as usize;
            prop_assert!(t < logits.len());
        }

        #[test]
        fn same_seed_same_tokens(logits in logits_strategy(), seed in any::<u64>()) {
            let c = SamplingConfig { temperature: 1.5, top_k: 0, top_p: 1.0, min_p: 0.0, ..SamplingConfig::default() };
            let mut a = Sampler::new(c.clone(), seed, vec![]);
            let mut b = Sampler::new(c, seed, vec![]);
            let ta: Vec<u32> = (0..8).map(|_| a.sample(&logits, &[])).collect();
            let tb: Vec<u32> = (0..8).map(|_| b.sample(&logits, &[])).collect();
            prop_assert_eq!(ta, tb);
        }

        #[test]
        fn banned_token_is_never_sampled(logits in logits_strategy(), seed in any::<u64>()) {
            let ban = arg_max(&logits);
            let c = SamplingConfig { temperature: 2.0, logit_bias: vec![(ban, f32::NEG_INFINITY)], ..SamplingConfig::default() };
            let mut s = Sampler::new(c, seed, vec![]);
            for _ in 0..16 {
                prop_assert_ne!(s.sample(&logits, &[]), ban);
            }
        }

        #[test]
        fn stages_compose_in_any_order(logits in logits_strategy(), seed in any::<u64>(), shuffle in any::<u64>()) {
            let mut c = SamplingConfig { temperature: 0.9, xtc_probability: 0.5, typical_p: 0.9, ..SamplingConfig::default() };
            let mut rng = StdRng::seed_from_u64(shuffle);
            for i in (1..c.order.len()).rev() {
                let j = rng.random_range(0..=i);
                c.order.swap(i, j);
            }
            let mut s = Sampler::new(c, seed, vec![]);
            let hist: Vec<u32> = (0..20).map(|i| (i % logits.len()) as u32).collect();
            prop_assert!((s.sample(&logits, &hist) as usize) < logits.len());
        }
    }

    #[test]
    fn repeat_penalty_moves_the_choice_off_a_repeated_token() {
        let logits = [2.0, 1.9, 0.0];
        let c = SamplingConfig { repeat_penalty: 1.5, ..SamplingConfig::greedy() };
        let mut s = Sampler::new(c, 0, vec![]);
        assert_eq!(s.sample(&logits, &[2]), 0);
        assert_eq!(s.sample(&logits, &[0, 2]), 1);
    }

    #[test]
    fn presence_and_frequency_penalties_scale_with_counts() {
        let logits = [3.0, 2.5, 0.0];
        let c = SamplingConfig { frequency_penalty: 0.3, ..SamplingConfig::greedy() };
        let mut s = Sampler::new(c.clone(), 0, vec![]);
        assert_eq!(s.sample(&logits, &[0]), 0, "one repeat costs 0.3, still ahead");
        assert_eq!(s.sample(&logits, &[0, 0]), 1, "two repeats cost 0.6");
        let c = SamplingConfig { presence_penalty: 0.6, ..SamplingConfig::greedy() };
        let mut s = Sampler::new(c, 0, vec![]);
        assert_eq!(s.sample(&logits, &[0]), 1);
    }

    #[test]
    fn dry_penalises_extending_a_repeat_but_not_a_broken_one() {
        // History "5 6 7 8 5 6 7": the model wants 8 next, which would repeat "5 6 7 8".
        let mut logits = vec![0.0; 10];
        logits[8] = 2.0;
        logits[9] = 1.0;
        let hist = [5, 6, 7, 8, 5, 6, 7];
        let c = SamplingConfig { dry: DryConfig { multiplier: 1.0, ..DryConfig::default() }, ..SamplingConfig::greedy() };
        let mut s = Sampler::new(c.clone(), 0, vec![]);
        assert_eq!(s.sample(&logits, &hist), 9, "repeat of length 3 costs 1.75 > the 1.0 lead");
        // When 6 is a sequence breaker the repeat is only "7", below allowed_length.
        let mut s = Sampler::new(c, 0, vec![6]);
        assert_eq!(s.sample(&logits, &hist), 8);
    }

    #[test]
    fn xtc_removes_the_top_choices_when_it_fires() {
        let logits = [3.0, 2.9, 2.8, -5.0];
        let c = SamplingConfig { xtc_probability: 1.0, xtc_threshold: 0.1, order: vec![Stage::Xtc], temperature: 1.0, ..SamplingConfig::greedy() };
        let mut s = Sampler::new(c, 1, vec![]);
        for _ in 0..20 {
            let t = s.sample(&logits, &[]);
            assert!(t == 2 || t == 3, "tokens 0 and 1 are excluded, got {t}");
        }
    }

    #[test]
    fn invalid_settings_are_named() {
        let c = SamplingConfig { top_p: 1.5, ..SamplingConfig::default() };
        assert!(c.validate().unwrap_err().contains("top_p"));
        assert!(SamplingConfig { temperature: -1.0, ..SamplingConfig::default() }.validate().is_err());
    }
}
