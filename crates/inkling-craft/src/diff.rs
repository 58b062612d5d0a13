//! Word-level diffs between the writer's text and a rewrite (CJK text diffs by character,
//! since Unicode word segmentation splits ideographs one by one).

use serde::{Deserialize, Serialize};
use similar::{ChangeTag, TextDiff};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    Equal,
    Delete,
    Insert,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Span {
    pub change: Change,
    pub text: String,
}

/// The changes from `old` to `new`, adjacent spans of one kind merged.
pub fn word_diff(old: &str, new: &str) -> Vec<Span> {
    let diff = TextDiff::configure().diff_unicode_words(old, new);
    let mut out: Vec<Span> = Vec::new();
    for c in diff.iter_all_changes() {
        let change = match c.tag() {
            ChangeTag::Equal => Change::Equal,
            ChangeTag::Delete => Change::Delete,
            ChangeTag::Insert => Change::Insert,
        };
        match out.last_mut() {
            Some(last) if last.change == change => last.text.push_str(c.value()),
            _ => out.push(Span { change, text: c.value().to_string() }),
        }
    }
    out
}

/// `[-deleted-]{+inserted+}` markup for a terminal.
pub fn render_inline(spans: &[Span]) -> String {
    spans
        .iter()
        .map(|s| match s.change {
            Change::Equal => s.text.clone(),
            Change::Delete => format!("[-{}-]", s.text),
            Change::Insert => format!("{{+{}+}}", s.text),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side(spans: &[Span], keep: Change) -> String {
        spans.iter().filter(|s| s.change == Change::Equal || s.change == keep).map(|s| s.text.as_str()).collect()
    }

    #[test]
    fn diffs_are_by_word_and_rebuild_both_sides() {
        let (old, new) = ("The very old man walked slowly home.", "The old man walked home.");
        let d = word_diff(old, new);
        assert_eq!(side(&d, Change::Delete), old);
        assert_eq!(side(&d, Change::Insert), new);
        assert_eq!(render_inline(&d), "The [-very -]old man walked[- slowly-] home.");
    }

    #[test]
    fn chinese_diffs_by_character() {
        let d = word_diff("她慢慢地走回家。", "她走回家。");
        assert_eq!(side(&d, Change::Insert), "她走回家。");
        assert!(d.iter().any(|s| s.change == Change::Delete && s.text == "慢慢地"), "{d:?}");
    }
}
