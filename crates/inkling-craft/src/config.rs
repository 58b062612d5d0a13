//! The writer's config file, `config.toml`: read here and nowhere else. It lives at
//! `$INKLING_CONFIG`, else `$INKLING_HOME/config.toml` when that is set (everything in one
//! folder, as for the data), else `$XDG_CONFIG_HOME/inkling/config.toml`, else
//! `~/.config/inkling/config.toml`; a missing file is the defaults.
//!
//! ```toml
//! [bans]
//! defaults = true            # inkling's built-in list of overused phrases
//! phrases = ["suddenly"]     # banned in everything you generate
//! regex = ['\bvery \w+ly\b']
//! allow = ["Lyra"]           # built-in phrases you want after all
//! ```

use crate::error::{CraftError, Result};
use inkling_api::BanList;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Banned phrases for every generation (projects and requests add to them).
    #[serde(default, skip_serializing_if = "BanList::is_empty")]
    pub bans: BanList,
}

/// inkling's config folder: `$XDG_CONFIG_HOME/inkling`, else `~/.config/inkling`.
pub fn config_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()).map(PathBuf::from).or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("inkling"))
}

/// Where the config file is looked for.
pub fn config_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("INKLING_CONFIG").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(p));
    }
    if let Some(h) = std::env::var_os("INKLING_HOME").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(h).join("config.toml"));
    }
    config_dir().map(|d| d.join("config.toml"))
}

impl Config {
    /// The config file at [`config_path`], or the defaults where there is none.
    pub fn load() -> Result<Self> {
        match config_path() {
            Some(p) => Self::load_from(&p),
            None => Ok(Self::default()),
        }
    }

    pub fn load_from(path: &Path) -> Result<Self> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(CraftError::Config { path: path.to_path_buf(), reason: e.to_string() }),
        };
        let config: Config = toml::from_str(&text).map_err(|e| CraftError::Config { path: path.to_path_buf(), reason: e.to_string() })?;
        // A pattern that cannot compile is named now, not at the first generation.
        inkling_engine::bans::Bans::compile(&config.bans.phrases, &config.bans.regex).map_err(|e| CraftError::Config { path: path.to_path_buf(), reason: e.to_string() })?;
        Ok(config)
    }

    /// The file's text for this config (`inkling config show`).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_file_is_read_and_a_bad_one_is_named_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        assert_eq!(Config::load_from(&path).unwrap(), Config::default(), "no file: the defaults");
        std::fs::write(&path, "[bans]\ndefaults = false\nphrases = [\"suddenly\"]\nallow = [\"Lyra\"]\n").unwrap();
        let c = Config::load_from(&path).unwrap();
        assert_eq!(c.bans.defaults, Some(false));
        assert_eq!(c.bans.phrases, vec!["suddenly".to_string()]);
        assert_eq!(Config::load_from(&path).unwrap(), toml::from_str(&c.to_toml()).unwrap());
        std::fs::write(&path, "[bans]\nphrase = [\"typo\"]\n").unwrap();
        let e = Config::load_from(&path).unwrap_err().to_string();
        assert!(e.contains("config.toml") && e.contains("phrase"), "{e}");
        std::fs::write(&path, "[bans]\nregex = [\"(\"]\n").unwrap();
        let e = Config::load_from(&path).unwrap_err().to_string();
        assert!(e.contains("not a valid regular expression"), "{e}");
    }
}
