//! One lorebook entry and the rules that bring it into a prompt.
//!
//! Every field but `name` and `body` has a default, so the old bible form
//! `{kind, name, keys, body, always}` still reads as an entry that fires on its keys.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LoreEntry {
    /// character, place, item, style or anything the writer files it under.
    #[serde(default)]
    pub kind: String,
    pub name: String,
    /// Trigger keys and aliases (the name always counts as one). A key written `/.../flags`
    /// is a regular expression (flags: `i` case-insensitive, `s`, `m`, `x`).
    #[serde(default)]
    pub keys: Vec<String>,
    pub body: String,
    /// In every prompt, like memory (a style guide usually is).
    #[serde(default)]
    pub always: bool,
    /// Keys that must also appear (or must not), as `logic` says. Empty: no condition.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secondary: Vec<String>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub logic: Logic,
    /// Keys match only with the same capitals.
    #[serde(default, skip_serializing_if = "is_default")]
    pub case_sensitive: bool,
    /// Keys match whole words only (CJK keys match anywhere: those scripts have no spaces).
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub whole_words: bool,
    /// Paragraphs of recent text scanned for this entry's keys (default: the lorebook's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scan_depth: Option<usize>,
    /// Insertion order: higher sits nearer the story's end and is the last dropped for budget.
    #[serde(default = "default_order", skip_serializing_if = "is_default_order")]
    pub order: i32,
    #[serde(default, skip_serializing_if = "is_default")]
    pub position: Position,
    /// Not brought in by another entry's text, only by the story's.
    #[serde(default, skip_serializing_if = "is_default")]
    pub exclude_recursion: bool,
    /// Its text brings in no other entry.
    #[serde(default, skip_serializing_if = "is_default")]
    pub prevent_recursion: bool,
    /// Once fired, stays in this many further generations without its keys.
    #[serde(default, skip_serializing_if = "is_default")]
    pub sticky: u32,
    /// After it leaves (its sticky run over), it cannot fire for this many generations.
    #[serde(default, skip_serializing_if = "is_default")]
    pub cooldown: u32,
    /// Percent chance it goes in when it fires (rolled from the lorebook's seed).
    #[serde(default = "hundred", skip_serializing_if = "is_hundred")]
    pub probability: u8,
    /// The chapter from which the entry exists at all: a chapter before it never sees it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_chapter: Option<u32>,
    /// Facts that join the body from a given chapter on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub progressions: Vec<Progression>,
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub enabled: bool,
}

impl Default for LoreEntry {
    fn default() -> Self {
        LoreEntry {
            kind: String::new(),
            name: String::new(),
            keys: Vec::new(),
            body: String::new(),
            always: false,
            secondary: Vec::new(),
            logic: Logic::default(),
            case_sensitive: false,
            whole_words: true,
            scan_depth: None,
            order: default_order(),
            position: Position::default(),
            exclude_recursion: false,
            prevent_recursion: false,
            sticky: 0,
            cooldown: 0,
            probability: 100,
            from_chapter: None,
            progressions: Vec::new(),
            enabled: true,
        }
    }
}

/// How the secondary keys combine with the primary match.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Logic {
    /// At least one secondary key appears.
    #[default]
    AndAny,
    /// Every secondary key appears.
    AndAll,
    /// No secondary key appears.
    NotAny,
    /// Not all of them appear.
    NotAll,
}

impl Logic {
    pub fn holds(self, present: &[bool]) -> bool {
        if present.is_empty() {
            return true;
        }
        match self {
            Logic::AndAny => present.iter().any(|&p| p),
            Logic::AndAll => present.iter().all(|&p| p),
            Logic::NotAny => !present.iter().any(|&p| p),
            Logic::NotAll => !present.iter().all(|&p| p),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Logic::AndAny => "and_any",
            Logic::AndAll => "and_all",
            Logic::NotAny => "not_any",
            Logic::NotAll => "not_all",
        }
    }

    pub fn named(name: &str) -> Option<Logic> {
        [Logic::AndAny, Logic::AndAll, Logic::NotAny, Logic::NotAll].into_iter().find(|l| l.name() == name.trim().to_lowercase().replace(['-', ' '], "_"))
    }
}

/// Where a fired entry goes in the prompt.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Position {
    /// With memory, ahead of the story ("What you know about the story").
    #[default]
    BeforeStory,
    /// Inside the story, this many paragraphs before its end (0: after the last one).
    AtDepth(usize),
}

/// A fact that holds from `from_chapter` on (Novelcrafter's progressions).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Progression {
    pub from_chapter: u32,
    pub body: String,
}

impl LoreEntry {
    /// Whether the entry exists at `chapter`. An unknown chapter sees only entries that have
    /// no start: leaking a late reveal is worse than leaving a fact out.
    pub fn exists_at(&self, chapter: Option<u32>) -> bool {
        match (self.from_chapter, chapter) {
            (None, _) => true,
            (Some(from), Some(c)) => c >= from,
            (Some(_), None) => false,
        }
    }

    /// The body as of `chapter`: its own text, then each progression that has begun.
    pub fn body_at(&self, chapter: Option<u32>) -> String {
        let mut body = self.body.trim().to_string();
        for p in &self.progressions {
            if chapter.is_some_and(|c| c >= p.from_chapter) && !p.body.trim().is_empty() {
                if !body.is_empty() {
                    body.push(' ');
                }
                body.push_str(p.body.trim());
            }
        }
        body
    }

    /// The entry from its stored parts: the bible's columns plus the rest as a JSON object
    /// (see [`LoreEntry::rules`]). A style entry with no rule saying otherwise is always on.
    pub fn from_parts(kind: &str, name: &str, keys: &[String], body: &str, rules: &Map<String, Value>) -> Result<LoreEntry, serde_json::Error> {
        let mut v = rules.clone();
        v.insert("kind".into(), kind.into());
        v.insert("name".into(), name.into());
        v.insert("keys".into(), keys.into());
        v.insert("body".into(), body.into());
        v.entry("always").or_insert(Value::Bool(kind == "style"));
        serde_json::from_value(Value::Object(v))
    }

    /// Everything but the bible's own columns (kind, name, keys, body), defaults left out.
    pub fn rules(&self) -> Map<String, Value> {
        let Ok(Value::Object(mut m)) = serde_json::to_value(self) else { return Map::new() };
        for k in ["kind", "name", "keys", "body"] {
            m.remove(k);
        }
        if !self.always && self.kind != "style" {
            m.remove("always");
        }
        m
    }
}

fn yes() -> bool {
    true
}
fn is_true(b: &bool) -> bool {
    *b
}
fn hundred() -> u8 {
    100
}
fn is_hundred(p: &u8) -> bool {
    *p == 100
}
fn default_order() -> i32 {
    100
}
fn is_default_order(o: &i32) -> bool {
    *o == 100
}
fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_old_bible_form_still_reads() {
        let e: LoreEntry = serde_json::from_str(r#"{"kind":"character","name":"Mara","keys":["the keeper"],"body":"Keeper."}"#).unwrap();
        assert!(e.enabled && e.whole_words && e.probability == 100 && e.order == 100);
        assert_eq!(e.position, Position::BeforeStory);
    }

    #[test]
    fn rules_round_trip_through_the_stored_parts() {
        let e = LoreEntry {
            kind: "character".into(),
            name: "Oren".into(),
            keys: vec!["the smith".into()],
            body: "A smith.".into(),
            secondary: vec!["forge".into()],
            logic: Logic::NotAny,
            position: Position::AtDepth(2),
            sticky: 2,
            from_chapter: Some(4),
            progressions: vec![Progression { from_chapter: 15, body: "He is the king's son.".into() }],
            ..LoreEntry::default()
        };
        let rules = e.rules();
        assert!(!rules.contains_key("name") && !rules.contains_key("probability"), "{rules:?}");
        assert_eq!(LoreEntry::from_parts(&e.kind, &e.name, &e.keys, &e.body, &rules).unwrap(), e);
        let style = LoreEntry::from_parts("style", "Voice", &[], "Short.", &Map::new()).unwrap();
        assert!(style.always, "a style entry is always on unless its rules say otherwise");
    }

    #[test]
    fn progressions_join_the_body_from_their_chapter() {
        let e = LoreEntry { body: "A smith.".into(), progressions: vec![Progression { from_chapter: 15, body: "Secretly the heir.".into() }], ..LoreEntry::default() };
        assert_eq!(e.body_at(Some(3)), "A smith.");
        assert_eq!(e.body_at(None), "A smith.");
        assert_eq!(e.body_at(Some(15)), "A smith. Secretly the heir.");
        let late = LoreEntry { from_chapter: Some(10), ..e };
        assert!(!late.exists_at(Some(9)) && late.exists_at(Some(10)) && !late.exists_at(None));
    }

    #[test]
    fn logic_names_and_rules() {
        assert_eq!(Logic::named("NOT-ANY"), Some(Logic::NotAny));
        assert!(Logic::AndAny.holds(&[false, true]) && !Logic::AndAll.holds(&[false, true]));
        assert!(Logic::NotAll.holds(&[false, true]) && !Logic::NotAny.holds(&[false, true]));
        assert!(Logic::NotAny.holds(&[]), "no secondary keys is no condition");
    }
}
