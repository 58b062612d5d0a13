//! `inkling train gpt` and `inkling eval perplexity`: CLI glue over inkling-train.

use crate::{ModelArgs, models};
use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use inkling_train::pretrain::{PLOT_FILE, STATE_FILE};
use inkling_train::{Corpus, Positions, PretrainConfig, Pretraining, TokenizerKind, TrainEvent};
use std::path::PathBuf;

#[derive(Subcommand, Debug)]
pub enum TrainCommand {
    /// Pretrain a GPT from scratch on a corpus (a text file or a folder of .txt/.md files).
    Gpt(GptArgs),
}

#[derive(Args, Debug)]
pub struct GptArgs {
    /// A text file, or a folder of .txt/.md files.
    #[arg(long)]
    corpus: PathBuf,
    /// Where the model, checkpoint, tokenizer and loss curve go (`--model DIR` loads it).
    #[arg(long)]
    out: PathBuf,
    /// `char` (one token per character) or `bpe` (byte-level BPE learned from the corpus).
    #[arg(long, default_value = "char")]
    tokenizer: TokenizerKind,
    /// BPE vocabulary size.
    #[arg(long, default_value_t = 1024)]
    vocab: usize,
    #[arg(long, default_value_t = 4)]
    layers: usize,
    #[arg(long, default_value_t = 4)]
    heads: usize,
    /// Embedding width.
    #[arg(long, default_value_t = 128)]
    embd: usize,
    /// Context length in tokens.
    #[arg(long, default_value_t = 64)]
    block: usize,
    /// `learned` or `sinusoidal` positional encoding.
    #[arg(long, default_value = "learned")]
    positions: Positions,
    /// Biases in linear layers and layer norms.
    #[arg(long)]
    bias: bool,
    #[arg(long, default_value_t = 12)]
    batch: usize,
    #[arg(long, default_value_t = 2000)]
    iters: usize,
    /// Peak learning rate.
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    #[arg(long, default_value_t = 1e-4)]
    min_lr: f64,
    #[arg(long, default_value_t = 100)]
    warmup: usize,
    /// Iteration where cosine decay reaches --min-lr (default: --iters).
    #[arg(long)]
    decay_iters: Option<usize>,
    #[arg(long, default_value_t = 0.1)]
    weight_decay: f64,
    /// Clip the gradient norm (0: off).
    #[arg(long, default_value_t = 1.0)]
    grad_clip: f64,
    /// Evaluate and checkpoint every N iterations.
    #[arg(long, default_value_t = 250)]
    eval_interval: usize,
    #[arg(long, default_value_t = 20)]
    eval_iters: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Continue the run saved in --out (same corpus; settings come from the checkpoint).
    #[arg(long)]
    resume: bool,
    /// Print one JSON line per evaluation instead of a progress bar.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand, Debug)]
pub enum EvalCommand {
    /// Perplexity of the model (--model: GGUF, catalog name or trained folder) over a text.
    Perplexity(PerplexityArgs),
}

#[derive(Args, Debug)]
pub struct PerplexityArgs {
    /// A text file or folder of .txt/.md files.
    #[arg(long)]
    corpus: PathBuf,
    /// Window in tokens (default: the context length, at most 512).
    #[arg(long)]
    window: Option<usize>,
    /// Tokens the window advances by (default: half the window).
    #[arg(long)]
    stride: Option<usize>,
    /// Score only the first N tokens.
    #[arg(long)]
    max_tokens: Option<usize>,
    #[arg(long)]
    json: bool,
}

pub fn train(model: &ModelArgs, cmd: TrainCommand) -> Result<()> {
    let TrainCommand::Gpt(a) = cmd;
    use_threads(model);
    let corpus = Corpus::read(&a.corpus)?;
    let mut run = if a.resume {
        if !a.out.join(STATE_FILE).is_file() {
            bail!("--resume: no checkpoint in {} (expected {STATE_FILE}); leave out --resume to start a new run", a.out.display());
        }
        Pretraining::resume(&corpus, &a.out)?
    } else {
        if a.out.join(STATE_FILE).is_file() {
            bail!("{} already holds a training run; add --resume to continue it, or choose another --out", a.out.display());
        }
        let mut config = PretrainConfig {
            tokenizer: a.tokenizer,
            bpe_vocab: a.vocab,
            n_layer: a.layers,
            n_head: a.heads,
            n_embd: a.embd,
            block_size: a.block,
            positions: a.positions,
            bias: a.bias,
            batch_size: a.batch,
            iters: a.iters,
            learning_rate: a.lr,
            min_lr: a.min_lr,
            warmup_iters: a.warmup,
            decay_iters: a.decay_iters.unwrap_or(a.iters),
            eval_interval: a.eval_interval,
            eval_iters: a.eval_iters,
            seed: a.seed,
            ..PretrainConfig::default()
        };
        config.optimizer.weight_decay = a.weight_decay;
        config.optimizer.grad_clip = a.grad_clip;
        Pretraining::start(&corpus, config, &a.out)?
    };
    if let Some(n) = model.threads {
        run.set_threads(n);
    }
    let c = run.config.clone();
    eprintln!(
        "{} parameters, {:?} tokenizer with {} tokens; {} training and {} validation tokens; {} iterations of {}x{} tokens{}",
        run.model.config.parameters(),
        c.tokenizer,
        run.tokenizer.vocab_size(),
        run.train_tokens(),
        run.val_tokens(),
        c.iters,
        c.batch_size,
        c.block_size,
        if run.iter > 0 { format!(", resuming after iteration {}", run.iter) } else { String::new() }
    );
    let bar = progress_bar(c.iters, run.iter, "{msg}", a.json)?;
    let stop = stop_on_ctrl_c();
    let json = a.json;
    run.run(&mut |e| {
        match e {
            TrainEvent::Step { iter, loss, lr, tokens_per_s, .. } => {
                bar.set_position(iter as u64);
                bar.set_message(format!("loss {loss:.4}  lr {lr:.2e}  {tokens_per_s:.0} tok/s"));
            }
            TrainEvent::Eval(p) => {
                if json {
                    println!("{}", serde_json::json!({"iter": p.iter, "train_loss": p.train_loss, "val_loss": p.val_loss}));
                } else {
                    bar.println(format!("iter {:>6}: train loss {:.4}, val loss {:.4}", p.iter, p.train_loss, p.val_loss));
                }
            }
            TrainEvent::Saved { .. } => {}
        }
        !stop.load(std::sync::atomic::Ordering::SeqCst)
    })?;
    bar.finish_and_clear();
    let last = run.evals.last();
    eprintln!(
        "{} iterations in {:.1} s ({:.1} ms/iter); val loss {}; saved to {} (loss curve: {PLOT_FILE}). Try: inkling generate --model {} \"...\"",
        run.iter,
        run.train_seconds(),
        run.train_seconds() * 1e3 / run.history.len().max(1) as f64,
        last.map_or("-".into(), |e| format!("{:.4}", e.val_loss)),
        a.out.display(),
        a.out.display()
    );
    if run.iter < c.iters {
        eprintln!("stopped early; continue with --resume");
    }
    Ok(())
}

/// Applies `--threads` to candle's own operations: candle sizes its worker pool from this
/// variable when the first tensor operation runs. (The steps' own threads are set on the run.)
fn use_threads(model: &ModelArgs) {
    if let Some(n) = model.threads {
        // SAFETY: called first thing in a command, before any other thread exists to read the
        // environment concurrently.
        unsafe { std::env::set_var("CANDLE_NUM_THREADS", n.max(1).to_string()) };
    }
}

/// A bar over `total` steps starting at `at`, with ETA; hidden when output is JSON lines.
fn progress_bar(total: usize, at: usize, what: &str, json: bool) -> Result<ProgressBar> {
    let bar = if json { ProgressBar::hidden() } else { ProgressBar::new(total as u64) };
    bar.set_style(ProgressStyle::with_template(&format!("{{bar:30}} {{pos}}/{{len}} {what} [{{elapsed_precise}}, ETA {{eta}}]"))?);
    bar.set_position(at as u64);
    Ok(bar)
}

/// A flag Ctrl-C raises: runs stop after saving rather than losing their work. Listens
/// through tokio's signal support (already a dependency); without it Ctrl-C kills as usual.
fn stop_on_ctrl_c() -> std::sync::Arc<std::sync::atomic::AtomicBool> {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    if let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() {
        std::thread::spawn(move || {
            rt.block_on(async {
                if tokio::signal::ctrl_c().await.is_ok() {
                    eprintln!("\nstopping after the next save…");
                    flag.store(true, std::sync::atomic::Ordering::SeqCst);
                }
            })
        });
    }
    stop
}

pub fn eval(model: &ModelArgs, cmd: EvalCommand) -> Result<()> {
    let EvalCommand::Perplexity(a) = cmd;
    let corpus = Corpus::read(&a.corpus)?;
    let engine = models::load(model)?;
    let window = a.window.unwrap_or(engine.context_length().min(512));
    let stride = a.stride.unwrap_or((window / 2).max(1));
    let mut tokens = engine.tokenizer().encode(&corpus.text, false);
    if let Some(n) = a.max_tokens {
        tokens.truncate(n);
    }
    let bar = progress_bar(tokens.len().saturating_sub(1), 0, "tokens", a.json)?;
    let p = inkling_train::perplexity::perplexity_of_tokens(&engine, &tokens, window, stride, &mut |done, _| bar.set_position(done as u64)).context("computing perplexity")?;
    bar.finish_and_clear();
    if a.json {
        println!("{}", serde_json::to_string_pretty(&serde_json::json!({"model": engine.info().name, "corpus": a.corpus, "result": p}))?);
    } else {
        println!("perplexity {:.4} (mean NLL {:.4} nats) over {} tokens, window {} stride {}, {:.1} s", p.perplexity, p.mean_nll, p.tokens_scored, p.window, p.stride, p.seconds);
    }
    Ok(())
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("pages").required(true).args(["corpus", "project"])))]
pub struct FinetuneArgs {
    /// The writer's own pages: a text file or a folder of .txt/.md files.
    #[arg(long)]
    corpus: Option<PathBuf>,
    /// Or a project's documents, at their current revisions: only what the writer typed or
    /// imported (text the model wrote is left out, edited or not).
    #[arg(long)]
    project: Option<String>,
    /// The project database for --project (default: inkling.db in the data folder).
    #[arg(long, env = "INKLING_DB")]
    db: Option<PathBuf>,
    /// Where the adapter goes (default: `inkling-adapter.gguf` in the corpus folder,
    /// `<file>.adapter.gguf` beside a corpus file, or `$INKLING_HOME/adapters/<project>.gguf`).
    #[arg(long)]
    out: Option<PathBuf>,
    /// LoRA rank.
    #[arg(long, default_value_t = 8)]
    rank: usize,
    /// LoRA alpha (the update is scaled by alpha / rank).
    #[arg(long, default_value_t = 16.0)]
    alpha: f64,
    /// Weights to adapt, comma-separated: q, k, v, o, gate, up, down.
    #[arg(long, default_value = "q,v", value_delimiter = ',')]
    targets: Vec<String>,
    /// Tokens per training window.
    #[arg(long, default_value_t = 128)]
    block: usize,
    #[arg(long, default_value_t = 4)]
    batch: usize,
    /// Iterations (default: two passes over the corpus, 20 to 2000).
    #[arg(long)]
    iters: Option<usize>,
    #[arg(long, default_value_t = 2e-3)]
    lr: f64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print one JSON line per evaluation instead of a progress bar.
    #[arg(long)]
    json: bool,
    /// Learn from the --project's accept/reject choices (DPO) instead of its pages:
    /// accepted suggestions over those shown beside them, your edits over the model's words.
    #[arg(long, requires = "project", conflicts_with = "corpus")]
    from_feedback: bool,
}

impl FinetuneArgs {
    fn lora(&self) -> inkling_train::LoraConfig {
        inkling_train::LoraConfig { rank: self.rank, alpha: self.alpha, targets: self.targets.clone() }
    }
}

/// The folder an adapter is written into, made if it is missing.
fn create_parent(out: &std::path::Path) -> Result<()> {
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    Ok(())
}

pub fn finetune(model: &ModelArgs, a: FinetuneArgs) -> Result<()> {
    use_threads(model);
    if model.adapter.is_some() {
        bail!("--adapter is for using an adapter; fine-tuning starts from the base model");
    }
    if a.from_feedback {
        return finetune_from_feedback(model, &a);
    }
    let (corpus, default_out) = match (&a.corpus, &a.project) {
        (Some(path), _) => {
            let out = if path.is_dir() { path.join("inkling-adapter.gguf") } else { path.with_extension("adapter.gguf") };
            (Corpus::read(path)?, out)
        }
        (None, Some(name)) => project_corpus(a.db.as_deref(), name)?,
        // clap requires one of the two.
        (None, None) => bail!("give --corpus FILE_OR_FOLDER or --project NAME"),
    };
    let base = models::resolve(model)?;
    let out = a.out.clone().unwrap_or(default_out);
    let config = inkling_train::FinetuneConfig { lora: a.lora(), block_size: a.block, batch_size: a.batch, iters: a.iters, learning_rate: a.lr, seed: a.seed, ..Default::default() };
    let mut run = inkling_train::Finetuning::start(&base, &corpus, config)?;
    create_parent(&out)?;
    eprintln!(
        "fine-tuning {} on {} training tokens: {} iterations of {}x{} tokens, {} trainable values (rank {}, {})",
        base.display(),
        run.train_tokens(),
        run.iters,
        a.batch,
        a.block,
        run.model.trainable_parameters(),
        a.rank,
        a.targets.join(",")
    );
    let iters = run.iters;
    first_step(iters, || Ok(run.step()?.loss))?;
    let bar = progress_bar(run.iters, run.iter, "{msg}", a.json)?;
    let stop = stop_on_ctrl_c();
    let json = a.json;
    run.run(&out, &mut |e| {
        match e {
            inkling_train::finetune::FinetuneEvent::Step { iter, loss, .. } => {
                bar.set_position(iter as u64);
                bar.set_message(format!("loss {loss:.4}"));
            }
            inkling_train::finetune::FinetuneEvent::Eval(p) => {
                if json {
                    println!("{}", serde_json::json!({"iter": p.iter, "train_loss": p.train_loss, "val_loss": p.val_loss}));
                } else {
                    bar.println(format!("iter {:>5}: train loss {:.4}, held-out loss {:.4}", p.iter, p.train_loss, p.val_loss));
                }
            }
        }
        !stop.load(std::sync::atomic::Ordering::SeqCst)
    })?;
    bar.finish_and_clear();
    let (first, last) = (run.evals.first(), run.evals.last());
    if let (Some(f), Some(l)) = (first, last) {
        eprintln!(
            "held-out loss {:.4} -> {:.4} (perplexity {:.2} -> {:.2}); adapter saved to {}\nuse it: inkling generate --adapter {} \"...\"",
            f.val_loss,
            l.val_loss,
            f.val_loss.exp(),
            l.val_loss.exp(),
            out.display(),
            out.display()
        );
    }
    Ok(())
}

/// `finetune --from-feedback --project P`: DPO on the project's preference pairs, measured on
/// the fifth held out before and after (the same run as the editor's "Learn from my choices").
fn finetune_from_feedback(model: &ModelArgs, a: &FinetuneArgs) -> Result<()> {
    let Some(name) = a.project.as_deref() else { bail!("--from-feedback learns from a project's choices; pass --project NAME") };
    let store = inkling_store::Store::open(&crate::project::db_or_default(a.db.as_deref()))?;
    let project = store.project(name)?;
    let pairs = store.feedback_pairs(&project)?;
    let edits = pairs.iter().filter(|p| p.kind == inkling_store::preferences::PairKind::EditedAfterAccept).count();
    eprintln!("learning from your choices in `{name}`: {} pairs ({} accepted over a candidate shown beside it, {edits} of your edits over the model's words)", pairs.len(), pairs.len() - edits);
    let base = models::resolve(model)?;
    let out = a.out.clone().unwrap_or_else(|| crate::learning::project_adapter(name, ".feedback"));
    let config = inkling_train::PreferenceConfig { lora: a.lora(), iters: a.iters, seed: a.seed, ..Default::default() };
    create_parent(&out)?;
    let mut bar: Option<indicatif::ProgressBar> = None;
    let stop = stop_on_ctrl_c();
    let mut on_progress = |p: crate::learning::Progress<'_>| -> bool {
        match p {
            crate::learning::Progress::Measured { train, held_out, preferred_before } => {
                eprintln!("{train} pairs to train on, {held_out} held out; the base prefers your choice in {preferred_before} of {held_out}");
            }
            crate::learning::Progress::Step(s) => {
                if s.step == 1 {
                    first_step_took(s.loss, s.seconds, s.steps);
                    bar = progress_bar(s.steps, s.step, "{msg}", a.json).ok();
                }
                if let Some(bar) = &bar {
                    bar.set_position(s.step as u64);
                    bar.set_message(format!("loss {:.4}", s.loss));
                }
            }
        }
        !stop.load(std::sync::atomic::Ordering::SeqCst)
    };
    let report = crate::learning::learn_from_choices(&base, &pairs, config, &out, &mut on_progress)?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let held = report.held_out;
    if a.json {
        println!("{}", serde_json::json!({"pairs": report.pairs, "held_out": held, "preferred_before": report.preferred_before, "preferred_after": report.preferred_after, "adapter": out}));
    }
    eprintln!(
        "held-out pairs where the model prefers your choice: {} -> {} of {held}; adapter saved to {}\nuse it: inkling --adapter {} continue ... (`inkling serve` uses it for the project by itself)",
        report.preferred_before,
        report.preferred_after,
        out.display(),
        out.display()
    );
    Ok(())
}

/// A project's documents in order, each at its current revision, as one corpus of the
/// writer's own text: what the authorship ledger marks as model-written is left out, accepted
/// as it came or edited since (training on it would teach the model its own voice back). And
/// the adapter's default place, `$INKLING_HOME/adapters/<project>.gguf`.
fn project_corpus(db: Option<&std::path::Path>, name: &str) -> Result<(Corpus, PathBuf)> {
    let store = inkling_store::Store::open(&crate::project::db_or_default(db))?;
    let project = store.project(name)?;
    let runs = store.writers_own_text(&project)?;
    let own: usize = runs.iter().map(|r| r.chars().count()).sum();
    let Some(text) = Corpus::join(runs) else {
        bail!("project `{name}` holds no text of your own yet; write or import some pages first (`inkling project import {name} FILE`)");
    };
    let share = store.report(&project)?.total;
    let with_text = store.documents(&project)?.len();
    eprintln!("learning from project `{name}`: {with_text} document(s), {own} characters of your own ({} characters the model wrote left out)", share.total().saturating_sub(share.writer),);
    Ok((Corpus::from_text(text), crate::learning::project_adapter(name, "")))
}

/// Times the first step before committing the writer to the whole run, and says how long
/// the run will take.
fn first_step(iters: usize, step: impl FnOnce() -> Result<f32>) -> Result<()> {
    let t0 = std::time::Instant::now();
    let loss = step()?;
    first_step_took(loss, t0.elapsed().as_secs_f64(), iters);
    Ok(())
}

fn first_step_took(loss: f32, seconds: f64, iters: usize) {
    eprintln!("first step: loss {loss:.3} in {seconds:.1} s; the whole run takes about {:.0} min (Ctrl-C stops and keeps the adapter so far)", seconds * iters as f64 * 1.1 / 60.0);
}
