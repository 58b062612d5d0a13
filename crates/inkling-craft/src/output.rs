//! Reading the model's answer back: template tokens stripped, echoes of the prompt and chatty
//! preambles dropped, text trimmed to whole sentences, lists parsed into items, duplicate
//! candidates removed.

/// Chat-template control text that must never reach the writer.
const CONTROL_MARKERS: &[&str] =
    &["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>", "<start_of_turn>", "<end_of_turn>", "</s>", "<s>", "[INST]", "[/INST]"];

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

/// Drops a chat model's preamble ("Sure! Here is the rewritten text:", "以下是修改后的文字：")
/// on the first line.
pub fn strip_preamble(text: &str) -> &str {
    let t = text.trim_start();
    if let Some((first, rest)) = t.split_once('\n') {
        let f = first.trim().trim_matches('*').trim().to_lowercase();
        let chatty = [
            "sure",
            "here is",
            "here's",
            "certainly",
            "of course",
            "okay",
            "rewritten",
            "revised",
            "tightened",
            "expanded",
            "you can",
            "the rewritten",
            "the revised",
            "the tightened",
            "the expanded",
            "the edited",
            "this is",
            "以下是",
            "下面是",
            "好的",
            "当然",
            "修改后",
            "改写后",
        ]
        .iter()
        .any(|p| f.starts_with(p));
        if chatty && (f.ends_with(':') || f.ends_with('：')) && f.chars().count() < 100 && !rest.trim().is_empty() {
            return rest.trim_start();
        }
    }
    t
}

/// Cuts talk about the edit from an edited text: a trailing note ("I removed redundant
/// words...", "This reworked text aims...", "注：..."), whole paragraphs or the last sentences
/// of the text, a wrapping code fence, and quotes around the whole answer that the writer's
/// text did not have. What remains is never empty: an answer that is all talk is kept (and
/// flagged by [`is_chatter`]). A sentence that is in the writer's own text is never cut.
pub fn strip_commentary(answer: &str, source: &str) -> String {
    let mut t = answer.trim();
    if let Some(inner) = t.strip_prefix("```").and_then(|r| r.strip_suffix("```")) {
        t = inner.split_once('\n').map_or(inner, |(lang, body)| if lang.trim().chars().all(char::is_alphanumeric) { body } else { inner }).trim();
    }
    let mut paragraphs: Vec<&str> = t.split('\n').collect();
    while paragraphs.len() > 1 {
        let last = paragraphs[paragraphs.len() - 1].trim();
        if last.is_empty() || last.chars().all(|c| "-*_=#".contains(c)) || (is_commentary(last) && !source.contains(last)) {
            paragraphs.pop();
        } else {
            break;
        }
    }
    let mut kept = paragraphs.join("\n").trim_end().to_string();
    // The last paragraph may end in a sentence of talk ("...postponed. I simplified it.").
    loop {
        let ends = crate::text::sentence_ends(&kept);
        let starts: Vec<usize> = std::iter::once(0).chain(ends.iter().copied()).filter(|&i| i < kept.len()).collect();
        let Some(&from) = starts.last().filter(|&&i| i > 0) else { break };
        let sentence = kept[from..].trim();
        if is_commentary(sentence) && !source.contains(sentence) {
            kept.truncate(from);
            kept = kept.trim_end().to_string();
        } else {
            break;
        }
    }
    let source_quoted = source.trim_start().starts_with(['"', '“', '「']);
    for (open, close) in [("\"", "\""), ("“", "”"), ("「", "」")] {
        if !source_quoted
            && kept.len() > open.len() + close.len()
            && kept.starts_with(open)
            && kept.ends_with(close)
            && !kept[open.len()..kept.len() - close.len()].contains([open.chars().next().unwrap_or('"'), close.chars().next().unwrap_or('"')])
        {
            kept = kept[open.len()..kept.len() - close.len()].trim().to_string();
        }
    }
    kept
}

/// Verbs an editor uses of their own edit ("I removed", "I've simplified").
const EDIT_VERBS: &[&str] = &[
    "removed",
    "cut",
    "simplified",
    "changed",
    "made",
    "kept",
    "rewrote",
    "rewritten",
    "revised",
    "replaced",
    "added",
    "condensed",
    "tightened",
    "expanded",
    "used",
    "eliminated",
    "combined",
    "streamlined",
    "maintained",
    "preserved",
    "tried",
    "focused",
    "adjusted",
    "retained",
    "shortened",
    "reworded",
    "rephrased",
    "corrected",
    "fixed",
    "omitted",
    "deleted",
    "aimed",
    "ensured",
    "incorporated",
    "converted",
    "transformed",
];

/// A sentence or paragraph about the edit rather than part of the text.
fn is_commentary(s: &str) -> bool {
    let t = s.trim_start_matches(|c: char| c == '(' || c == '*' || c == '#' || c == '>' || c == '[' || c.is_whitespace()).to_lowercase();
    let t = t.as_str();
    let notes = [
        "note:",
        "note that",
        "notes:",
        "explanation:",
        "changes:",
        "changes made",
        "key changes",
        "the changes",
        "these changes",
        "in this version",
        "in this rewrite",
        "in this rewritten",
        "in this revised",
        "in this tightened",
        "in this expanded",
        "in the revised",
        "in the rewritten",
        "in the original",
        "the original text",
        "by removing",
        "by cutting",
        "by simplifying",
        "let me know",
        "feel free",
        "i hope",
        "hope this",
        "this version",
        "this rewrite",
        "this revision",
        "this revised",
        "this reworked",
        "this rewritten",
        "this tightened",
        "this expanded",
        "this edit",
        "this maintains the",
        "this keeps the original",
        "this keeps the meaning",
        "this retains the",
        "this conveys the same",
        "this captures the essence",
        "this captures the original",
        "this synopsis",
        "this outline",
        "this summary",
        "注：",
        "注:",
        "注意：",
        "说明：",
        "修改说明",
        "修改后的",
        "改写后的",
        "这个版本",
        "这一版本",
        "以上",
        "希望这",
        "通过删除",
        "通过简化",
    ];
    if notes.iter().any(|n| t.starts_with(n)) {
        return true;
    }
    // "The revised text keeps…", but not "The revised schedule is attached."
    for edited in ["the revised ", "the rewritten ", "the tightened ", "the expanded ", "the reworked ", "the edited ", "the new "] {
        if let Some(rest) = t.strip_prefix(edited)
            && ["text", "version", "passage", "sentence", "paragraph"].iter().any(|w| rest.starts_with(w))
        {
            return true;
        }
    }
    for first in ["i have ", "i've ", "i ", "we have ", "we've ", "we "] {
        if let Some(rest) = t.strip_prefix(first)
            && EDIT_VERBS.iter().any(|v| rest.starts_with(v) && rest[v.len()..].starts_with([' ', ',', '.']))
        {
            return true;
        }
    }
    ["我删", "我去掉", "我简化", "我保留", "我修改", "我调整", "我改写", "我将原", "我把原"].iter().any(|p| t.starts_with(p))
}

/// A profile value no writer could use: empty, code or a placeholder (`":["`, `{name}`,
/// `snake_case_id`, `TODO`).
pub fn is_unusable_value(v: &str) -> bool {
    let t = v.trim();
    if t.chars().filter(|c| c.is_alphanumeric()).count() < 2 {
        return true;
    }
    let code = t.contains(['{', '}', '[', ']', '<', '>', '=', '|', '\\']) || t.starts_with([':', ',']) || t.contains("()");
    let identifier = !t.contains(' ')
        && (t.contains('_') || t.chars().skip(1).any(char::is_uppercase) && t.chars().any(char::is_lowercase) && t.chars().all(char::is_alphanumeric) && !t.chars().any(crate::text::is_cjk));
    let placeholder = ["todo", "tbd", "n/a", "none", "null", "unknown", "lorem ipsum", "string", "example"].contains(&t.to_lowercase().as_str());
    code || identifier || placeholder
}

/// The answer talks to the writer instead of being the text ("You are right, I did remove
/// redundant words..."): small chat models do this. Such answers rank last.
pub fn is_chatter(text: &str) -> bool {
    let t = text.trim_start().to_lowercase();
    [
        "sure",
        "certainly",
        "of course",
        "here is",
        "here's",
        "i have ",
        "i've ",
        "i did ",
        "i can ",
        "you are right",
        "as an ai",
        "i'm sorry",
        "i am sorry",
        "the rewritten",
        "the revised",
        "this passage",
        "the passage",
    ]
    .iter()
    .any(|p| t.starts_with(p))
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

/// Drops the leading sentences of a continuation that restate the story's end in other words
/// (a chat model often opens by paraphrasing the text it was given). A sentence counts as a
/// restatement when 70% of its word pairs (character pairs in CJK) are in the story's last
/// pages.
pub fn strip_restatement<'a>(output: &'a str, story: &str) -> &'a str {
    let tail_start = story.len() - story.chars().rev().take(1500).map(char::len_utf8).sum::<usize>();
    let known = pairs(&story[tail_start..]);
    let mut rest = output;
    for _ in 0..3 {
        let body = rest.trim_start();
        let end = crate::text::sentence_ends(body).first().copied().unwrap_or(body.len());
        let sentence = pairs(&body[..end]);
        if sentence.len() < 4 {
            break;
        }
        let seen = sentence.iter().filter(|p| known.contains(*p)).count();
        if seen * 10 < sentence.len() * 7 {
            break;
        }
        rest = &body[end..];
    }
    if rest.len() == output.len() { output } else { rest }
}

/// Drops the paragraphs of `output` that retell `story` (70% of their word pairs are in it):
/// drafting a scene after the story so far, a small model often writes the story again.
pub fn drop_retold_paragraphs(output: &str, story: &str) -> String {
    let known = pairs(story);
    let fresh: Vec<&str> = output
        .split("\n\n")
        .filter(|p| {
            let own = pairs(p);
            own.len() < 4 || own.iter().filter(|x| known.contains(*x)).count() * 10 < own.len() * 7
        })
        .collect();
    fresh.join("\n\n").trim().to_string()
}

/// Cuts a drafted beat where it stops being prose and writes the prompt's scaffold again: a
/// chapter heading ("Chapter 2: …", "第二章"), the beat list ("The chapter's beats:"), the
/// next instruction ("Write beat 3 now"), or a line about the scene rather than in it ("The
/// scene ends abruptly."). A small model that runs out of beat goes on to the next chapter's
/// prompt. Scaffold lines before the first prose line (a heading the model opened with, and a
/// list under it) are dropped, and the prose after them kept.
pub fn cut_at_scaffold(output: &str) -> String {
    let mut kept: Vec<&str> = Vec::new();
    let mut in_list = false;
    for line in output.lines() {
        let l = line.trim().trim_start_matches('#').trim_matches(['*', '_', ' ']);
        let prose_seen = kept.iter().any(|k| !k.trim().is_empty());
        if in_list && !prose_seen && (strip_marker(l).is_some() || l.is_empty()) {
            continue;
        }
        in_list = false;
        if is_scaffold_line(l) {
            if prose_seen {
                break;
            }
            in_list = true;
            continue;
        }
        kept.push(line);
    }
    kept.join("\n").trim().to_string()
}

/// One line of a beat prompt's scaffold, or of a note about the draft (see [`cut_at_scaffold`]).
fn is_scaffold_line(line: &str) -> bool {
    let lower = line.to_lowercase();
    // "Chapter 2", "Chapter Two: …", "Chapter IV (…)": a number, then nothing or punctuation
    // (not "Chapter two of her life began", which is prose).
    let numbered = |rest: &str| {
        let rest = rest.trim_start();
        let end = rest.find([' ', ':', '(', '.', ',', '-', '\u{2013}', '\u{2014}']).unwrap_or(rest.len());
        let (word, after) = rest.split_at(end);
        let number = word.chars().all(|c| c.is_ascii_digit())
            || ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve"].contains(&word)
            || word.chars().all(|c| "ivxlc".contains(c));
        let after = after.trim_start();
        !word.is_empty() && number && (after.is_empty() || after.starts_with([':', '(', '.', '-', '\u{2013}', '\u{2014}']))
    };
    if let Some(rest) = lower.strip_prefix("chapter ") {
        return numbered(rest);
    }
    if let Some(rest) = lower.strip_prefix("beat ") {
        return numbered(rest);
    }
    const ENGLISH: [&str; 9] = ["the chapter's beats", "the chapter\u{2019}s beats", "chapter beats:", "beats:", "write beat ", "(about ", "the scene ends", "end of beat", "end of chapter"];
    if ENGLISH.iter().any(|p| lower.starts_with(p)) {
        return true;
    }
    const CHINESE: [&str; 4] = ["本章的情节节拍", "现在写第", "（约", "本章完"];
    if CHINESE.iter().any(|p| line.starts_with(p)) {
        return true;
    }
    // 第二章 / 第12章 as a heading: alone, before its title, or in a short line that is no sentence.
    if let Some(rest) = line.strip_prefix('第') {
        let n = rest.chars().take_while(|c| c.is_ascii_digit() || "零一二三四五六七八九十百".contains(*c)).count();
        let after: String = rest.chars().skip(n).collect();
        let Some(title) = after.strip_prefix('章') else { return false };
        return n > 0 && (title.is_empty() || title.starts_with(['《', '：', ':', ' ', '\u{3000}']) || (title.chars().count() <= 20 && !title.contains(['。', '！', '？', '，'])));
    }
    false
}

/// Adjacent pairs of words (of characters in CJK scripts, which have no spaces), lowercased,
/// punctuation skipped: the unit of [`strip_restatement`]'s overlap.
fn pairs(text: &str) -> std::collections::HashSet<(String, String)> {
    let mut units: Vec<String> = Vec::new();
    let mut word = String::new();
    for c in text.chars() {
        if c.is_alphanumeric() && !crate::text::is_cjk(c) {
            word.extend(c.to_lowercase());
            continue;
        }
        if !word.is_empty() {
            units.push(std::mem::take(&mut word));
        }
        if c.is_alphanumeric() {
            units.push(c.to_string());
        }
    }
    if !word.is_empty() {
        units.push(word);
    }
    units.windows(2).map(|w| (w[0].clone(), w[1].clone())).collect()
}

/// A continuation in a chat turn starts afresh; glued to the writer's text it needs the
/// space a prose sentence takes after the last one (none after CJK, none after a line break).
pub fn join_to_story(continuation: &str, story: &str) -> String {
    let needs_space = story.chars().last().is_some_and(|c| !c.is_whitespace() && !crate::text::is_cjk(c)) && continuation.chars().next().is_some_and(|c| !c.is_whitespace() && !crate::text::is_cjk(c));
    if needs_space { format!(" {continuation}") } else { continuation.to_string() }
}

/// Items of a numbered or bulleted list; lines that continue an item join it. Without any
/// markers, each non-empty line is an item.
pub fn parse_list(text: &str) -> Vec<String> {
    let mut items: Vec<String> = Vec::new();
    let mut marked = false;
    let mut numbered = false;
    for line in text.lines() {
        let l = line.trim();
        if l.is_empty() {
            continue;
        }
        // An indented bullet under a numbered item is part of it ("1. The Storm" then
        // "   - the lamp fails"): an outline's chapter with its points.
        let sub_point = numbered && line.starts_with([' ', '\t']) && l.starts_with(['-', '*', '•']);
        match strip_marker(l) {
            Some(rest) if sub_point && !items.is_empty() => {
                let last = items.last_mut().expect("checked non-empty");
                let head = last.trim_end().trim_end_matches("**").trim_end();
                let sep = if head.ends_with(['.', '!', '?', ':', '。', '：']) { " " } else { ": " };
                *last = format!("{head}{sep}{}", rest.trim());
            }
            Some(rest) => {
                numbered = l.starts_with(|c: char| c.is_ascii_digit() || "一二三四五六七八九十".contains(c));
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

/// Whether `answer` keeps something of what the writer described in `source`: one of its
/// words of four letters or more (its stem: all but the last two letters, at least four, so
/// "retired" finds "retirement"), or one pair of its adjacent CJK characters. A description
/// with no such word passes.
pub fn keeps_the_input(source: &str, answer: &str) -> bool {
    const COMMON: &[&str] = &[
        "that", "this", "with", "from", "into", "than", "then", "them", "they", "their", "there", "were", "what", "when", "where", "which", "while", "would", "about", "after", "before", "who",
        "whose", "some", "very", "also", "been", "have", "just", "only", "over", "such", "your",
    ];
    let answer_lower = answer.to_lowercase();
    let mut any = false;
    for word in source.split(|c: char| !c.is_alphanumeric() || crate::text::is_cjk(c)).map(str::to_lowercase) {
        let n = word.chars().count();
        if n < 4 || COMMON.contains(&word.as_str()) {
            continue;
        }
        any = true;
        let stem: String = word.chars().take((n.saturating_sub(2)).max(4)).collect();
        if answer_lower.contains(&stem) {
            return true;
        }
    }
    let chars: Vec<char> = source.chars().collect();
    for w in chars.windows(2).filter(|w| crate::text::is_cjk(w[0]) && crate::text::is_cjk(w[1]) && w.iter().all(|c| c.is_alphanumeric())) {
        any = true;
        if answer.contains(&w.iter().collect::<String>()) {
            return true;
        }
    }
    !any
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
    fn talk_about_the_edit_is_cut() {
        let src = "In my personal opinion, I really do think that the meeting might possibly be postponed.";
        assert_eq!(strip_commentary("The meeting may be postponed.\n\nI removed redundant words and simplified the sentence.", src), "The meeting may be postponed.");
        assert_eq!(strip_commentary("The meeting may be postponed. I've cut the hedging.", src), "The meeting may be postponed.");
        assert_eq!(strip_commentary("The report will be late.\n\nThis reworked text aims to maintain the original tone.", src), "The report will be late.");
        assert_eq!(strip_commentary("\"The report will be late.\"\n---\nNote: I kept it short.", src), "The report will be late.");
        assert_eq!(strip_commentary("```\nThe report will be late.\n```", src), "The report will be late.");
        assert_eq!(strip_commentary("会议可能推迟。\n\n注：删去了重复的词语。", "我个人认为会议可能也许会推迟。"), "会议可能推迟。");
        // Prose that happens to start like talk stays when it is the writer's own.
        let own = "I made a promise. I kept it.";
        assert_eq!(strip_commentary("I made a promise, and I kept it.", own), "I made a promise, and I kept it.");
        assert_eq!(strip_commentary("She ran. I kept running too.", "She ran. I kept running too."), "She ran. I kept running too.");
        // Prose that only looks like a note about the edit stays.
        let memo = "the schedule slipped";
        assert_eq!(strip_commentary("The schedule slipped a week.\n\nThe revised schedule is attached.", memo), "The schedule slipped a week.\n\nThe revised schedule is attached.");
        assert_eq!(strip_commentary("The wolves circled. This keeps happening.", "wolves"), "The wolves circled. This keeps happening.");
        assert_eq!(strip_commentary("The schedule slipped.\n\nThe revised version is shorter and clearer.", memo), "The schedule slipped.");
        // All talk: nothing better to give, so it stays (and ranks last as chatter).
        assert_eq!(strip_commentary("I removed the redundant words.", src), "I removed the redundant words.");
        // A quoted line of dialogue keeps its quotes.
        assert_eq!(strip_commentary("\"Run,\" she said.", "\"Run now,\" she said quietly."), "\"Run,\" she said.");
    }

    #[test]
    fn a_continuation_that_restates_the_story_loses_the_restatement() {
        let story = "那年冬天，外婆的小院里来了一只不怕人的黑猫。它每天清晨准时坐在井沿上，像是在等什么人。";
        assert_eq!(strip_restatement("那年冬天，外婆小院里来了一只怕人的黑猫。它每天早晨准时坐在井沿上，像是在等待什么人。", story).trim(), "");
        assert_eq!(strip_restatement("那年冬天，外婆小院里来了一只怕人的黑猫。直到腊月，一个陌生人推开了院门。", story).trim(), "直到腊月，一个陌生人推开了院门。");
        let story = "The whole town came out in their nightclothes to watch the old mill's wheel turn.";
        let new = "As dawn broke, the miller's widow walked up the hill alone.";
        assert_eq!(strip_restatement(new, story), new);
        assert_eq!(strip_restatement(" The whole town came out to watch the old mill's wheel turn. Then it stopped.", story).trim(), "Then it stopped.");
    }

    #[test]
    fn a_continuation_joins_the_story_with_the_space_it_needs() {
        assert_eq!(join_to_story("She ran.", "He waited."), " She ran.");
        assert_eq!(join_to_story(" She ran.", "He waited."), " She ran.");
        assert_eq!(join_to_story("She ran.", "He waited.\n"), "She ran.");
        assert_eq!(join_to_story("她跑了。", "他等着。"), "她跑了。");
    }

    #[test]
    fn a_profile_must_keep_something_of_the_description() {
        let singer = "a retired opera singer who now runs a bicycle repair shop";
        assert!(keeps_the_input(singer, "Tina, who sang opera for thirty years"));
        assert!(keeps_the_input(singer, "In retirement she fixes bikes"));
        assert!(!keeps_the_input(singer, "Mirabelle, Anaheim Dancer, wants a Baroness, fears the Haunted"));
        assert!(keeps_the_input("一位退休的京剧演员", "张三，唱了三十年京剧"));
        assert!(!keeps_the_input("一位退休的京剧演员", "一个普通的农民"));
        assert!(keeps_the_input("a spy", "anything"), "nothing to keep");
    }

    #[test]
    fn unusable_profile_values_are_told_from_usable_ones() {
        for bad in [":[", "", "  ", "{name}", "retired_singer_01", "TODO", "OperaSinger", "null"] {
            assert!(is_unusable_value(bad), "{bad:?}");
        }
        for good in ["Tina Marlowe", "retired opera singer", "张三", "退休京剧演员", "Wants a quiet life; fears silence", "O'Brien"] {
            assert!(!is_unusable_value(good), "{good:?}");
        }
    }

    #[test]
    fn preambles_and_echoes_are_dropped() {
        assert_eq!(strip_preamble("以下是修改后的文字：\n会议推迟了。"), "会议推迟了。");
        assert_eq!(strip_preamble("Sure! Here is the tightened text:\nShe ran."), "She ran.");
        assert_eq!(strip_preamble("Here: a list"), "Here: a list");
        assert_eq!(strip_echo(" the door creaked open. Inside, dust.", "She pushed and the door creaked open."), " Inside, dust.");
        assert_eq!(strip_echo(" Inside, dust.", "She pushed and the door creaked open."), " Inside, dust.");
    }

    #[test]
    fn lists_parse_in_every_common_shape() {
        assert_eq!(parse_list("1. A storm\n2) The map\n3: **Bold**\n- dash\n• dot"), ["A storm", "The map", "Bold", "dash", "dot"]);
        assert_eq!(parse_list("1. A long idea\n   that wraps\n2. Next"), ["A long idea that wraps", "Next"]);
        let story = "As I walk through the village, it feels like something is not right. The air is thick with silence.";
        let beat = "As I walk through the small village, it feels like something is not right. The air is thick with a silence.\n\nThen John ran down to the boats.";
        assert_eq!(drop_retold_paragraphs(beat, story), "Then John ran down to the boats.");
        assert_eq!(parse_list("1. **The Storm**\n   - The lamp fails.\n   - Oren climbs.\n2. Dawn\n   - Quiet."), ["The Storm: The lamp fails. Oren climbs.", "Dawn: Quiet."]);
        assert_eq!(parse_list("一、风起\n二、雨落"), ["风起", "雨落"]);
        assert_eq!(parse_list("Alpha\n\nBeta"), ["Alpha", "Beta"]);
        assert_eq!(parse_list("1. \"Quoted title\""), ["Quoted title"]);
        assert_eq!(parse_list("1. **The Lost City** (Fantasy)"), ["The Lost City (Fantasy)"]);
        assert!(parse_list("\n\n").is_empty());
        assert_eq!(parse_list("The Keeper; by L. M.; 2. The Bottle; 3. A Sailor's Love, 4. Tides"), ["The Keeper; by L. M.", "The Bottle", "A Sailor's Love", "Tides"]);
        assert_eq!(parse_list("Chapter 2. The storm breaks"), ["Chapter 2. The storm breaks"]);
    }

    #[test]
    fn a_beat_stops_where_the_next_prompt_begins() {
        // What the 0.5B wrote for a beat: the scene, a note, then the next chapter's prompt.
        let beat = "Mara climbed to the lamp.\n\nShe ran.\n\nThe scene ends abruptly.\n\nChapter 2: The Storm\nThe chapter's beats:\n1. The lamp fails.";
        assert_eq!(cut_at_scaffold(beat), "Mara climbed to the lamp.\n\nShe ran.");
        // A heading and beat list the model opened with are dropped, the prose after them kept.
        let opened = "## Chapter 1: The Ferry\nThe chapter's beats:\n1. Mara crosses.\n2. The storm.\n\nThe ferry rocked.";
        assert_eq!(cut_at_scaffold(opened), "The ferry rocked.");
        assert_eq!(cut_at_scaffold("她走上灯塔。\n\n第二章《风暴》\n本章的情节节拍：\n1. 灯灭了。"), "她走上灯塔。");
        assert_eq!(cut_at_scaffold("The boat sank.\nWrite beat 3 now: Oren speaks."), "The boat sank.");
        // Prose that only mentions a chapter or a beat stays whole.
        let prose = "Chapter two of her life began at sea.\nThe beat of the drum went on.\n第二章的故事她没读完。";
        assert_eq!(cut_at_scaffold(prose), prose);
    }

    #[test]
    fn duplicates_differ_only_in_case_and_punctuation() {
        assert_eq!(dedupe_key("The Sea, Again!"), dedupe_key("the sea again"));
        assert_ne!(dedupe_key("the sea"), dedupe_key("the see"));
    }
}
