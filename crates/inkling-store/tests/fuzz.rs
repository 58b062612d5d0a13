//! Bad input, fuzzed (see inkling-engine/tests/fuzz.rs): text and Markdown import of any
//! text (headings, Chinese chapter lines, stray bytes) is split into documents or refused,
//! and a file of any bytes is read as UTF-8 or refused with the offset, never a panic.

use inkling_store::import::{read_text, split};
use proptest::prelude::*;

fn cases() -> u32 {
    std::env::var("INKLING_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(64)
}

fn line() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("# ".to_string()),
        Just("## Chapter 1".to_string()),
        Just("第一章".to_string()),
        Just("第十二章 雨".to_string()),
        Just("Chapter".to_string()),
        Just("CHAPTER IV".to_string()),
        Just("---".to_string()),
        Just("```".to_string()),
        Just("\r".to_string()),
        Just("".to_string()),
        ".{0,20}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn any_text_splits_into_documents_that_keep_it(lines in proptest::collection::vec(line(), 0..30), markdown in any::<bool>()) {
        let text = lines.join("\n");
        let sections = split(&text, markdown, "Untitled");
        // Nothing the writer wrote is lost: every non-heading character is in some section.
        let kept: usize = sections.iter().map(|s| s.text.chars().filter(|c| c.is_alphanumeric()).count() + s.title.chars().filter(|c| c.is_alphanumeric()).count()).sum();
        let had = text.chars().filter(|c| c.is_alphanumeric()).count();
        prop_assert!(kept >= had, "{kept} of {had} letters kept from {text:?}");
    }

    #[test]
    fn any_bytes_read_as_text_or_are_refused(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.txt");
        std::fs::write(&path, &bytes).unwrap();
        let body = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
        match read_text(&path) {
            // Only valid UTF-8 is read, and it comes back whole, with Unix line ends.
            Ok(t) => prop_assert_eq!(t, std::str::from_utf8(body).unwrap().replace("\r\n", "\n")),
            Err(e) => prop_assert!(std::str::from_utf8(body).is_err() || body.contains(&0) || body.starts_with(b"\xFF\xFE") || body.starts_with(b"\xFE\xFF"), "{e}"),
        }
    }
}

/// Found by the fuzzing: a last heading with nothing under it was dropped with its words.
#[test]
fn a_heading_with_nothing_under_it_is_kept() {
    let sections = split("Some opening.\nCHAPTER IV\n", false, "Untitled");
    let titles: Vec<&str> = sections.iter().map(|s| s.title.as_str()).collect();
    assert_eq!(titles, ["Untitled", "CHAPTER IV"]);
    let sections = split("# One\n# Two\nText.", true, "Untitled");
    assert_eq!(sections.iter().map(|s| (s.title.as_str(), s.text.as_str())).collect::<Vec<_>>(), [("One", ""), ("Two", "Text.")]);
}
