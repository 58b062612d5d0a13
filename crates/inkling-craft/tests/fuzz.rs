//! Bad input, fuzzed (see inkling-engine/tests/fuzz.rs): every built-in recipe's TOML with
//! text changed, inserted and cut, parsed and, where it parses, prepared against a tiny
//! model. A recipe must load and assemble or give an error, never panic.

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
