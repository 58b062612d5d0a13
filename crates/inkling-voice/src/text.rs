//! Splitting a text into paragraphs, sentences and words, the same way for the writer's pages
//! and for a candidate, so that the two are measured alike.

use serde::{Deserialize, Serialize};
use unicode_segmentation::UnicodeSegmentation;

/// How a text counts its length: English and other spaced scripts in words, Chinese in
/// characters (it has no spaces to count words by).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Script {
    Latin,
    Cjk,
}

impl Script {
    /// The script most of `text` is in: CJK when its ideographs outnumber a third of its other
    /// letters (a Chinese page quoting English names stays Chinese).
    pub fn of(text: &str) -> Script {
        let (mut cjk, mut letters) = (0usize, 0usize);
        for c in text.chars() {
            if is_cjk(c) {
                cjk += 1;
            } else if c.is_alphabetic() {
                letters += 1;
            }
        }
        if cjk * 3 > letters { Script::Cjk } else { Script::Latin }
    }

    /// The unit a length is counted in, for messages.
    pub fn unit(self) -> &'static str {
        match self {
            Script::Latin => "words",
            Script::Cjk => "characters",
        }
    }
}

/// A CJK ideograph (the unified blocks and their extensions).
pub fn is_cjk(c: char) -> bool {
    matches!(c as u32, 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x2FA1F)
}

/// The paragraphs of `text`: blocks between blank lines, or its lines when it has no blank
/// line (many editors end a paragraph with one newline).
pub fn paragraphs(text: &str) -> Vec<&str> {
    let blocks: Vec<&str> = if text.contains("\n\n") || text.contains("\r\n\r\n") { text.split("\n\n").flat_map(|b| b.split("\r\n\r\n")).collect() } else { text.lines().collect() };
    blocks.into_iter().map(str::trim).filter(|p| !p.is_empty()).collect()
}

/// The sentences of a paragraph (UAX #29 sentence boundaries), trimmed.
pub fn sentences(paragraph: &str) -> Vec<&str> {
    paragraph.unicode_sentences().map(str::trim).filter(|s| s.chars().any(char::is_alphanumeric)).collect()
}

/// The words of a text in lower case (UAX #29 word boundaries; "don't" is one word). Each
/// CJK ideograph is a word of its own.
pub fn words(text: &str) -> Vec<String> {
    text.unicode_words().map(str::to_lowercase).collect()
}

/// A sentence's length in the script's unit.
pub fn units(text: &str, script: Script) -> usize {
    match script {
        Script::Latin => text.unicode_words().count(),
        Script::Cjk => text.chars().filter(|&c| is_cjk(c)).count(),
    }
}

/// The share of a text's letters (and ideographs) that stand inside quotation marks: “…”,
/// "…", 「…」 and 『…』.
pub fn quoted_share(text: &str) -> f64 {
    let (mut inside, mut quoted, mut all) = (false, 0usize, 0usize);
    for c in text.chars() {
        match c {
            '“' | '「' | '『' => inside = true,
            '”' | '」' | '』' => inside = false,
            '"' => inside = !inside,
            // A new paragraph closes an unclosed quotation.
            '\n' => inside = false,
            c if c.is_alphanumeric() => {
                all += 1;
                quoted += usize::from(inside);
            }
            _ => {}
        }
    }
    if all == 0 { 0.0 } else { quoted as f64 / all as f64 }
}

/// Moving-average type-token ratio: the share of distinct items in every window of `window`
/// items, averaged. Unlike a plain type-token ratio it does not fall as a text grows, so a
/// candidate and a whole book compare. Under one window it is the plain ratio.
pub fn mattr<T: Eq + std::hash::Hash>(items: &[T], window: usize) -> f64 {
    use std::collections::HashMap;
    if items.is_empty() {
        return 0.0;
    }
    let window = window.min(items.len()).max(1);
    let mut counts: HashMap<&T, usize> = HashMap::new();
    for x in &items[..window] {
        *counts.entry(x).or_default() += 1;
    }
    let mut sum = counts.len() as f64 / window as f64;
    for i in window..items.len() {
        *counts.entry(&items[i]).or_default() += 1;
        let old = &items[i - window];
        if let Some(n) = counts.get_mut(old) {
            *n -= 1;
            if *n == 0 {
                counts.remove(old);
            }
        }
        sum += counts.len() as f64 / window as f64;
    }
    sum / (items.len() - window + 1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chinese_is_counted_in_characters() {
        let t = "今天天气很好，我想去公园散步。";
        assert_eq!(Script::of(t), Script::Cjk);
        assert_eq!(units(t, Script::Cjk), 13);
        assert_eq!(sentences("他来了。她走了！你呢？").len(), 3);
    }

    #[test]
    fn paragraphs_are_blank_line_blocks_or_lines() {
        assert_eq!(paragraphs("One.\nStill one.\n\nTwo."), vec!["One.\nStill one.", "Two."]);
        assert_eq!(paragraphs("One.\nTwo.\n"), vec!["One.", "Two."]);
    }

    #[test]
    fn quoted_share_counts_letters_inside_quotes() {
        assert!((quoted_share("\"Go,\" he said.") - 2.0 / 8.0).abs() < 1e-9);
        assert!((quoted_share("他说：“走吧。”") - 2.0 / 4.0).abs() < 1e-9);
    }

    #[test]
    fn mattr_does_not_fall_with_length() {
        let short: Vec<u32> = (0..50).map(|i| i % 25).collect();
        let long: Vec<u32> = (0..5000).map(|i| i % 25).collect();
        assert!((mattr(&short, 50) - mattr(&long, 50)).abs() < 1e-9);
        assert!((mattr(&[1, 2, 3, 4], 50) - 1.0).abs() < 1e-9);
    }
}
