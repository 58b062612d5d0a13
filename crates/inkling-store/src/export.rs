//! Exporting a project: Markdown, plain text, EPUB (epub-builder) and DOCX (docx-rs).

use crate::error::{Result, StoreError};
use crate::store::{Project, Store};
use std::io::Write;
use std::path::{Component, Path, PathBuf};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Markdown,
    Text,
    Epub,
    Docx,
}

impl Format {
    pub fn parse(s: &str) -> Option<Format> {
        Some(match s.to_ascii_lowercase().as_str() {
            "md" | "markdown" => Format::Markdown,
            "txt" | "text" => Format::Text,
            "epub" => Format::Epub,
            "docx" => Format::Docx,
            _ => return None,
        })
    }
}

/// `dir/name`, refusing names that would land outside `dir` (`..`, absolute paths).
pub fn safe_join(dir: &Path, name: &str) -> Result<PathBuf> {
    let p = Path::new(name);
    let plain = !name.is_empty() && p.components().all(|c| matches!(c, Component::Normal(_)));
    if !plain {
        return Err(StoreError::PathEscapes(name.into()));
    }
    Ok(dir.join(p))
}

fn escape_xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// Paragraphs of a document: blocks separated by blank lines.
fn paragraphs(text: &str) -> impl Iterator<Item = &str> {
    text.split("\n\n").map(str::trim).filter(|p| !p.is_empty())
}

impl Store {
    /// The (title, text) of every document at its current revision, in order.
    pub fn manuscript(&self, project: &Project) -> Result<Vec<(String, String)>> {
        self.documents(project)?.into_iter().map(|d| Ok((d.title.clone(), self.head(&d)?.text))).collect()
    }

    /// Writes the project as `format` to `dir/name`. Returns the written path.
    pub fn export(&self, project: &Project, format: Format, dir: &Path, name: &str) -> Result<PathBuf> {
        let path = safe_join(dir, name)?;
        let docs = self.manuscript(project)?;
        if docs.is_empty() {
            return Err(StoreError::Export(format!("project `{}` has no documents yet; import or save one first", project.name)));
        }
        let bytes = match format {
            Format::Markdown => {
                let mut s = format!("# {}\n\n", project.name);
                for (t, body) in &docs {
                    s.push_str(&format!("## {t}\n\n{}\n\n", body.trim_end()));
                }
                s.into_bytes()
            }
            Format::Text => {
                let mut s = String::new();
                for (t, body) in &docs {
                    s.push_str(&format!("{t}\n\n{}\n\n", body.trim_end()));
                }
                s.into_bytes()
            }
            Format::Epub => epub(&project.name, &docs)?,
            Format::Docx => docx(&project.name, &docs)?,
        };
        // Write beside the target and rename, so a failed export never leaves half a file.
        let tmp = path.with_extension("partial");
        let io = |source| StoreError::Io { path: path.clone(), error: source };
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        f.write_all(&bytes).and_then(|_| f.sync_all()).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            io(e)
        })?;
        std::fs::rename(&tmp, &path).map_err(io)?;
        Ok(path)
    }
}

fn epub(title: &str, docs: &[(String, String)]) -> Result<Vec<u8>> {
    use epub_builder::{EpubBuilder, EpubContent, EpubVersion, ReferenceType, ZipLibrary};
    let err = |e: epub_builder::Error| StoreError::Export(format!("EPUB: {e}"));
    let mut b = EpubBuilder::new(ZipLibrary::new().map_err(err)?).map_err(err)?;
    b.epub_version(EpubVersion::V30);
    b.metadata("title", title).map_err(err)?;
    b.metadata("lang", "und").map_err(err)?;
    b.metadata("generator", "inkling").map_err(err)?;
    for (i, (t, body)) in docs.iter().enumerate() {
        let mut x = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<html xmlns=\"http://www.w3.org/1999/xhtml\" xmlns:epub=\"http://www.idpf.org/2007/ops\">\n<head><title>{0}</title></head>\n<body>\n<h1>{0}</h1>\n",
            escape_xml(t)
        );
        for p in paragraphs(body) {
            x.push_str(&format!("<p>{}</p>\n", escape_xml(p).replace('\n', "<br/>")));
        }
        x.push_str("</body>\n</html>\n");
        let mut content = EpubContent::new(format!("chapter_{:03}.xhtml", i + 1), x.as_bytes()).title(t.as_str());
        if i == 0 {
            // EPUB 3 readers (and epubcheck) want a landmark for where the text starts.
            content = content.reftype(ReferenceType::Text);
        }
        b.add_content(content).map_err(err)?;
    }
    let mut out = Vec::new();
    b.generate(&mut out).map_err(err)?;
    Ok(out)
}

fn docx(title: &str, docs: &[(String, String)]) -> Result<Vec<u8>> {
    use docx_rs::{Docx, Paragraph, Run};
    let mut d = Docx::new().add_paragraph(Paragraph::new().add_run(Run::new().add_text(title).bold().size(48)));
    for (t, body) in docs {
        d = d.add_paragraph(Paragraph::new().add_run(Run::new().add_text(t.as_str()).bold().size(32)));
        for p in paragraphs(body) {
            d = d.add_paragraph(Paragraph::new().add_run(Run::new().add_text(p)));
        }
    }
    let mut buf = std::io::Cursor::new(Vec::new());
    d.build().pack(&mut buf).map_err(|e| StoreError::Export(format!("DOCX: {e}")))?;
    Ok(buf.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_escape_the_directory_are_refused() {
        let d = Path::new("/tmp/out");
        assert!(safe_join(d, "book.epub").is_ok());
        for bad in ["../book.epub", "/etc/passwd", "a/../../b", ""] {
            assert!(matches!(safe_join(d, bad), Err(StoreError::PathEscapes(_))), "{bad}");
        }
    }

    #[test]
    fn xml_is_escaped() {
        assert_eq!(escape_xml("a < b & \"c\""), "a &lt; b &amp; &quot;c&quot;");
    }
}
