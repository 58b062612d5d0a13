//! Byte-level BPE ("gpt2" vocabularies), as llama.cpp's `llm_tokenizer_bpe`: split the text
//! with the pre-tokenizer regexes named by `tokenizer.ggml.pre`, map bytes to the GPT-2
//! printable alphabet, then apply merges in rank order within each piece.

use crate::error::{EngineError, Result};
use fancy_regex::Regex;
use std::collections::HashMap;
use std::sync::OnceLock;

const GPT2: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)";
const QWEN2: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const LLAMA3: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// The regex cascade llama.cpp uses for each pre-tokenizer name.
fn pre_tokenizer_regexes(pre: &str) -> Option<Vec<&'static str>> {
    Some(match pre {
        "default" | "gpt-2" | "gpt2" | "mpt" | "olmo" | "jais" => vec![GPT2],
        "smollm" | "starcoder" | "refact" | "command-r" | "codeshell" | "exaone" | "minerva" => vec![r"\p{N}", GPT2],
        "qwen2" | "stablelm2" | "deepseek-r1-qwen" => vec![QWEN2],
        "llama3" | "llama-bpe" | "dbrx" | "smaug-bpe" => vec![LLAMA3],
        _ => return None,
    })
}

pub struct Bpe {
    regexes: Vec<Regex>,
    /// (left, right) token pair -> (rank, merged token).
    merges: HashMap<(u32, u32), (u32, u32)>,
    /// Token of each byte's printable character.
    byte_ids: [Option<u32>; 256],
    char_of_byte: [char; 256],
}

/// GPT-2's reversible byte -> printable character map.
fn bytes_to_chars() -> &'static ([char; 256], HashMap<char, u8>) {
    static MAP: OnceLock<([char; 256], HashMap<char, u8>)> = OnceLock::new();
    MAP.get_or_init(|| {
        let mut chars = ['\0'; 256];
        let mut n = 0u32;
        for b in 0..256u32 {
            let printable = (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
            let c = if printable {
                b
            } else {
                n += 1;
                255 + n
            };
            chars[b as usize] = char::from_u32(c).unwrap_or('\0');
        }
        let back = chars.iter().enumerate().map(|(b, c)| (*c, b as u8)).collect();
        (chars, back)
    })
}

/// The printable character GPT-2's byte-level alphabet uses for byte `b`.
pub fn byte_level_char(b: u8) -> char {
    bytes_to_chars().0[b as usize]
}

/// The bytes behind a byte-level token's text.
pub fn decode_byte_level(text: &str) -> Vec<u8> {
    let back = &bytes_to_chars().1;
    let mut out = Vec::with_capacity(text.len());
    for c in text.chars() {
        match back.get(&c) {
            Some(b) => out.push(*b),
            None => out.extend_from_slice(c.to_string().as_bytes()),
        }
    }
    out
}

impl Bpe {
    pub fn new(ids: &HashMap<String, u32>, merges: &[String], pre: &str) -> Result<Self> {
        let patterns = pre_tokenizer_regexes(pre).unwrap_or_else(|| {
            tracing::warn!(pre, "unknown pre-tokenizer, using GPT-2's regex; token ids may differ from llama.cpp");
            vec![GPT2]
        });
        let regexes = patterns.iter().map(|p| Regex::new(p).map_err(|e| EngineError::Tokenizer(format!("bad pre-tokenizer regex: {e}")))).collect::<Result<_>>()?;
        let mut table = HashMap::with_capacity(merges.len());
        for (rank, m) in merges.iter().enumerate() {
            let Some((a, b)) = m.split_once(' ') else { continue };
            if let (Some(&l), Some(&r), Some(&t)) = (ids.get(a), ids.get(b), ids.get(&format!("{a}{b}"))) {
                table.entry((l, r)).or_insert((rank as u32, t));
            }
        }
        let chars = bytes_to_chars().0;
        let mut byte_ids = [None; 256];
        for (b, c) in chars.iter().enumerate() {
            byte_ids[b] = ids.get(&c.to_string()).copied();
        }
        Ok(Self { regexes, merges: table, byte_ids, char_of_byte: chars })
    }

    /// Splits `text` by the regex cascade: each regex splits the pieces the previous one left,
    /// keeping both matches and the text between them (llama.cpp's `unicode_regex_split`).
    fn pre_tokenize<'t>(&self, text: &'t str) -> Vec<&'t str> {
        let mut pieces = vec![text];
        for re in &self.regexes {
            let mut next = Vec::with_capacity(pieces.len() * 2);
            for piece in pieces {
                let mut last = 0;
                for m in re.find_iter(piece).flatten() {
                    if m.start() > last {
                        next.push(&piece[last..m.start()]);
                    }
                    if m.end() > m.start() {
                        next.push(m.as_str());
                    }
                    last = m.end();
                }
                if last < piece.len() {
                    next.push(&piece[last..]);
                }
            }
            pieces = next;
        }
        pieces
    }

    pub fn encode(&self, text: &str, out: &mut Vec<u32>) {
        for piece in self.pre_tokenize(text) {
            let mut syms: Vec<u32> = Vec::with_capacity(piece.len());
            for b in piece.bytes() {
                match self.byte_ids[b as usize] {
                    Some(t) => syms.push(t),
                    None => tracing::debug!(byte = b, ch = %self.char_of_byte[b as usize], "byte has no token"),
                }
            }
            // Merge the lowest-ranked adjacent pair until none applies (pieces are short).
            loop {
                let best = syms.windows(2).enumerate().filter_map(|(i, w)| self.merges.get(&(w[0], w[1])).map(|&(rank, t)| (rank, i, t))).min();
                let Some((_, i, t)) = best else { break };
                syms[i] = t;
                syms.remove(i + 1);
            }
            out.extend(syms);
        }
    }
}
