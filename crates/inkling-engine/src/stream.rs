//! Turning a token stream into text a writer can see: whole UTF-8 characters only, stop
//! strings that never reach the output even when they arrive split across tokens, and banned
//! phrases ([`crate::bans`]) found before anything of them is shown.
//!
//! Text is released only once nothing held back could still become a stop string or a ban.
//! Where a ban might still match, release stops at the start of the token the match would
//! begin in, so the engine can take that token back ([`TextStream::rewind`]) without
//! retracting a character the writer has seen.

use crate::bans::{Bans, Scan};
use regex_automata::hybrid::dfa::Cache;

/// Accumulates token bytes and releases text in whole characters, holding back anything that
/// could still become a stop string or a banned phrase.
#[derive(Debug)]
pub struct TextStream<'a> {
    pending: Vec<u8>,
    /// All decoded text of the tokens pushed; the first `released` bytes have been shown.
    text: String,
    released: usize,
    stops: Vec<String>,
    bans: Option<(&'a Bans, Cache)>,
    /// Before each pushed token: the length of `text` and the bytes of an unfinished
    /// character, so a rewind can restore both.
    marks: Vec<(usize, Vec<u8>)>,
}

/// What pushing a token produced.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// New text to show (possibly empty).
    Text(String),
    /// A stop string matched: the text before it, and the stream is finished.
    Stopped(String),
    /// A banned phrase matched, starting in the token at this index (of those pushed); the
    /// caller rewinds to it. Nothing of the phrase was released.
    Banned(BanHit),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BanHit {
    /// Index of the pushed token the match begins in.
    pub token: usize,
    /// Which ban (see [`Bans::name`]).
    pub pattern: usize,
}

impl<'a> TextStream<'a> {
    pub fn new(stops: &[String]) -> Self {
        Self::with_bans(stops, None)
    }

    pub fn with_bans(stops: &[String], bans: Option<&'a Bans>) -> Self {
        let stops = stops.iter().filter(|s| !s.is_empty()).cloned().collect();
        Self { pending: Vec::new(), text: String::new(), released: 0, stops, bans: bans.map(|b| (b, b.cache())), marks: Vec::new() }
    }

    /// Everything released so far.
    pub fn text(&self) -> &str {
        &self.text[..self.released]
    }

    /// Bytes of a character whose remaining bytes have not been generated yet.
    pub fn pending_bytes(&self) -> &[u8] {
        &self.pending
    }

    /// Tokens pushed (and not rewound).
    pub fn tokens(&self) -> usize {
        self.marks.len()
    }

    /// How many tokens, from the first, have all their text released (a token ending inside
    /// a character counts once the character is out).
    pub fn released_tokens(&self) -> usize {
        let whole = self.pending.is_empty() && self.text.len() <= self.released;
        if whole {
            return self.marks.len();
        }
        self.marks.iter().rposition(|(at, pending)| *at <= self.released && pending.is_empty()).unwrap_or(0)
    }

    /// The first token whose text is not yet released, wholly or partly: the earliest a
    /// rewind may go.
    pub fn first_unreleased_token(&self) -> usize {
        self.marks.iter().position(|(at, _)| *at >= self.released).unwrap_or(self.marks.len())
    }

    pub fn push(&mut self, bytes: &[u8]) -> Step {
        self.marks.push((self.text.len(), self.pending.clone()));
        self.decode(bytes);
        let stop = self.stops.iter().filter_map(|s| self.text[self.released..].find(s.as_str())).min().map(|at| self.released + at);
        // Bans are looked for in the text that would be output: up to a stop string, which
        // ends the text (so a ban ending there is decided now).
        let end = stop.unwrap_or(self.text.len());
        let mut limit = end;
        if let Some((bans, cache)) = &mut self.bans {
            match bans.scan(cache, &self.text[..end], self.released, stop.is_some()) {
                Scan::Hit { start, pattern } => return Step::Banned(BanHit { token: self.token_at(start), pattern }),
                Scan::Unresolved(at) => limit = self.marks[self.token_at(at)].0.max(self.released),
                Scan::Clear => {}
            }
        }
        if let Some(at) = stop {
            let out = self.text[self.released..at].to_string();
            self.text.truncate(at);
            self.released = at;
            return Step::Stopped(out);
        }
        // Hold back the longest suffix that is a proper prefix of some stop string.
        let keep = self
            .stops
            .iter()
            .flat_map(|s| (1..s.len()).filter(|&n| s.is_char_boundary(n)).map(move |n| &s[..n]))
            .filter(|p| self.text[self.released..].ends_with(p))
            .map(|p| p.len())
            .max()
            .unwrap_or(0);
        let cut = limit.min(self.text.len() - keep);
        let out = self.text[self.released..cut].to_string();
        self.released = cut;
        Step::Text(out)
    }

    /// Moves the longest valid UTF-8 prefix of the pending bytes into `text`; a truncated
    /// character at the end waits for its remaining bytes, an invalid sequence becomes U+FFFD.
    fn decode(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(s) => {
                    self.text.push_str(s);
                    self.pending.clear();
                    break;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    self.text.push_str(std::str::from_utf8(&self.pending[..valid]).unwrap_or_default());
                    match e.error_len() {
                        None => {
                            self.pending.drain(..valid);
                            break;
                        }
                        Some(bad) => {
                            self.text.push('\u{FFFD}');
                            self.pending.drain(..valid + bad);
                        }
                    }
                }
            }
        }
    }

    /// The last token that began at a character boundary at or before byte `at`: where a
    /// match starting at `at` begins, token-wise.
    fn token_at(&self, at: usize) -> usize {
        self.marks.iter().rposition(|(start, pending)| *start <= at && pending.is_empty()).unwrap_or(0)
    }

    /// Takes back the tokens from index `token` on. Refused (false) where that would take
    /// back text already released.
    pub fn rewind(&mut self, token: usize) -> bool {
        let Some((at, pending)) = self.marks.get(token).cloned() else { return token == self.marks.len() };
        if at < self.released {
            return false;
        }
        self.text.truncate(at);
        self.pending = pending;
        self.marks.truncate(token);
        true
    }

    /// A ban the text matches if it ends here (a phrase at the very end is only decided
    /// then). The caller rewinds to it or cuts it off before [`TextStream::finish`].
    pub fn hit_at_end(&mut self) -> Option<BanHit> {
        let (bans, cache) = self.bans.as_mut()?;
        match bans.scan(cache, &self.text, self.released, true) {
            Scan::Hit { start, pattern } => Some(BanHit { token: self.token_at(start), pattern }),
            _ => None,
        }
    }

    /// The generation ended: release whatever is held (a partial stop string is plain text).
    /// Bytes of a character the model never finished are dropped: they are not text. A ban
    /// matching at the end is cut off here if the caller did not rewind it.
    pub fn finish(&mut self) -> String {
        while let Some(hit) = self.hit_at_end() {
            if !self.rewind(hit.token) {
                break;
            }
        }
        self.pending.clear();
        let out = self.text[self.released..].to_string();
        self.released = self.text.len();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn run(chunks: &[&[u8]], stops: &[&str]) -> (String, bool, Vec<String>) {
        let stops: Vec<String> = stops.iter().map(|s| s.to_string()).collect();
        let mut s = TextStream::new(&stops);
        let mut pieces = Vec::new();
        for c in chunks {
            match s.push(c) {
                Step::Text(t) => pieces.push(t),
                Step::Stopped(t) => {
                    pieces.push(t);
                    return (s.text().to_string(), true, pieces);
                }
                Step::Banned(_) => unreachable!("no bans in these tests"),
            }
        }
        pieces.push(s.finish());
        (s.text().to_string(), false, pieces)
    }

    #[test]
    fn chinese_split_mid_character_streams_whole_characters() {
        let text = "今天天气很好";
        let bytes = text.as_bytes();
        let chunks: Vec<&[u8]> = bytes.chunks(2).collect();
        let (out, stopped, pieces) = run(&chunks, &[]);
        assert_eq!(out, text);
        assert!(!stopped);
        for p in pieces {
            assert!(std::str::from_utf8(p.as_bytes()).is_ok());
        }
    }

    #[test]
    fn stop_string_split_across_tokens_is_never_emitted() {
        let (out, stopped, pieces) = run(&[b"Hello wor", b"ld\n\nTh", b"e End"], &["\n\nThe"]);
        assert!(stopped);
        assert_eq!(out, "Hello world");
        assert!(pieces.iter().all(|p| !p.contains('\n')));
    }

    #[test]
    fn a_partial_stop_string_is_released_at_the_end() {
        let (out, stopped, _) = run(&[b"The cat sat on the ", b"ma"], &["mat."]);
        assert!(!stopped);
        assert_eq!(out, "The cat sat on the ma");
    }

    #[test]
    fn an_unfinished_character_at_the_end_is_dropped() {
        let (out, _, _) = run(&[b"ok \xe4\xbb"], &[]);
        assert_eq!(out, "ok ");
    }

    #[test]
    fn invalid_bytes_become_replacement_characters() {
        let (out, _, _) = run(&[b"ok \xff then"], &[]);
        assert_eq!(out, "ok \u{FFFD} then");
    }

    fn banned(phrases: &[&str]) -> crate::bans::Bans {
        let p: Vec<String> = phrases.iter().map(|s| s.to_string()).collect();
        crate::bans::Bans::compile(&p, &[]).unwrap().unwrap()
    }

    #[test]
    fn a_banned_phrase_is_held_back_until_decided_and_named_by_its_first_token() {
        let bans = banned(&["Elara"]);
        let mut s = TextStream::with_bans(&[], Some(&bans));
        assert_eq!(s.push(b"then"), Step::Text("then".into()));
        // The token that may begin the name is held whole, so taking it back retracts nothing.
        assert_eq!(s.push(b" El"), Step::Text(String::new()));
        assert_eq!(s.push(b"ara"), Step::Text(String::new()), "Elaran would be another name");
        assert_eq!(s.push(b" smiled"), Step::Banned(BanHit { token: 1, pattern: 0 }));
        assert_eq!(s.first_unreleased_token(), 1);
        assert!(s.rewind(1));
        assert_eq!(s.push(b" Mara"), Step::Text(" Mara".into()));
        assert_eq!(s.push(b" smiled"), Step::Text(" smiled".into()));
        assert_eq!(s.text(), "then Mara smiled");
        assert!(!s.rewind(1), "released text is never taken back");
    }

    #[test]
    fn a_chinese_ban_split_inside_a_character_rewinds_to_the_characters_first_byte() {
        let bans = banned(&["艾拉"]);
        let mut s = TextStream::with_bans(&[], Some(&bans));
        let ai = "艾".as_bytes();
        assert_eq!(s.push("她叫".as_bytes()), Step::Text("她叫".into()));
        assert_eq!(s.push(&ai[..2]), Step::Text(String::new()));
        assert_eq!(s.push(&[ai[2]]), Step::Text(String::new()));
        assert_eq!(s.push("拉。".as_bytes()), Step::Banned(BanHit { token: 1, pattern: 0 }));
        assert!(s.rewind(1));
        assert_eq!(s.pending_bytes(), b"");
        assert_eq!(s.push("小明。".as_bytes()), Step::Text("小明。".into()));
        assert_eq!(s.text(), "她叫小明。");
    }

    #[test]
    fn a_ban_at_the_very_end_is_cut_off_and_a_stop_string_decides_bans_before_it() {
        let bans = banned(&["the end"]);
        let mut s = TextStream::with_bans(&[], Some(&bans));
        assert_eq!(s.push(b"and that was"), Step::Text("and that was".into()));
        assert_eq!(s.push(b" the end"), Step::Text(String::new()));
        assert_eq!(s.hit_at_end(), Some(BanHit { token: 1, pattern: 0 }));
        assert_eq!(s.finish(), "");
        assert_eq!(s.text(), "and that was");

        let stops = vec!["\n\n".to_string()];
        let mut s = TextStream::with_bans(&stops, Some(&bans));
        assert_eq!(s.push(b"so the end\n\nnext"), Step::Banned(BanHit { token: 0, pattern: 0 }));
        let mut s = TextStream::with_bans(&stops, Some(&bans));
        assert_eq!(s.push(b"so the endless\n\nnext"), Step::Stopped("so the endless".into()));
    }

    proptest! {
        #[test]
        fn any_split_gives_the_same_text(text in "\\PC{0,40}", cuts in prop::collection::vec(0usize..200, 0..8)) {
            let bytes = text.as_bytes();
            let mut points: Vec<usize> = cuts.into_iter().map(|c| c % (bytes.len() + 1)).collect();
            points.sort();
            let mut chunks = Vec::new();
            let mut last = 0;
            for p in points { chunks.push(&bytes[last..p]); last = p; }
            chunks.push(&bytes[last..]);
            let (out, _, _) = run(&chunks, &[]);
            prop_assert_eq!(out, text);
        }

        #[test]
        fn stop_is_found_wherever_the_split(prefix in "[a-z ]{0,20}", cut in 0usize..30) {
            let full = format!("{prefix}STOP and more");
            let b = full.as_bytes();
            let c = cut.min(b.len());
            let (out, stopped, _) = run(&[&b[..c], &b[c..]], &["STOP"]);
            prop_assert!(stopped);
            prop_assert_eq!(out, prefix);
        }
    }
}
