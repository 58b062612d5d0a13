//! Where text may be cut: paragraph and sentence boundaries, in English and in CJK scripts
//! (which end sentences with 。！？ and need no space after them). Offsets are byte offsets
//! that always fall on character boundaries.

/// Han, kana, hangul and CJK punctuation: scripts written without spaces between words.
pub fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3000..=0x303F | 0x3040..=0x30FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xAC00..=0xD7AF |
        0xF900..=0xFAFF | 0xFF00..=0xFFEF | 0x20000..=0x2FA1F)
}

fn is_terminal(c: char) -> bool {
    matches!(c, '.' | '!' | '?' | '…' | '。' | '！' | '？' | '；')
}

fn is_closer(c: char) -> bool {
    matches!(c, '"' | '\'' | '”' | '’' | ')' | ']' | '」' | '』' | '》' | '）' | '*' | '_')
}

/// 1-based line and column (in characters) of byte `offset` in `text`, for messages.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// Offsets just after each sentence end (terminal punctuation plus closing quotes), where the
/// next character is whitespace, the end of text, or the sentence is CJK.
pub fn sentence_ends(text: &str) -> Vec<usize> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let (_, c) = chars[i];
        if is_terminal(c) {
            let mut j = i + 1;
            while j < chars.len() && (is_terminal(chars[j].1) || is_closer(chars[j].1)) {
                j += 1;
            }
            let end = chars.get(j).map_or(text.len(), |&(o, _)| o);
            let next = chars.get(j).map(|&(_, c)| c);
            let cjk = c == '。' || c == '！' || c == '？' || c == '；' || (i > 0 && is_cjk(chars[i - 1].1));
            if next.is_none_or(char::is_whitespace) || cjk {
                out.push(end);
            }
            i = j;
        } else {
            i += 1;
        }
    }
    out
}

/// Offsets where paragraphs start (after a blank line or a line break), not counting 0.
pub fn paragraph_starts(text: &str) -> Vec<usize> {
    // Blank lines are not paragraphs: a start is where a line with text begins.
    text.match_indices('\n').map(|(i, _)| i + 1).filter(|&i| i < text.len() && !text[i..].starts_with(['\n', '\r'])).collect()
}

/// `text` cut after its last whole sentence; unchanged when it has no sentence end (a list,
/// a title, a fragment the writer asked for).
pub fn trim_to_sentence(text: &str) -> &str {
    let t = text.trim_end();
    match sentence_ends(t).last() {
        Some(&end) => &t[..end],
        None => t,
    }
}

/// The latest start offset of a suffix of `text` that begins at a paragraph start, else a
/// sentence start, else a word start, such that `fits(suffix)` holds; `None` if not even the
/// last word fits. Assumes `fits` is monotone (a shorter suffix fits if a longer one does).
pub fn longest_fitting_tail(text: &str, fits: &mut dyn FnMut(&str) -> bool) -> Option<usize> {
    if fits(text) {
        return Some(0);
    }
    let sentence_starts: Vec<usize> = sentence_ends(text).into_iter().map(|e| e + text[e..].len() - text[e..].trim_start().len()).filter(|&s| s < text.len()).collect();
    let word_starts: Vec<usize> =
        text.char_indices().zip(text.chars().skip(1)).filter(|((_, a), b)| (a.is_whitespace() && !b.is_whitespace()) || is_cjk(*b)).map(|((i, a), _)| i + a.len_utf8()).collect();
    for starts in [paragraph_starts(text), sentence_starts, word_starts] {
        // Binary search for the earliest start whose suffix fits.
        let (mut lo, mut hi) = (0, starts.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            if fits(&text[starts[mid]..]) {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        if lo < starts.len() {
            return Some(starts[lo]);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences_end_at_terminal_punctuation_in_english_and_chinese() {
        let t = "She ran. \"Why?\" he asked! Mr. Smith";
        let ends: Vec<&str> = sentence_ends(t).iter().map(|&e| &t[..e]).collect();
        assert_eq!(ends, ["She ran.", "She ran. \"Why?\"", "She ran. \"Why?\" he asked!", "She ran. \"Why?\" he asked! Mr."]);
        let zh = "夜深了。她还没睡！“为什么？”他问";
        assert_eq!(trim_to_sentence(zh), "夜深了。她还没睡！“为什么？”");
        assert_eq!(trim_to_sentence("no end here"), "no end here");
        assert_eq!(trim_to_sentence("One. Two, and thr"), "One.");
    }

    #[test]
    fn the_tail_starts_at_the_largest_unit_that_fits() {
        let t = "First paragraph here.\n\nSecond one. It has two sentences.";
        let by_len = |max: usize| move |s: &str| s.chars().count() <= max;
        assert_eq!(longest_fitting_tail(t, &mut by_len(1000)), Some(0));
        assert_eq!(&t[longest_fitting_tail(t, &mut by_len(40)).unwrap()..], "Second one. It has two sentences.");
        assert_eq!(&t[longest_fitting_tail(t, &mut by_len(25)).unwrap()..], "It has two sentences.");
        assert_eq!(&t[longest_fitting_tail(t, &mut by_len(12)).unwrap()..], "sentences.");
        assert_eq!(longest_fitting_tail(t, &mut by_len(3)), None);
        let zh = "第一章。风起了。雨下了很久很久";
        let start = longest_fitting_tail(zh, &mut by_len(8)).unwrap();
        assert_eq!(&zh[start..], "雨下了很久很久");
        assert!(zh.is_char_boundary(start));
    }
}
