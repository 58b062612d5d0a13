//! `inkling serve`: the web editor, the writing API and the OpenAI-compatible API on one port.

use crate::{ModelArgs, models};
use anyhow::{Context, Result, bail};
use clap::Args;
use inkling_server::{AppState, ServerConfig};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on (default 127.0.0.1, or `[server] host` in config.toml). Anything
    /// but loopback requires an API key.
    #[arg(long)]
    host: Option<String>,
    /// Port (default 8077, or `[server] port`; 0 picks a free one; the URL is printed).
    #[arg(long, short = 'p')]
    port: Option<u16>,
    /// A file holding the API key clients must send as `Authorization: Bearer KEY`
    /// (else $INKLING_SERVER_KEY, else `[server] key_file`). Required to listen beyond this machine.
    #[arg(long)]
    key_file: Option<PathBuf>,
    /// The project database (default: inkling.db in the data folder, ~/.local/share/inkling on Linux), the same one `inkling project` uses.
    #[arg(long, env = "INKLING_DB")]
    db: Option<PathBuf>,
    /// Serve the editor's files from this folder, read on every request (working on the
    /// editor), instead of the copy compiled in.
    #[arg(long, env = "INKLING_WEB_DIR", value_name = "DIR")]
    web_dir: Option<PathBuf>,
    /// Requests that may wait for the model before new ones are told to retry (429).
    #[arg(long, default_value_t = 64)]
    max_queue: usize,
    /// Largest request body in MiB (413 above it).
    #[arg(long, default_value_t = 16)]
    max_body_mb: usize,
    /// Allow pages from this origin to call the API (CORS), e.g. http://localhost:5173. Repeatable.
    #[arg(long)]
    cors_origin: Vec<String>,
    /// Requests served at once (default: 1 for a local model, which uses every core; 8 for a remote server).
    #[arg(long)]
    parallel: Option<usize>,
    /// Most waiting generations decoded together as one batch (default: 8 for a local model;
    /// 1 turns batching off, for comparisons).
    #[arg(long, default_value_t = 0, hide_default_value = true)]
    batch: usize,
}

pub fn serve(model: &ModelArgs, args: ServeArgs) -> Result<()> {
    // Flags over the environment over the config file's [server] section.
    let file = &crate::config::file().server;
    let api_key = match (&args.key_file, &crate::config::env().server_key, &file.key_file) {
        (Some(f), _, _) => Some(crate::models::read_key_file(f, "--key-file")?),
        (None, Some(k), _) => Some(k.clone()),
        (None, None, Some(f)) => Some(crate::models::read_key_file(f, "[server] key_file in config.toml")?),
        (None, None, None) => None,
    }
    .filter(|k| !k.is_empty());
    let host = args.host.clone().or_else(|| file.host.clone()).unwrap_or_else(|| crate::config::HOST.into());
    let port = args.port.or(file.port).unwrap_or(crate::config::PORT);
    let ip: std::net::IpAddr = match host.as_str() {
        "localhost" => std::net::Ipv4Addr::LOCALHOST.into(),
        h => h.parse().with_context(|| format!("`{h}` is not an IP address to listen on (e.g. 127.0.0.1 or 0.0.0.0)"))?,
    };
    let addr = SocketAddr::new(ip, port);
    if let Err(e) = inkling_server::check_bind(&addr, api_key.as_deref()) {
        // The library cannot know this binary's flags; they are named here.
        bail!("{e}: start with --key-file FILE (or set INKLING_SERVER_KEY), or --host 127.0.0.1");
    }
    let backend: Arc<dyn inkling_engine::Backend> = Arc::from(models::backend(model)?);
    let remote = backend.info().architecture == "remote";
    let model_id = match (&model.model, remote) {
        (_, true) => backend.info().name.clone(),
        (None, false) => inkling_catalog::DEFAULT_MODEL.to_string(),
        (Some(m), false) => std::path::Path::new(m).file_stem().and_then(|s| s.to_str()).unwrap_or(m).to_string(),
    };
    let config = ServerConfig {
        api_key,
        max_body_bytes: args.max_body_mb.max(1) << 20,
        max_queue: args.max_queue.max(1),
        workers: args.parallel.unwrap_or(if remote { 8 } else { 1 }).max(1),
        max_batch: args.batch,
        cors_origins: args.cors_origin.clone(),
        db: crate::project::db_or_default(args.db.as_deref()),
        model_id,
        bans: crate::config::file().bans.clone(),
        web_dir: args.web_dir.clone(),
    };
    let db = config.db.clone();
    let toolbox = crate::tools::toolbox()?;
    let mut state = AppState::new(backend, toolbox, config).with_context(|| format!("opening the project database {}", db.display()))?;
    if !remote {
        // "Learn from my choices" trains on the served model's file; a project's adapter is
        // merged into a second engine with the same settings.
        let engine = inkling_engine::EngineConfig { threads: model.threads, context: model.ctx, adapter: None };
        state = state.with_trainer(Arc::new(crate::learning::LocalTrainer::new(models::resolve(model)?, engine)));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().context("starting the server's runtime")?;
    let shown_db = db.clone();
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr} (is another server using the port? try --port)"))?;
        let bound = listener.local_addr()?;
        let shown = if bound.ip().is_unspecified() { SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), bound.port()) } else { bound };
        println!("inkling is listening on http://{shown}/  (editor at /, OpenAI-compatible API at /v1, API docs at /docs)");
        println!("projects are saved in {}", shown_db.display());
        std::io::stdout().flush().ok();
        inkling_server::serve(listener, state, std::time::Duration::from_secs(10)).await.context("serving")
    })?;
    eprintln!("inkling stopped; every saved revision is in {}", db.display());
    Ok(())
}
