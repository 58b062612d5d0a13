//! `config.toml`, the writer's settings for every command. Every key is optional; a missing
//! file is all defaults. Flags override the environment, which overrides this file, which
//! overrides the built-in defaults.
//!
//! ```toml
//! [model]
//! name = "qwen2.5-coder-1.5b-instruct"   # a catalog name or a .gguf path
//! threads = 2
//! # backend = "openai"
//! # base_url = "http://127.0.0.1:8000/v1"
//! # remote_model = "Qwen/Qwen2.5-7B-Instruct"
//! # api_key_file = "~/.config/inkling/key"
//!
//! [sampling]              # `generate` and `chat`; each tool's recipe keeps its own
//! temperature = 0.9
//! max_tokens = 300
//!
//! [server]
//! port = 8080
//!
//! [projects]
//! db = "~/Writing/inkling.db"
//!
//! [bans]
//! defaults = true            # inkling's built-in list of overused phrases
//! phrases = ["suddenly"]     # banned in everything you generate
//! regex = ['\bvery \w+ly\b']
//! allow = ["Lyra"]           # built-in phrases you want after all
//! ```
//!
//! Paths may start with `~/`; a relative path is taken from the file's own folder.

use anyhow::{Context, Result, bail};
use inkling_api::BanList;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    #[serde(default)]
    pub model: ModelSection,
    #[serde(default)]
    pub sampling: SamplingSection,
    #[serde(default)]
    pub server: ServerSection,
    #[serde(default)]
    pub projects: ProjectsSection,
    /// Banned phrases for every generation (projects and requests add to them).
    #[serde(default, skip_serializing_if = "BanList::is_empty")]
    pub bans: BanList,
}

/// The model every command runs, as the global flags of the same names give it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    pub name: Option<String>,
    pub adapter: Option<PathBuf>,
    pub threads: Option<usize>,
    pub ctx: Option<usize>,
    pub backend: Option<String>,
    pub base_url: Option<String>,
    pub remote_model: Option<String>,
    pub api_key_file: Option<PathBuf>,
}

/// Sampler defaults for `generate` and `chat`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamplingSection {
    pub temperature: Option<f32>,
    pub top_k: Option<usize>,
    pub top_p: Option<f32>,
    pub min_p: Option<f32>,
    pub repeat_penalty: Option<f32>,
    pub max_tokens: Option<usize>,
}

/// The built-in sampler defaults, where neither a flag nor the file sets one.
pub const TEMPERATURE: f32 = 0.8;
pub const TOP_K: usize = 40;
pub const TOP_P: f32 = 0.95;
pub const MIN_P: f32 = 0.05;
pub const REPEAT_PENALTY: f32 = 1.0;
pub const MAX_TOKENS: usize = 200;

/// `inkling serve`'s address and key.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub key_file: Option<PathBuf>,
}

pub const HOST: &str = "127.0.0.1";
pub const PORT: u16 = 8077;

/// Where manuscripts are kept.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectsSection {
    pub db: Option<PathBuf>,
}

impl ConfigFile {
    /// The file at `path`; the defaults where there is none. `home` expands a leading `~/`.
    pub fn load_from(path: &Path, home: Option<&Path>) -> Result<Self> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(e).with_context(|| format!("cannot read the config file {}", path.display())),
        };
        let mut config: ConfigFile = toml::from_str(&text).map_err(|e| anyhow::anyhow!("the config file {} is not valid: {e}\n  fix it, or point INKLING_CONFIG at another file", path.display()))?;
        config.check().with_context(|| format!("the config file {} cannot be used (fix it, or point INKLING_CONFIG at another file)", path.display()))?;
        let folder = path.parent().unwrap_or(Path::new("."));
        let place = |p: &mut Option<PathBuf>| {
            if let Some(v) = p.take() {
                *p = Some(expand(&v, folder, home));
            }
        };
        place(&mut config.model.adapter);
        place(&mut config.model.api_key_file);
        place(&mut config.server.key_file);
        place(&mut config.projects.db);
        if let Some(name) = config.model.name.take() {
            // A catalog name stays a name; a file is found from the config's folder.
            let is_path = name.ends_with(".gguf") || name.contains('/') || name.starts_with('~');
            config.model.name = Some(if is_path { expand(Path::new(&name), folder, home).display().to_string() } else { name });
        }
        Ok(config)
    }

    /// Values no command could use, named before any command runs.
    fn check(&self) -> Result<()> {
        if let Some(b) = self.model.backend.as_deref()
            && !["local", "openai"].contains(&b)
        {
            bail!("[model] backend = {b:?}: use \"local\" or \"openai\"");
        }
        if self.model.threads == Some(0) {
            bail!("[model] threads = 0: use at least 1, or leave it out for all cores");
        }
        let s = &self.sampling;
        if s.temperature.is_some_and(|t| !(0.0..=5.0).contains(&t)) {
            bail!("[sampling] temperature must be between 0 and 5");
        }
        for (name, v) in [("top_p", s.top_p), ("min_p", s.min_p)] {
            if v.is_some_and(|v| !(0.0..=1.0).contains(&v)) {
                bail!("[sampling] {name} must be between 0 and 1");
            }
        }
        if s.max_tokens == Some(0) {
            bail!("[sampling] max_tokens = 0: use at least 1");
        }
        // A pattern that cannot compile is named now, not at the first generation.
        inkling_engine::bans::Bans::compile(&self.bans.phrases, &self.bans.regex).map_err(|e| anyhow::anyhow!("[bans] {e}"))?;
        Ok(())
    }
}

fn expand(p: &Path, folder: &Path, home: Option<&Path>) -> PathBuf {
    if let (Ok(rest), Some(h)) = (p.strip_prefix("~"), home) {
        return h.join(rest);
    }
    if p.is_relative() { folder.join(p) } else { p.to_path_buf() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_file_is_read_and_a_bad_one_is_named_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        let load = || ConfigFile::load_from(&path, Some(Path::new("/home/w")));
        assert_eq!(load().unwrap(), ConfigFile::default(), "no file: the defaults");
        std::fs::write(&path, "[model]\nname = \"qwen2.5-coder-1.5b-instruct\"\nthreads = 2\n[sampling]\ntemperature = 0.9\n[server]\nport = 8080\n[projects]\ndb = \"~/Writing/inkling.db\"\n[bans]\ndefaults = false\nphrases = [\"suddenly\"]\nallow = [\"Lyra\"]\n").unwrap();
        let c = load().unwrap();
        assert_eq!((c.model.name.as_deref(), c.model.threads, c.sampling.temperature, c.server.port), (Some("qwen2.5-coder-1.5b-instruct"), Some(2), Some(0.9), Some(8080)));
        assert_eq!(c.projects.db, Some(PathBuf::from("/home/w/Writing/inkling.db")), "~ is the writer's home");
        assert_eq!(c.bans.defaults, Some(false));
        assert_eq!(c.bans.phrases, vec!["suddenly".to_string()]);
        std::fs::write(&path, "[model]\nname = \"models/mine.gguf\"\nadapter = \"voice.gguf\"\n").unwrap();
        let c = load().unwrap();
        assert_eq!(c.model.name, Some(dir.path().join("models/mine.gguf").display().to_string()), "a relative file is beside the config");
        assert_eq!(c.model.adapter, Some(dir.path().join("voice.gguf")));
        for (bad, says) in [
            ("[bans]\nphrase = [\"typo\"]\n", "phrase"),
            ("[bans]\nregex = [\"(\"]\n", "not a valid regular expression"),
            ("[model]\nbackend = \"vllm\"\n", "\"local\" or \"openai\""),
            ("[sampling]\ntemperature = 9.0\n", "temperature"),
            ("[server]\nport = \"eighty\"\n", "port"),
            ("[colour]\ntheme = \"dark\"\n", "colour"),
        ] {
            std::fs::write(&path, bad).unwrap();
            let e = format!("{:#}", load().unwrap_err());
            assert!(e.contains("config.toml") && e.contains(says), "{bad}: {e}");
        }
    }
}
