//! What is measured in a text: the stylometric features, each a number with the count of
//! observations it averages over, in a fixed order a profile and a candidate share.

use crate::text::{self, Script, is_cjk};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// The kinds of habit a feature belongs to; a fit is reported per group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Group {
    SentenceLength,
    ParagraphLength,
    FunctionWords,
    Punctuation,
    Dialogue,
    Vocabulary,
    /// Chinese: the particles that end sentences (吗, 呢, 吧…).
    Particles,
    /// Chinese: the writer's most frequent pairs of characters.
    CharacterPairs,
    /// English: the writer's most frequent words beyond the function words (names, and the
    /// words they lean on).
    FavouriteWords,
}

/// English function words: frequent, topic-free, and used at rates each writer keeps
/// without noticing (the basis of Mosteller and Wallace's and Burrows's authorship tests).
pub const FUNCTION_WORDS: &[&str] = &[
    "a", "about", "after", "all", "an", "and", "any", "are", "as", "at", "be", "been", "but", "by", "can", "could", "did", "do", "for", "from", "had", "has", "have", "he", "her", "him", "his", "i",
    "if", "in", "into", "is", "it", "its", "just", "may", "me", "more", "must", "my", "no", "not", "now", "of", "on", "one", "only", "or", "our", "out", "shall", "she", "should", "so", "some",
    "such", "than", "that", "the", "their", "them", "then", "there", "these", "they", "this", "those", "to", "up", "upon", "very", "was", "we", "were", "what", "when", "which", "who", "will", "with",
    "would", "you", "your",
];

/// Chinese function characters: particles, pronouns, prepositions and adverbs.
pub const FUNCTION_CHARACTERS: &[&str] = &[
    "的", "了", "是", "在", "着", "过", "也", "就", "都", "而", "和", "与", "之", "其", "把", "被", "让", "给", "这", "那", "他", "她", "我", "你", "们", "不", "没", "很", "又", "还", "却", "但",
    "因", "所", "以", "地", "得", "向", "从", "对", "于", "便", "才", "只", "已",
];

/// Particles that end a Chinese sentence.
pub const PARTICLES: &[&str] = &["吗", "呢", "吧", "啊", "呀", "嘛", "啦", "了", "哦", "么"];

/// Punctuation counted in English: each name with the strings that write it.
pub const LATIN_PUNCTUATION: &[(&str, &[&str])] = &[
    ("commas", &[","]),
    ("semicolons", &[";"]),
    ("colons", &[":"]),
    ("exclamation marks", &["!"]),
    ("question marks", &["?"]),
    ("dashes", &["—", "–", "--"]),
    ("ellipses", &["…", "..."]),
    ("parentheses", &["("]),
];

/// Punctuation counted in Chinese.
pub const CJK_PUNCTUATION: &[(&str, &[&str])] =
    &[("，", &["，"]), ("、", &["、"]), ("；", &["；"]), ("：", &["："]), ("！", &["！"]), ("？", &["？"]), ("……", &["……", "…"]), ("——", &["——", "—"]), ("（", &["（", "("])];

/// How many of the writer's most frequent words (English, beyond the function words) or
/// character pairs (Chinese) a profile follows.
pub const PAIRS: usize = 40;

/// One feature: a name (a word, a mark or a measure), its group, and whether it is a rate of
/// events per observation (its spread then has a floor from counting noise).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Feature {
    pub name: String,
    pub group: Group,
    pub rate: bool,
}

/// A feature's value in one text and how many observations it averages over (words,
/// characters, sentences or paragraphs).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Value {
    pub value: f64,
    pub over: usize,
}

/// The features measured in `script`, in order; `pairs` are the profile's own words (English)
/// or character pairs (Chinese).
pub fn catalog(script: Script, pairs: &[String]) -> Vec<Feature> {
    let f = |name: &str, group, rate| Feature { name: name.to_string(), group, rate };
    let mut out = vec![f("mean", Group::SentenceLength, false), f("spread", Group::SentenceLength, false), f("sentences", Group::ParagraphLength, false)];
    match script {
        Script::Latin => {
            out.extend(FUNCTION_WORDS.iter().map(|w| f(w, Group::FunctionWords, true)));
            out.extend(LATIN_PUNCTUATION.iter().map(|(n, _)| f(n, Group::Punctuation, true)));
            out.extend(pairs.iter().map(|w| f(w, Group::FavouriteWords, true)));
            out.push(f("word length", Group::Vocabulary, false));
        }
        Script::Cjk => {
            out.extend(FUNCTION_CHARACTERS.iter().map(|w| f(w, Group::FunctionWords, true)));
            out.extend(CJK_PUNCTUATION.iter().map(|(n, _)| f(n, Group::Punctuation, true)));
            out.extend(PARTICLES.iter().map(|p| f(p, Group::Particles, true)));
            out.extend(pairs.iter().map(|p| f(p, Group::CharacterPairs, true)));
        }
    }
    out.push(f("variety", Group::Vocabulary, false));
    out.push(f("quoted", Group::Dialogue, false));
    out
}

/// A text measured: the catalog's values in its order, and the counts behind them.
#[derive(Clone, Debug)]
pub struct Measure {
    pub values: Vec<Value>,
    /// Words (English) or CJK characters.
    pub units: usize,
    pub sentence_lengths: Vec<usize>,
    pub paragraphs: usize,
}

impl Measure {
    /// The mean sentence length, in the script's unit.
    pub fn sentence_mean(&self) -> f64 {
        mean(&self.sentence_lengths.iter().map(|&n| n as f64).collect::<Vec<_>>())
    }
}

/// Measures `text` in `script` against the catalog for `pairs`.
pub fn measure(text: &str, script: Script, pairs: &[String]) -> Measure {
    let paragraphs = text::paragraphs(text);
    let sentences: Vec<&str> = paragraphs.iter().flat_map(|p| text::sentences(p)).collect();
    let lengths: Vec<usize> = sentences.iter().map(|s| text::units(s, script)).filter(|&n| n > 0).collect();
    let lens: Vec<f64> = lengths.iter().map(|&n| n as f64).collect();
    let v = |value: f64, over: usize| Value { value, over };
    let (n_sent, n_par) = (lengths.len(), paragraphs.len());
    let mut values = vec![v(mean(&lens), n_sent), v(spread(&lens), n_sent), v(if n_par == 0 { 0.0 } else { n_sent as f64 / n_par as f64 }, n_par)];
    let units;
    match script {
        Script::Latin => {
            let words = text::words(text);
            units = words.len();
            let mut counts: HashMap<&str, usize> = HashMap::new();
            for w in &words {
                *counts.entry(w.as_str()).or_default() += 1;
            }
            values.extend(FUNCTION_WORDS.iter().map(|w| v(per(counts.get(w).copied().unwrap_or(0), units), units)));
            values.extend(LATIN_PUNCTUATION.iter().map(|(_, marks)| v(per(count_marks(text, marks), units), units)));
            values.extend(pairs.iter().map(|w| v(per(counts.get(w.as_str()).copied().unwrap_or(0), units), units)));
            let letters: usize = words.iter().map(|w| w.chars().count()).sum();
            values.push(v(per(letters, units), units));
            values.push(v(text::mattr(&words, 50), units));
        }
        Script::Cjk => {
            let chars: Vec<char> = text.chars().filter(|&c| is_cjk(c)).collect();
            units = chars.len();
            let mut counts: HashMap<char, usize> = HashMap::new();
            for &c in &chars {
                *counts.entry(c).or_default() += 1;
            }
            let count = |s: &str| s.chars().next().and_then(|c| counts.get(&c)).copied().unwrap_or(0);
            values.extend(FUNCTION_CHARACTERS.iter().map(|w| v(per(count(w), units), units)));
            values.extend(CJK_PUNCTUATION.iter().map(|(_, marks)| v(per(count_marks(text, marks), units), units)));
            let finals: Vec<Option<char>> = sentences.iter().map(|s| s.chars().rev().find(|&c| is_cjk(c))).collect();
            values.extend(PARTICLES.iter().map(|p| {
                let p = p.chars().next();
                v(per(finals.iter().filter(|&&f| f == p).count(), n_sent), n_sent)
            }));
            let pair_counts = pair_counts(text);
            values.extend(pairs.iter().map(|p| v(per(pair_counts.get(p.as_str()).copied().unwrap_or(0), units), units)));
            values.push(v(text::mattr(&chars, 100), units));
        }
    }
    values.push(v(text::quoted_share(text), units));
    Measure { values, units, sentence_lengths: lengths, paragraphs: n_par }
}

/// The counts of adjacent CJK character pairs in `text`.
pub fn pair_counts(text: &str) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    let chars: Vec<char> = text.chars().collect();
    for w in chars.windows(2) {
        if is_cjk(w[0]) && is_cjk(w[1]) {
            *counts.entry(w.iter().collect::<String>()).or_default() += 1;
        }
    }
    counts
}

/// How often any of `marks` appears; a longer mark is counted before a shorter one it holds
/// ("..." is one ellipsis, not three full stops' worth of anything).
fn count_marks(text: &str, marks: &[&str]) -> usize {
    let mut rest = text.to_string();
    let mut n = 0;
    let mut sorted: Vec<&str> = marks.to_vec();
    sorted.sort_by_key(|m| std::cmp::Reverse(m.len()));
    for m in sorted {
        n += rest.matches(m).count();
        rest = rest.replace(m, " ");
    }
    n
}

fn per(count: usize, over: usize) -> f64 {
    if over == 0 { 0.0 } else { count as f64 / over as f64 }
}

pub fn mean(xs: &[f64]) -> f64 {
    if xs.is_empty() { 0.0 } else { xs.iter().sum::<f64>() / xs.len() as f64 }
}

/// The standard deviation (over the values themselves, not a sample's estimate).
pub fn spread(xs: &[f64]) -> f64 {
    let m = mean(xs);
    if xs.is_empty() { 0.0 } else { (xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / xs.len() as f64).sqrt() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measure_follows_the_catalog() {
        for (text, script) in [("The cat sat; the dog ran. \"Why?\" she asked.", Script::Latin), ("他来了吗？她说：“走吧。”我们走了。", Script::Cjk)] {
            let pairs = vec!["我们".to_string()];
            assert_eq!(measure(text, script, &pairs).values.len(), catalog(script, &pairs).len());
        }
    }

    #[test]
    fn counts_words_marks_and_particles() {
        let m = measure("The cat sat; the dog ran... Then it rained.", Script::Latin, &[]);
        let cat = catalog(Script::Latin, &[]);
        let at = |name: &str| m.values[cat.iter().position(|f| f.name == name).unwrap()].value;
        assert_eq!(m.units, 9);
        assert!((at("the") - 2.0 / 9.0).abs() < 1e-9);
        assert!((at("semicolons") - 1.0 / 9.0).abs() < 1e-9);
        assert!((at("ellipses") - 1.0 / 9.0).abs() < 1e-9);
        assert_eq!(m.sentence_lengths, vec![6, 3]);

        let pairs = vec!["走了".to_string()];
        let m = measure("你来吗？我走了。他呢？", Script::Cjk, &pairs);
        let cat = catalog(Script::Cjk, &pairs);
        let at = |name: &str| m.values[cat.iter().position(|f| f.name == name).unwrap()].value;
        assert!((at("吗") - 1.0 / 3.0).abs() < 1e-9);
        assert!((at("呢") - 1.0 / 3.0).abs() < 1e-9);
        assert!((at("走了") - 1.0 / 8.0).abs() < 1e-9);
    }
}
