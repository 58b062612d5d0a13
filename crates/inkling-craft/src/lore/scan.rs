//! Which entries fire for one prompt, and why the others that could have did not.
//!
//! Order of the checks for each entry: enabled, exists at this chapter, always on, sticky
//! from an earlier generation, a primary key in its scanned text, the secondary keys' logic,
//! cooldown, then the probability roll. Entries the story brings in may bring in others
//! through their own text, up to the recursion cap. Every entry that got as far as a key
//! match (or is always on) is accounted for: fired with a reason, or held back with one.

use super::LoreEntry;
use super::keys::{Hay, Key, primary, secondary};
use super::timing::{LoreState, Standing, roll};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The lorebook's own settings (entries may override the scan depth).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LoreSettings {
    /// Paragraphs at the end of the story scanned for keys (the writer's own selected text
    /// is always scanned too).
    #[serde(default = "default_scan_depth")]
    pub scan_depth: usize,
    /// How many steps an entry's text may bring in further entries (0: none).
    #[serde(default = "default_recursion")]
    pub recursion_depth: usize,
    /// Tokens the fired entries may take at most (default: whatever room the prompt has).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<usize>,
    /// Seeds the probability rolls.
    #[serde(default)]
    pub seed: u64,
}

impl Default for LoreSettings {
    fn default() -> Self {
        LoreSettings { scan_depth: default_scan_depth(), recursion_depth: default_recursion(), budget: None, seed: 0 }
    }
}

fn default_scan_depth() -> usize {
    6
}
fn default_recursion() -> usize {
    3
}

/// The text one prompt is built around.
pub struct Scan<'a> {
    /// The story before the cursor.
    pub story: &'a str,
    /// The writer's own text (a selection, a premise); always scanned.
    pub own_text: &'a str,
    /// The chapter being written, for progressions (`None`: not known).
    pub chapter: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Fired {
    Always,
    Key {
        key: String,
    },
    /// Brought in by another entry's text, `level` steps from the story.
    Recursion {
        key: String,
        via: String,
        level: usize,
    },
    Sticky {
        left: u64,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Held {
    NotYet { from_chapter: u32, chapter: Option<u32> },
    SecondaryKeys { logic: String },
    Cooling { left: u64 },
    Chance { percent: u8 },
    RecursionCap { key: String, via: String, cap: usize },
    BadKey { message: String },
}

impl std::fmt::Display for Fired {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fired::Always => write!(f, "always on"),
            Fired::Key { key } => write!(f, "triggered by \"{key}\""),
            Fired::Recursion { key, via, level } => write!(f, "triggered by \"{key}\" in the entry {via} (recursion step {level})"),
            Fired::Sticky { left } => write!(f, "sticky from an earlier generation ({left} more after this)"),
        }
    }
}

impl std::fmt::Display for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Held::NotYet { from_chapter, chapter: Some(c) } => write!(f, "held back: exists from chapter {from_chapter}, this is chapter {c}"),
            Held::NotYet { from_chapter, chapter: None } => write!(f, "held back: exists from chapter {from_chapter}, and the chapter is not known"),
            Held::SecondaryKeys { logic } => write!(f, "held back: its secondary keys fail {logic}"),
            Held::Cooling { left } => write!(f, "held back: cooling down ({left} more after this)"),
            Held::Chance { percent } => write!(f, "held back: its {percent}% chance did not come up"),
            Held::RecursionCap { key, via, cap } => write!(f, "held back: \"{key}\" in the entry {via} is past the recursion cap of {cap}"),
            Held::BadKey { message } => write!(f, "held back: {message}"),
        }
    }
}

/// What the scan decided.
#[derive(Clone, Debug, Default)]
pub struct Activation {
    /// Entry index and reason, in the order they fired.
    pub fired: Vec<(usize, Fired)>,
    pub held: Vec<(usize, Held)>,
    /// The state after this generation, to keep for the next one.
    pub state: LoreState,
}

impl Activation {
    /// How many recursion steps brought the entry in (0: the story itself).
    pub fn level(&self, index: usize) -> usize {
        self.fired.iter().find(|(i, _)| *i == index).map(|(_, w)| if let Fired::Recursion { level, .. } = w { *level } else { 0 }).unwrap_or(0)
    }
}

/// The last `paragraphs` paragraphs of `story`.
pub fn recent(story: &str, paragraphs: usize) -> &str {
    if paragraphs == 0 {
        return "";
    }
    let starts: Vec<usize> = std::iter::once(0).chain(crate::text::paragraph_starts(story)).collect();
    &story[starts[starts.len().saturating_sub(paragraphs)]..]
}

struct Parsed {
    primary: Vec<(String, Key)>,
    secondary: Vec<(String, Key)>,
}

pub fn activate(entries: &[LoreEntry], scan: &Scan<'_>, settings: &LoreSettings, state: &LoreState) -> Activation {
    let g = state.generation + 1;
    let mut out = Activation { state: state.clone(), ..Activation::default() };
    out.state.generation = g;
    out.state.forget_before(g);
    let mut decided = vec![false; entries.len()];
    let mut parsed: Vec<Option<Parsed>> = Vec::with_capacity(entries.len());
    for (i, e) in entries.iter().enumerate() {
        match primary(e).and_then(|p| Ok(Parsed { primary: p, secondary: secondary(e)? })) {
            Ok(p) => parsed.push(Some(p)),
            Err(message) => {
                if e.enabled {
                    out.held.push((i, Held::BadKey { message }));
                }
                decided[i] = true;
                parsed.push(None);
            }
        }
    }

    // The story and the writer's text, built once for each scan depth in use.
    let mut hays: BTreeMap<usize, Hay> = BTreeMap::new();
    for (i, e) in entries.iter().enumerate() {
        let Some(p) = &parsed[i] else { continue };
        if !e.enabled {
            decided[i] = true;
            continue;
        }
        let depth = e.scan_depth.unwrap_or(settings.scan_depth);
        let text = hays.entry(depth).or_insert_with(|| Hay::new(format!("{}\n{}", recent(scan.story, depth), scan.own_text)));
        let key = p.primary.iter().find(|(_, k)| k.occurs_in(text)).map(|(s, _)| s.clone());
        if !e.always && key.is_none() && !matches!(state.standing(&e.name, g), Standing::Sticky { .. }) {
            continue;
        }
        decided[i] = true;
        if let Some(from_chapter) = e.from_chapter.filter(|_| !e.exists_at(scan.chapter)) {
            out.held.push((i, Held::NotYet { from_chapter, chapter: scan.chapter }));
            continue;
        }
        if e.always {
            decide(&mut out, i, e, settings.seed, g, Fired::Always, false);
            continue;
        }
        if let Standing::Sticky { left } = state.standing(&e.name, g) {
            out.fired.push((i, Fired::Sticky { left }));
            continue;
        }
        let key = key.unwrap_or_default();
        if let Some(held) = conditions(e, p, text, state, g) {
            out.held.push((i, held));
            continue;
        }
        decide(&mut out, i, e, settings.seed, g, Fired::Key { key }, true);
    }

    // Entries' own text, step by step.
    let mut frontier: Vec<usize> = out.fired.iter().map(|(i, _)| *i).collect();
    for level in 1.. {
        let sources: Vec<(usize, Hay)> = frontier.iter().filter(|&&i| !entries[i].prevent_recursion).map(|&i| (i, Hay::new(entries[i].body_at(scan.chapter)))).collect();
        if sources.is_empty() {
            break;
        }
        let mut next = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            let Some(p) = &parsed[i] else { continue };
            if decided[i] || e.exclude_recursion || !e.exists_at(scan.chapter) {
                continue;
            }
            let found = sources.iter().find_map(|(src, body)| p.primary.iter().find(|(_, k)| k.occurs_in(body)).map(|(key, _)| (key.clone(), entries[*src].name.clone(), body)));
            let Some((key, via, body)) = found else { continue };
            decided[i] = true;
            if level > settings.recursion_depth {
                out.held.push((i, Held::RecursionCap { key, via, cap: settings.recursion_depth }));
                continue;
            }
            if let Some(held) = conditions(e, p, body, state, g) {
                out.held.push((i, held));
                continue;
            }
            if decide(&mut out, i, e, settings.seed, g, Fired::Recursion { key, via, level }, true) {
                next.push(i);
            }
        }
        if level > settings.recursion_depth {
            break;
        }
        frontier = next;
    }
    out
}

/// The secondary keys and the cooldown, for an entry whose primary key matched in `text`.
fn conditions(e: &LoreEntry, p: &Parsed, text: &Hay, state: &LoreState, g: u64) -> Option<Held> {
    let present: Vec<bool> = p.secondary.iter().map(|(_, k)| k.occurs_in(text)).collect();
    if !e.logic.holds(&present) {
        return Some(Held::SecondaryKeys { logic: e.logic.name().into() });
    }
    if let Standing::Cooling { left } = state.standing(&e.name, g) {
        return Some(Held::Cooling { left });
    }
    None
}

/// Rolls the entry's chance; fires it (starting its timers when `timed`) or holds it back.
fn decide(out: &mut Activation, i: usize, e: &LoreEntry, seed: u64, g: u64, why: Fired, timed: bool) -> bool {
    if !roll(seed, &e.name, g, e.probability) {
        out.held.push((i, Held::Chance { percent: e.probability }));
        return false;
    }
    if timed {
        out.state.fired(&e.name, g, e.sticky, e.cooldown);
    }
    out.fired.push((i, why));
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, body: &str) -> LoreEntry {
        LoreEntry { kind: "character".into(), name: name.into(), body: body.into(), ..LoreEntry::default() }
    }

    fn fired_names(entries: &[LoreEntry], a: &Activation) -> Vec<String> {
        a.fired.iter().map(|(i, _)| entries[*i].name.clone()).collect()
    }

    fn scan(story: &str) -> Scan<'_> {
        Scan { story, own_text: "", chapter: Some(1) }
    }

    #[test]
    fn recursion_follows_entry_text_and_stops_at_the_cap() {
        let entries = vec![entry("Ann", "Ann serves Bo."), entry("Bo", "Bo fears Cy."), entry("Cy", "Cy hunts Dee."), entry("Dee", "Dee is a ghost."), entry("Eve", "unrelated")];
        let settings = LoreSettings { recursion_depth: 2, ..LoreSettings::default() };
        let a = activate(&entries, &scan("Ann walked in."), &settings, &LoreState::default());
        assert_eq!(fired_names(&entries, &a), ["Ann", "Bo", "Cy"]);
        assert_eq!(a.fired[2].1, Fired::Recursion { key: "Cy".into(), via: "Bo".into(), level: 2 });
        assert_eq!(a.held, [(3, Held::RecursionCap { key: "Dee".into(), via: "Cy".into(), cap: 2 })]);
        assert_eq!(a.level(2), 2);
        let none = activate(&entries, &scan("Ann walked in."), &LoreSettings { recursion_depth: 0, ..settings.clone() }, &LoreState::default());
        assert_eq!(fired_names(&entries, &none), ["Ann"]);
        // The two flags that cut a chain.
        let mut cut = entries.clone();
        cut[1].prevent_recursion = true;
        assert_eq!(fired_names(&cut, &activate(&cut, &scan("Ann walked in."), &settings, &LoreState::default())), ["Ann", "Bo"]);
        cut[1].exclude_recursion = true;
        assert_eq!(fired_names(&cut, &activate(&cut, &scan("Ann walked in."), &settings, &LoreState::default())), ["Ann"]);
    }

    #[test]
    fn only_the_scan_depth_is_scanned() {
        let entries = vec![entry("Ann", ""), LoreEntry { scan_depth: Some(3), ..entry("Bo", "") }];
        let story = "Ann and Bo left.\n\nThe road was long.\n\nRain fell.";
        let a = activate(&entries, &scan(story), &LoreSettings { scan_depth: 2, ..LoreSettings::default() }, &LoreState::default());
        assert_eq!(fired_names(&entries, &a), ["Bo"], "Ann is three paragraphs back; Bo's own depth reaches her");
        let own = activate(&entries, &Scan { story, own_text: "Ann?", chapter: None }, &LoreSettings { scan_depth: 1, ..LoreSettings::default() }, &LoreState::default());
        assert_eq!(fired_names(&entries, &own), ["Ann", "Bo"], "the writer's own text is always scanned (and Bo still reaches back three)");
    }

    #[test]
    fn secondary_keys_gate_the_match() {
        let e = |logic| LoreEntry { secondary: vec!["sword".into(), "shield".into()], logic, ..entry("Knight", "") };
        let fires = |logic, story: &str| !activate(&[e(logic)], &scan(story), &LoreSettings::default(), &LoreState::default()).fired.is_empty();
        assert!(fires(super::super::Logic::AndAny, "The Knight drew a sword."));
        assert!(!fires(super::super::Logic::AndAll, "The Knight drew a sword."));
        assert!(fires(super::super::Logic::AndAll, "The Knight's sword and shield."));
        assert!(fires(super::super::Logic::NotAny, "The Knight slept."));
        assert!(!fires(super::super::Logic::NotAny, "The Knight drew a sword."));
        assert!(fires(super::super::Logic::NotAll, "The Knight drew a sword."));
        let a = activate(&[e(super::super::Logic::AndAll)], &scan("Knight"), &LoreSettings::default(), &LoreState::default());
        assert_eq!(a.held, [(0, Held::SecondaryKeys { logic: "and_all".into() })]);
    }

    #[test]
    fn sticky_and_cooldown_over_a_run_of_generations() {
        let entries = vec![LoreEntry { sticky: 2, cooldown: 2, ..entry("Mara", "") }];
        let mut state = LoreState::default();
        let mut seen = Vec::new();
        // Mara is named in generations 1 and 4 to 7.
        for (g, story) in ["Mara", "", "", "Mara", "Mara", "Mara", "Mara"].iter().enumerate() {
            let a = activate(&entries, &scan(story), &LoreSettings::default(), &state);
            assert_eq!(a.state.generation, g as u64 + 1);
            let word = match (a.fired.first(), a.held.first()) {
                (Some((_, Fired::Key { .. })), _) => "key",
                (Some((_, Fired::Sticky { .. })), _) => "sticky",
                (_, Some((_, Held::Cooling { .. }))) => "cooling",
                _ => "out",
            };
            seen.push(word);
            state = a.state;
        }
        assert_eq!(seen, ["key", "sticky", "sticky", "cooling", "cooling", "key", "sticky"]);
    }

    #[test]
    fn chance_is_seeded_and_progressions_hide_the_future() {
        let entries = vec![LoreEntry { probability: 50, ..entry("Ghost", "") }];
        let run = |seed| {
            (0..40)
                .map(|g| !activate(&entries, &scan("Ghost"), &LoreSettings { seed, ..LoreSettings::default() }, &LoreState { generation: g, ..LoreState::default() }).fired.is_empty())
                .collect::<Vec<_>>()
        };
        let a = run(1);
        assert_eq!(a, run(1));
        assert!(a.iter().any(|&x| x) && a.iter().any(|&x| !x), "{a:?}");
        let late = vec![LoreEntry { from_chapter: Some(15), ..entry("The Heir", "") }];
        let a = activate(&late, &Scan { story: "The Heir", own_text: "", chapter: Some(3) }, &LoreSettings::default(), &LoreState::default());
        assert!(a.fired.is_empty());
        assert_eq!(a.held[0].1.to_string(), "held back: exists from chapter 15, this is chapter 3");
    }

    #[test]
    fn a_bad_pattern_is_reported_not_fatal() {
        let entries = vec![LoreEntry { keys: vec!["/(oops/".into()], ..entry("Bad", "") }, entry("Good", "")];
        let a = activate(&entries, &scan("Good and Bad"), &LoreSettings::default(), &LoreState::default());
        assert_eq!(fired_names(&entries, &a), ["Good"]);
        assert!(matches!(&a.held[0], (0, Held::BadKey { message }) if message.contains("regular expression")));
    }
}
