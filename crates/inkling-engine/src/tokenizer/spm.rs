//! SentencePiece-style BPE over token scores, as llama.cpp's `llm_tokenizer_spm`:
//! repeatedly merge the adjacent pair whose concatenation is the highest-scoring token,
//! then map what is left to tokens, falling back to `<0xNN>` byte tokens.

use std::collections::{BinaryHeap, HashMap};

pub struct Spm {
    scores: Vec<f32>,
    byte_tokens: [Option<u32>; 256],
    unknown: Option<u32>,
}

/// Parses a `<0xNN>` byte token.
pub fn byte_token(text: &str) -> Option<u8> {
    let hex = text.strip_prefix("<0x")?.strip_suffix('>')?;
    if hex.len() != 2 {
        return None;
    }
    u8::from_str_radix(hex, 16).ok()
}

#[derive(PartialEq)]
struct Candidate {
    score: f32,
    left: usize,
    size: usize,
}

impl Eq for Candidate {}
impl PartialOrd for Candidate {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Candidate {
    // Highest score first; on ties, the leftmost pair.
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.score.total_cmp(&o.score).then(o.left.cmp(&self.left))
    }
}

struct Symbol {
    start: usize,
    len: usize,
    prev: Option<usize>,
    next: Option<usize>,
}

impl Spm {
    pub fn new(tokens: &[String], scores: Vec<f32>, unknown: Option<u32>) -> Self {
        let mut byte_tokens = [None; 256];
        for (i, t) in tokens.iter().enumerate() {
            if let Some(b) = byte_token(t) {
                byte_tokens[b as usize] = Some(i as u32);
            }
        }
        Self { scores, byte_tokens, unknown }
    }

    pub fn encode(&self, text: &str, space_prefix: bool, ids: &HashMap<String, u32>, out: &mut Vec<u32>) {
        let mut s = String::with_capacity(text.len() + 3);
        if space_prefix {
            s.push('\u{2581}');
        }
        s.push_str(&text.replace(' ', "\u{2581}"));
        let mut syms: Vec<Symbol> = s.char_indices().enumerate().map(|(i, (start, c))| Symbol { start, len: c.len_utf8(), prev: i.checked_sub(1), next: Some(i + 1) }).collect();
        if let Some(last) = syms.last_mut() {
            last.next = None;
        }
        let mut heap = BinaryHeap::new();
        let try_pair = |syms: &[Symbol], heap: &mut BinaryHeap<Candidate>, left: usize| {
            if let Some(right) = syms[left].next {
                let piece = &s[syms[left].start..syms[right].start + syms[right].len];
                if let Some(&id) = ids.get(piece) {
                    heap.push(Candidate { score: self.scores[id as usize], left, size: piece.len() });
                }
            }
        };
        for i in 0..syms.len() {
            try_pair(&syms, &mut heap, i);
        }
        while let Some(c) = heap.pop() {
            let left = c.left;
            let Some(right) = syms[left].next else { continue };
            // Skip stale entries whose symbols changed since they were queued.
            if syms[left].len == 0 || syms[right].len == 0 || syms[left].len + syms[right].len != c.size {
                continue;
            }
            syms[left].len += syms[right].len;
            syms[right].len = 0;
            syms[left].next = syms[right].next;
            if let Some(n) = syms[right].next {
                syms[n].prev = Some(left);
            }
            if let Some(p) = syms[left].prev {
                try_pair(&syms, &mut heap, p);
            }
            try_pair(&syms, &mut heap, left);
        }
        let mut i = if syms.is_empty() { None } else { Some(0) };
        while let Some(idx) = i {
            let sym = &syms[idx];
            let piece = &s[sym.start..sym.start + sym.len];
            match ids.get(piece) {
                Some(&id) => out.push(id),
                None => {
                    for b in piece.bytes() {
                        if let Some(t) = self.byte_tokens[b as usize].or(self.unknown) {
                            out.push(t);
                        }
                    }
                }
            }
            i = sym.next;
        }
    }
}
