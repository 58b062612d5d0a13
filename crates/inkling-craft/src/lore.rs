//! The story bible as the model sees it: entries (characters, places, items, style notes) that
//! enter the prompt when one of their keys appears in the recent text.
//!
//! A key matches case-insensitively as a whole word; a key written in a CJK script matches
//! anywhere, since those scripts put no spaces between words.

use crate::text::is_cjk;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LoreEntry {
    /// character, place, item or style.
    #[serde(default)]
    pub kind: String,
    pub name: String,
    /// Trigger keywords and aliases (the name always counts as one).
    #[serde(default)]
    pub keys: Vec<String>,
    pub body: String,
    /// Always included, like memory (a style guide usually is).
    #[serde(default)]
    pub always: bool,
}

impl LoreEntry {
    /// The first key found in `text`, if any.
    pub fn triggered_by(&self, text: &str) -> Option<&str> {
        let hay = text.to_lowercase();
        std::iter::once(&self.name).chain(&self.keys).map(String::as_str).find(|k| key_occurs(&hay, k))
    }
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// `hay` is already lowercase.
fn key_occurs(hay: &str, key: &str) -> bool {
    let key = key.trim().to_lowercase();
    if key.is_empty() {
        return false;
    }
    if key.chars().any(is_cjk) {
        return hay.contains(&key);
    }
    hay.match_indices(&key).any(|(i, m)| {
        let before = hay[..i].chars().next_back();
        let after = hay[i + m.len()..].chars().next();
        // A CJK neighbour is a boundary too: "去Paris了".
        before.is_none_or(|c| !is_word_char(c) || is_cjk(c)) && after.is_none_or(|c| !is_word_char(c) || is_cjk(c))
    })
}

/// Entries that apply to `recent` text, in their given (stable) order: always-on ones and
/// those a key triggers.
pub fn triggered<'a>(entries: &'a [LoreEntry], recent: &str) -> Vec<&'a LoreEntry> {
    entries.iter().filter(|e| e.always || e.triggered_by(recent).is_some()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, keys: &[&str]) -> LoreEntry {
        LoreEntry { kind: "character".into(), name: name.into(), keys: keys.iter().map(|k| k.to_string()).collect(), body: format!("{name} body"), always: false }
    }

    #[test]
    fn keys_match_whole_words_case_insensitively() {
        let mara = entry("Mara", &["the captain"]);
        assert_eq!(mara.triggered_by("Then MARA laughed."), Some("Mara"));
        assert_eq!(mara.triggered_by("Tamara laughed; marathon runners"), None);
        assert_eq!(mara.triggered_by("He saluted The Captain."), Some("the captain"));
        assert_eq!(mara.triggered_by("Mara's boat"), Some("Mara"), "a possessive still names her");
        assert_eq!(entry("Ann", &[]).triggered_by("(Ann)"), Some("Ann"));
    }

    #[test]
    fn cjk_keys_match_inside_running_text() {
        let e = entry("林黛玉", &["黛玉"]);
        assert_eq!(e.triggered_by("宝玉看见黛玉在哭"), Some("黛玉"));
        assert_eq!(e.triggered_by("宝钗笑了"), None);
        let paris = entry("Paris", &[]);
        assert_eq!(paris.triggered_by("他去Paris了"), Some("Paris"));
    }

    #[test]
    fn always_on_entries_and_order_are_kept() {
        let entries = vec![LoreEntry { always: true, ..entry("Style", &[]) }, entry("Mara", &[]), entry("Oren", &[])];
        let names: Vec<&str> = triggered(&entries, "Oren and Mara").iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["Style", "Mara", "Oren"]);
    }
}
