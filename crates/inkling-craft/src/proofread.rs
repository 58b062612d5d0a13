//! Proofreading by rule: grammar, spelling, punctuation and style lints from harper-core, each
//! with its exact span and suggested replacements, and a way to apply any of them.
//!
//! harper counts in characters; findings carry both character and byte offsets so the CLI
//! (bytes) and a browser (characters) can each use theirs. Harper knows English only: spans in
//! CJK text are not linted.

use crate::text::is_cjk;
pub use harper_core::Dialect;
use harper_core::Document;
use harper_core::linting::{LintGroup, Linter, Suggestion};
use harper_core::spell::FstDictionary;

/// The spellings a writer can ask for, with the short names they also go by: the CLI and
/// the server read dialect names here and nowhere else.
pub const DIALECTS: &[(&str, &str, Dialect)] =
    &[("american", "us", Dialect::American), ("british", "uk", Dialect::British), ("canadian", "ca", Dialect::Canadian), ("australian", "au", Dialect::Australian), ("indian", "in", Dialect::Indian)];

/// The dialect a writer named ("british", "UK"), or an error listing the names.
pub fn dialect_named(name: &str) -> crate::Result<Dialect> {
    let wanted = name.trim().to_lowercase();
    DIALECTS
        .iter()
        .find(|(long, short, _)| *long == wanted || *short == wanted)
        .map(|d| d.2)
        .ok_or_else(|| crate::CraftError::UnknownDialect { name: name.to_string(), known: DIALECTS.iter().map(|(long, short, _)| format!("{long} ({short})")).collect::<Vec<_>>().join(", ") })
}
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// Character offsets of the flagged text.
    pub start: usize,
    pub end: usize,
    /// The same span in bytes.
    pub byte_start: usize,
    pub byte_end: usize,
    /// Spelling, Grammar, Punctuation, Capitalization, Style, ...
    pub kind: String,
    pub message: String,
    /// The flagged text.
    pub original: String,
    /// What the span becomes under each suggestion (empty = delete it).
    pub replacements: Vec<String>,
}

/// Lints `text`; findings are in order of position.
pub fn proofread(text: &str, dialect: Dialect) -> Vec<Finding> {
    let doc = Document::new_plain_english_curated(text);
    let mut linter = LintGroup::new_curated(FstDictionary::curated(), dialect);
    let chars: Vec<char> = text.chars().collect();
    // Character index -> byte offset (one past the end included).
    let mut byte_at: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
    byte_at.push(text.len());
    let mut out: Vec<Finding> = linter
        .lint(&doc)
        .into_iter()
        .filter(|l| l.span.end <= chars.len() && l.span.start < l.span.end)
        .filter(|l| !chars[l.span.start..l.span.end].iter().copied().any(is_cjk))
        .map(|l| {
            let original: String = chars[l.span.start..l.span.end].iter().collect();
            let replacements = l
                .suggestions
                .iter()
                .map(|s| match s {
                    Suggestion::ReplaceWith(r) => r.iter().collect(),
                    Suggestion::InsertAfter(r) => format!("{original}{}", r.iter().collect::<String>()),
                    Suggestion::Remove => String::new(),
                })
                .collect();
            Finding {
                start: l.span.start,
                end: l.span.end,
                byte_start: byte_at[l.span.start],
                byte_end: byte_at[l.span.end],
                kind: format!("{:?}", l.lint_kind),
                message: l.message,
                original,
                replacements,
            }
        })
        .collect();
    out.sort_by_key(|f| (f.start, f.end));
    out
}

/// `text` with `finding`'s replacement number `choice` applied; `None` if the text no longer
/// holds the flagged words there or there is no such replacement.
pub fn apply(text: &str, finding: &Finding, choice: usize) -> Option<String> {
    let replacement = finding.replacements.get(choice)?;
    if text.get(finding.byte_start..finding.byte_end)? != finding.original {
        return None;
    }
    Some(format!("{}{}{}", &text[..finding.byte_start], replacement, &text[finding.byte_end..]))
}

/// `text` with the first replacement of every finding applied (later ones first, so earlier
/// offsets stay valid; a finding overlapping one already applied is skipped). Returns the new
/// text and how many fixes went in.
pub fn apply_all(text: &str, findings: &[Finding]) -> (String, usize) {
    let mut out = text.to_string();
    let mut applied = 0;
    let mut limit = usize::MAX;
    for f in findings.iter().rev() {
        if f.byte_end > limit || f.replacements.is_empty() {
            continue;
        }
        if let Some(next) = apply(&out, f, 0) {
            out = next;
            applied += 1;
            limit = f.byte_start;
        }
    }
    (out, applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BAD: &str = "Me and him goes to the libary every tuesday, its our favorite place.";

    #[test]
    fn a_known_bad_sentence_gets_findings_with_exact_spans() {
        assert_eq!(dialect_named(" UK ").ok(), Some(Dialect::British));
        assert_eq!(dialect_named("indian").ok(), Some(Dialect::Indian));
        let e = dialect_named("martian").unwrap_err().to_string();
        assert!(e.contains("martian") && e.contains("british (uk)") && e.contains("indian (in)"), "{e}");
        let f = proofread(BAD, Dialect::American);
        assert!(f.len() >= 3, "{f:#?}");
        for x in &f {
            assert_eq!(&BAD[x.byte_start..x.byte_end], x.original);
        }
        let libary = f.iter().find(|x| x.original == "libary").expect("the misspelling is found");
        assert!(libary.replacements.iter().any(|r| r == "library"), "{libary:?}");
        assert!(f.iter().any(|x| x.original.eq_ignore_ascii_case("tuesday")), "{f:#?}");
        assert!(proofread("The library opens on Tuesday.", Dialect::American).is_empty());
    }

    #[test]
    fn findings_apply_one_by_one_or_all_at_once() {
        let f = proofread(BAD, Dialect::American);
        let libary = f.iter().find(|x| x.original == "libary").unwrap();
        let choice = libary.replacements.iter().position(|r| r == "library").unwrap();
        let fixed = apply(BAD, libary, choice).unwrap();
        assert!(fixed.contains("the library every"));
        assert_eq!(apply(&fixed, libary, choice), None, "stale findings are not applied twice");
        let (all, n) = apply_all(BAD, &f);
        assert!(n >= 3 && all.contains("Tuesday"), "{all}");
        assert!(proofread(&all, Dialect::American).len() < f.len());
    }

    #[test]
    fn offsets_count_characters_and_bytes_apart_and_cjk_is_left_alone() {
        let text = "“Café” is teh word. 她说：你好。";
        let f = proofread(text, Dialect::American);
        let teh = f.iter().find(|x| x.original == "teh").expect("teh is flagged");
        assert_eq!(text.chars().skip(teh.start).take(3).collect::<String>(), "teh");
        assert!(teh.byte_start > teh.start);
        assert!(f.iter().all(|x| !x.original.chars().any(is_cjk)));
    }
}
