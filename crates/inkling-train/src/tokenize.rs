//! Tokenizers a model is trained with: characters, or byte-level BPE learned from the corpus
//! with the `tokenizers` crate.
//!
//! Both export to a GGUF "gpt2" vocabulary (byte-level tokens plus merges), so the engine's
//! own tokenizer reads a trained model exactly as it reads any GGUF file. A character whose
//! UTF-8 encoding takes several bytes becomes a chain of merges (byte, prefix, ..., char); the
//! helper tokens that chain needs are appended after the characters and never occur in
//! training text. For an ASCII corpus the character vocabulary is exactly the sorted set of
//! characters, as in nanoGPT.

use crate::error::{Result, TrainError};
use inkling_engine::tokenizer::byte_level_char;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;
use tokenizers::models::bpe::{BPE, BpeTrainerBuilder};
use tokenizers::models::{ModelWrapper, TrainerWrapper};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;

/// Which tokenizer to train.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenizerKind {
    Char,
    Bpe,
}

impl std::str::FromStr for TokenizerKind {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "char" => Ok(Self::Char),
            "bpe" => Ok(Self::Bpe),
            other => Err(format!("unknown tokenizer `{other}`: use char or bpe")),
        }
    }
}

/// A trained tokenizer.
pub enum TextTokenizer {
    /// Token `i` is `chars[i]`; ids past `chars.len()` are merge helpers (see the module doc).
    Char {
        chars: Vec<char>,
        ids: HashMap<char, u32>,
        helpers: Vec<String>,
    },
    Bpe(Box<tokenizers::Tokenizer>),
}

/// What `tokenizer.json` holds for a character vocabulary.
#[derive(Serialize, Deserialize)]
struct CharFile {
    kind: TokenizerKind,
    chars: String,
}

/// The vocabulary in GGUF form: token texts (byte-level), their types, and merges.
pub struct GgufVocabulary {
    pub tokens: Vec<String>,
    pub merges: Vec<String>,
}

fn byte_level(s: &str) -> String {
    s.bytes().map(byte_level_char).collect()
}

impl TextTokenizer {
    /// Every distinct character of `text`, sorted.
    pub fn train_char(text: &str) -> Self {
        let mut chars: Vec<char> = text.chars().collect();
        chars.sort_unstable();
        chars.dedup();
        Self::from_chars(chars)
    }

    fn from_chars(chars: Vec<char>) -> Self {
        let ids = chars.iter().enumerate().map(|(i, c)| (*c, i as u32)).collect();
        // Byte-level forms already present (single-byte characters).
        let mut known: std::collections::HashSet<String> = chars.iter().map(|c| byte_level(&c.to_string())).collect();
        let mut helpers = Vec::new();
        for c in &chars {
            let bytes = c.to_string().into_bytes();
            for end in 1..bytes.len() {
                let prefix: String = bytes[..end].iter().map(|b| byte_level_char(*b)).collect();
                if known.insert(prefix.clone()) {
                    helpers.push(prefix);
                }
            }
            // Every byte must have a token for the engine's byte-level lookup.
            for b in &bytes[1..] {
                let t = byte_level_char(*b).to_string();
                if known.insert(t.clone()) {
                    helpers.push(t);
                }
            }
        }
        Self::Char { chars, ids, helpers }
    }

    /// Byte-level BPE with at most `vocab_size` tokens (256 byte tokens included).
    pub fn train_bpe(text: &str, vocab_size: usize) -> Result<Self> {
        if vocab_size < 257 {
            return Err(TrainError::InvalidSetting(format!("a BPE vocabulary needs more than its 256 byte tokens; --vocab {vocab_size} is too small")));
        }
        let trainer = BpeTrainerBuilder::new().vocab_size(vocab_size).min_frequency(2).show_progress(false).initial_alphabet(ByteLevel::alphabet().into_iter().collect()).build();
        let mut trainer: TrainerWrapper = trainer.into();
        let mut tok = tokenizers::Tokenizer::new(BPE::default());
        // GPT-2's split regex, no prefix space: what the engine does for a "gpt2" vocabulary.
        tok.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
        tok.with_decoder(Some(ByteLevel::default()));
        tok.train(&mut trainer, text.split_inclusive('\n')).map_err(|e| TrainError::Tokenizer(e.to_string()))?;
        Ok(Self::Bpe(Box::new(tok)))
    }

    pub fn kind(&self) -> TokenizerKind {
        match self {
            Self::Char { .. } => TokenizerKind::Char,
            Self::Bpe(_) => TokenizerKind::Bpe,
        }
    }

    /// Tokens the model's embedding has (helpers included).
    pub fn vocab_size(&self) -> usize {
        match self {
            Self::Char { chars, helpers, .. } => chars.len() + helpers.len(),
            Self::Bpe(t) => t.get_vocab_size(true),
        }
    }

    /// Token ids of `text`. Characters a character vocabulary lacks are an error that names them.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        match self {
            Self::Char { ids, .. } => text.chars().map(|c| ids.get(&c).copied().ok_or_else(|| TrainError::Tokenizer(format!("the character {c:?} is not in this model's vocabulary")))).collect(),
            Self::Bpe(t) => Ok(t.encode(text, false).map_err(|e| TrainError::Tokenizer(e.to_string()))?.get_ids().to_vec()),
        }
    }

    pub fn decode(&self, ids: &[u32]) -> String {
        match self {
            Self::Char { chars, .. } => ids.iter().filter_map(|&i| chars.get(i as usize)).collect(),
            Self::Bpe(t) => t.decode(ids, false).unwrap_or_default(),
        }
    }

    /// Writes `tokenizer.json` into `dir`.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let path = dir.join("tokenizer.json");
        let json = match self {
            Self::Char { chars, .. } => serde_json::to_string_pretty(&CharFile { kind: TokenizerKind::Char, chars: chars.iter().collect() }).map_err(|e| TrainError::Tokenizer(e.to_string()))?,
            Self::Bpe(t) => t.to_string(true).map_err(|e| TrainError::Tokenizer(e.to_string()))?,
        };
        std::fs::write(&path, json).map_err(TrainError::write(path))
    }

    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join("tokenizer.json");
        let json = std::fs::read_to_string(&path).map_err(TrainError::io(&path))?;
        if let Ok(c) = serde_json::from_str::<CharFile>(&json) {
            return Ok(Self::from_chars(c.chars.chars().collect()));
        }
        let t = <tokenizers::Tokenizer as std::str::FromStr>::from_str(&json).map_err(|e| TrainError::Tokenizer(format!("{}: {e}", path.display())))?;
        Ok(Self::Bpe(Box::new(t)))
    }

    /// Tokens (GPT-2 byte-level text, indexed by id) and merges for the GGUF file.
    pub fn gguf_vocabulary(&self) -> Result<GgufVocabulary> {
        match self {
            Self::Char { chars, helpers, .. } => {
                let mut tokens: Vec<String> = chars.iter().map(|c| byte_level(&c.to_string())).collect();
                tokens.extend(helpers.iter().cloned());
                let mut merges = Vec::new();
                for c in chars {
                    let bytes = c.to_string().into_bytes();
                    for end in 1..bytes.len() {
                        let left: String = bytes[..end].iter().map(|b| byte_level_char(*b)).collect();
                        merges.push(format!("{left} {}", byte_level_char(bytes[end])));
                    }
                }
                Ok(GgufVocabulary { tokens, merges })
            }
            Self::Bpe(t) => {
                let ModelWrapper::BPE(_) = t.get_model() else {
                    return Err(TrainError::Tokenizer("only BPE models export to GGUF".into()));
                };
                let vocab = t.get_vocab(true);
                let mut tokens = vec![String::new(); vocab.len()];
                for (text, id) in vocab {
                    if let Some(slot) = tokens.get_mut(id as usize) {
                        *slot = text;
                    }
                }
                // The serialised model lists merges in rank order, each as a pair of tokens.
                let json: serde_json::Value = serde_json::from_str(&t.to_string(false).map_err(|e| TrainError::Tokenizer(e.to_string()))?).map_err(|e| TrainError::Tokenizer(e.to_string()))?;
                let merges = json["model"]["merges"]
                    .as_array()
                    .map(|list| {
                        list.iter()
                            .filter_map(|m| match m {
                                serde_json::Value::String(s) => Some(s.clone()),
                                serde_json::Value::Array(p) => Some(format!("{} {}", p.first()?.as_str()?, p.get(1)?.as_str()?)),
                                _ => None,
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                Ok(GgufVocabulary { tokens, merges })
            }
        }
    }
}
