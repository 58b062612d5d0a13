//! A training corpus: one text file, or every text file under a folder, read as UTF-8.
//!
//! Files are read in sorted path order so a corpus always yields the same text (training is
//! reproducible); in a folder only `.txt`, `.md`, `.markdown` and `.text` files are read and
//! hidden entries are skipped. A file that is not UTF-8 text is an error naming it, never
//! silently skipped: a writer should know which pages were not learned from.

use crate::error::{Result, TrainError};
use std::path::{Path, PathBuf};

/// The text of a corpus and the files it came from.
#[derive(Clone, Debug)]
pub struct Corpus {
    pub text: String,
    pub files: Vec<PathBuf>,
}

const TEXT_EXTENSIONS: &[&str] = &["txt", "md", "markdown", "text"];

impl Corpus {
    /// Reads `path` (a file, or a folder searched recursively).
    pub fn read(path: &Path) -> Result<Self> {
        let meta = std::fs::metadata(path).map_err(TrainError::io(path))?;
        let files = if meta.is_dir() {
            let mut files = Vec::new();
            collect_text_files(path, &mut files)?;
            files.sort();
            files
        } else {
            vec![path.to_path_buf()]
        };
        let texts = files.iter().map(|f| read_text(f)).collect::<Result<Vec<_>>>()?;
        let text = Self::join(texts).ok_or_else(|| TrainError::EmptyCorpus { path: path.to_path_buf() })?;
        Ok(Self { text, files })
    }

    /// Several texts (files, a project's documents) as one: blank ones are dropped, and a
    /// blank line separates the rest, as between chapters. `None` when none holds text.
    pub fn join(texts: impl IntoIterator<Item = String>) -> Option<String> {
        let parts: Vec<String> = texts.into_iter().filter(|t| !t.trim().is_empty()).collect();
        (!parts.is_empty()).then(|| parts.join("\n\n"))
    }

    /// A corpus from text in memory (tests, the server).
    pub fn from_text(text: impl Into<String>) -> Self {
        Self { text: text.into().replace("\r\n", "\n"), files: Vec::new() }
    }
}

fn collect_text_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).map_err(TrainError::io(dir))? {
        let entry = entry.map_err(TrainError::io(dir))?;
        let path = entry.path();
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let kind = entry.file_type().map_err(TrainError::io(&path))?;
        if kind.is_dir() {
            collect_text_files(&path, out)?;
        } else if path.extension().and_then(|e| e.to_str()).is_some_and(|e| TEXT_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str())) {
            out.push(path);
        }
    }
    Ok(())
}

/// A file's text with Windows line ends normalised; binary content is an error.
fn read_text(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(TrainError::io(path))?;
    if bytes.contains(&0) {
        return Err(TrainError::NotText { path: path.to_path_buf(), reason: "it contains NUL bytes, so it is binary".into() });
    }
    let text = String::from_utf8(bytes).map_err(|e| TrainError::NotText { path: path.to_path_buf(), reason: format!("byte {} is not valid UTF-8", e.utf8_error().valid_up_to()) })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    Ok(text.replace("\r\n", "\n"))
}
