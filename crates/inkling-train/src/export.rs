//! Writes a trained GPT as a GGUF "gpt2" file the engine loads like any other model
//! (`inkling generate --model DIR` reads `DIR/model.gguf`). Weights are stored as F32: the
//! models trained here are small, and quantizing is a separate, lossy step.

use crate::error::{Result, TrainError};
use crate::gpt::{Gpt, LN_EPS};
use crate::tokenize::TextTokenizer;
use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use std::path::Path;

fn strings(v: &[String]) -> Value {
    Value::Array(v.iter().map(|s| Value::String(s.clone())).collect())
}

/// Writes `model` with `tokenizer` to `path` (atomically: a temporary file, then a rename).
pub fn write_gguf(model: &Gpt, tokenizer: &TextTokenizer, name: &str, path: &Path) -> Result<()> {
    let c = &model.config;
    let vocab = tokenizer.gguf_vocabulary()?;
    if vocab.tokens.len() != c.vocab_size {
        return Err(TrainError::Tokenizer(format!("the tokenizer has {} tokens but the model {}", vocab.tokens.len(), c.vocab_size)));
    }
    let a = "gpt2";
    let meta: Vec<(String, Value)> = vec![
        ("general.architecture".into(), Value::String(a.into())),
        ("general.name".into(), Value::String(name.into())),
        (format!("{a}.context_length"), Value::U32(c.block_size as u32)),
        (format!("{a}.embedding_length"), Value::U32(c.n_embd as u32)),
        (format!("{a}.feed_forward_length"), Value::U32(4 * c.n_embd as u32)),
        (format!("{a}.block_count"), Value::U32(c.n_layer as u32)),
        (format!("{a}.attention.head_count"), Value::U32(c.n_head as u32)),
        (format!("{a}.attention.layer_norm_epsilon"), Value::F32(LN_EPS as f32)),
        ("tokenizer.ggml.model".into(), Value::String("gpt2".into())),
        ("tokenizer.ggml.pre".into(), Value::String("gpt2".into())),
        ("tokenizer.ggml.tokens".into(), strings(&vocab.tokens)),
        ("tokenizer.ggml.token_type".into(), Value::Array(vec![Value::I32(1); vocab.tokens.len()])),
        ("tokenizer.ggml.merges".into(), strings(&vocab.merges)),
    ];
    let mut tensors: Vec<(String, QTensor)> = Vec::new();
    for (name, t) in model.tensors() {
        if name != "position_embd.weight" {
            tensors.push((name, QTensor::quantize(&t, GgmlDType::F32)?));
        }
    }
    // Learned or sinusoidal, the engine reads positions from one table.
    tensors.push(("position_embd.weight".into(), QTensor::quantize(&model.position_table()?, GgmlDType::F32)?));
    let meta_refs: Vec<(&str, &Value)> = meta.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let tensor_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let tmp = path.with_extension("gguf.tmp");
    let mut f = std::fs::File::create(&tmp).map_err(TrainError::write(&tmp))?;
    gguf_file::write(&mut f, &meta_refs, &tensor_refs)?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(TrainError::write(path))
}
