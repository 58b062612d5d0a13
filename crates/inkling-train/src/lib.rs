//! inkling-train: the model itself — a GPT pretrained from scratch, and perplexity.
//!
//! - [`gpt`]: the decoder-only transformer on candle tensors (autograd through
//!   `Tensor::backward`), each piece documented with its formula.
//! - [`cpu`]: the same model's training step written by hand over flat buffers, one copy
//!   per core — what pretraining runs; checked against [`gpt`]'s autograd.
//! - [`tokenize`]: character and byte-level BPE tokenizers (BPE trained with `tokenizers`),
//!   both exportable as GGUF "gpt2" vocabularies.
//! - [`adamw`]: AdamW with decoupled weight decay, gradient clipping, warmup + cosine rate.
//! - [`pretrain`]: the training run — split, batches, evaluation, checkpoints that resume
//!   exactly, the exported `model.gguf` and the `loss.svg` curve.
//! - [`lora`], [`finetune`]: LoRA fine-tuning of a GGUF model on a writer's pages (base
//!   dequantized and frozen, adapters trained), saved as a GGUF LoRA adapter the engine
//!   merges at load.
//! - [`preference`]: learning from the writer's accept/reject choices (DPO on the same
//!   LoRA adapters, the base as the reference).
//! - [`perplexity`]: sliding-window perplexity of any model the engine loads.
//!
//! Invariant: a trained model is only ever used through the engine (`model.gguf`, gpt2
//! architecture), so generation, serving and evaluation treat it like any GGUF model.

pub mod adamw;
pub mod corpus;
pub mod cpu;
pub mod error;
pub mod export;
pub mod finetune;
pub mod fused;
pub mod gpt;
pub mod lora;
pub mod perplexity;
pub mod plot;
pub mod preference;
pub mod pretrain;
pub mod tokenize;

pub use corpus::Corpus;
pub use error::{Result, TrainError};
pub use finetune::{FinetuneConfig, Finetuning};
pub use gpt::{Gpt, GptConfig, Positions};
pub use lora::LoraConfig;
pub use perplexity::{Perplexity, perplexity};
pub use preference::{PreferenceConfig, PreferencePair, PreferenceTuning};
pub use pretrain::{PretrainConfig, Pretraining, TrainEvent};
pub use tokenize::{TextTokenizer, TokenizerKind};
