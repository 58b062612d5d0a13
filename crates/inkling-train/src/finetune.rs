//! Fine-tuning a GGUF model on a writer's own pages with LoRA: the base stays frozen, small
//! adapters learn the writer's voice, and the result is one adapter file
//! (`inkling generate --adapter FILE`).

use crate::adamw::{AdamW, AdamWConfig, learning_rate};
use crate::corpus::Corpus;
use crate::error::{Result, TrainError};
use crate::lora::{FrozenBase, LoraConfig, LoraModel, base_bytes};
use crate::pretrain::{BatchShape, EvalPoint, LossPoint, PretrainConfig, batch_tensors, check_memory, evaluate_splits, optimisation_step, split};
use inkling_engine::gguf::GgufFile;
use inkling_engine::model::ModelConfig;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Instant;

/// Below this many tokens a corpus is too small to teach a voice (about three pages).
pub const MIN_CORPUS_TOKENS: usize = 1000;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FinetuneConfig {
    pub lora: LoraConfig,
    pub block_size: usize,
    pub batch_size: usize,
    /// Default: two passes over the training tokens, between 20 and 2000 iterations.
    pub iters: Option<usize>,
    pub learning_rate: f64,
    pub warmup_iters: usize,
    pub eval_iters: usize,
    pub eval_interval: usize,
    pub val_fraction: f64,
    pub seed: u64,
}

impl Default for FinetuneConfig {
    fn default() -> Self {
        Self { lora: LoraConfig::default(), block_size: 128, batch_size: 4, iters: None, learning_rate: 2e-3, warmup_iters: 10, eval_iters: 4, eval_interval: 100, val_fraction: 0.1, seed: 1 }
    }
}

pub enum FinetuneEvent<'a> {
    Step { iter: usize, iters: usize, loss: f32, seconds: f64 },
    Eval(&'a EvalPoint),
}

pub struct Finetuning {
    pub config: FinetuneConfig,
    pub model: LoraModel,
    optimizer: AdamW,
    train: Vec<u32>,
    val: Vec<u32>,
    pub iters: usize,
    pub iter: usize,
    pub history: Vec<LossPoint>,
    pub evals: Vec<EvalPoint>,
    base_name: String,
}

/// Bytes a fine-tuning run needs: the f32 base, and the activations autograd keeps.
pub fn memory_estimate(file: &GgufFile, c: &ModelConfig, block: usize, batch: usize) -> u64 {
    let tokens = (block * batch) as u64;
    let per_layer = tokens * (12 * c.n_embd as u64 + 4 * c.n_ff as u64) + 3 * (batch * c.n_head * block * block) as u64;
    let logits = 3 * tokens * c.vocab_size as u64;
    base_bytes(file) + 4 * (c.n_layer as u64 * per_layer + logits)
}

impl Finetuning {
    /// Prepares a run on the GGUF model at `base`: checks memory and corpus size, loads the
    /// frozen base, tokenizes the corpus with the model's own tokenizer.
    pub fn start(base: &Path, corpus: &Corpus, config: FinetuneConfig) -> Result<Self> {
        config.lora.validate()?;
        crate::fused::keep_freed_memory();
        if config.batch_size == 0 || config.block_size < 8 {
            return Err(TrainError::InvalidSetting("--batch must be at least 1 and --block at least 8".into()));
        }
        let file = GgufFile::open(base)?;
        let model_config = ModelConfig::from_gguf(&file)?;
        check_memory(memory_estimate(&file, &model_config, config.block_size, config.batch_size))?;
        let tokenizer = inkling_engine::Tokenizer::from_gguf(&file)?;
        let ids = tokenizer.encode(&corpus.text, false);
        if ids.len() < MIN_CORPUS_TOKENS {
            return Err(TrainError::CorpusTooSmall { have: ids.len(), need: MIN_CORPUS_TOKENS, why: "fine-tuning on less than a few pages teaches the model nothing it can use".into() });
        }
        let context = model_config.context_length;
        if config.block_size > context {
            return Err(TrainError::InvalidSetting(format!("--block {} is longer than the model's context of {context}", config.block_size)));
        }
        let split_config = PretrainConfig { block_size: config.block_size, val_fraction: config.val_fraction, ..PretrainConfig::default() };
        let (train, val) = split(ids, &split_config)?;
        let iters = config.iters.unwrap_or_else(|| (2 * train.len() / (config.block_size * config.batch_size)).clamp(20, 2000));
        let base_name = file.get_str("general.name").unwrap_or("the base model").to_string();
        let model = LoraModel::new(FrozenBase::load(&file)?, config.lora.clone(), config.seed)?;
        let optimizer = AdamW::new(AdamWConfig { weight_decay: 0.0, ..AdamWConfig::default() }, &model.params);
        Ok(Self { config, model, optimizer, train, val, iters, iter: 0, history: Vec::new(), evals: Vec::new(), base_name })
    }

    pub fn train_tokens(&self) -> usize {
        self.train.len()
    }

    pub fn step(&mut self) -> Result<LossPoint> {
        let c = &self.config;
        let lr = learning_rate(self.iter, c.learning_rate, c.learning_rate / 10.0, c.warmup_iters, self.iters);
        let shape = BatchShape { batch: c.batch_size, block: c.block_size, seed: c.seed };
        let model = &self.model;
        let loss = optimisation_step(&model.params, &mut self.optimizer, &self.train, shape, self.iter, lr, &|x, y| model.loss(x, y))?;
        let p = LossPoint { iter: self.iter, loss, lr };
        self.iter += 1;
        self.history.push(p.clone());
        Ok(p)
    }

    /// Mean loss over fixed batches of each split.
    pub fn evaluate(&self) -> Result<EvalPoint> {
        let c = &self.config;
        let shape = BatchShape { batch: c.batch_size, block: c.block_size, seed: c.seed };
        evaluate_splits(&self.train, &self.val, shape, c.eval_iters, self.iter, &mut |x, y| {
            let (x, y) = batch_tensors(x, y, shape)?;
            Ok(self.model.loss(&x, &y)?.to_scalar::<f32>()?)
        })
    }

    /// Trains to the end, evaluating at the start, every `eval_interval` and at the end, and
    /// saving the adapter to `out` after each evaluation. `on_event` returning false stops
    /// (the adapter so far is saved).
    pub fn run(&mut self, out: &Path, on_event: &mut dyn FnMut(FinetuneEvent<'_>) -> bool) -> Result<()> {
        if self.evals.is_empty() {
            let e = self.evaluate()?;
            on_event(FinetuneEvent::Eval(&e));
            self.evals.push(e);
        }
        while self.iter < self.iters {
            let t0 = Instant::now();
            let p = self.step()?;
            let go_on = on_event(FinetuneEvent::Step { iter: self.iter, iters: self.iters, loss: p.loss, seconds: t0.elapsed().as_secs_f64() });
            if !go_on || self.iter == self.iters || self.iter.is_multiple_of(self.config.eval_interval.max(1)) {
                let e = self.evaluate()?;
                on_event(FinetuneEvent::Eval(&e));
                self.evals.push(e);
                self.save(out)?;
            }
            if !go_on {
                break;
            }
        }
        Ok(())
    }

    pub fn save(&self, out: &Path) -> Result<()> {
        self.model.write_adapter(out, &self.base_name)
    }
}
