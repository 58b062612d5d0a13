//! A writer's voice profile, and how far a text sits from it.
//!
//! Two measures. The writer's pages are cut into chunks of about a candidate's length, and
//! each feature's mean and spread over those chunks are kept; a text's feature lies some
//! number of spreads from the writer's mean (a z-score, as in Burrows's Delta, but against the
//! writer's own variation instead of a reference corpus's). And a character model of the
//! writer's text ([`crate::model`]) says how surprising the text is to their habits.
//!
//! The distance that ranks is the surprise (over the writer's own level on unseen pages of
//! theirs) plus a tenth of the function words' mean squared z-score. On 120-word passages of
//! two authors the function words alone rank right 80% of the time and the surprise 91%,
//! together 94%, and 92% with the model pruned as here (tests/two_authors.rs, BENCHMARKS.md);
//! sentence length, punctuation and the rest are at
//! chance on passages that short, so they explain a ranking ([`Fit::groups`]) but do not
//! make it.

use crate::error::{Result, VoiceError};
use crate::features::{self, Feature, Group, Measure};
use crate::model::CharModel;
use crate::text::{self, Script};
use serde::{Deserialize, Serialize};

/// Units (words, or CJK characters) per chunk of the writer's text: about a suggestion's length.
pub fn chunk_units(script: Script) -> usize {
    match script {
        Script::Latin => 120,
        Script::Cjk => 200,
    }
}

/// Chunks needed before a spread means anything.
pub const MIN_CHUNKS: usize = 4;

/// A z-score beyond this counts as this: one odd feature should not decide a ranking alone.
const Z_CAP: f64 = 4.0;

/// Nats of surprise per character worth one squared spread of the function words.
pub const FUNCTION_WORD_WEIGHT: f64 = 0.1;

/// One feature's mean and spread over the writer's chunks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Stat {
    #[serde(flatten)]
    pub feature: Feature,
    pub mean: f64,
    pub spread: f64,
}

/// The writer's habits over all their text, for describing them in words.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Habits {
    pub sentence_mean: f64,
    /// The 10th and 90th percentiles of sentence length.
    pub sentence_range: (usize, usize),
    /// Sentences per paragraph.
    pub paragraph_mean: f64,
    /// Share of letters inside quotation marks.
    pub quoted: f64,
    /// Distinct words in every 50 (English) or characters in every 100 (Chinese), as a share.
    pub variety: f64,
    /// Each counted mark, per 1,000 units.
    pub punctuation: Vec<(String, f64)>,
    /// The most frequent function words, per 1,000 units.
    pub function_words: Vec<(String, f64)>,
    /// Chinese: sentence-final particles, per 100 sentences.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub particles: Vec<(String, f64)>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    pub script: Script,
    /// How much of the writer's own text it was built from, in `script`'s unit.
    pub units: usize,
    /// Units per chunk, and how many chunks the spreads were taken over.
    pub chunk: usize,
    pub chunks: usize,
    /// The writer's own most frequent words beyond the function words (English), or
    /// character pairs (Chinese), followed as features.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pairs: Vec<String>,
    pub features: Vec<Stat>,
    pub habits: Habits,
    pub model: CharModel,
    /// The model's surprise at the writer's own unseen text (a model of half the chunks read
    /// on the other half), nats per character: the level a candidate is measured from.
    pub own_surprise: f64,
}

/// How one group of habits in a text compares with the profile.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupFit {
    pub group: Group,
    /// Mean spreads from the writer's mean (0 is the writer's average; about 1 is typical
    /// of the writer's own chunks).
    pub distance: f64,
}

/// How a text compares with the profile.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Fit {
    /// What ranks: `surprise` plus the function words' weighted share (lower is closer).
    pub distance: f64,
    /// Nats per character beyond the writer's own level (0: as surprising as their own
    /// unseen pages).
    pub surprise: f64,
    /// Each group's mean spreads from the writer's mean.
    pub groups: Vec<GroupFit>,
    /// The text's mean sentence length and share of quoted letters, for the reason given.
    pub sentence_mean: f64,
    pub quoted: f64,
    pub units: usize,
}

impl Profile {
    /// A profile of the writer's own `pieces` of text (runs the ledger marks as theirs).
    pub fn build(pieces: &[&str]) -> Result<Profile> {
        let whole = pieces.iter().map(|p| p.trim()).filter(|p| !p.is_empty()).collect::<Vec<_>>().join("\n\n");
        let script = Script::of(&whole);
        let chunk = chunk_units(script);
        let units = text::units(&whole, script);
        let needed = chunk * MIN_CHUNKS;
        if units < needed {
            return Err(VoiceError::NotEnoughText { have: units, needed, unit: script.unit() });
        }
        let pairs = match script {
            Script::Latin => top_words(&whole),
            Script::Cjk => top_pairs(&whole),
        };
        let texts = chunks(&whole, script, chunk);
        let chunks: Vec<Measure> = texts.iter().map(|c| features::measure(c, script, &pairs)).collect();
        let catalog = features::catalog(script, &pairs);
        let habits = habits(&features::measure(&whole, script, &pairs), script, &catalog);
        let features = catalog.into_iter().enumerate().map(|(i, feature)| stat(feature, &chunks.iter().map(|m| m.values[i]).collect::<Vec<_>>())).collect();
        let own_surprise = own_surprise(&texts);
        Ok(Profile { script, units, chunk, chunks: chunks.len(), pairs, features, habits, model: CharModel::build(&whole), own_surprise })
    }

    /// How far `text` sits from the profile.
    pub fn fit(&self, text: &str) -> Fit {
        let m = features::measure(text, self.script, &self.pairs);
        // (group, weighted sum of |z|, sum of weights)
        let deviations = self.deviations(&m);
        let mut sums: Vec<(Group, f64, f64)> = Vec::new();
        for d in &deviations {
            match sums.iter_mut().find(|(g, ..)| *g == d.group) {
                Some((_, s, n)) => {
                    *s += d.weight * d.z;
                    *n += d.weight;
                }
                None => sums.push((d.group, d.weight * d.z, d.weight)),
            }
        }
        let groups: Vec<GroupFit> = sums.into_iter().map(|(group, s, n)| GroupFit { group, distance: s / n }).collect();
        let surprise = self.model.cross_entropy(text) - self.own_surprise;
        let distance = surprise + FUNCTION_WORD_WEIGHT * function_word_share(&deviations);
        let quoted = m.values.last().map_or(0.0, |v| v.value);
        Fit { distance, surprise, groups, sentence_mean: m.sentence_mean(), quoted, units: m.units }
    }

    /// Each measured feature's distance from the writer's mean, in spreads (capped), and its
    /// weight: a rate weighs by how common it is in either text ("and" at 60 a thousand words
    /// says more than "upon" at none in both).
    pub fn deviations(&self, m: &Measure) -> Vec<Deviation> {
        self.features
            .iter()
            .zip(&m.values)
            // Paragraph length says nothing of a text in one paragraph.
            .filter(|(stat, v)| v.over > usize::from(stat.feature.group == Group::ParagraphLength))
            .map(|(stat, v)| Deviation {
                group: stat.feature.group,
                z: ((v.value - stat.mean).abs() / stat.spread).min(Z_CAP),
                weight: if stat.feature.rate { stat.mean + v.value + 1e-6 } else { 1.0 },
            })
            .collect()
    }
}

/// The function words' weighted mean squared z-score (squared: one word far off says more
/// than several a little off).
fn function_word_share(deviations: &[Deviation]) -> f64 {
    let (mut s, mut w) = (0.0, 0.0);
    for d in deviations.iter().filter(|d| d.group == Group::FunctionWords) {
        s += d.weight * d.z * d.z;
        w += d.weight;
    }
    if w == 0.0 { 0.0 } else { s / w }
}

/// The surprise of a model of the even chunks at the odd ones.
fn own_surprise(chunks: &[String]) -> f64 {
    let half = |parity: usize| chunks.iter().enumerate().filter(|(i, _)| i % 2 == parity).map(|(_, c)| c.as_str()).collect::<Vec<_>>();
    let model = CharModel::build(&half(0).join("\n\n"));
    features::mean(&half(1).iter().map(|c| model.cross_entropy(c)).collect::<Vec<_>>())
}

/// One feature of a text against the profile.
#[derive(Clone, Copy, Debug)]
pub struct Deviation {
    pub group: Group,
    pub z: f64,
    pub weight: f64,
}

/// The writer's text in consecutive chunks of about `size` units, cut at sentence ends; a last
/// chunk under half the size is dropped.
fn chunks(whole: &str, script: Script, size: usize) -> Vec<String> {
    let joiner = if script == Script::Cjk { "" } else { " " };
    let (mut out, mut cur, mut n) = (Vec::new(), String::new(), 0);
    for paragraph in text::paragraphs(whole) {
        if !cur.is_empty() {
            cur.push_str("\n\n");
        }
        let mut first = true;
        for s in text::sentences(paragraph) {
            if !first {
                cur.push_str(joiner);
            }
            first = false;
            cur.push_str(s);
            n += text::units(s, script);
            if n >= size {
                out.push(std::mem::take(&mut cur));
                n = 0;
                first = true;
            }
        }
    }
    if n * 2 >= size {
        out.push(cur);
    }
    out
}

/// A feature's mean and spread over the chunks. The spread has a floor: for a rate, the
/// counting noise of a chunk (a word the writer never used in these chunks may still turn up
/// once); for a measure, a tenth of its mean.
fn stat(feature: Feature, values: &[features::Value]) -> Stat {
    let xs: Vec<f64> = values.iter().map(|v| v.value).collect();
    let (mean, spread) = (features::mean(&xs), features::spread(&xs));
    let over = features::mean(&values.iter().map(|v| v.over as f64).collect::<Vec<_>>()).max(1.0);
    let floor = if feature.rate { ((mean + 0.5 / over) / over).sqrt() } else { (0.1 * mean.abs()).max(0.02) };
    Stat { feature, mean, spread: spread.max(floor) }
}

/// An English writer's most frequent words beyond the function words (at least twice each).
fn top_words(whole: &str) -> Vec<String> {
    let mut counts: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for w in text::words(whole) {
        if !features::FUNCTION_WORDS.contains(&w.as_str()) {
            *counts.entry(w).or_default() += 1;
        }
    }
    let mut words: Vec<(String, usize)> = counts.into_iter().filter(|&(_, n)| n >= 2).collect();
    words.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    words.into_iter().take(features::PAIRS).map(|(w, _)| w).collect()
}

/// A Chinese writer's most frequent character pairs (at least twice each).
fn top_pairs(whole: &str) -> Vec<String> {
    let mut pairs: Vec<(String, usize)> = features::pair_counts(whole).into_iter().filter(|&(_, n)| n >= 2).collect();
    pairs.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    pairs.into_iter().take(features::PAIRS).map(|(p, _)| p).collect()
}

fn habits(m: &Measure, script: Script, catalog: &[Feature]) -> Habits {
    let mut lens = m.sentence_lengths.clone();
    lens.sort_unstable();
    let pct = |p: usize| lens.get((lens.len().saturating_sub(1)) * p / 100).copied().unwrap_or(0);
    let of_group = |g: Group, scale: f64| -> Vec<(String, f64)> { catalog.iter().zip(&m.values).filter(|(f, _)| f.group == g).map(|(f, v)| (f.name.clone(), v.value * scale)).collect() };
    let mut function_words = of_group(Group::FunctionWords, 1000.0);
    function_words.sort_by(|a, b| b.1.total_cmp(&a.1));
    function_words.truncate(8);
    let value = |name: &str| catalog.iter().position(|f| f.name == name).map_or(0.0, |i| m.values[i].value);
    Habits {
        sentence_mean: m.sentence_mean(),
        sentence_range: (pct(10), pct(90)),
        paragraph_mean: value("sentences"),
        quoted: value("quoted"),
        variety: value("variety"),
        punctuation: of_group(Group::Punctuation, 1000.0),
        function_words,
        particles: if script == Script::Cjk { of_group(Group::Particles, 100.0) } else { Vec::new() },
    }
}
