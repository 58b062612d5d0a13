//! One error type for the engine, with enough context for a writer to act on.

use std::path::PathBuf;

/// Everything the engine can fail at. Messages name the problem and, where there is one, the fix.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("model file not found: {path}")]
    ModelNotFound { path: PathBuf },

    // `error`, not `source`: the message already includes it, and a chained report would
    // print it twice.
    #[error("cannot read {path}: {error}")]
    Io { path: PathBuf, error: std::io::Error },

    #[error("{path} is not a usable GGUF file: {reason}\n  the file may be truncated or corrupt; fetch it again")]
    BadGguf { path: PathBuf, reason: String },

    #[error("unsupported model architecture `{arch}`; inkling runs llama, mistral, qwen2, qwen3, gemma3 and gpt2 GGUF files")]
    UnsupportedArchitecture { arch: String },

    #[error("tensor `{tensor}` uses quantization {dtype}, which inkling cannot run yet; supported: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K..Q6_K")]
    UnsupportedQuantization { tensor: String, dtype: String },

    #[error("the model file lacks `{key}`: {why}")]
    MissingMetadata { key: String, why: &'static str },

    #[error("tensor `{name}` {problem}")]
    BadTensor { name: String, problem: String },

    #[error("the adapter {path} does not fit this model: {reason}\n  use the base model it was trained on")]
    AdapterMismatch { path: PathBuf, reason: String },

    #[error("the tokenizer cannot be built from this file: {0}")]
    Tokenizer(String),

    #[error("the prompt is {prompt_tokens} tokens but the context window is {context} tokens; shorten the text or use a longer context window (the model was trained on {trained})")]
    PromptTooLong { prompt_tokens: usize, context: usize, trained: usize },

    #[error("the prompt is empty: give the model some text to continue")]
    EmptyPrompt,

    #[error("invalid request: {0}")]
    InvalidRequest(String),

    #[error("chat template error: {0}")]
    Template(String),

    #[error("remote model: {0}")]
    Remote(String),

    /// The remote server refused a setting the caller can change (the key, the address, the
    /// model's name).
    #[error("remote model: {message}")]
    RemoteSetting { message: String, remedy: Remedy },

    /// A remote stream broke after text arrived; `partial` holds every candidate's text so far.
    #[error("remote model: {reason} (the text received so far is kept)")]
    Interrupted { reason: String, partial: Box<crate::engine::Generation> },
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;

/// What a caller could change to get past an error. The engine names no flags (it has
/// library users as well as the CLI); each front end says how its users change each one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Remedy {
    /// Name another model file, or fetch one.
    ModelFile,
    /// Load the model with a longer context window.
    ContextLength,
    /// Give a key the server accepts.
    ApiKey,
    /// Check the server's address.
    ServerAddress,
    /// Name a model the server serves.
    RemoteModel,
    /// Load the base model an adapter was trained on.
    BaseModel,
}

impl EngineError {
    pub fn remedy(&self) -> Option<Remedy> {
        match self {
            EngineError::ModelNotFound { .. } | EngineError::BadGguf { .. } => Some(Remedy::ModelFile),
            EngineError::PromptTooLong { .. } => Some(Remedy::ContextLength),
            EngineError::AdapterMismatch { .. } => Some(Remedy::BaseModel),
            EngineError::RemoteSetting { remedy, .. } => Some(*remedy),
            _ => None,
        }
    }
}
