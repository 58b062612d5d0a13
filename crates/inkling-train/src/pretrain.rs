//! Pretraining a GPT from scratch on a corpus: tokenizer, train/validation split, batches,
//! AdamW with warmup and cosine decay, periodic evaluation, checkpoints that resume exactly,
//! the exported model and the loss curve.
//!
//! Reproducibility: the weights come from the seed, and the batch of iteration `i` is drawn
//! from a generator seeded by `(seed, i)`, so a run resumed at iteration `i` draws the same
//! batches as one that never stopped; with the weights and the optimiser's moments restored
//! from the checkpoint, its losses are identical.

use crate::adamw::{AdamW, AdamWConfig, learning_rate};
use crate::corpus::Corpus;
use crate::cpu::CpuGpt;
use crate::error::{Result, TrainError};
use crate::export::write_gguf;
use crate::gpt::{GptConfig, Param, Positions};
use crate::plot::{Curve, loss_curve};
use crate::tokenize::{TextTokenizer, TokenizerKind};
use candle_core::{Device, Tensor};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Everything that defines a pretraining run (defaults: nanoGPT's CPU "baby GPT").
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PretrainConfig {
    pub tokenizer: TokenizerKind,
    /// Vocabulary size for BPE.
    pub bpe_vocab: usize,
    pub n_layer: usize,
    pub n_head: usize,
    pub n_embd: usize,
    pub block_size: usize,
    pub positions: Positions,
    pub bias: bool,
    pub batch_size: usize,
    pub iters: usize,
    pub learning_rate: f64,
    pub min_lr: f64,
    pub warmup_iters: usize,
    pub decay_iters: usize,
    pub optimizer: AdamWConfig,
    /// Evaluate (and checkpoint) every this many iterations, and at the end.
    pub eval_interval: usize,
    /// Batches per split in an evaluation.
    pub eval_iters: usize,
    /// Share of the corpus (its end) held out for validation.
    pub val_fraction: f64,
    pub seed: u64,
}

impl Default for PretrainConfig {
    fn default() -> Self {
        Self {
            tokenizer: TokenizerKind::Char,
            bpe_vocab: 1024,
            n_layer: 4,
            n_head: 4,
            n_embd: 128,
            block_size: 64,
            positions: Positions::Learned,
            bias: false,
            batch_size: 12,
            iters: 2000,
            learning_rate: 1e-3,
            min_lr: 1e-4,
            warmup_iters: 100,
            decay_iters: 2000,
            optimizer: AdamWConfig::default(),
            eval_interval: 250,
            eval_iters: 20,
            val_fraction: 0.1,
            seed: 1,
        }
    }
}

/// Training loss at one iteration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LossPoint {
    pub iter: usize,
    pub loss: f32,
    pub lr: f64,
}

/// An evaluation: mean loss over fixed batches of each split.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalPoint {
    pub iter: usize,
    pub train_loss: f32,
    pub val_loss: f32,
}

/// What `train-state.json` holds beside the tensors.
#[derive(Serialize, Deserialize)]
struct TrainState {
    config: PretrainConfig,
    gpt: GptConfig,
    /// Iterations completed.
    iter: usize,
    adam_step: u64,
    corpus_sha256: String,
    history: Vec<LossPoint>,
    evals: Vec<EvalPoint>,
    train_seconds: f64,
}

/// Progress of a run, for progress bars.
pub enum TrainEvent<'a> {
    Step { iter: usize, iters: usize, loss: f32, lr: f64, tokens_per_s: f64, elapsed_s: f64 },
    Eval(&'a EvalPoint),
    Saved { dir: &'a Path, iter: usize },
}

/// Files of a run directory.
pub const MODEL_FILE: &str = inkling_engine::engine::TRAINED_MODEL_FILE;
pub const STATE_FILE: &str = "train-state.json";
pub const TENSORS_FILE: &str = "checkpoint.safetensors";
pub const PLOT_FILE: &str = "loss.svg";

/// A pretraining run in progress.
pub struct Pretraining {
    pub config: PretrainConfig,
    pub tokenizer: TextTokenizer,
    /// The model being trained (its reference form: [`CpuGpt::to_gpt`]).
    pub model: CpuGpt,
    optimizer: AdamW,
    /// Threads a step runs on (see [`Pretraining::set_threads`]).
    threads: usize,
    train: Vec<u32>,
    val: Vec<u32>,
    /// Iterations completed.
    pub iter: usize,
    pub history: Vec<LossPoint>,
    pub evals: Vec<EvalPoint>,
    corpus_sha256: String,
    train_seconds: f64,
    dir: PathBuf,
}

pub(crate) fn sha256(text: &str) -> String {
    Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Splits token ids into train and validation, checking each can fill a batch.
pub(crate) fn split(ids: Vec<u32>, config: &PretrainConfig) -> Result<(Vec<u32>, Vec<u32>)> {
    let need = config.block_size + 2;
    let n_val = ((ids.len() as f64) * config.val_fraction).round() as usize;
    if n_val < need || ids.len() - n_val < need {
        let need_total = ((need as f64 / config.val_fraction.clamp(0.01, 0.99)).ceil() as usize).max(2 * need);
        return Err(TrainError::CorpusTooSmall {
            have: ids.len(),
            need: need_total,
            why: format!("both the training part and the {:.0}% held out for validation must hold more than one block of {} tokens", config.val_fraction * 100.0, config.block_size),
        });
    }
    let val = ids[ids.len() - n_val..].to_vec();
    let mut train = ids;
    train.truncate(train.len() - n_val);
    Ok((train, val))
}

/// `batch` random windows of `data`: inputs (B·T token ids) and the next tokens (B·T).
fn batch_ids(data: &[u32], batch: usize, block: usize, rng: &mut StdRng) -> (Vec<u32>, Vec<u32>) {
    let mut x = Vec::with_capacity(batch * block);
    let mut y = Vec::with_capacity(batch * block);
    for _ in 0..batch {
        let o = rng.random_range(0..data.len() - block - 1);
        x.extend_from_slice(&data[o..o + block]);
        y.extend_from_slice(&data[o + 1..o + block + 1]);
    }
    (x, y)
}

/// A batch's ids as (B, T) tensors.
pub(crate) fn batch_tensors(x: Vec<u32>, y: Vec<u32>, shape: BatchShape) -> Result<(Tensor, Tensor)> {
    let dev = Device::Cpu;
    Ok((Tensor::from_vec(x, (shape.batch, shape.block), &dev)?, Tensor::from_vec(y, (shape.batch, shape.block), &dev)?))
}

/// How batches are drawn: `batch` windows of `block` tokens, from generators seeded by `seed`.
#[derive(Clone, Copy)]
pub(crate) struct BatchShape {
    pub batch: usize,
    pub block: usize,
    pub seed: u64,
}

type LossFn<'a> = &'a dyn Fn(&Tensor, &Tensor) -> Result<Tensor>;

/// The token ids of iteration `iter`'s batch of `data`: inputs and targets.
pub(crate) fn step_batch(data: &[u32], shape: BatchShape, iter: usize) -> (Vec<u32>, Vec<u32>) {
    batch_ids(data, shape.batch, shape.block, &mut step_rng(shape.seed, iter))
}

/// One AdamW step of `loss` on iteration `iter`'s batch of `data`; returns the loss before it.
pub(crate) fn optimisation_step(params: &[Param], optimizer: &mut AdamW, data: &[u32], shape: BatchShape, iter: usize, lr: f64, loss: LossFn<'_>) -> Result<f32> {
    let (x, y) = step_batch(data, shape, iter);
    let (x, y) = batch_tensors(x, y, shape)?;
    let loss = loss(&x, &y)?;
    optimizer.step(params, &loss.backward()?, lr)?;
    Ok(loss.to_scalar::<f32>()?)
}

/// Mean of `loss` (of a batch's input and target ids) over `n` batches of each split, the
/// same batches at every evaluation.
pub(crate) fn evaluate_splits(train: &[u32], val: &[u32], shape: BatchShape, n: usize, iter: usize, loss: &mut dyn FnMut(Vec<u32>, Vec<u32>) -> Result<f32>) -> Result<EvalPoint> {
    let mut mean = |data: &[u32], salt: u64| -> Result<f32> {
        let mut rng = StdRng::seed_from_u64(shape.seed ^ salt);
        let mut sum = 0.0;
        for _ in 0..n.max(1) {
            let (x, y) = batch_ids(data, shape.batch, shape.block, &mut rng);
            sum += loss(x, y)?;
        }
        Ok(sum / n.max(1) as f32)
    };
    Ok(EvalPoint { iter, train_loss: mean(train, 0x7EA1)?, val_loss: mean(val, 0x5A11)? })
}

/// The generator of iteration `iter`'s batch (see the module doc).
fn step_rng(seed: u64, iter: usize) -> StdRng {
    StdRng::seed_from_u64(seed ^ (iter as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// Bytes of memory a run needs, roughly: parameters, gradients and two moments, a gradient
/// per worker thread, and the activations the step keeps for one batch (`cpu::Activations`).
pub fn memory_estimate(gpt: &GptConfig, batch: usize, threads: usize) -> u64 {
    let (b, t, d, h) = (batch as u64, gpt.block_size as u64, gpt.n_embd as u64, gpt.n_head as u64);
    let params = gpt.parameters() as u64 * 4 * (4 + threads as u64);
    let per_layer = b * t * (17 * d) + b * h * t * t;
    let rest = b * t * (gpt.vocab_size as u64 + 16 * d);
    params + 4 * (gpt.n_layer as u64 * per_layer + rest)
}

/// Threads for a step unless [`Pretraining::set_threads`] says otherwise: the cores
/// available (so the memory check at start is for the most a run can use).
fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Memory the system can still give, from /proc/meminfo (None where unknown).
pub fn available_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Refuses a run that would not fit in memory.
pub fn check_memory(need: u64) -> Result<()> {
    if let Some(have) = available_memory()
        && need > have
    {
        return Err(TrainError::TooLarge { need_mib: need >> 20, have_mib: have >> 20 });
    }
    Ok(())
}

impl Pretraining {
    /// Starts a new run writing to `dir`: trains the tokenizer and initialises the model.
    pub fn start(corpus: &Corpus, config: PretrainConfig, dir: &Path) -> Result<Self> {
        crate::fused::keep_freed_memory();
        if config.batch_size == 0 || config.iters == 0 {
            return Err(TrainError::InvalidSetting("--batch and --iters must be at least 1".into()));
        }
        if !(0.0..1.0).contains(&config.val_fraction) || config.val_fraction == 0.0 {
            return Err(TrainError::InvalidSetting("the validation share must be between 0 and 1".into()));
        }
        let tokenizer = match config.tokenizer {
            TokenizerKind::Char => TextTokenizer::train_char(&corpus.text),
            TokenizerKind::Bpe => TextTokenizer::train_bpe(&corpus.text, config.bpe_vocab)?,
        };
        let gpt = GptConfig {
            vocab_size: tokenizer.vocab_size(),
            block_size: config.block_size,
            n_layer: config.n_layer,
            n_head: config.n_head,
            n_embd: config.n_embd,
            positions: config.positions,
            bias: config.bias,
        };
        gpt.validate()?;
        let threads = default_threads();
        check_memory(memory_estimate(&gpt, config.batch_size, threads))?;
        let (train, val) = split(tokenizer.encode(&corpus.text)?, &config)?;
        let model = CpuGpt::new(gpt, config.seed)?;
        let optimizer = AdamW::with_sizes(config.optimizer.clone(), model.slots.iter().map(|s| s.range.len()));
        std::fs::create_dir_all(dir).map_err(TrainError::write(dir))?;
        Ok(Self {
            tokenizer,
            model,
            optimizer,
            threads,
            train,
            val,
            iter: 0,
            history: Vec::new(),
            evals: Vec::new(),
            corpus_sha256: sha256(&corpus.text),
            train_seconds: 0.0,
            dir: dir.to_path_buf(),
            config,
        })
    }

    /// Continues the run saved in `dir` on the same corpus.
    pub fn resume(corpus: &Corpus, dir: &Path) -> Result<Self> {
        crate::fused::keep_freed_memory();
        let state_path = dir.join(STATE_FILE);
        let bad = |reason: String| TrainError::Checkpoint { path: dir.to_path_buf(), reason };
        let json = std::fs::read_to_string(&state_path).map_err(TrainError::io(&state_path))?;
        let state: TrainState = serde_json::from_str(&json).map_err(|e| bad(format!("{STATE_FILE} is unreadable: {e}")))?;
        if state.corpus_sha256 != sha256(&corpus.text) {
            return Err(bad("the corpus is not the one this run was trained on; resume with the same files, or start a new run".into()));
        }
        let tokenizer = TextTokenizer::load(dir)?;
        let tensors = candle_core::safetensors::load(dir.join(TENSORS_FILE), &Device::Cpu).map_err(|e| bad(format!("{TENSORS_FILE}: {e}")))?;
        let mut model = CpuGpt::new(state.gpt.clone(), state.config.seed)?;
        let mut optimizer = AdamW::with_sizes(state.config.optimizer.clone(), model.slots.iter().map(|s| s.range.len()));
        let names: Vec<String> = model.slots.iter().map(|s| s.name.clone()).collect();
        for (i, name) in names.iter().enumerate() {
            let get = |key: String| -> Result<Vec<f32>> {
                let t = tensors.get(&key).ok_or_else(|| bad(format!("{key} is missing")))?;
                Ok(t.flatten_all()?.to_vec1()?)
            };
            model.set(name, &get(format!("param.{name}"))?).map_err(|e| bad(e.to_string()))?;
            optimizer.m[i] = get(format!("adam.m.{name}"))?;
            optimizer.v[i] = get(format!("adam.v.{name}"))?;
            if optimizer.m[i].len() != model.slots[i].range.len() || optimizer.v[i].len() != model.slots[i].range.len() {
                return Err(bad(format!("the optimiser state of `{name}` has the wrong size")));
            }
        }
        optimizer.step = state.adam_step;
        let (train, val) = split(tokenizer.encode(&corpus.text)?, &state.config)?;
        Ok(Self {
            tokenizer,
            model,
            optimizer,
            threads: default_threads(),
            train,
            val,
            iter: state.iter,
            history: state.history,
            evals: state.evals,
            corpus_sha256: state.corpus_sha256,
            train_seconds: state.train_seconds,
            dir: dir.to_path_buf(),
            config: state.config,
        })
    }

    pub fn train_tokens(&self) -> usize {
        self.train.len()
    }

    pub fn val_tokens(&self) -> usize {
        self.val.len()
    }

    /// One optimisation step; returns the batch's loss before the update.
    pub fn step(&mut self) -> Result<LossPoint> {
        let c = &self.config;
        let lr = learning_rate(self.iter, c.learning_rate, c.min_lr, c.warmup_iters, c.decay_iters);
        let shape = BatchShape { batch: c.batch_size, block: c.block_size, seed: c.seed };
        let (x, y) = step_batch(&self.train, shape, self.iter);
        let loss = self.model.loss(&x, &y, shape.batch, shape.block, self.threads, true)?;
        let model = &mut self.model;
        self.optimizer.step_flat(&mut model.weights, &model.grads, &model.slots, lr);
        let point = LossPoint { iter: self.iter, loss, lr };
        self.iter += 1;
        self.history.push(point.clone());
        Ok(point)
    }

    /// Mean loss over the same `eval_iters` batches of each split every time.
    pub fn evaluate(&mut self) -> Result<EvalPoint> {
        let c = &self.config;
        let shape = BatchShape { batch: c.batch_size, block: c.block_size, seed: c.seed };
        let (model, threads) = (&mut self.model, self.threads);
        evaluate_splits(&self.train, &self.val, shape, c.eval_iters, self.iter, &mut |x, y| model.loss(&x, &y, shape.batch, shape.block, threads, false))
    }

    /// Runs steps on `n` threads (default: the cores). Losses are reproducible for a given thread count; another count sums the
    /// batch's gradients in another order, which moves the last bits.
    pub fn set_threads(&mut self, n: usize) {
        self.threads = n.max(1);
    }

    /// Writes the checkpoint, the engine-loadable model, the tokenizer and the loss curve.
    pub fn save(&self) -> Result<()> {
        let dir = &self.dir;
        let mut tensors: HashMap<String, Tensor> = HashMap::new();
        for (i, s) in self.model.slots.iter().enumerate() {
            let shape = s.shape.as_slice();
            tensors.insert(format!("param.{}", s.name), Tensor::from_slice(&self.model.weights[s.range.clone()], shape, &Device::Cpu)?);
            tensors.insert(format!("adam.m.{}", s.name), Tensor::from_slice(&self.optimizer.m[i], shape, &Device::Cpu)?);
            tensors.insert(format!("adam.v.{}", s.name), Tensor::from_slice(&self.optimizer.v[i], shape, &Device::Cpu)?);
        }
        // Write beside, then rename: a crash mid-save leaves the previous checkpoint whole.
        let tmp = dir.join(format!("{TENSORS_FILE}.tmp"));
        candle_core::safetensors::save(&tensors, &tmp)?;
        std::fs::rename(&tmp, dir.join(TENSORS_FILE)).map_err(TrainError::write(dir.join(TENSORS_FILE)))?;
        self.tokenizer.save(dir)?;
        let name = dir.file_name().map_or_else(|| "inkling-gpt".to_string(), |n| n.to_string_lossy().into_owned());
        write_gguf(&self.model.to_gpt()?, &self.tokenizer, &name, &dir.join(MODEL_FILE))?;
        let state = TrainState {
            config: self.config.clone(),
            gpt: self.model.config.clone(),
            iter: self.iter,
            adam_step: self.optimizer.step,
            corpus_sha256: self.corpus_sha256.clone(),
            history: self.history.clone(),
            evals: self.evals.clone(),
            train_seconds: self.train_seconds,
        };
        let json = serde_json::to_string_pretty(&state).map_err(|e| TrainError::InvalidSetting(e.to_string()))?;
        let tmp = dir.join(format!("{STATE_FILE}.tmp"));
        std::fs::write(&tmp, json).map_err(TrainError::write(&tmp))?;
        std::fs::rename(&tmp, dir.join(STATE_FILE)).map_err(TrainError::write(dir.join(STATE_FILE)))?;
        self.plot()
    }

    fn plot(&self) -> Result<()> {
        let curves = [
            Curve { label: "train (batch)", points: self.history.iter().map(|p| (p.iter as f64, p.loss as f64)).collect() },
            Curve { label: "train (eval)", points: self.evals.iter().map(|e| (e.iter as f64, e.train_loss as f64)).collect() },
            Curve { label: "validation", points: self.evals.iter().map(|e| (e.iter as f64, e.val_loss as f64)).collect() },
        ];
        loss_curve(&self.dir.join(PLOT_FILE), "inkling train gpt: loss", &curves)
    }

    /// Trains until `config.iters`, evaluating and saving every `eval_interval` iterations
    /// and at the end. `on_event` returning false stops after saving a checkpoint.
    pub fn run(&mut self, on_event: &mut dyn FnMut(TrainEvent<'_>) -> bool) -> Result<()> {
        let tokens_per_step = (self.config.batch_size * self.config.block_size) as f64;
        while self.iter < self.config.iters {
            let t0 = Instant::now();
            let p = self.step()?;
            let dt = t0.elapsed().as_secs_f64();
            self.train_seconds += dt;
            let go_on = on_event(TrainEvent::Step { iter: self.iter, iters: self.config.iters, loss: p.loss, lr: p.lr, tokens_per_s: tokens_per_step / dt.max(1e-9), elapsed_s: self.train_seconds });
            let at_end = self.iter == self.config.iters;
            if !go_on || at_end || self.iter.is_multiple_of(self.config.eval_interval.max(1)) {
                let e = self.evaluate()?;
                on_event(TrainEvent::Eval(&e));
                self.evals.push(e);
                self.save()?;
                on_event(TrainEvent::Saved { dir: &self.dir, iter: self.iter });
            }
            if !go_on {
                break;
            }
        }
        Ok(())
    }

    /// Seconds spent in training steps so far (resumed runs included).
    pub fn train_seconds(&self) -> f64 {
        self.train_seconds
    }
}
