//! Whether a key occurs in a text.
//!
//! A plain key matches as a whole word (unless its entry says otherwise) and without regard
//! to capitals (unless its entry says otherwise); a key in a CJK script matches anywhere,
//! since those scripts put no spaces between words. A key written `/pattern/flags` is a
//! regular expression.

use super::LoreEntry;
use crate::text::is_cjk;
use regex::{Regex, RegexBuilder};

/// A text to look for keys in, lowercased once for every case-insensitive key.
pub struct Hay {
    text: String,
    lower: String,
}

impl Hay {
    pub fn new(text: String) -> Hay {
        let lower = text.to_lowercase();
        Hay { text, lower }
    }
}

/// A key ready to test against text.
pub enum Key {
    Plain { text: String, case_sensitive: bool, whole_words: bool },
    Pattern(Regex),
}

impl Key {
    /// Reads `key` under `entry`'s rules; a malformed pattern says what is wrong with it.
    pub fn parse(key: &str, entry: &LoreEntry) -> Result<Option<Key>, String> {
        let key = key.trim();
        if key.is_empty() {
            return Ok(None);
        }
        if let Some((pattern, flags)) = as_pattern(key) {
            let mut b = RegexBuilder::new(pattern);
            b.case_insensitive(!entry.case_sensitive);
            for f in flags.chars() {
                match f {
                    'i' => b.case_insensitive(true),
                    's' => b.dot_matches_new_line(true),
                    'm' => b.multi_line(true),
                    'x' => b.ignore_whitespace(true),
                    'g' | 'u' => &mut b, // JavaScript flags that mean nothing for a yes/no match.
                    other => return Err(format!("the pattern {key} has flag `{other}`; use i, s, m or x")),
                };
            }
            // Lorebooks come from files: keep one pattern from taking the machine.
            b.size_limit(1 << 20);
            return b.build().map(|r| Some(Key::Pattern(r))).map_err(|e| format!("the pattern {key} is not a valid regular expression: {e}"));
        }
        Ok(Some(Key::Plain { text: key.to_string(), case_sensitive: entry.case_sensitive, whole_words: entry.whole_words }))
    }

    pub fn occurs_in(&self, hay: &Hay) -> bool {
        match self {
            Key::Pattern(r) => r.is_match(&hay.text),
            Key::Plain { text: key, case_sensitive, whole_words } => {
                let lower_key;
                let (hay, key) = if *case_sensitive {
                    (hay.text.as_str(), key.as_str())
                } else {
                    lower_key = key.to_lowercase();
                    (hay.lower.as_str(), lower_key.as_str())
                };
                if !whole_words || key.chars().any(is_cjk) {
                    return hay.contains(key);
                }
                hay.match_indices(key).any(|(i, m)| {
                    let before = hay[..i].chars().next_back();
                    let after = hay[i + m.len()..].chars().next();
                    // A CJK neighbour is a boundary too: "去Paris了".
                    before.is_none_or(|c| !is_word_char(c) || is_cjk(c)) && after.is_none_or(|c| !is_word_char(c) || is_cjk(c))
                })
            }
        }
    }
}

/// `/pattern/flags` as (pattern, flags).
fn as_pattern(key: &str) -> Option<(&str, &str)> {
    let rest = key.strip_prefix('/')?;
    let end = rest.rfind('/')?;
    let flags = &rest[end + 1..];
    (end > 0 && flags.chars().all(|c| c.is_ascii_alphabetic())).then(|| (&rest[..end], flags))
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The entry's primary keys (its name first), parsed.
pub fn primary(entry: &LoreEntry) -> Result<Vec<(String, Key)>, String> {
    parse_all(std::iter::once(&entry.name).chain(&entry.keys), entry)
}

pub fn secondary(entry: &LoreEntry) -> Result<Vec<(String, Key)>, String> {
    parse_all(entry.secondary.iter(), entry)
}

fn parse_all<'a>(keys: impl Iterator<Item = &'a String>, entry: &LoreEntry) -> Result<Vec<(String, Key)>, String> {
    let mut out = Vec::new();
    for k in keys {
        if let Some(key) = Key::parse(k, entry)? {
            out.push((k.trim().to_string(), key));
        }
    }
    Ok(out)
}

impl LoreEntry {
    /// The first primary key found in `text`, if any (secondary keys not considered).
    pub fn triggered_by(&self, text: &str) -> Option<String> {
        let hay = Hay::new(text.to_string());
        primary(self).ok()?.into_iter().find(|(_, k)| k.occurs_in(&hay)).map(|(s, _)| s)
    }

    /// What is wrong with the entry's keys, if anything.
    pub fn check(&self) -> Result<(), String> {
        if self.name.trim().is_empty() {
            return Err("a lore entry needs a name".into());
        }
        if self.probability > 100 {
            return Err(format!("`{}` has probability {}; use 0 to 100", self.name, self.probability));
        }
        primary(self).and(secondary(self)).map(|_| ()).map_err(|e| format!("`{}`: {e}", self.name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, keys: &[&str]) -> LoreEntry {
        LoreEntry { kind: "character".into(), name: name.into(), keys: keys.iter().map(|k| k.to_string()).collect(), body: format!("{name} body"), ..LoreEntry::default() }
    }

    #[test]
    fn keys_match_whole_words_case_insensitively() {
        let mara = entry("Mara", &["the captain"]);
        assert_eq!(mara.triggered_by("Then MARA laughed.").as_deref(), Some("Mara"));
        assert_eq!(mara.triggered_by("Tamara laughed; marathon runners"), None);
        assert_eq!(mara.triggered_by("He saluted The Captain.").as_deref(), Some("the captain"));
        assert_eq!(mara.triggered_by("Mara's boat").as_deref(), Some("Mara"), "a possessive still names her");
        assert_eq!(entry("Ann", &[]).triggered_by("(Ann)").as_deref(), Some("Ann"));
    }

    #[test]
    fn cjk_keys_match_inside_running_text() {
        let e = entry("林黛玉", &["黛玉"]);
        assert_eq!(e.triggered_by("宝玉看见黛玉在哭").as_deref(), Some("黛玉"));
        assert_eq!(e.triggered_by("宝钗笑了"), None);
        assert_eq!(entry("Paris", &[]).triggered_by("他去Paris了").as_deref(), Some("Paris"));
    }

    #[test]
    fn case_and_word_rules_are_the_entrys() {
        let strict = LoreEntry { case_sensitive: true, ..entry("Rook", &[]) };
        assert_eq!(strict.triggered_by("a rook on the wall"), None);
        assert!(strict.triggered_by("Rook said").is_some());
        let loose = LoreEntry { whole_words: false, ..entry("dragon", &[]) };
        assert!(loose.triggered_by("dragonfire").is_some());
    }

    #[test]
    fn slashed_keys_are_patterns() {
        let e = entry("Sword", &[r"/blade(s|smith)?\b/", "/ЗМЕЙ/i"]);
        assert_eq!(e.triggered_by("the bladesmith worked").as_deref(), Some(r"/blade(s|smith)?\b/"));
        assert_eq!(e.triggered_by("BLADE up"), e.keys.first().cloned(), "entries are case-insensitive by default");
        assert!(e.triggered_by("змей").is_some());
        assert_eq!(e.triggered_by("a knife"), None);
        let bad = entry("Bad", &["/(unclosed/"]);
        let err = bad.check().unwrap_err();
        assert!(err.contains("not a valid regular expression"), "{err}");
        assert!(entry("Fine", &["/a/q"]).check().unwrap_err().contains("flag `q`"));
        assert!(entry("Path", &["/usr/bin"]).check().unwrap_err().contains("flag `b`"), "a slashed key with unknown flags is an error, not a silent pattern");
    }
}
