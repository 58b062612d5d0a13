//! Store errors: each names what went wrong and what the writer can do.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the project database {path} was written by a newer inkling (schema version {found}, this inkling knows up to {known}); upgrade inkling to open it. Nothing was changed.")]
    NewerSchema { path: PathBuf, found: i64, known: i64 },

    #[error("the project database {0} is read-only; nothing can be saved there. Copy it somewhere writable or fix its permissions.")]
    ReadOnly(PathBuf),

    #[error("the disk is full: the last change was not saved, everything saved before it is safe. Free some space and save again.")]
    DiskFull,

    #[error("no project named `{0}`; `inkling project list` shows them")]
    NoProject(String),

    #[error("a project named `{0}` already exists")]
    ProjectExists(String),

    #[error("project `{project}` has no document `{document}`; `inkling project show {project}` lists them")]
    NoDocument { project: String, document: String },

    #[error("another document is already titled `{0}`; pick another title")]
    TitleTaken(String),

    #[error("`{kind}` is not a story-pipeline document here; use one of: {known}")]
    UnknownKind { kind: String, known: String },

    #[error(transparent)]
    Voice(#[from] inkling_voice::VoiceError),

    #[error("no revision {0}")]
    NoRevision(i64),

    #[error("no generation {0}")]
    NoGeneration(i64),

    #[error("nothing to {0}")]
    NothingTo(&'static str),

    #[error("{path} is not UTF-8 text (first bad byte at offset {offset}); convert it to UTF-8 first, for example `iconv -f GB18030 -t UTF-8 FILE > out.txt`")]
    NotUtf8 { path: PathBuf, offset: usize },

    #[error("cannot import {path}: {reason}")]
    BadImport { path: PathBuf, reason: String },

    #[error("`{0}` would be written outside the export directory; give a plain file name")]
    PathEscapes(String),

    #[error("cannot export: {0}")]
    Export(String),

    // `error`, not `source`: the message already includes it, and a chained report would
    // print it twice.
    #[error("{path}: {error}")]
    Io { path: PathBuf, error: std::io::Error },

    #[error("the copy of {from} at {to} did not check out ({reason}); the database at {from} is untouched and still in use")]
    CopyFailed { from: PathBuf, to: PathBuf, reason: String },

    #[error("database error: {0}")]
    Sqlite(rusqlite::Error),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ffi::ErrorCode;
        match e.sqlite_error_code() {
            Some(ErrorCode::DiskFull) => StoreError::DiskFull,
            Some(ErrorCode::ReadOnly) => StoreError::ReadOnly(PathBuf::from("(database)")),
            _ => StoreError::Sqlite(e),
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;
