//! Turning a token stream into text a writer can see: whole UTF-8 characters only, and stop
//! strings that never reach the output even when they arrive split across tokens.

/// Accumulates token bytes and releases text in whole characters, holding back anything that
/// could still become a stop string.
#[derive(Debug)]
pub struct TextStream {
    pending: Vec<u8>,
    /// Decoded text not yet released (it might be the start of a stop string).
    held: String,
    stops: Vec<String>,
    /// Everything released so far.
    released: String,
}

/// What pushing a token produced.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// New text to show (possibly empty).
    Text(String),
    /// A stop string matched: the text before it, and the stream is finished.
    Stopped(String),
}

impl TextStream {
    pub fn new(stops: &[String]) -> Self {
        let stops = stops.iter().filter(|s| !s.is_empty()).cloned().collect();
        Self { pending: Vec::new(), held: String::new(), stops, released: String::new() }
    }

    pub fn text(&self) -> &str {
        &self.released
    }

    /// Bytes of a character whose remaining bytes have not been generated yet.
    pub fn pending_bytes(&self) -> &[u8] {
        &self.pending
    }

    pub fn push(&mut self, bytes: &[u8]) -> Step {
        self.pending.extend_from_slice(bytes);
        // Move the longest valid UTF-8 prefix into `held`; a truncated character at the end
        // waits for its remaining bytes, an invalid sequence becomes U+FFFD.
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(s) => {
                    self.held.push_str(s);
                    self.pending.clear();
                    break;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    self.held.push_str(std::str::from_utf8(&self.pending[..valid]).unwrap_or_default());
                    match e.error_len() {
                        None => {
                            self.pending.drain(..valid);
                            break;
                        }
                        Some(bad) => {
                            self.held.push('\u{FFFD}');
                            self.pending.drain(..valid + bad);
                        }
                    }
                }
            }
        }
        if let Some(at) = self.stops.iter().filter_map(|s| self.held.find(s.as_str())).min() {
            let out = self.held[..at].to_string();
            self.released.push_str(&out);
            self.held.clear();
            return Step::Stopped(out);
        }
        // Hold back the longest suffix of `held` that is a proper prefix of some stop string.
        let keep = self
            .stops
            .iter()
            .flat_map(|s| (1..s.len()).filter(|&n| s.is_char_boundary(n)).map(move |n| &s[..n]))
            .filter(|p| self.held.ends_with(p))
            .map(|p| p.len())
            .max()
            .unwrap_or(0);
        let cut = self.held.len() - keep;
        let out: String = self.held.drain(..cut).collect();
        self.released.push_str(&out);
        Step::Text(out)
    }

    /// The generation ended: release whatever is held (a partial stop string is plain text).
    /// Bytes of a character the model never finished are dropped: they are not text.
    pub fn finish(&mut self) -> String {
        let out = std::mem::take(&mut self.held);
        self.pending.clear();
        self.released.push_str(&out);
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
