//! One error type for the toolbox; each message says what is wrong and what to do.

use inkling_engine::EngineError;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum CraftError {
    #[error("{file}:{line}:{column}: {message}")]
    Recipe { file: PathBuf, line: usize, column: usize, message: String },

    #[error("the config file {path} cannot be used: {reason}\n  fix it, or point INKLING_CONFIG at another file")]
    Config { path: PathBuf, reason: String },

    #[error("unknown tool `{name}`; the tools are: {known}\n  run `inkling tools` for what each does")]
    UnknownTool { name: String, known: String },

    #[error("`{tool}` has no option `{option}`; its options are: {known}")]
    UnknownOption { tool: String, option: String, known: String },

    #[error("`{value}` is not a {option} that `{tool}` knows; choose one of: {allowed}")]
    UnknownValue { tool: String, option: String, value: String, allowed: String },

    #[error("unknown dialect `{name}`; choose {known}")]
    UnknownDialect { name: String, known: String },

    #[error("`{tool}` needs {what}, but the text is empty")]
    EmptyInput { tool: String, what: String },

    #[error("the text is {tokens} tokens but `{tool}` can give it at most {budget} of the model's {context}-token context; select a shorter passage or use a longer context window")]
    TextTooLong { tool: String, tokens: usize, budget: usize, context: usize },

    #[error("the model's answer for `{tool}` could not be read as {expected}: {reason}")]
    Unparsable { tool: String, expected: &'static str, reason: String },

    // `error`, not `source`: the message already includes it, and a chained report would
    // print it twice.
    #[error("cannot read {path}: {error}")]
    Io { path: PathBuf, error: std::io::Error },

    #[error(transparent)]
    Engine(#[from] EngineError),
}

pub type Result<T, E = CraftError> = std::result::Result<T, E>;

impl CraftError {
    /// What the caller could change (see [`inkling_engine::Remedy`]).
    pub fn remedy(&self) -> Option<inkling_engine::Remedy> {
        match self {
            CraftError::Engine(e) => e.remedy(),
            CraftError::TextTooLong { .. } => Some(inkling_engine::Remedy::ContextLength),
            _ => None,
        }
    }
}
