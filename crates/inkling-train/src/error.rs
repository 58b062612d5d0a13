//! The one error type of inkling-train: each variant says what is wrong and what to do.

use std::path::PathBuf;

pub type Result<T> = std::result::Result<T, TrainError>;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    // `error`, not `source`: the message already includes it, and a chained report would
    // print it twice.
    #[error("cannot read {path}: {error}")]
    Io { path: PathBuf, error: std::io::Error },
    #[error("cannot write {path}: {error}")]
    Write { path: PathBuf, error: std::io::Error },
    #[error("{path} is not a text file ({reason}); give a UTF-8 text file or a folder of .txt/.md files")]
    NotText { path: PathBuf, reason: String },
    #[error("the corpus at {path} holds no text; add .txt or .md files with the writing to learn from")]
    EmptyCorpus { path: PathBuf },
    #[error("the corpus is too small: {have} tokens, but {need} are needed ({why}); add more text or lower --block")]
    CorpusTooSmall { have: usize, need: usize, why: String },
    #[error(
        "{have} usable feedback pairs, and learning from your choices needs at least {need} (an accepted suggestion beside one you rejected or passed over, or one you accepted and then edited); keep choosing between candidates and try again"
    )]
    TooFewPairs { have: usize, need: usize },
    #[error("{0}")]
    InvalidSetting(String),
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("checkpoint in {path}: {reason}")]
    Checkpoint { path: PathBuf, reason: String },
    #[error("cannot draw the loss curve: {0}")]
    Plot(String),
    #[error("training needs about {need_mib} MiB of memory but only {have_mib} MiB are available; use a smaller model, --block or --batch")]
    TooLarge { need_mib: u64, have_mib: u64 },
    #[error("tensor computation failed: {0}")]
    Tensor(#[from] candle_core::Error),
    #[error(transparent)]
    Engine(#[from] inkling_engine::EngineError),
}

impl TrainError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |error| TrainError::Io { path, error }
    }

    pub(crate) fn write(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |error| TrainError::Write { path, error }
    }
}
