//! The set of tools: the recipes built into the binary, overridden or extended by the
//! writer's own `*.toml` files in their recipes folder.

use crate::error::{CraftError, Result};
use crate::recipe::{Recipe, builtin_path};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The built-in recipes, embedded at compile time.
const BUILTIN: &[(&str, &str)] = &[
    ("brainstorm", include_str!("../recipes/brainstorm.toml")),
    ("business", include_str!("../recipes/business.toml")),
    ("character", include_str!("../recipes/character.toml")),
    ("check", include_str!("../recipes/check.toml")),
    ("continue", include_str!("../recipes/continue.toml")),
    ("describe", include_str!("../recipes/describe.toml")),
    ("draft", include_str!("../recipes/draft.toml")),
    ("expand", include_str!("../recipes/expand.toml")),
    ("first-lines", include_str!("../recipes/first-lines.toml")),
    ("outline", include_str!("../recipes/outline.toml")),
    ("place", include_str!("../recipes/place.toml")),
    ("poem", include_str!("../recipes/poem.toml")),
    ("rewrite", include_str!("../recipes/rewrite.toml")),
    ("summarize", include_str!("../recipes/summarize.toml")),
    ("tighten", include_str!("../recipes/tighten.toml")),
    ("titles", include_str!("../recipes/titles.toml")),
];

#[derive(Clone, Debug)]
pub struct Toolbox {
    recipes: BTreeMap<String, Recipe>,
}

impl Toolbox {
    /// The built-in tools only.
    pub fn builtin() -> Result<Self> {
        let mut recipes = BTreeMap::new();
        for (name, src) in BUILTIN {
            recipes.insert(name.to_string(), Recipe::parse(name, src, &builtin_path(name))?);
        }
        Ok(Self { recipes })
    }

    /// The built-in tools plus every `*.toml` in `dir` (a file named like a built-in replaces
    /// it). A missing folder is fine; a malformed recipe is an error naming file and line.
    pub fn load(dir: Option<&Path>) -> Result<Self> {
        let mut tb = Self::builtin()?;
        let Some(dir) = dir else { return Ok(tb) };
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(tb),
            Err(source) => return Err(CraftError::Io { path: dir.to_path_buf(), error: source }),
        };
        let mut files: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().is_some_and(|x| x == "toml")).collect();
        files.sort();
        for path in files {
            let src = std::fs::read_to_string(&path).map_err(|source| CraftError::Io { path: path.clone(), error: source })?;
            let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            tb.recipes.insert(name.clone(), Recipe::parse(&name, &src, &path)?);
        }
        Ok(tb)
    }

    pub fn get(&self, name: &str) -> Result<&Recipe> {
        self.recipes.get(name).ok_or_else(|| CraftError::UnknownTool { name: name.to_string(), known: self.names().join(", ") })
    }

    pub fn names(&self) -> Vec<String> {
        self.recipes.keys().cloned().collect()
    }

    pub fn recipes(&self) -> impl Iterator<Item = &Recipe> {
        self.recipes.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_recipe_parses() {
        let tb = Toolbox::builtin().unwrap();
        for tool in ["continue", "brainstorm", "outline", "character", "place", "draft", "describe", "expand", "tighten", "rewrite", "poem", "summarize", "business", "first-lines", "titles", "check"]
        {
            assert!(tb.get(tool).is_ok(), "{tool}");
        }
        let e = tb.get("summarise").unwrap_err().to_string();
        assert!(e.contains("unknown tool `summarise`") && e.contains("summarize"), "{e}");
    }

    #[test]
    fn a_writers_folder_adds_and_overrides_and_bad_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("villain.toml"), "description = \"A villain's monologue.\"\n[prompt]\ntext = \"Villain: {{ text }}\"\n").unwrap();
        std::fs::write(dir.path().join("tighten.toml"), "description = \"My tighten.\"\n[prompt]\ntext = \"Cut: {{ text }}\"\n").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not a recipe").unwrap();
        let tb = Toolbox::load(Some(dir.path())).unwrap();
        assert_eq!(tb.get("villain").unwrap().description, "A villain's monologue.");
        assert_eq!(tb.get("tighten").unwrap().description, "My tighten.");
        assert!(tb.get("tighten").unwrap().source.ends_with("tighten.toml"));
        assert!(Toolbox::load(Some(&dir.path().join("missing"))).is_ok());

        std::fs::write(dir.path().join("broken.toml"), "description = \"x\"\n\n[prompt\ntext = \"y\"\n").unwrap();
        let e = Toolbox::load(Some(dir.path())).unwrap_err().to_string();
        assert!(e.contains("broken.toml:3:"), "{e}");
    }
}
