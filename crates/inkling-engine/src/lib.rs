//! inkling's language-model engine: runs GGUF models (llama, mistral, qwen2, qwen3, gemma3)
//! on the writer's CPU.
//!
//! - [`gguf`] maps the file; [`quant`] holds the quantized weight matrices and their products;
//!   [`model`] is the transformer forward pass over a batch of sequences with [`kv_cache`]s.
//! - [`tokenizer`] rebuilds the model's tokenizer from GGUF metadata; [`chat`] renders its
//!   chat template.
//! - [`sampling`] is the sampler chain; [`stream`] turns tokens into whole characters and
//!   enforces stop strings; [`engine`] ties them into `Engine::generate`.
//! - [`wire`] converts to and from the OpenAI-compatible wire types, for the server and the
//!   remote backend alike.
//!
//! Invariants: the engine never panics on user input (bad files, prompts and settings are
//! [`EngineError`]s); streamed text is always whole UTF-8 characters; a stop string never
//! appears in output; n candidates share one prefill.

pub mod adapter;
pub mod backend;
pub mod bans;
pub mod chat;
pub mod constraint;
mod disjoint;
pub mod engine;
pub mod error;
pub mod gguf;
pub mod kernels;
pub mod kv_cache;
pub mod model;
pub mod ops;
pub mod quant;
pub mod sampling;
pub mod speculative;
pub mod stream;
pub mod testing;
pub mod tokenizer;
pub mod wire;

pub use backend::Backend;
pub use chat::{ChatMessage, ChatTemplate};
pub use engine::{Candidate, Engine, EngineConfig, Event, FinishReason, GenerateRequest, Generation, ModelInfo, Prompt, Timings, TokenLogprob};
pub use error::{EngineError, Remedy, Result};
pub use sampling::{DryConfig, SamplingConfig, Stage};
pub use speculative::Speculation;
pub use tokenizer::Tokenizer;
