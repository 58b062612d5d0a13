//! Bad input, fuzzed (see inkling-engine/tests/fuzz.rs): every built-in recipe's TOML with
//! text changed, inserted and cut, parsed and, where it parses, prepared against a tiny
//! model. A recipe must load and assemble or give an error, never panic. World-info files
//! (lorebooks from SillyTavern and KoboldAI) with any field changed or cut short import or
//! are refused, and what imports survives a round trip.

use inkling_craft::recipe::Recipe;
use inkling_craft::{ToolRequest, Toolbox};
use inkling_engine::testing::TinyModel;
use inkling_engine::{Engine, EngineConfig};
use proptest::prelude::*;
use std::sync::OnceLock;

fn cases() -> u32 {
    std::env::var("INKLING_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(64)
}

fn engine() -> &'static Engine {
    static E: OnceLock<(tempfile::TempDir, Engine)> = OnceLock::new();
    &E.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tiny.gguf");
        TinyModel { context: 512, ..TinyModel::default() }.write(&path).unwrap();
        let e = Engine::load(&path, &EngineConfig { threads: Some(1), ..Default::default() }).unwrap();
        (dir, e)
    })
    .1
}

/// Text that recipes are made of: TOML and template syntax, and noise.
fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("{{ text }}".to_string()),
        Just("{{ story }}".to_string()),
        Just("{% if".to_string()),
        Just("{{".to_string()),
        Just("\"".to_string()),
        Just("\n[output]\nkind = \"list\"\nitems = \"{{ count }}\"\n".to_string()),
        Just("\n[output]\nkind = \"json\"\n".to_string()),
        Just("items = 0\n".to_string()),
        Just("length = \"shorter\"\n".to_string()),
        Just("=".to_string()),
        Just("]".to_string()),
        ".{0,8}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn a_changed_recipe_parses_and_prepares_or_is_refused(which in 0usize..16, at in 0.0..1.0f64, cut in any::<bool>(), insert in piece(), text in ".{0,40}") {
        let tb = Toolbox::builtin().unwrap();
        let names = tb.names();
        let name = &names[which % names.len()];
        let src = &tb.get(name).unwrap().toml;
        let mut i = ((at * src.len() as f64) as usize).min(src.len());
        while !src.is_char_boundary(i) {
            i -= 1;
        }
        let changed = if cut { format!("{}{insert}", &src[..i]) } else { format!("{}{insert}{}", &src[..i], &src[i..]) };
        if let Ok(recipe) = Recipe::parse(name, &changed, std::path::Path::new("fuzz.toml")) {
            let request = ToolRequest { tool: name.clone(), text, max_tokens: Some(8), ..ToolRequest::default() };
            let _ = inkling_craft::run::prepare(&recipe, engine(), &request);
        }
    }
}

/// A SillyTavern world-info file with the fields the importer reads: regex and CJK keys,
/// secondary keys and logic, a depth position, timing and inkling's own extras.
fn world_info() -> serde_json::Value {
    serde_json::json!({"entries": {
        "0": {"uid": 0, "key": ["Mara", "the captain"], "keysecondary": ["ship"], "selective": true, "selectiveLogic": 1, "comment": "Mara", "content": "Mara captains the Heron.", "order": 100, "position": 0, "probability": 100, "useProbability": true, "sticky": 2},
        "1": {"uid": 1, "key": ["/dr(a|e)gons?/i"], "content": "Dragons sleep under the hill.", "position": 4, "depth": 2, "cooldown": 1, "constant": false, "disable": false},
        "2": {"uid": 2, "key": "港口, harbour", "content": "港口在城的东边。", "constant": true, "inkling": {"kind": "place", "from_chapter": 3}},
    }})
}

/// Any JSON value a damaged or hand-edited file might hold in a field.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::json;
    prop_oneof![
        Just(json!(null)),
        any::<bool>().prop_map(|b| json!(b)),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_filter("JSON has no NaN or infinity", |f| f.is_finite()).prop_map(|f| json!(f)),
        prop_oneof![Just("/(/".to_string()), Just(",,".to_string()), Just("/x/zz".to_string()), Just("龙".to_string()), ".{0,12}"].prop_map(|s| json!(s)),
        proptest::collection::vec(".{0,6}", 0..4).prop_map(|v| json!(v)),
        Just(json!({"kind": 7, "progressions": "soon"})),
        Just(json!([{"from_chapter": -1}])),
    ]
}

const FIELDS: &[&str] = &[
    "key",
    "keys",
    "keysecondary",
    "secondary_keys",
    "selective",
    "selectiveLogic",
    "comment",
    "name",
    "content",
    "constant",
    "order",
    "insertion_order",
    "position",
    "depth",
    "probability",
    "useProbability",
    "sticky",
    "cooldown",
    "disable",
    "enabled",
    "scanDepth",
    "caseSensitive",
    "matchWholeWords",
    "inkling",
    "extensions",
    "uid",
    "displayIndex",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    /// A world-info file with any field of any entry changed, removed or the text cut short is
    /// imported or refused with a message, never a panic; what imports survives export and
    /// import again unchanged, and scanning a story with it fires only entries it has.
    #[test]
    fn a_damaged_world_info_file_is_imported_or_refused(entry in 0usize..3, field in 0usize..FIELDS.len(), value in json_value(), remove in any::<bool>(), cut in proptest::option::of(0.0..1.0f64)) {
        use inkling_craft::lore::{self, world_info};
        let mut v = world_info();
        let e = &mut v["entries"][entry.to_string()];
        if remove {
            e.as_object_mut().unwrap().remove(FIELDS[field]);
        } else {
            e[FIELDS[field]] = value;
        }
        let mut text = v.to_string();
        if let Some(at) = cut {
            let mut i = ((at * text.len() as f64) as usize).min(text.len());
            while !text.is_char_boundary(i) {
                i -= 1;
            }
            text.truncate(i);
        }
        match world_info::import(&text) {
            Err(message) => prop_assert!(!message.trim().is_empty()),
            Ok(entries) => {
                let again = world_info::import(&world_info::export(&entries).to_string());
                prop_assert_eq!(again.as_ref(), Ok(&entries), "export then import changes nothing");
                let scan = lore::Scan { story: "The dragon woke. Mara ran to the ship at the harbour.\n\n港口很安静。", own_text: "", chapter: Some(4) };
                let fired = lore::activate(&entries, &scan, &lore::LoreSettings::default(), &lore::LoreState::default());
                prop_assert!(fired.fired.iter().all(|(i, _)| *i < entries.len()));
            }
        }
    }
}
