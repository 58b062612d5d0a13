//! Tokenizers built from GGUF metadata alone, following llama.cpp's algorithms so token ids
//! agree with it: byte-level BPE ("gpt2", pre-tokenized by the regexes of `tokenizer.ggml.pre`)
//! and SentencePiece-style BPE over scores ("llama", used by Gemma and Llama 2 / Mistral).
//!
//! Invariant: `decode(encode(text)) == text` for any text (tested on English, Chinese, emoji
//! and whitespace), because both vocabularies fall back to bytes.

mod bpe;
mod spm;

pub use bpe::byte_level_char;

use crate::error::{EngineError, Result};
use crate::gguf::{GgufFile, value_as_f64};
use std::collections::HashMap;

/// llama.cpp's token types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenKind {
    Normal,
    Unknown,
    Control,
    UserDefined,
    Unused,
    Byte,
}

impl TokenKind {
    fn from_gguf(v: i64) -> Self {
        match v {
            2 => TokenKind::Unknown,
            3 => TokenKind::Control,
            4 => TokenKind::UserDefined,
            5 => TokenKind::Unused,
            6 => TokenKind::Byte,
            _ => TokenKind::Normal,
        }
    }
}

// One per loaded model: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
enum Model {
    Bpe(bpe::Bpe),
    Spm(spm::Spm),
}

pub struct Tokenizer {
    tokens: Vec<String>,
    kinds: Vec<TokenKind>,
    ids: HashMap<String, u32>,
    model: Model,
    /// Special tokens by first byte, longest first, for splitting text before the model runs.
    specials: HashMap<u8, Vec<u32>>,
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    pub add_bos: bool,
    add_space_prefix: bool,
    /// Tokens that end a generation (EOS, end-of-turn markers).
    end_of_generation: Vec<u32>,
}

fn string_array(file: &GgufFile, key: &str) -> Option<Vec<String>> {
    let arr = file.get(key)?.to_vec().ok()?;
    arr.iter().map(|v| v.to_string().ok().cloned()).collect()
}

fn number_array(file: &GgufFile, key: &str) -> Option<Vec<f64>> {
    file.get(key)?.to_vec().ok()?.iter().map(value_as_f64).collect()
}

impl Tokenizer {
    pub fn from_gguf(file: &GgufFile) -> Result<Self> {
        let kind = file.get_str("tokenizer.ggml.model").ok_or_else(|| EngineError::Tokenizer("`tokenizer.ggml.model` is missing".into()))?.to_string();
        let tokens = string_array(file, "tokenizer.ggml.tokens").ok_or_else(|| EngineError::Tokenizer("`tokenizer.ggml.tokens` is missing".into()))?;
        let kinds: Vec<TokenKind> = match number_array(file, "tokenizer.ggml.token_type") {
            Some(t) if t.len() == tokens.len() => t.iter().map(|v| TokenKind::from_gguf(*v as i64)).collect(),
            _ => vec![TokenKind::Normal; tokens.len()],
        };
        let ids: HashMap<String, u32> = tokens.iter().enumerate().map(|(i, t)| (t.clone(), i as u32)).collect();
        let id = |key: &str| file.get_usize(key).map(|v| v as u32).filter(|v| (*v as usize) < tokens.len());
        let model = match kind.as_str() {
            "gpt2" => {
                let merges = string_array(file, "tokenizer.ggml.merges").ok_or_else(|| EngineError::Tokenizer("a BPE vocabulary needs `tokenizer.ggml.merges`".into()))?;
                let pre = file.get_str("tokenizer.ggml.pre").unwrap_or("default");
                Model::Bpe(bpe::Bpe::new(&ids, &merges, pre)?)
            }
            "llama" => {
                let scores = number_array(file, "tokenizer.ggml.scores")
                    .filter(|s| s.len() == tokens.len())
                    .ok_or_else(|| EngineError::Tokenizer("a SentencePiece vocabulary needs `tokenizer.ggml.scores`".into()))?;
                Model::Spm(spm::Spm::new(&tokens, scores.into_iter().map(|s| s as f32).collect(), id("tokenizer.ggml.unknown_token_id")))
            }
            other => return Err(EngineError::Tokenizer(format!("tokenizer type `{other}` is not supported (gpt2 and llama are)"))),
        };
        let mut specials: HashMap<u8, Vec<u32>> = HashMap::new();
        for (i, k) in kinds.iter().enumerate() {
            if matches!(k, TokenKind::Control | TokenKind::UserDefined) && !tokens[i].is_empty() {
                specials.entry(tokens[i].as_bytes()[0]).or_default().push(i as u32);
            }
        }
        for list in specials.values_mut() {
            list.sort_by_key(|&t| std::cmp::Reverse(tokens[t as usize].len()));
        }
        let bos = id("tokenizer.ggml.bos_token_id");
        let eos = id("tokenizer.ggml.eos_token_id");
        let mut end_of_generation: Vec<u32> = eos.into_iter().chain(id("tokenizer.ggml.eot_token_id")).collect();
        for name in ["<|im_end|>", "<|endoftext|>", "<end_of_turn>", "<|eot_id|>", "<|end|>", "<|end_of_text|>"] {
            if let Some(&t) = ids.get(name) {
                end_of_generation.push(t);
            }
        }
        end_of_generation.sort_unstable();
        end_of_generation.dedup();
        let spm = kind == "llama";
        Ok(Self {
            add_bos: file.get_bool("tokenizer.ggml.add_bos_token").unwrap_or(spm) && bos.is_some(),
            add_space_prefix: spm && file.get_bool("tokenizer.ggml.add_space_prefix").unwrap_or(true),
            tokens,
            kinds,
            ids,
            model,
            specials,
            bos,
            eos,
            end_of_generation,
        })
    }

    pub fn vocab_size(&self) -> usize {
        self.tokens.len()
    }

    pub fn token_id(&self, text: &str) -> Option<u32> {
        self.ids.get(text).copied()
    }

    pub fn token_text(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize).map(|s| s.as_str())
    }

    /// The tokens that end a generation (EOS, end-of-turn), sorted.
    pub fn end_of_generation_tokens(&self) -> &[u32] {
        &self.end_of_generation
    }

    pub fn is_end_of_generation(&self, id: u32) -> bool {
        self.end_of_generation.binary_search(&id).is_ok()
    }

    /// Encodes `text`. With `parse_special`, control tokens written in the text (such as
    /// `<|im_start|>` in a rendered chat template) become their single token; without it they
    /// are encoded as plain text, so a writer's text can never inject control tokens.
    /// BOS is not added here; see [`Tokenizer::encode_prompt`].
    pub fn encode(&self, text: &str, parse_special: bool) -> Vec<u32> {
        let mut out = Vec::new();
        let bytes = text.as_bytes();
        let (mut start, mut i) = (0, 0);
        let mut first_fragment = true;
        while i < bytes.len() {
            let hit = self.specials.get(&bytes[i]).and_then(|cands| {
                cands.iter().copied().find(|&t| {
                    let s = &self.tokens[t as usize];
                    (parse_special || self.kinds[t as usize] == TokenKind::UserDefined) && bytes[i..].starts_with(s.as_bytes())
                })
            });
            match hit {
                Some(t) => {
                    if start < i {
                        self.encode_fragment(&text[start..i], first_fragment, &mut out);
                    }
                    first_fragment = false;
                    out.push(t);
                    i += self.tokens[t as usize].len();
                    start = i;
                }
                None => i += 1,
            }
        }
        if start < bytes.len() {
            self.encode_fragment(&text[start..], first_fragment, &mut out);
        }
        out
    }

    /// Encodes a prompt as the model expects it: BOS first when the model asks for one.
    pub fn encode_prompt(&self, text: &str, parse_special: bool) -> Vec<u32> {
        let mut out = Vec::new();
        if self.add_bos
            && let Some(b) = self.bos
        {
            // A chat template may already start with the BOS text.
            let body = self.encode(text, parse_special);
            if body.first() != Some(&b) {
                out.push(b);
            }
            out.extend(body);
            return out;
        }
        self.encode(text, parse_special)
    }

    fn encode_fragment(&self, text: &str, first: bool, out: &mut Vec<u32>) {
        match &self.model {
            Model::Bpe(m) => m.encode(text, out),
            Model::Spm(m) => m.encode(text, self.add_space_prefix && first, &self.ids, out),
        }
    }

    /// The bytes one token stands for when shown to a writer (control tokens show nothing).
    pub fn token_bytes(&self, id: u32) -> Vec<u8> {
        let Some(text) = self.tokens.get(id as usize) else { return Vec::new() };
        match self.kinds[id as usize] {
            TokenKind::Control | TokenKind::Unused | TokenKind::Unknown => Vec::new(),
            TokenKind::UserDefined => text.as_bytes().to_vec(),
            TokenKind::Byte => spm::byte_token(text).map(|b| vec![b]).unwrap_or_default(),
            TokenKind::Normal => match &self.model {
                Model::Bpe(_) => bpe::decode_byte_level(text),
                Model::Spm(_) => match spm::byte_token(text) {
                    Some(b) => vec![b],
                    None => text.replace('\u{2581}', " ").into_bytes(),
                },
            },
        }
    }

    /// Decodes a whole sequence (lossy only for byte sequences that are not UTF-8).
    pub fn decode(&self, ids: &[u32]) -> String {
        let bytes: Vec<u8> = ids.iter().flat_map(|&t| self.token_bytes(t)).collect();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        if self.add_space_prefix {
            // SentencePiece adds a leading space when encoding; take it back off.
            if let Some(rest) = text.strip_prefix(' ') {
                return rest.to_string();
            }
        }
        text
    }
}
