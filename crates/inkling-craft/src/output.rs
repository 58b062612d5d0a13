//! Reading the model's answer back: template tokens stripped, echoes of the prompt and chatty
//! preambles dropped, text trimmed to whole sentences, lists parsed into items, duplicate
//! candidates removed.

/// Chat-template control text that must never reach the writer.
const CONTROL_MARKERS: &[&str] = &["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>", "<start_of_turn>", "<end_of_turn>", "</s>", "<s>", "[INST]", "[/INST]"];

/// Removes control text; anything after an end-of-turn marker is a new turn and is dropped.
pub fn strip_control(text: &str) -> String {
    let mut t = text;
    for end in ["<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|endoftext|>", "</s>", "<|im_start|>", "<start_of_turn>"] {
        if let Some(i) = t.find(end) {
            t = &t[..i];
        }
    }
    let mut out = t.to_string();
    for m in CONTROL_MARKERS {
        out = out.replace(m, "");
    }
    out
}

/// Drops a chat model's preamble ("Sure! Here is the rewritten text:") on the first line.
pub fn strip_preamble(text: &str) -> &str {
    let t = text.trim_start();
    if let Some((first, rest)) = t.split_once('\n') {
        let f = first.trim().to_lowercase();
        let chatty = ["sure", "here is", "here's", "certainly", "of course", "okay", "rewritten", "revised", "tightened", "expanded"].iter().any(|p| f.starts_with(p));
        if chatty && f.ends_with(':') && f.chars().count() < 100 && !rest.trim().is_empty() {
            return rest.trim_start();
        }
    }
    t
}

/// The answer talks to the writer instead of being the text ("You are right, I did remove
/// redundant words..."): small chat models do this. Such answers rank last.
pub fn is_chatter(text: &str) -> bool {
    let t = text.trim_start().to_lowercase();
    ["sure", "certainly", "of course", "here is", "here's", "i have ", "i've ", "i did ", "i can ", "you are right", "as an ai", "i'm sorry", "i am sorry", "the rewritten", "the revised", "this passage", "the passage"].iter().any(|p| t.starts_with(p))
}

/// Drops text the model repeated from the end of the prompt (a continuation that starts by
/// restating the writer's last sentence).
pub fn strip_echo<'a>(output: &'a str, source: &str) -> &'a str {
    let out = output.trim_start();
    let src = source.trim_end();
    // The longest suffix of the source (at least 12 chars) that the output starts with.
    let mut best = 0;
    for (i, _) in src.char_indices() {
        let suffix = &src[i..];
        if suffix.chars().count() >= 12 && out.starts_with(suffix) {
            best = suffix.len();
            break;
        }
    }
    if best > 0 { &out[best..] } else { output }
}

/// Items of a numbered or bulleted list; lines that continue an item join it. Without any
/// markers, each non-empty line is an item.
pub fn parse_list(text: &str) -> Vec<String> {
    let mut items: Vec<String> = Vec::new();
    let mut marked = false;
    for line in text.lines() {
        let l = line.trim();
        if l.is_empty() {
            continue;
        }
        match strip_marker(l) {
            Some(rest) => {
                marked = true;
                items.push(rest.to_string());
            }
            None if marked && !items.is_empty() => {
                let last = items.last_mut().expect("checked non-empty");
                last.push(' ');
                last.push_str(l);
            }
            None => items.push(l.to_string()),
        }
    }
    // A small model sometimes writes the whole list on one line ("A; 2. B; 3. C").
    let items: Vec<String> = if items.len() < 3 { items.iter().flat_map(|i| split_inline_numbers(i)).collect() } else { items };
    items.into_iter().map(|i| clean_item(&i)).filter(|i| !i.is_empty()).collect()
}

/// Splits an item at " 2. ", " 3. ", ... when at least two such markers follow each other in
/// order (one alone, as in "Chapter 2. The storm", is part of the text). Each piece loses the
/// separator before the next marker (";" or ",").
fn split_inline_numbers(item: &str) -> Vec<String> {
    let mut cuts = Vec::new();
    let mut from = 0;
    for k in 2.. {
        let marker = format!(" {k}. ");
        match item[from..].find(&marker) {
            Some(at) => {
                cuts.push((from + at, marker.len()));
                from += at + marker.len();
            }
            None => break,
        }
    }
    if cuts.len() < 2 {
        return vec![item.to_string()];
    }
    let mut pieces = Vec::with_capacity(cuts.len() + 1);
    let mut start = 0;
    for (at, len) in cuts {
        pieces.push(item[start..at].trim_end_matches([';', ',', ' ']).to_string());
        start = at + len;
    }
    pieces.push(item[start..].to_string());
    pieces
}

fn strip_marker(line: &str) -> Option<&str> {
    for b in ["- ", "* ", "• ", "· "] {
        if let Some(r) = line.strip_prefix(b) {
            return Some(r);
        }
    }
    let digits = line.chars().take_while(char::is_ascii_digit).count();
    let numerals = line.chars().take_while(|c| "一二三四五六七八九十".contains(*c)).count();
    let n = if digits > 0 { digits } else { numerals * 3 };
    if n > 0 && n <= 9 {
        let rest = &line[n..];
        for sep in [". ", ") ", ": ", "、", "．", ".", ")"] {
            if let Some(r) = rest.strip_prefix(sep) {
                return Some(r.trim_start());
            }
        }
    }
    None
}

/// Trims wrapping quotes and markdown bold from a list item.
fn clean_item(item: &str) -> String {
    let item = item.replace("**", "");
    let mut s = item.trim();
    for (a, b) in [("**", "**"), ("\"", "\""), ("“", "”")] {
        if s.len() > a.len() + b.len() && s.starts_with(a) && s.ends_with(b) {
            s = &s[a.len()..s.len() - b.len()];
        }
    }
    s.trim().to_string()
}

/// A key under which two candidates count as the same.
pub fn dedupe_key(text: &str) -> String {
    text.chars().filter(|c| c.is_alphanumeric()).flat_map(char::to_lowercase).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_text_and_later_turns_are_removed() {
        assert_eq!(strip_control("A poem.<|im_end|>\n<|im_start|>user\nmore"), "A poem.");
        assert_eq!(strip_control("x<end_of_turn>y"), "x");
        assert_eq!(strip_control("plain"), "plain");
    }

    #[test]
    fn chatter_is_told_from_text() {
        assert!(is_chatter("You are right, I did remove redundant words."));
        assert!(is_chatter("Sure! The meeting is at noon."));
        assert!(!is_chatter("The meeting may be postponed."));
        assert!(!is_chatter("她说：好的。"));
    }

    #[test]
    fn preambles_and_echoes_are_dropped() {
        assert_eq!(strip_preamble("Sure! Here is the tightened text:\nShe ran."), "She ran.");
        assert_eq!(strip_preamble("Here: a list"), "Here: a list");
        assert_eq!(strip_echo(" the door creaked open. Inside, dust.", "She pushed and the door creaked open."), " Inside, dust.");
        assert_eq!(strip_echo(" Inside, dust.", "She pushed and the door creaked open."), " Inside, dust.");
    }

    #[test]
    fn lists_parse_in_every_common_shape() {
        assert_eq!(parse_list("1. A storm\n2) The map\n3: **Bold**\n- dash\n• dot"), ["A storm", "The map", "Bold", "dash", "dot"]);
        assert_eq!(parse_list("1. A long idea\n   that wraps\n2. Next"), ["A long idea that wraps", "Next"]);
        assert_eq!(parse_list("一、风起\n二、雨落"), ["风起", "雨落"]);
        assert_eq!(parse_list("Alpha\n\nBeta"), ["Alpha", "Beta"]);
        assert_eq!(parse_list("1. \"Quoted title\""), ["Quoted title"]);
        assert_eq!(parse_list("1. **The Lost City** (Fantasy)"), ["The Lost City (Fantasy)"]);
        assert!(parse_list("\n\n").is_empty());
        assert_eq!(
            parse_list("The Keeper; by L. M.; 2. The Bottle; 3. A Sailor's Love, 4. Tides"),
            ["The Keeper; by L. M.", "The Bottle", "A Sailor's Love", "Tides"]
        );
        assert_eq!(parse_list("Chapter 2. The storm breaks"), ["Chapter 2. The storm breaks"]);
    }

    #[test]
    fn duplicates_differ_only_in_case_and_punctuation() {
        assert_eq!(dedupe_key("The Sea, Again!"), dedupe_key("the sea again"));
        assert_ne!(dedupe_key("the sea"), dedupe_key("the see"));
    }
}
