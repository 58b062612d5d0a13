//! Held-out ranking between two authors of public-domain text, from Debian's `bible-kjv`
//! package (which `.ci/run` installs): in the King James Bible, the author of Luke and Acts
//! (a narrative) and Paul (his seven undisputed letters, argument). One translation, one
//! century, one subject: what tells them apart is each author's habits. Each author's odd
//! chapters build the profile; passages of about 120 words from the even chapters are held
//! out. A profile must rank its own author's held-out passage above the other's in at least
//! 90% of pairs, both ways.
//!
//! Without the `bible` program the test says so and passes, unless INKLING_REQUIRE_TEXTS=1
//! (CI), where it fails.

use inkling_voice::{Profile, rank};
use std::process::Command;

/// The chapters of `spec` ("Gen1:1-Gen50:26"), without verse numbers.
fn kjv(spec: &str) -> Option<Vec<String>> {
    let out = Command::new("bible").args(["-l10000", spec]).output().ok().filter(|o| o.status.success())?;
    let text = String::from_utf8(out.stdout).ok()?;
    let mut chapters: Vec<String> = Vec::new();
    for line in text.lines() {
        let verse = line.trim_start();
        if line.starts_with("  ") && verse.starts_with(|c: char| c.is_ascii_digit()) {
            let words = verse.trim_start_matches(|c: char| c.is_ascii_digit()).trim();
            if let Some(ch) = chapters.last_mut() {
                ch.push(' ');
                ch.push_str(words);
            }
        } else if !line.trim().is_empty() {
            chapters.push(String::new());
        }
    }
    chapters.retain(|c| !c.trim().is_empty());
    (!chapters.is_empty()).then_some(chapters)
}

/// An author's books, split into (odd chapters, even chapters), each as paragraphs.
fn author(specs: &[&str]) -> Option<(String, String)> {
    let mut chapters = Vec::new();
    for spec in specs {
        chapters.extend(kjv(spec)?);
    }
    let half = |parity: usize| chapters.iter().enumerate().filter(|(i, _)| i % 2 == parity).map(|(_, c)| c.trim()).collect::<Vec<_>>().join("\n\n");
    Some((half(0), half(1)))
}

const LUKE: &[&str] = &["Luke1:1-Luke24:53", "Acts1:1-Acts28:31"];
const PAUL: &[&str] = &["Rom1:1-Gal6:18", "Phil1:1-Phil4:23", "1Thess1:1-1Thess5:28", "Philem1:1-Philem1:25"];

/// Consecutive passages of about `words` words, cut at sentence ends.
fn passages(text: &str, words: usize) -> Vec<String> {
    let (mut out, mut cur, mut n) = (Vec::new(), String::new(), 0);
    for s in text.split_inclusive(['.', '?', '!']) {
        cur.push_str(s);
        n += s.split_whitespace().count();
        if n >= words {
            out.push(std::mem::take(&mut cur).trim().to_string());
            n = 0;
        }
    }
    out
}

#[test]
fn a_profile_ranks_its_own_author_first_on_held_out_passages() {
    let (Some((narrative, held_narrative)), Some((paul, held_paul))) = (author(LUKE), author(PAUL)) else {
        assert!(std::env::var("INKLING_REQUIRE_TEXTS").is_err(), "INKLING_REQUIRE_TEXTS is set but the `bible` program (Debian's bible-kjv) is missing or failed");
        eprintln!("skipped: install Debian's bible-kjv for the two-author test");
        return;
    };
    let narrative_profile = Profile::build(&[&narrative]).expect("half of Luke and Acts is long enough");
    let paul_profile = Profile::build(&[&paul]).expect("half of Paul's letters is long enough");
    let (a, b) = (passages(&held_narrative, 120), passages(&held_paul, 120));
    let pairs = a.len().min(b.len());
    assert!(pairs >= 100, "{pairs} held-out pairs");
    let mut right = 0;
    for (x, y) in a.iter().zip(&b) {
        let by_narrative = rank(&narrative_profile, &[(x, None), (y, None)]);
        right += usize::from(by_narrative[0].score < by_narrative[1].score);
        let by_paul = rank(&paul_profile, &[(x, None), (y, None)]);
        right += usize::from(by_paul[1].score < by_paul[0].score);
    }
    let accuracy = right as f64 / (2 * pairs) as f64;
    eprintln!("two-author held-out ranking: {right} of {} right ({:.1}%)", 2 * pairs, accuracy * 100.0);
    assert!(accuracy >= 0.9, "accuracy {accuracy:.3} on {pairs} pairs");
}
