//! Lorebooks in the files other tools write: SillyTavern world info (`{"entries": {uid:
//! entry}}`), the character-card lorebook (`character_book`, `{"entries": [..]}` with `keys`
//! and `insertion_order`), KoboldAI's world info (keys as comma-separated text), and
//! inkling's own list of entries. Export writes SillyTavern's form, which the others read too;
//! what it has no field for (kind, progressions, the first chapter) rides in each entry's
//! `inkling` object so that a round trip through inkling loses nothing.
//!
//! Novelcrafter's codex export is left out: its format is not published.

use super::{Logic, LoreEntry, Position, Progression};
use serde_json::{Map, Value, json};

/// SillyTavern's numbers for the secondary-key logic.
const ST_LOGIC: [Logic; 4] = [Logic::AndAny, Logic::NotAll, Logic::NotAny, Logic::AndAll];
/// SillyTavern's position "at depth"; every other position sits before the story here.
const ST_AT_DEPTH: u64 = 4;

/// Reads any of the forms above; the error says what was expected.
pub fn import(src: &str) -> Result<Vec<LoreEntry>, String> {
    let v: Value = serde_json::from_str(src).map_err(|e| format!("not JSON: {e}"))?;
    let v = v.get("character_book").or_else(|| v.pointer("/data/character_book")).cloned().unwrap_or(v);
    let raw: Vec<Value> = match &v {
        Value::Array(a) => a.clone(),
        Value::Object(o) => match o.get("entries") {
            Some(Value::Array(a)) => a.clone(),
            Some(Value::Object(m)) => m.values().cloned().collect(),
            // KoboldAI writes the entries map at the top level.
            _ if !o.is_empty() && o.values().all(|e| e.get("content").is_some()) => o.values().cloned().collect(),
            _ => return Err("no `entries` found; expected SillyTavern or KoboldAI world info, a character book, or a JSON list of inkling entries".into()),
        },
        _ => return Err("expected a JSON object or list of lore entries".into()),
    };
    let mut entries: Vec<(f64, LoreEntry)> = Vec::new();
    for (n, e) in raw.iter().enumerate() {
        let Value::Object(o) = e else { return Err(format!("entry {} is not a JSON object", n + 1)) };
        let entry = if o.contains_key("body") { serde_json::from_value(e.clone()).map_err(|err| format!("entry {}: {err}", n + 1))? } else { from_world_info(o, n) };
        entry.check().map_err(|err| format!("entry {}: {err}", n + 1))?;
        let at = num(o, &["displayIndex", "uid", "id"]).unwrap_or(n as f64);
        entries.push((at, entry));
    }
    // Maps have no order of their own: keep the file's display order.
    entries.sort_by(|a, b| a.0.total_cmp(&b.0));
    Ok(entries.into_iter().map(|(_, e)| e).collect())
}

fn from_world_info(o: &Map<String, Value>, n: usize) -> LoreEntry {
    // A character book keeps SillyTavern's own fields under `extensions`.
    let ext = o.get("extensions").and_then(Value::as_object).cloned().unwrap_or_default();
    let field = |names: &[&str]| names.iter().find_map(|k| o.get(*k).or_else(|| ext.get(*k)).filter(|v| !v.is_null()));
    let keys = strings(field(&["key", "keys"]));
    let selective = field(&["selective"]).and_then(Value::as_bool).unwrap_or(true);
    let secondary = if selective { strings(field(&["keysecondary", "secondary_keys"])) } else { Vec::new() };
    let title = field(&["comment", "name"]).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty());
    let name = title.map(String::from).or_else(|| keys.first().cloned()).unwrap_or_else(|| format!("entry {}", n + 1));
    let keys = keys.into_iter().filter(|k| *k != name).collect();
    let logic = field(&["selectiveLogic", "selective_logic"]).and_then(Value::as_u64).and_then(|l| ST_LOGIC.get(l as usize).copied()).unwrap_or_default();
    // A card has a word at the top ("before_char") and SillyTavern's number in extensions.
    let position = match ext.get("position").or_else(|| o.get("position")) {
        Some(Value::Number(p)) if p.as_u64() == Some(ST_AT_DEPTH) => Position::AtDepth(field(&["depth"]).and_then(Value::as_u64).unwrap_or(4) as usize),
        _ => Position::BeforeStory,
    };
    let use_probability = field(&["useProbability"]).and_then(Value::as_bool).unwrap_or(true);
    let probability = if use_probability { field(&["probability"]).and_then(Value::as_f64).map(|p| p.clamp(0.0, 100.0) as u8).unwrap_or(100) } else { 100 };
    let enabled = match (field(&["disable"]).and_then(Value::as_bool), field(&["enabled"]).and_then(Value::as_bool)) {
        (Some(d), _) => !d,
        (None, Some(e)) => e,
        _ => true,
    };
    let ours = o.get("inkling").and_then(Value::as_object).cloned().unwrap_or_default();
    let count = |names: &[&str]| field(names).and_then(Value::as_u64).map(|n| n.min(u64::from(u32::MAX)) as u32);
    LoreEntry {
        kind: ours.get("kind").and_then(Value::as_str).unwrap_or("lore").to_string(),
        name,
        keys,
        body: field(&["content"]).and_then(Value::as_str).unwrap_or_default().to_string(),
        always: field(&["constant"]).and_then(Value::as_bool).unwrap_or(false),
        secondary,
        logic,
        case_sensitive: field(&["caseSensitive", "case_sensitive"]).and_then(Value::as_bool).unwrap_or(false),
        whole_words: field(&["matchWholeWords", "match_whole_words"]).and_then(Value::as_bool).unwrap_or(true),
        scan_depth: field(&["scanDepth", "scan_depth"]).and_then(Value::as_u64).map(|d| d as usize),
        order: field(&["order", "insertion_order"]).and_then(Value::as_i64).map(|o| o.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32).unwrap_or(100),
        position,
        exclude_recursion: field(&["excludeRecursion", "exclude_recursion"]).and_then(Value::as_bool).unwrap_or(false),
        prevent_recursion: field(&["preventRecursion", "prevent_recursion"]).and_then(Value::as_bool).unwrap_or(false),
        sticky: count(&["sticky"]).unwrap_or(0),
        cooldown: count(&["cooldown"]).unwrap_or(0),
        probability,
        from_chapter: ours.get("from_chapter").and_then(Value::as_u64).map(|c| c as u32),
        progressions: ours.get("progressions").cloned().and_then(|p| serde_json::from_value::<Vec<Progression>>(p).ok()).unwrap_or_default(),
        enabled,
    }
}

/// A list of strings, or KoboldAI's comma-separated text.
fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect(),
        Some(Value::String(s)) => s.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect(),
        _ => Vec::new(),
    }
}

fn num(o: &Map<String, Value>, names: &[&str]) -> Option<f64> {
    names.iter().find_map(|k| o.get(*k).and_then(Value::as_f64))
}

/// SillyTavern world info, with inkling's extra fields beside each entry.
pub fn export(entries: &[LoreEntry]) -> Value {
    let mut map = Map::new();
    for (uid, e) in entries.iter().enumerate() {
        let (position, depth) = match e.position {
            Position::BeforeStory => (0, 4),
            Position::AtDepth(d) => (ST_AT_DEPTH, d),
        };
        let logic = ST_LOGIC.iter().position(|l| *l == e.logic).unwrap_or(0);
        let mut keys = vec![e.name.clone()];
        keys.extend(e.keys.iter().filter(|k| **k != e.name).cloned());
        map.insert(
            uid.to_string(),
            json!({
                "uid": uid,
                "displayIndex": uid,
                "key": keys,
                "keysecondary": e.secondary,
                "comment": e.name,
                "content": e.body,
                "constant": e.always,
                "selective": !e.secondary.is_empty(),
                "selectiveLogic": logic,
                "order": e.order,
                "position": position,
                "depth": depth,
                "disable": !e.enabled,
                "excludeRecursion": e.exclude_recursion,
                "preventRecursion": e.prevent_recursion,
                "probability": e.probability,
                "useProbability": e.probability < 100,
                "scanDepth": e.scan_depth,
                "caseSensitive": e.case_sensitive,
                "matchWholeWords": e.whole_words,
                "sticky": e.sticky,
                "cooldown": e.cooldown,
                "inkling": {"kind": e.kind, "from_chapter": e.from_chapter, "progressions": e.progressions},
            }),
        );
    }
    json!({ "entries": map })
}

#[cfg(test)]
mod tests {
    use super::*;

    // The shape SillyTavern writes (fields it has and inkling does not are ignored).
    const SILLYTAVERN: &str = r#"{"entries": {
        "1": {"uid": 1, "key": ["Gull Rock", "the rock"], "keysecondary": [], "comment": "Gull Rock", "content": "A bare island.",
              "constant": false, "selective": true, "selectiveLogic": 0, "order": 90, "position": 0, "disable": false,
              "excludeRecursion": false, "preventRecursion": false, "probability": 100, "useProbability": true, "depth": 4,
              "group": "", "scanDepth": null, "caseSensitive": null, "matchWholeWords": null, "sticky": 0, "cooldown": 0, "displayIndex": 1},
        "0": {"uid": 0, "key": ["Mara"], "keysecondary": ["lamp", "tower"], "comment": "", "content": "Keeper of the light.",
              "constant": false, "selective": true, "selectiveLogic": 3, "order": 100, "position": 4, "depth": 2, "disable": false,
              "excludeRecursion": true, "preventRecursion": false, "probability": 40, "useProbability": true,
              "scanDepth": 3, "caseSensitive": true, "matchWholeWords": false, "sticky": 2, "cooldown": 1, "displayIndex": 0},
        "2": {"uid": 2, "key": ["style"], "comment": "Style", "content": "Past tense.", "constant": true, "disable": true, "displayIndex": 2}
    }}"#;

    #[test]
    fn sillytavern_world_info_reads_every_rule() {
        let e = import(SILLYTAVERN).unwrap();
        let names: Vec<&str> = e.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["Mara", "Gull Rock", "Style"], "display order, names from comments or the first key");
        let mara = &e[0];
        assert_eq!((mara.logic, mara.position, mara.probability, mara.sticky, mara.cooldown), (Logic::AndAll, Position::AtDepth(2), 40, 2, 1));
        assert_eq!(mara.secondary, ["lamp", "tower"]);
        assert!(mara.case_sensitive && !mara.whole_words && mara.exclude_recursion && mara.scan_depth == Some(3));
        assert_eq!(e[1].keys, ["the rock"], "the name is a key already");
        assert_eq!(e[1].order, 90);
        assert!(e[2].always && !e[2].enabled);
    }

    #[test]
    fn export_then_import_loses_nothing() {
        let mut e = import(SILLYTAVERN).unwrap();
        e[1].from_chapter = Some(15);
        e[1].progressions = vec![Progression { from_chapter: 20, body: "It sinks.".into() }];
        e[1].kind = "place".into();
        let again = import(&export(&e).to_string()).unwrap();
        assert_eq!(again, e);
    }

    #[test]
    fn kobold_and_character_books_and_our_own_list() {
        let kobold = r#"{"0": {"key": "Oren, the smith", "keysecondary": "", "content": "Smith.", "comment": "", "constant": false, "selective": false}}"#;
        let e = import(kobold).unwrap();
        assert_eq!((e[0].name.as_str(), e[0].keys.as_slice()), ("Oren", ["the smith".to_string()].as_slice()));
        let card = r#"{"data": {"character_book": {"entries": [{"keys": ["Vale"], "secondary_keys": ["mist"], "content": "A valley.", "enabled": true, "insertion_order": 7, "selective": true, "extensions": {"position": 4, "depth": 1}}]}}}"#;
        let e = import(card).unwrap();
        assert_eq!((e[0].order, e[0].position, e[0].secondary.len()), (7, Position::AtDepth(1), 1));
        let ours = r#"[{"kind": "character", "name": "Mara", "body": "Keeper.", "keys": ["the keeper"]}]"#;
        assert_eq!(import(ours).unwrap()[0].keys, ["the keeper"]);
        assert!(import(r#"{"title": "x"}"#).unwrap_err().contains("no `entries`"));
        assert!(import("[1]").unwrap_err().contains("entry 1 is not a JSON object"));
        assert!(import(r#"[{"name": "Bad", "body": "", "keys": ["/(x/"]}]"#).unwrap_err().contains("regular expression"));
    }
}
