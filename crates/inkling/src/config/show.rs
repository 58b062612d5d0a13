//! `inkling config show`: every setting in effect, and where it came from.

use super::{Env, env, file, places};
use crate::ModelArgs;
use anyhow::Result;
use serde::Serialize;
use std::path::Path;

/// One setting as it stands, and which level gave it.
#[derive(Serialize)]
struct Setting {
    key: &'static str,
    value: Option<String>,
    /// A flag, an environment variable's name, "config file" or "built-in".
    from: String,
}

/// The first level that sets the value: the command line (or the flag's variable, which
/// clap folds into it), then the file, then the built-in default (a value, or a description
/// of what happens unset).
fn layered(key: &'static str, cli: Option<String>, variable: Option<&str>, in_file: Option<String>, builtin: Option<String>) -> Setting {
    if let Some(v) = cli {
        let from = match variable {
            Some(var) if Env::flag_variable(var).as_deref() == Some(v.as_str()) => var.to_string(),
            _ if key == "model.name" => "--model".into(),
            _ => format!("--{}", key.rsplit('.').next().unwrap_or(key).replace('_', "-")),
        };
        return Setting { key, value: Some(v), from };
    }
    if let Some(v) = in_file {
        return Setting { key, value: Some(v), from: "config file".into() };
    }
    Setting { key, value: builtin, from: "built-in".into() }
}

fn shown<T: ToString>(v: &Option<T>) -> Option<String> {
    v.as_ref().map(T::to_string)
}

fn path(p: &Option<std::path::PathBuf>) -> Option<String> {
    p.as_ref().map(|p| p.display().to_string())
}

/// A key from the environment is named, never shown. It comes under a key file given as a
/// flag and over one the config file names.
fn secret(key: &'static str, file_flag: Setting, variable: Option<&str>) -> Setting {
    let flagged = file_flag.from.starts_with("--");
    match variable {
        Some(var) if !flagged => Setting { key, value: Some("(set, not shown)".into()), from: var.to_string() },
        _ => file_flag,
    }
}

fn settings(cli: &ModelArgs) -> Vec<Setting> {
    let (f, e) = (file(), env());
    let (m, s, srv) = (&f.model, &f.sampling, &f.server);
    let remote = cli.backend.as_deref().or(m.backend.as_deref()) == Some("openai") || cli.base_url.is_some() || m.base_url.is_some();
    let db = crate::project::default_db_path();
    vec![
        layered("model.name", cli.model.clone(), Some("INKLING_MODEL"), m.name.clone(), Some(inkling_catalog::DEFAULT_MODEL.into())),
        layered("model.adapter", path(&cli.adapter), Some("INKLING_ADAPTER"), path(&m.adapter), None),
        layered("model.threads", shown(&cli.threads), None, shown(&m.threads), Some("all cores".into())),
        layered("model.ctx", shown(&cli.ctx), None, shown(&m.ctx), Some("the model's, at most 8192".into())),
        layered("model.backend", cli.backend.clone(), Some("INKLING_BACKEND"), m.backend.clone(), Some(if remote { "openai" } else { "local" }.into())),
        layered("model.base_url", cli.base_url.clone(), Some("INKLING_BASE_URL"), m.base_url.clone(), None),
        layered("model.remote_model", cli.remote_model.clone(), Some("INKLING_REMOTE_MODEL"), m.remote_model.clone(), Some("the first the server lists".into())),
        secret("model.api_key_file", layered("model.api_key_file", path(&cli.api_key_file), None, path(&m.api_key_file), None), e.api_key.as_ref().map(|(var, _)| *var)),
        layered("sampling.temperature", None, None, shown(&s.temperature), Some(super::TEMPERATURE.to_string())),
        layered("sampling.top_k", None, None, shown(&s.top_k), Some(super::TOP_K.to_string())),
        layered("sampling.top_p", None, None, shown(&s.top_p), Some(super::TOP_P.to_string())),
        layered("sampling.min_p", None, None, shown(&s.min_p), Some(super::MIN_P.to_string())),
        layered("sampling.repeat_penalty", None, None, shown(&s.repeat_penalty), Some(super::REPEAT_PENALTY.to_string())),
        layered("sampling.max_tokens", None, None, shown(&s.max_tokens), Some(super::MAX_TOKENS.to_string())),
        layered("server.host", None, None, srv.host.clone(), Some(super::HOST.into())),
        layered("server.port", None, None, shown(&srv.port), Some(super::PORT.to_string())),
        secret("server.key_file", layered("server.key_file", None, None, path(&srv.key_file), None), e.server_key.as_ref().map(|_| "INKLING_SERVER_KEY")),
        layered("projects.db", Env::flag_variable("INKLING_DB"), Some("INKLING_DB"), path(&f.projects.db), Some(db.display().to_string())),
        layered("folders.models", None, None, None, Some(places().models().display().to_string())),
        layered("folders.recipes", None, None, None, path(&places().recipes)),
    ]
}

pub fn show(cli: &ModelArgs, config_file: Option<&Path>, json: bool) -> Result<()> {
    let config = file();
    let (phrases, patterns) = inkling_craft::bans::builtin();
    let settings = settings(cli);
    if json {
        let v = serde_json::json!({
            "path": config_file,
            "exists": config_file.is_some_and(Path::is_file),
            "settings": settings,
            "bans": config.bans,
            "builtin_bans": {"phrases": phrases, "regex": patterns},
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    match config_file {
        Some(p) if p.is_file() => println!("# config file: {}", p.display()),
        Some(p) => println!("# config file: {} (not there: the defaults)", p.display()),
        None => println!("# no config folder (set HOME, XDG_CONFIG_HOME or INKLING_CONFIG): the defaults"),
    }
    println!("# flags over environment over config file over built-in\n");
    let width = settings.iter().map(|s| s.key.len()).max().unwrap_or(0);
    for s in &settings {
        let value = s.value.as_deref().map_or_else(|| "(unset)".to_string(), |v| format!("{v:?}"));
        println!("{:width$} = {value}  # {}", s.key, s.from);
    }
    if !config.bans.is_empty() {
        let bans = toml::to_string(&serde_json::json!({"bans": config.bans})).unwrap_or_default();
        print!("\n# banned phrases from the config file\n{bans}");
    }
    let on = config.bans.defaults.unwrap_or(true);
    println!("\n# built-in banned phrases ({}): {}", if on { "on" } else { "off" }, phrases.join(", "));
    Ok(())
}
