//! The `inkling` binary: command-line glue over the library crates.

mod bench;
mod book;
mod config;
mod generate;
mod hints;
mod learning;
mod lore;
mod models;
mod progress;
mod project;
mod serve;
mod tools;
mod train;
mod voice;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};

/// inkling: a local-first writing partner. Your words stay on your machine.
#[derive(Parser, Debug)]
#[command(
    name = "inkling",
    version,
    about,
    after_help = "Writing tools: inkling <tool> [TEXT] (continue, brainstorm, outline, character, place, draft, describe,\nexpand, tighten, rewrite, poem, summarize, business, first-lines, titles, check, and your own);\n`inkling tools` lists them with their options, `inkling <tool> --help` shows one."
)]
struct Cli {
    #[command(flatten)]
    model: ModelArgs,
    #[command(subcommand)]
    command: Command,
}

/// Which model to run and how.
#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// A GGUF file, or a model name from `inkling model list` (fetched on first use).
    #[arg(long, global = true, env = "INKLING_MODEL")]
    model: Option<String>,
    /// A LoRA adapter (from `inkling finetune`) merged into the local model at load.
    #[arg(long, global = true, env = "INKLING_ADAPTER")]
    adapter: Option<std::path::PathBuf>,
    /// Worker threads (default: all cores).
    #[arg(long, short = 't', global = true)]
    threads: Option<usize>,
    /// Context window in tokens (default: the model's, at most 8192).
    #[arg(long, global = true)]
    ctx: Option<usize>,
    /// Where the model runs: `local` (a GGUF on this machine) or `openai` (any
    /// OpenAI-compatible server: vLLM, llama.cpp server, Ollama, hosted APIs).
    #[arg(long, global = true, env = "INKLING_BACKEND", value_parser = ["local", "openai"])]
    backend: Option<String>,
    /// The server's API root for `--backend openai`, e.g. http://127.0.0.1:8000/v1.
    #[arg(long, global = true, env = "INKLING_BASE_URL")]
    base_url: Option<String>,
    /// The served model's name (default: the first the server lists).
    #[arg(long, global = true, env = "INKLING_REMOTE_MODEL")]
    remote_model: Option<String>,
    /// A file holding the API key (else $INKLING_API_KEY, else $OPENAI_API_KEY). Never printed.
    #[arg(long, global = true)]
    api_key_file: Option<std::path::PathBuf>,
}

impl ModelArgs {
    /// These flags, with `fallback`'s where these are unset (flags before and after a tool name).
    pub fn or(&self, fallback: &ModelArgs) -> ModelArgs {
        ModelArgs {
            model: self.model.clone().or(fallback.model.clone()),
            adapter: self.adapter.clone().or(fallback.adapter.clone()),
            threads: self.threads.or(fallback.threads),
            ctx: self.ctx.or(fallback.ctx),
            backend: self.backend.clone().or(fallback.backend.clone()),
            base_url: self.base_url.clone().or(fallback.base_url.clone()),
            remote_model: self.remote_model.clone().or(fallback.remote_model.clone()),
            api_key_file: self.api_key_file.clone().or(fallback.api_key_file.clone()),
        }
    }
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Continue a text: several candidates, streamed or as JSON.
    Generate(generate::GenerateArgs),
    /// Talk to the model through its own chat template (one message, or a conversation on stdin).
    Chat(generate::ChatArgs),
    /// Show the token ids a text becomes (for comparisons with other engines).
    Tokenize(generate::TokenizeArgs),
    /// Fetch and list models.
    #[command(subcommand)]
    Model(models::ModelCommand),
    /// Projects: import, revisions, undo/redo/restore, export, authorship report.
    Project(project::ProjectArgs),
    /// Measure prompt and decode speed, time to first token and peak memory.
    Bench(bench::BenchArgs),
    /// List the writing tools and their options.
    Tools(tools::ToolsArgs),
    /// Your voice: a profile of your own writing that prose tools rank candidates by.
    Voice(voice::VoiceArgs),
    /// Grammar, spelling, punctuation and style findings by rule, with fixes to apply.
    Proofread(tools::ProofreadArgs),
    /// The web editor, the writing API and an OpenAI-compatible API on one local port.
    Serve(serve::ServeArgs),
    /// The config file (`config.toml`): where it is and what it sets.
    #[command(subcommand)]
    Config(config::ConfigCommand),
    /// Train models: `inkling train gpt --corpus FILE --out DIR` pretrains a GPT from scratch.
    #[command(subcommand)]
    Train(train::TrainCommand),
    /// Fine-tune the model on your own pages (LoRA): `inkling finetune --corpus my-stories/`.
    Finetune(train::FinetuneArgs),
    /// Evaluate models: `inkling eval perplexity --corpus FILE [--model ...]`.
    #[command(subcommand)]
    Eval(train::EvalCommand),
    /// A writing tool: `inkling brainstorm "a lighthouse keeper" -n 3` (see `inkling tools`).
    #[command(external_subcommand)]
    Tool(Vec<String>),
}

/// `INKLING_KERNELS=portable|avx2|avx512vnni` keeps the kernels at or below that instruction
/// set (to measure one path on a machine that has a better one); `INKLING_PORTABLE_KERNELS=1`
/// is the older spelling of `portable`. `INKLING_PREFETCH=off|current|ahead` overrides the
/// kernels' choice of software prefetch.
fn kernel_settings() -> anyhow::Result<()> {
    use inkling_engine::kernels::{Isa, limit_kernels};
    let env = config::env();
    if env.portable_kernels {
        limit_kernels(Isa::Portable);
    }
    if let Some(name) = &env.kernels {
        let isa = Isa::named(name).ok_or_else(|| {
            let names: Vec<_> = Isa::all().iter().map(|i| i.name()).collect();
            anyhow::anyhow!("INKLING_KERNELS={name} is not an instruction set inkling knows; use one of {}", names.join(", "))
        })?;
        limit_kernels(isa);
    }
    if let Some(name) = &env.prefetch {
        let choice = inkling_engine::kernels::WeightPrefetch::named(name)
            .ok_or_else(|| anyhow::anyhow!("INKLING_PREFETCH={name}: use off, current or ahead (unset, inkling chooses by the memory's page size)"))?;
        inkling_engine::kernels::set_weight_prefetch(choice);
    }
    Ok(())
}

fn main() {
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::try_from_env("INKLING_LOG").unwrap_or_else(|_| "warn".into())).with_writer(std::io::stderr).init();
    let cli = Cli::parse();
    // Read here, not in the engine: libraries take their settings from their callers.
    if let Err(e) = config::init().and_then(|()| kernel_settings()).and_then(|()| run(cli)) {
        // A broken remote stream still delivered text: show it rather than lose it.
        if let Some(inkling_engine::EngineError::Interrupted { partial, .. }) = e.downcast_ref::<inkling_engine::EngineError>() {
            for c in partial.candidates.iter().filter(|c| !c.text.is_empty()) {
                println!("── received before the break (candidate {}) ──\n{}", c.index + 1, c.text);
            }
        }
        eprintln!("error: {e:#}");
        if let Some(h) = hints::hint(&e) {
            eprintln!("  {h}");
        }
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    // Flags and their variables over the config file's [model] section.
    let model = cli.model.or(&config::model_defaults());
    match cli.command {
        Command::Generate(a) => generate::generate(&model, a),
        Command::Chat(a) => generate::chat(&model, a),
        Command::Tokenize(a) => generate::tokenize(&model, a),
        Command::Model(c) => models::run(&model, c),
        Command::Bench(a) => bench::bench(&model, a),
        Command::Project(a) => project::run(&model, a),
        Command::Tools(a) => tools::list(a),
        Command::Voice(a) => voice::run(a),
        Command::Proofread(a) => tools::proofread_cmd(&model, a),
        Command::Serve(a) => serve::serve(&model, a),
        Command::Config(c) => config::run(&cli.model, c),
        Command::Train(c) => train::train(&model, c),
        Command::Eval(c) => train::eval(&model, c),
        Command::Finetune(a) => train::finetune(&model, a),
        Command::Tool(argv) => tools::run_tool(&model, argv),
    }
}
