//! Importing manuscripts: .txt and .md, whole or split into documents at headings.

use crate::error::{Result, StoreError};
use crate::store::{Document, Origin, Project, Store};
use std::path::Path;

/// A piece of an imported manuscript that becomes one document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Section {
    pub title: String,
    pub text: String,
}

/// Reads `path` as UTF-8 text (a BOM is dropped), refusing binary files and other encodings
/// with a message that says what to do.
pub fn read_text(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|source| StoreError::Io { path: path.to_path_buf(), error: source })?;
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
    if bytes.starts_with(b"\xFF\xFE") || bytes.starts_with(b"\xFE\xFF") {
        return Err(StoreError::BadImport { path: path.to_path_buf(), reason: "it is UTF-16 text; save it as UTF-8 first".into() });
    }
    if bytes.iter().take(8192).any(|&b| b == 0) {
        return Err(StoreError::BadImport { path: path.to_path_buf(), reason: "it looks like a binary file, not text (.txt or .md)".into() });
    }
    match std::str::from_utf8(bytes) {
        Ok(s) => Ok(s.replace("\r\n", "\n")),
        Err(e) => Err(StoreError::NotUtf8 { path: path.to_path_buf(), offset: e.valid_up_to() }),
    }
}

/// A heading line: Markdown `#`/`##`, or a chapter line in plain text
/// ("Chapter 3", "CHAPTER IV", "Part Two", "第三章", "第12回").
fn heading(line: &str, markdown: bool) -> Option<String> {
    let t = line.trim();
    if markdown {
        let stripped = t.strip_prefix("## ").or_else(|| t.strip_prefix("# "))?;
        return Some(stripped.trim().to_string());
    }
    let lower = t.to_lowercase();
    let word = ["chapter ", "part ", "prologue", "epilogue"].iter().any(|w| lower.starts_with(w));
    let cjk = t.starts_with('第') && t.chars().take(8).any(|c| matches!(c, '章' | '回' | '节' | '卷'));
    ((word || cjk) && t.chars().count() <= 60).then(|| t.to_string())
}

/// Splits a manuscript at its headings. Text before the first heading becomes a section of
/// its own (titled after the file) when it is not blank.
pub fn split(text: &str, markdown: bool, untitled: &str) -> Vec<Section> {
    let mut out: Vec<Section> = Vec::new();
    let mut title = untitled.to_string();
    // A heading is the writer's text too: one with nothing under it still becomes a
    // document (found by tests/fuzz.rs, where a last "CHAPTER IV" vanished).
    let mut titled = false;
    let mut body = String::new();
    for line in text.split_inclusive('\n') {
        match heading(line, markdown) {
            Some(h) => {
                if titled || !body.trim().is_empty() {
                    out.push(Section { title: title.clone(), text: body.trim_matches('\n').to_string() });
                }
                title = h;
                titled = true;
                body.clear();
            }
            None => body.push_str(line),
        }
    }
    if titled || !body.trim().is_empty() || out.is_empty() {
        out.push(Section { title, text: body.trim_matches('\n').to_string() });
    }
    out
}

impl Store {
    /// Imports a .txt or .md file into `project`, as one document or split at headings.
    pub fn import_file(&mut self, project: &Project, path: &Path, split_at_headings: bool) -> Result<Vec<Document>> {
        let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).unwrap_or_default();
        let markdown = match ext.as_str() {
            "md" | "markdown" => true,
            "txt" | "text" | "" => false,
            other => return Err(StoreError::BadImport { path: path.to_path_buf(), reason: format!(".{other} files are not supported; use .txt or .md") }),
        };
        let text = read_text(path)?;
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("Imported").to_string();
        let sections = if split_at_headings { split(&text, markdown, &stem) } else { vec![Section { title: stem, text }] };
        let file = path.file_name().and_then(|s| s.to_str()).unwrap_or_default().to_string();
        let mut docs = Vec::with_capacity(sections.len());
        for s in sections {
            docs.push(self.add_document(project, &s.title, "chapter", &s.text, Origin::Imported { file: file.clone() })?);
        }
        Ok(docs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_splits_at_headings() {
        let s = split("Preface text.\n\n# One\nFirst.\n\n## Two\nSecond.\n", true, "Book");
        assert_eq!(s.iter().map(|x| x.title.as_str()).collect::<Vec<_>>(), ["Book", "One", "Two"]);
        assert_eq!(s[1].text, "First.");
    }

    #[test]
    fn plain_text_chapters_in_english_and_chinese() {
        let s = split("Chapter 1\nIt began.\nCHAPTER II\nIt went on.\n第三章 归来\n他回来了。\n", false, "Book");
        assert_eq!(s.iter().map(|x| x.title.as_str()).collect::<Vec<_>>(), ["Chapter 1", "CHAPTER II", "第三章 归来"]);
        assert_eq!(s[2].text, "他回来了。");
    }

    #[test]
    fn a_sentence_starting_with_part_is_not_a_heading_when_long() {
        let long = format!("Part of me wanted to stay {}\n", "and stay ".repeat(10));
        assert_eq!(split(&long, false, "B").len(), 1);
    }
}
