//! The authorship ledger: which characters of a document the writer wrote and which came from
//! the model, and whether the writer edited the model's text afterwards.
//!
//! Offsets count Unicode scalar values (chars), so Chinese text is measured in characters.
//! Each revision carries the ledger of its text; saving a new text maps the old ledger
//! through a character diff: unchanged characters keep their author, inserted characters get
//! the author of the change, and a model passage the writer cut into or typed inside becomes
//! "model, edited".

use serde::{Deserialize, Serialize};
use similar::{DiffOp, TextDiff};
use std::collections::HashSet;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "by", rename_all = "snake_case")]
pub enum Author {
    Writer,
    /// Model text as accepted; `generation` is the generation-tree node it came from.
    Model {
        generation: Option<i64>,
    },
    /// Model text the writer has since changed.
    ModelEdited {
        generation: Option<i64>,
    },
}

impl Author {
    fn is_model(self) -> bool {
        !matches!(self, Author::Writer)
    }
}

/// A run of characters `[start, end)` with one author.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Span {
    pub start: usize,
    pub end: usize,
    pub author: Author,
}

/// Character counts by author.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Share {
    pub writer: usize,
    pub model: usize,
    pub model_edited: usize,
}

impl Share {
    pub fn total(&self) -> usize {
        self.writer + self.model + self.model_edited
    }

    /// Fraction of the text that came from the model (edited or not).
    pub fn ai_assisted(&self) -> f64 {
        if self.total() == 0 { 0.0 } else { (self.model + self.model_edited) as f64 / self.total() as f64 }
    }

    pub fn add(&mut self, o: Share) {
        self.writer += o.writer;
        self.model += o.model;
        self.model_edited += o.model_edited;
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Ledger {
    spans: Vec<Span>,
}

impl Ledger {
    /// A ledger for `text` written entirely by `author`.
    pub fn uniform(text: &str, author: Author) -> Self {
        let n = text.chars().count();
        Self::from_chars(&vec![author; n])
    }

    pub fn spans(&self) -> &[Span] {
        &self.spans
    }

    pub fn len(&self) -> usize {
        self.spans.last().map_or(0, |s| s.end)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn to_chars(&self) -> Vec<Author> {
        let mut v = Vec::with_capacity(self.len());
        for s in &self.spans {
            v.extend(std::iter::repeat_n(s.author, s.end - s.start));
        }
        v
    }

    fn from_chars(chars: &[Author]) -> Self {
        let mut spans: Vec<Span> = Vec::new();
        for (i, a) in chars.iter().enumerate() {
            match spans.last_mut() {
                Some(s) if s.author == *a => s.end = i + 1,
                _ => spans.push(Span { start: i, end: i + 1, author: *a }),
            }
        }
        Self { spans }
    }

    pub fn share(&self) -> Share {
        let mut s = Share::default();
        for span in &self.spans {
            let n = span.end - span.start;
            match span.author {
                Author::Writer => s.writer += n,
                Author::Model { .. } => s.model += n,
                Author::ModelEdited { .. } => s.model_edited += n,
            }
        }
        s
    }

    /// The ledger of `new`, given that this ledger describes `old` and the change from `old`
    /// to `new` was made by `author` (the writer typing, or an accepted model suggestion).
    pub fn apply_edit(&self, old: &str, new: &str, author: Author) -> Ledger {
        let mut old_authors = self.to_chars();
        // A ledger out of step with its text (never expected) is repaired, not trusted.
        let old_len = old.chars().count();
        old_authors.resize(old_len, Author::Writer);
        // Which model run each old character belongs to (runs = spans of model text).
        let mut run_of = vec![usize::MAX; old_len];
        let mut run = 0;
        for i in 0..old_len {
            if i > 0 && old_authors[i] != old_authors[i - 1] {
                run += 1;
            }
            if old_authors[i].is_model() {
                run_of[i] = run;
            }
        }
        let diff = TextDiff::configure().timeout(std::time::Duration::from_millis(500)).diff_chars(old, new);
        let ops = diff.ops();
        let mut edited: HashSet<usize> = HashSet::new();
        let inside_run = |p: usize| -> Option<usize> { (p > 0 && p < old_len && run_of[p - 1] != usize::MAX && run_of[p - 1] == run_of[p]).then(|| run_of[p]) };
        for op in ops {
            match *op {
                DiffOp::Equal { .. } => {}
                DiffOp::Delete { old_index, old_len: n, .. } | DiffOp::Replace { old_index, old_len: n, .. } => {
                    for &r in &run_of[old_index..old_index + n] {
                        if r != usize::MAX {
                            edited.insert(r);
                        }
                    }
                }
                DiffOp::Insert { old_index, .. } => {
                    if let Some(r) = inside_run(old_index) {
                        edited.insert(r);
                    }
                }
            }
        }
        let mut out = Vec::with_capacity(new.len());
        for op in ops {
            match *op {
                DiffOp::Equal { old_index, len, .. } => {
                    for i in old_index..old_index + len {
                        let a = old_authors[i];
                        out.push(match a {
                            Author::Model { generation } if edited.contains(&run_of[i]) && author == Author::Writer => Author::ModelEdited { generation },
                            other => other,
                        });
                    }
                }
                DiffOp::Delete { .. } => {}
                DiffOp::Insert { new_len, .. } | DiffOp::Replace { new_len, .. } => {
                    out.extend(std::iter::repeat_n(author, new_len));
                }
            }
        }
        Ledger::from_chars(&out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: Author = Author::Model { generation: Some(7) };

    #[test]
    fn accepted_text_is_model_and_typing_around_it_is_writer() {
        let l = Ledger::uniform("She opened the door.", Author::Writer);
        let old = "She opened the door.";
        let new = "She opened the door. The room was dark.";
        let l = l.apply_edit(old, new, M);
        assert_eq!(l.share(), Share { writer: 20, model: 19, model_edited: 0 });
        let l2 = l.apply_edit(new, &format!("{new} She waited."), Author::Writer);
        assert_eq!(l2.share().model, 19, "appending after model text does not edit it");
    }

    #[test]
    fn editing_inside_model_text_marks_it_edited() {
        let old = "Hello. The room was dark.";
        let l = Ledger::uniform("Hello.", Author::Writer).apply_edit("Hello.", old, M);
        let new = "Hello. The room was very dark.";
        let l = l.apply_edit(old, new, Author::Writer);
        let s = l.share();
        assert_eq!(s.model, 0);
        assert_eq!(s.model_edited, 19);
        assert_eq!(s.writer, 6 + 5);
        assert_eq!(l.len(), new.chars().count());
    }

    #[test]
    fn chinese_counts_characters() {
        let l = Ledger::uniform("今天天气很好。", Author::Writer).apply_edit("今天天气很好。", "今天天气很好。我想去公园。", M);
        assert_eq!(l.share(), Share { writer: 7, model: 6, model_edited: 0 });
        assert!((l.share().ai_assisted() - 6.0 / 13.0).abs() < 1e-9);
    }

    #[test]
    fn deleting_writer_text_leaves_model_text_alone() {
        let old = "Draft. Model line.";
        let l = Ledger::from_chars(&[vec![Author::Writer; 7], vec![M; 11]].concat());
        let l = l.apply_edit(old, "Model line.", Author::Writer);
        assert_eq!(l.share(), Share { writer: 0, model: 11, model_edited: 0 });
    }
}
