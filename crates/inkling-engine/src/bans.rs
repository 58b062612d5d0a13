//! Banned phrases and patterns ("anti-slop"): text the writer never wants to see, found in
//! the generated text as it grows, however the tokens split it.
//!
//! All phrases and patterns compile into one lazy DFA ([`regex_automata::hybrid`]), run
//! anchored from each position of the text not yet shown. From a position it ends in one of
//! three ways: a match (a ban was hit there: the engine rewinds to the token that started it),
//! a dead state (nothing banned can start there), or the end of the text with the automaton
//! still alive (unresolved: that text is held back until later tokens decide it). That third
//! answer is what lets streaming hold back only the unresolved tail.
//!
//! - Phrases are literal and case-insensitive (Unicode simple case folding). Whitespace in a
//!   phrase matches any run of whitespace, and `'` matches a typographic apostrophe too. A
//!   phrase that starts or ends with an ASCII letter or digit matches whole words there, so
//!   banning "Kael" leaves "Kaelin" alone; CJK phrases match anywhere (Chinese has no spaces).
//! - Patterns are regular expressions (the `regex` crate's syntax), case-insensitive unless
//!   they say `(?-i)`. `\b` in them is an ASCII word boundary: a lazy DFA cannot decide
//!   Unicode word boundaries, and CJK text has none to find.
//! - A ban never matches empty text: such a pattern is refused when compiled. A pattern that
//!   can run on (`a.*b`) holds text back for as long as it might still match.

use crate::error::{EngineError, Result};
use regex_automata::Anchored;
use regex_automata::hybrid::dfa::{Cache, DFA};
use regex_automata::nfa::thompson;
use regex_automata::util::start;
use regex_syntax::hir::{Capture, Hir, HirKind, Look, Repetition};

/// The most phrases and patterns one request may carry (each is a few DFA states; the bound
/// keeps a pasted novel from becoming a ban list).
pub const MAX_BANS: usize = 4096;

/// The compiled phrases and patterns of one request, shared by its candidates.
#[derive(Debug)]
pub struct Bans {
    dfa: DFA,
    /// What each pattern id was written as, for reports.
    names: Vec<String>,
}

/// What scanning the unshown text found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scan {
    /// Nothing banned starts in it.
    Clear,
    /// A ban might still match from this byte on, depending on text not generated yet.
    Unresolved(usize),
    /// A ban matches from byte `start`; `pattern` indexes [`Bans::name`].
    Hit { start: usize, pattern: usize },
}

impl Bans {
    /// Compiles `phrases` and `patterns`; `None` when both are empty (no scanning at all).
    pub fn compile(phrases: &[String], patterns: &[String]) -> Result<Option<Self>> {
        let phrases: Vec<&String> = phrases.iter().filter(|p| !p.trim().is_empty()).collect();
        if phrases.is_empty() && patterns.is_empty() {
            return Ok(None);
        }
        if phrases.len() + patterns.len() > MAX_BANS {
            return Err(EngineError::InvalidRequest(format!("{} banned phrases and patterns were given; at most {MAX_BANS} are allowed", phrases.len() + patterns.len())));
        }
        let mut hirs = Vec::with_capacity(phrases.len() + patterns.len());
        let mut names = Vec::with_capacity(hirs.capacity());
        for p in phrases {
            hirs.push(parse(&phrase_pattern(p)).map_err(|e| EngineError::InvalidRequest(format!("banned phrase {p:?} cannot be compiled: {e}")))?);
            names.push(p.trim().to_string());
        }
        for p in patterns {
            let hir = parse(p).map_err(|e| EngineError::InvalidRequest(format!("banned_regex {p:?} is not a valid regular expression: {e}")))?;
            if hir.properties().minimum_len() == Some(0) {
                return Err(EngineError::InvalidRequest(format!("banned_regex {p:?} matches empty text, so it would ban everything; make it match at least one character")));
            }
            hirs.push(hir);
            names.push(format!("/{p}/"));
        }
        let nfa = thompson::Compiler::new().build_many_from_hir(&hirs).map_err(|e| EngineError::InvalidRequest(format!("the banned phrases and patterns are too large to compile together: {e}")))?;
        let dfa = DFA::builder()
            // Room for the states a long list visits; the cache is cleared and rebuilt when
            // full, never given up on.
            .configure(DFA::config().cache_capacity(8 << 20))
            .build_from_nfa(nfa)
            .map_err(|e| EngineError::InvalidRequest(format!("the banned phrases and patterns cannot be compiled: {e}")))?;
        Ok(Some(Self { dfa, names }))
    }

    /// The phrase or `/pattern/` a [`Scan::Hit`] names.
    pub fn name(&self, pattern: usize) -> &str {
        self.names.get(pattern).map_or("", String::as_str)
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Scratch state for scanning; one per candidate.
    pub fn cache(&self) -> Cache {
        self.dfa.create_cache()
    }

    /// Scans `text` from each character boundary at or after `from`. The earliest hit wins;
    /// without one, the earliest unresolved position is reported. `at_end` says no more text
    /// will come, which resolves everything (a pattern ending in `\b` matches at the end).
    pub fn scan(&self, cache: &mut Cache, text: &str, from: usize, at_end: bool) -> Scan {
        let mut unresolved = None;
        for p in (from..text.len()).filter(|&p| text.is_char_boundary(p)) {
            match self.scan_from(cache, text.as_bytes(), p, at_end) {
                From::Hit(pattern) => return Scan::Hit { start: p, pattern },
                From::Open => {
                    unresolved.get_or_insert(p);
                }
                From::Dead => {}
            }
        }
        unresolved.map_or(Scan::Clear, Scan::Unresolved)
    }

    fn scan_from(&self, cache: &mut Cache, bytes: &[u8], p: usize, at_end: bool) -> From {
        let config = start::Config::new().anchored(Anchored::Yes).look_behind(p.checked_sub(1).map(|i| bytes[i]));
        // The DFA has no quit bytes (no Unicode word boundaries) and its cache never gives up,
        // so these errors cannot happen; a position that errs is treated as clear.
        let Ok(mut sid) = self.dfa.start_state(cache, &config) else { return From::Dead };
        for &b in &bytes[p..] {
            let Ok(next) = self.dfa.next_state(cache, sid, b) else { return From::Dead };
            sid = next;
            // Match states come one byte late: this one says a match ended before `b`.
            if sid.is_match() {
                return From::Hit(self.dfa.match_pattern(cache, sid, 0).as_usize());
            }
            if sid.is_dead() || sid.is_quit() {
                return From::Dead;
            }
        }
        if !at_end {
            return From::Open;
        }
        match self.dfa.next_eoi_state(cache, sid) {
            Ok(s) if s.is_match() => From::Hit(self.dfa.match_pattern(cache, s, 0).as_usize()),
            _ => From::Dead,
        }
    }
}

enum From {
    Hit(usize),
    Open,
    Dead,
}

/// A phrase as a regular expression: escaped, whitespace-tolerant, whole words at ASCII ends.
fn phrase_pattern(phrase: &str) -> String {
    let phrase = phrase.trim();
    let word = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    let mut out = String::new();
    if word(phrase.chars().next()) {
        out.push_str(r"\b");
    }
    let mut in_space = false;
    for c in phrase.chars() {
        if c.is_whitespace() {
            if !in_space {
                out.push_str(r"\s+");
            }
            in_space = true;
            continue;
        }
        in_space = false;
        match c {
            '\'' | '\u{2019}' => out.push_str("['\u{2019}]"),
            c => out.push_str(&regex_syntax::escape(c.encode_utf8(&mut [0; 4]))),
        }
    }
    if word(phrase.chars().last()) {
        out.push_str(r"\b");
    }
    out
}

/// Parses with case folding on, then makes word boundaries ASCII (see the module docs).
fn parse(pattern: &str) -> std::result::Result<Hir, String> {
    let hir = regex_syntax::ParserBuilder::new().case_insensitive(true).build().parse(pattern).map_err(|e| e.to_string())?;
    Ok(ascii_word_boundaries(hir))
}

fn ascii_word_boundaries(hir: Hir) -> Hir {
    match hir.into_kind() {
        HirKind::Look(look) => Hir::look(match look {
            Look::WordUnicode => Look::WordAscii,
            Look::WordUnicodeNegate => Look::WordAsciiNegate,
            Look::WordStartUnicode => Look::WordStartAscii,
            Look::WordEndUnicode => Look::WordEndAscii,
            Look::WordStartHalfUnicode => Look::WordStartHalfAscii,
            Look::WordEndHalfUnicode => Look::WordEndHalfAscii,
            other => other,
        }),
        HirKind::Repetition(r) => Hir::repetition(Repetition { sub: Box::new(ascii_word_boundaries(*r.sub)), ..r }),
        HirKind::Capture(c) => Hir::capture(Capture { sub: Box::new(ascii_word_boundaries(*c.sub)), ..c }),
        HirKind::Concat(subs) => Hir::concat(subs.into_iter().map(ascii_word_boundaries).collect()),
        HirKind::Alternation(subs) => Hir::alternation(subs.into_iter().map(ascii_word_boundaries).collect()),
        HirKind::Empty => Hir::empty(),
        HirKind::Literal(l) => Hir::literal(l.0),
        HirKind::Class(c) => Hir::class(c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bans(phrases: &[&str], patterns: &[&str]) -> Bans {
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        Bans::compile(&s(phrases), &s(patterns)).unwrap().unwrap()
    }

    fn scan(b: &Bans, text: &str, at_end: bool) -> Scan {
        b.scan(&mut b.cache(), text, 0, at_end)
    }

    #[test]
    fn phrases_match_whole_words_in_any_case() {
        let b = bans(&["Elara", "a testament to"], &[]);
        assert_eq!(scan(&b, "and ELARA smiled", false), Scan::Hit { start: 4, pattern: 0 });
        assert_eq!(scan(&b, "it was A  Testament\nto her", false), Scan::Hit { start: 7, pattern: 1 });
        assert_eq!(scan(&b, "Elaras", true), Scan::Clear, "a longer word is another word");
        assert_eq!(scan(&b, "Elara's", false), Scan::Hit { start: 0, pattern: 0 });
    }

    #[test]
    fn an_unfinished_match_is_unresolved_until_the_text_decides_it() {
        let b = bans(&["Elara", "shivers down her spine"], &[]);
        assert_eq!(scan(&b, "then El", false), Scan::Unresolved(5));
        assert_eq!(scan(&b, "then Elara", false), Scan::Unresolved(5), "Elaran would be another name");
        assert_eq!(scan(&b, "then Elara", true), Scan::Hit { start: 5, pattern: 0 });
        assert_eq!(scan(&b, "then Elan", false), Scan::Clear);
        assert_eq!(scan(&b, "shivers down the road", false), Scan::Clear);
        assert_eq!(scan(&b, "sent shivers down h", false), Scan::Unresolved(5));
    }

    #[test]
    fn chinese_phrases_match_inside_text() {
        let b = bans(&["艾拉", "嘴角微微上扬"], &[]);
        assert_eq!(scan(&b, "她叫艾拉。", false), Scan::Hit { start: 6, pattern: 0 });
        assert_eq!(scan(&b, "他嘴角微微", false), Scan::Unresolved(3));
        assert_eq!(scan(&b, "今天天气很好", false), Scan::Clear);
    }

    #[test]
    fn patterns_are_case_insensitive_and_may_opt_out() {
        let b = bans(&[], &[r"\bkael\w*", r"(?-i)Lyra"]);
        assert_eq!(scan(&b, "Kaelin ran", false), Scan::Hit { start: 0, pattern: 0 });
        assert_eq!(scan(&b, "lyra sang", true), Scan::Clear);
        assert_eq!(scan(&b, "Lyra sang", true), Scan::Hit { start: 0, pattern: 1 });
    }

    #[test]
    fn the_earliest_hit_wins_and_scanning_starts_where_asked() {
        let b = bans(&["tapestry", "Elara"], &[]);
        let text = "Elara wove a tapestry";
        assert_eq!(scan(&b, text, true), Scan::Hit { start: 0, pattern: 1 });
        assert_eq!(b.scan(&mut b.cache(), text, 1, true), Scan::Hit { start: 13, pattern: 0 });
    }

    #[test]
    fn bad_lists_are_refused_with_the_reason() {
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let e = Bans::compile(&[], &s(&["(unclosed"])).unwrap_err().to_string();
        assert!(e.contains("(unclosed") && e.contains("not a valid"), "{e}");
        let e = Bans::compile(&[], &s(&["a*"])).unwrap_err().to_string();
        assert!(e.contains("empty text"), "{e}");
        assert!(Bans::compile(&s(&["  "]), &[]).unwrap().is_none(), "blank phrases are no bans");
    }
}
