//! LoRA adapters, in the GGUF layout llama.cpp uses (`general.type = adapter`,
//! `adapter.type = lora`, `adapter.lora.alpha`, tensors `<base tensor>.lora_a` of shape
//! (rank, in) and `<base tensor>.lora_b` of shape (out, rank)).
//!
//! An adapter is merged into the base weights when the model loads: `W' = W + (alpha/rank)·B·A`,
//! stored as f32. Generation then needs no per-token low-rank products; the cost is f32
//! memory and f32 matmuls for the adapted matrices (a little slower than their quantized form).

use crate::error::{EngineError, Result};
use crate::gguf::GgufFile;
use crate::quant::QMatrix;
use std::path::{Path, PathBuf};

/// One adapted weight: `delta = scale · B · A`.
pub struct LoraPair {
    /// The base tensor this adapts, e.g. `blk.0.attn_q.weight`.
    pub target: String,
    pub rank: usize,
    /// Output and input sizes of the base weight.
    pub rows: usize,
    pub cols: usize,
    /// (rank, cols), row-major.
    pub a: Vec<f32>,
    /// (rows, rank), row-major.
    pub b: Vec<f32>,
}

pub struct LoraAdapter {
    pub path: PathBuf,
    /// The architecture of the base model it was trained on.
    pub arch: String,
    pub alpha: f32,
    pub pairs: Vec<LoraPair>,
}

impl LoraAdapter {
    pub fn load(path: &Path) -> Result<Self> {
        let file = GgufFile::open(path)?;
        let bad = |reason: String| EngineError::BadGguf { path: path.to_path_buf(), reason };
        if file.get_str("general.type") != Some("adapter") || file.get_str("adapter.type") != Some("lora") {
            return Err(bad("this is not a LoRA adapter (general.type must be `adapter`, adapter.type `lora`)".into()));
        }
        let alpha = file.get_f32("adapter.lora.alpha").ok_or_else(|| bad("`adapter.lora.alpha` is missing".into()))?;
        let mut targets: Vec<&String> = file.tensors.keys().filter(|k| k.ends_with(".lora_a")).collect();
        targets.sort();
        let mut pairs = Vec::with_capacity(targets.len());
        for a_name in targets {
            let target = a_name.trim_end_matches(".lora_a").to_string();
            let a = QMatrix::load(&file, a_name, None)?;
            let b = QMatrix::load(&file, &format!("{target}.lora_b"), None)?;
            if a.rows != b.cols {
                return Err(bad(format!("{target}: lora_a has rank {} but lora_b {}", a.rows, b.cols)));
            }
            pairs.push(LoraPair { target, rank: a.rows, rows: b.rows, cols: a.cols, a: a.to_f32(), b: b.to_f32() });
        }
        if pairs.is_empty() {
            return Err(bad("the adapter holds no lora_a/lora_b tensors".into()));
        }
        Ok(Self { path: path.to_path_buf(), arch: file.get_str("general.architecture").unwrap_or("").to_string(), alpha, pairs })
    }

    /// `base + (alpha/rank)·B·A` for one pair, checking the base's shape.
    pub fn merged(&self, pair: &LoraPair, base: &QMatrix) -> Result<QMatrix> {
        if (base.rows, base.cols) != (pair.rows, pair.cols) {
            return Err(EngineError::AdapterMismatch {
                path: self.path.clone(),
                reason: format!("{} is {}x{} in the model but {}x{} in the adapter", pair.target, base.rows, base.cols, pair.rows, pair.cols),
            });
        }
        let scale = self.alpha / pair.rank as f32;
        let mut w = base.to_f32();
        for (r, row) in w.chunks_mut(pair.cols).enumerate() {
            for k in 0..pair.rank {
                let bk = pair.b[r * pair.rank + k] * scale;
                if bk != 0.0 {
                    for (x, a) in row.iter_mut().zip(&pair.a[k * pair.cols..(k + 1) * pair.cols]) {
                        *x += bk * a;
                    }
                }
            }
        }
        Ok(QMatrix::from_f32(pair.rows, pair.cols, w))
    }
}
