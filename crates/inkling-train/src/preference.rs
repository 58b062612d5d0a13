//! Learning from the writer's choices: Direct Preference Optimization (Rafailov et al. 2023)
//! of LoRA adapters on (prompt, accepted, rejected) triples.
//!
//! For each pair, with π the adapted model and π₀ the base,
//! `loss = −log σ(β · [(log π(y_w|x) − log π₀(y_w|x)) − (log π(y_l|x) − log π₀(y_l|x))])`.
//!
//! Why DPO rather than ORPO or SimPO here: the adapters start at B = 0, so the reference model
//! is the frozen base exactly, and its log-probabilities are computed once per pair before
//! training: no second model in memory and no second pass per step. DPO's reference term
//! holds the adapted model near the base on everything the pairs do not speak to, which is
//! what keeps the writer's other pages and unrelated text from drifting; the
//! reference-free losses give that anchor up for a length or odds term. The base is the same
//! dequantized frozen model fine-tuning uses ([`crate::lora`]).

use crate::adamw::{AdamW, AdamWConfig, learning_rate};
use crate::error::{Result, TrainError};
use crate::gpt::log_softmax_last_dim;
use crate::lora::{FrozenBase, LoraConfig, LoraModel};
use crate::pretrain::check_memory;
use candle_core::{Device, Tensor};
use inkling_engine::Tokenizer;
use inkling_engine::gguf::GgufFile;
use inkling_engine::model::ModelConfig;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Fewer pairs than this teach nothing a writer would notice, and leave none to check with.
pub const MIN_PAIRS: usize = 8;

/// One choice the writer made: of two answers to the same prompt, `chosen` over `rejected`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PreferencePair {
    pub prompt: String,
    pub chosen: String,
    pub rejected: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PreferenceConfig {
    pub lora: LoraConfig,
    /// How far from the base the adapters may go for a margin (DPO's β).
    pub beta: f64,
    pub learning_rate: f64,
    /// Default: four passes over the training pairs, between 10 and 400 steps.
    pub iters: Option<usize>,
    /// Pairs whose losses are summed into one step.
    pub pairs_per_step: usize,
    /// The end of the prompt kept, and the start of each answer, in tokens.
    pub max_prompt_tokens: usize,
    pub max_answer_tokens: usize,
    /// Every fifth pair is held out to measure with (at least two).
    pub seed: u64,
}

impl PreferenceConfig {
    /// Of `pairs` usable pairs, how many are held out to measure with (every fifth).
    pub fn held_out(pairs: usize) -> usize {
        pairs / 5
    }

    /// Steps a run over `train` training pairs takes: `iters`, or four passes over them
    /// between 10 and 400 steps.
    pub fn steps(&self, train: usize) -> usize {
        self.iters.unwrap_or_else(|| (4 * train / self.pairs_per_step.max(1)).clamp(10, 400))
    }
}

impl Default for PreferenceConfig {
    fn default() -> Self {
        Self { lora: LoraConfig::default(), beta: 0.1, learning_rate: 1e-3, iters: None, pairs_per_step: 2, max_prompt_tokens: 192, max_answer_tokens: 256, seed: 1 }
    }
}

/// A pair in tokens, with the base's log-probabilities of its two answers.
struct Encoded {
    prompt: Vec<u32>,
    chosen: Vec<u32>,
    rejected: Vec<u32>,
    ref_chosen: f32,
    ref_rejected: f32,
}

/// How often a model prefers the writer's choice: its mean log-likelihood per token of the
/// chosen answer above the rejected one's (per token, so a shorter answer wins nothing by
/// being short).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PreferenceAccuracy {
    pub pairs: usize,
    pub preferred: usize,
}

impl PreferenceAccuracy {
    pub fn rate(&self) -> f64 {
        if self.pairs == 0 { 0.0 } else { self.preferred as f64 / self.pairs as f64 }
    }
}

pub enum PreferenceEvent {
    Step { iter: usize, iters: usize, loss: f32, seconds: f64 },
}

pub struct PreferenceTuning {
    pub config: PreferenceConfig,
    pub model: LoraModel,
    optimizer: AdamW,
    train: Vec<Encoded>,
    held_out: Vec<Encoded>,
    pub iters: usize,
    pub iter: usize,
    base_name: String,
}

impl PreferenceTuning {
    /// Loads the base at `base`, tokenizes the pairs (dropping those whose answers are the
    /// same), holds every fifth out, and scores each answer under the base once.
    pub fn start(base: &Path, pairs: &[PreferencePair], config: PreferenceConfig) -> Result<Self> {
        config.lora.validate()?;
        if config.pairs_per_step == 0 || config.max_answer_tokens == 0 || config.beta <= 0.0 {
            return Err(TrainError::InvalidSetting("pairs per step and answer tokens must be at least 1, and beta above 0".into()));
        }
        crate::fused::keep_freed_memory();
        let file = GgufFile::open(base)?;
        let model_config = ModelConfig::from_gguf(&file)?;
        let longest = config.max_prompt_tokens + config.max_answer_tokens;
        check_memory(crate::finetune::memory_estimate(&file, &model_config, longest.min(model_config.context_length), 2))?;
        let tokenizer = Tokenizer::from_gguf(&file)?;
        let encoded: Vec<(Vec<u32>, Vec<u32>, Vec<u32>)> = pairs.iter().filter_map(|p| encode(&tokenizer, p, &config, model_config.context_length)).collect();
        if encoded.len() < MIN_PAIRS {
            return Err(TrainError::TooFewPairs { have: encoded.len(), need: MIN_PAIRS });
        }
        let base_name = file.get_str("general.name").unwrap_or("the base model").to_string();
        let model = LoraModel::new(FrozenBase::load(&file)?, config.lora.clone(), config.seed)?;
        let mut train = Vec::new();
        let mut held_out = Vec::new();
        for (i, (prompt, chosen, rejected)) in encoded.into_iter().enumerate() {
            // B = 0: the model is the base, so these are the reference's figures.
            let ref_chosen = answer_logp(&model, &prompt, &chosen)?.to_scalar::<f32>()?;
            let ref_rejected = answer_logp(&model, &prompt, &rejected)?.to_scalar::<f32>()?;
            let e = Encoded { prompt, chosen, rejected, ref_chosen, ref_rejected };
            // Every fifth, as `PreferenceConfig::held_out` counts them.
            if i % 5 == 4 { held_out.push(e) } else { train.push(e) }
        }
        let iters = config.steps(train.len());
        let optimizer = AdamW::new(AdamWConfig { weight_decay: 0.0, ..AdamWConfig::default() }, &model.params);
        Ok(Self { config, model, optimizer, train, held_out, iters, iter: 0, base_name })
    }

    pub fn pairs(&self) -> (usize, usize) {
        (self.train.len(), self.held_out.len())
    }

    /// One step over the next `pairs_per_step` training pairs (in turn); the mean DPO loss.
    pub fn step(&mut self) -> Result<f32> {
        let c = &self.config;
        let lr = learning_rate(self.iter, c.learning_rate, c.learning_rate / 10.0, (self.iters / 10).max(1), self.iters);
        let mut total: Option<Tensor> = None;
        for k in 0..c.pairs_per_step {
            let p = &self.train[(self.iter * c.pairs_per_step + k) % self.train.len()];
            let chosen = (answer_logp(&self.model, &p.prompt, &p.chosen)? - f64::from(p.ref_chosen))?;
            let rejected = (answer_logp(&self.model, &p.prompt, &p.rejected)? - f64::from(p.ref_rejected))?;
            // −log σ(β·margin) = log(1 + e^(−β·margin)), with the exponent kept finite.
            let z = ((chosen - rejected)? * -c.beta)?.clamp(-30.0, 30.0)?;
            let loss = (z.exp()? + 1.0)?.log()?;
            total = Some(match total {
                Some(t) => (t + loss)?,
                None => loss,
            });
        }
        let Some(total) = total else { return Err(TrainError::InvalidSetting("no pairs to train on".into())) };
        let loss = (total / c.pairs_per_step as f64)?;
        self.optimizer.step(&self.model.params, &loss.backward()?, lr)?;
        self.iter += 1;
        Ok(loss.to_scalar::<f32>()?)
    }

    /// The current model's preference accuracy on the held-out pairs, or the training ones.
    pub fn accuracy(&self, held_out: bool) -> Result<PreferenceAccuracy> {
        let pairs = if held_out { &self.held_out } else { &self.train };
        let mut preferred = 0;
        for p in pairs {
            let per_token = |answer: &[u32]| -> Result<f32> { Ok(answer_logp(&self.model, &p.prompt, answer)?.to_scalar::<f32>()? / answer.len() as f32) };
            preferred += usize::from(per_token(&p.chosen)? > per_token(&p.rejected)?);
        }
        Ok(PreferenceAccuracy { pairs: pairs.len(), preferred })
    }

    /// Trains to the end; `on_event` returning false stops early. The adapter is saved at the end.
    pub fn run(&mut self, out: &Path, on_event: &mut dyn FnMut(PreferenceEvent) -> bool) -> Result<()> {
        while self.iter < self.iters {
            let t0 = std::time::Instant::now();
            let loss = self.step()?;
            if !on_event(PreferenceEvent::Step { iter: self.iter, iters: self.iters, loss, seconds: t0.elapsed().as_secs_f64() }) {
                break;
            }
        }
        self.save(out)
    }

    pub fn save(&self, out: &Path) -> Result<()> {
        self.model.write_adapter(out, &self.base_name)
    }
}

/// The pair in tokens: the prompt's end and the answers' starts, or `None` when the answers
/// come out the same (nothing to prefer) or one is empty.
fn encode(tokenizer: &Tokenizer, p: &PreferencePair, c: &PreferenceConfig, context: usize) -> Option<(Vec<u32>, Vec<u32>, Vec<u32>)> {
    let answer_room = c.max_answer_tokens.min(context / 2);
    let answer = |t: &str| -> Vec<u32> { tokenizer.encode(t, false).into_iter().take(answer_room).collect() };
    let (chosen, rejected) = (answer(&p.chosen), answer(&p.rejected));
    if chosen.is_empty() || rejected.is_empty() || chosen == rejected {
        return None;
    }
    let mut prompt = tokenizer.encode_prompt(&p.prompt, false);
    let room = c.max_prompt_tokens.min(context - answer_room).max(1);
    if prompt.len() > room {
        prompt.drain(..prompt.len() - room);
    }
    if prompt.is_empty() {
        // An answer's first token needs something before it to be predicted from.
        prompt = tokenizer.encode("\n", false);
    }
    (!prompt.is_empty()).then_some((prompt, chosen, rejected))
}

/// log π(answer | prompt): the sum over the answer's tokens of their log-probabilities.
fn answer_logp(model: &LoraModel, prompt: &[u32], answer: &[u32]) -> Result<Tensor> {
    let ids: Vec<u32> = prompt.iter().chain(answer).copied().collect();
    let input = Tensor::from_vec(ids[..ids.len() - 1].to_vec(), (1, ids.len() - 1), &Device::Cpu)?;
    let logits = model.forward(&input)?.narrow(0, prompt.len() - 1, answer.len())?;
    let targets = Tensor::from_vec(answer.to_vec(), (answer.len(), 1), &Device::Cpu)?;
    Ok(log_softmax_last_dim(&logits)?.gather(&targets, 1)?.sum_all()?)
}
