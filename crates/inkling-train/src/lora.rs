//! LoRA (Hu et al. 2021) on a GGUF llama-family model (llama/mistral and qwen2 layouts).
//!
//! A LoRA layer keeps the base weight W (out × in) frozen and learns a low-rank update:
//! `y = x Wᵀ + (alpha / r) · (x Aᵀ) Bᵀ`, with A (r × in) small random and B (out × r) zero, so
//! training starts from exactly the base model.
//!
//! Gradients cannot flow through candle's quantized matmul (it has no backward pass), so the
//! base is dequantized to f32 once at load. Its tensors are plain `Tensor`s, not `Var`s:
//! autograd propagates through them to the adapters but computes no gradient for them, and
//! the optimiser only ever sees the adapters. f32 costs 4 bytes per base parameter (0.5 GB
//! for SmolLM2-135M); the memory check refuses bases that would not fit, which is the honest
//! limit of this approach next to a quantized backward pass.

use crate::error::{Result, TrainError};
use crate::gpt::{Param, causal_mask, cross_entropy, linear, softmax_last_dim};
use candle_core::quantized::gguf_file::Value;
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{D, DType, Device, Tensor, Var};
use inkling_engine::gguf::GgufFile;
use inkling_engine::model::{Arch, ModelConfig};
use inkling_engine::quant::QMatrix;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Weights LoRA can adapt, by their GGUF names.
pub const TARGETS: &[(&str, &str)] = &[("q", "attn_q"), ("k", "attn_k"), ("v", "attn_v"), ("o", "attn_output"), ("gate", "ffn_gate"), ("up", "ffn_up"), ("down", "ffn_down")];

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LoraConfig {
    pub rank: usize,
    pub alpha: f64,
    /// Short names from [`TARGETS`] (q, k, v, o, gate, up, down).
    pub targets: Vec<String>,
}

impl Default for LoraConfig {
    /// Rank 8, alpha 16, the attention query and value projections (the LoRA paper's choice).
    fn default() -> Self {
        Self { rank: 8, alpha: 16.0, targets: vec!["q".into(), "v".into()] }
    }
}

impl LoraConfig {
    pub fn validate(&self) -> Result<()> {
        if self.rank == 0 {
            return Err(TrainError::InvalidSetting("--rank must be at least 1".into()));
        }
        if self.targets.is_empty() {
            return Err(TrainError::InvalidSetting("name at least one target module (q, k, v, o, gate, up, down)".into()));
        }
        for t in &self.targets {
            if !TARGETS.iter().any(|(short, _)| short == t) {
                return Err(TrainError::InvalidSetting(format!("unknown target module `{t}`: use q, k, v, o, gate, up or down")));
            }
        }
        Ok(())
    }

    fn gguf_kinds(&self) -> Vec<&'static str> {
        TARGETS.iter().filter(|(s, _)| self.targets.iter().any(|t| t == s)).map(|(_, g)| *g).collect()
    }
}

struct FrozenLayer {
    attn_norm: Tensor,
    w: std::collections::HashMap<&'static str, Tensor>,
    bq: Option<Tensor>,
    bk: Option<Tensor>,
    bv: Option<Tensor>,
    ffn_norm: Tensor,
}

/// The base model, dequantized and frozen.
pub struct FrozenBase {
    pub config: ModelConfig,
    token_embd: Tensor,
    output: Tensor,
    output_norm: Tensor,
    layers: Vec<FrozenLayer>,
    /// Rotation tables (context, head_dim / 2).
    cos: Tensor,
    sin: Tensor,
    /// Rotate (i, i + d/2) pairs (qwen2) rather than (2i, 2i + 1) (llama GGUF).
    neox: bool,
}

fn matrix(file: &GgufFile, name: &str) -> Result<Tensor> {
    let m = QMatrix::load(file, name, None)?;
    Ok(Tensor::from_vec(m.to_f32(), (m.rows, m.cols), &Device::Cpu)?)
}

fn vector(file: &GgufFile, name: &str) -> Result<Tensor> {
    Ok(matrix(file, name)?.flatten_all()?)
}

fn optional_vector(file: &GgufFile, name: &str) -> Result<Option<Tensor>> {
    if file.tensors.contains_key(name) { vector(file, name).map(Some) } else { Ok(None) }
}

/// Bytes the f32 base takes.
pub fn base_bytes(file: &GgufFile) -> u64 {
    file.tensors.values().map(|t| t.dims.iter().product::<usize>() as u64 * 4).sum()
}

impl FrozenBase {
    pub fn load(file: &GgufFile) -> Result<Self> {
        let c = ModelConfig::from_gguf(file)?;
        if !matches!(c.arch, Arch::Llama | Arch::Qwen2) {
            return Err(TrainError::InvalidSetting(format!("fine-tuning supports llama/mistral and qwen2 models; this one is {}", c.arch_name)));
        }
        let rot = file.get_usize(&format!("{}.rope.dimension_count", c.arch_name)).unwrap_or(c.head_dim);
        if rot != c.head_dim || c.rope_scale != 1.0 {
            return Err(TrainError::InvalidSetting("fine-tuning needs full, unscaled rotary embeddings".into()));
        }
        let mut layers = Vec::with_capacity(c.n_layer);
        for l in 0..c.n_layer {
            let t = |n: &str| format!("blk.{l}.{n}");
            let mut w = std::collections::HashMap::new();
            for (_, kind) in TARGETS {
                w.insert(*kind, matrix(file, &t(&format!("{kind}.weight")))?);
            }
            layers.push(FrozenLayer {
                attn_norm: vector(file, &t("attn_norm.weight"))?,
                w,
                bq: optional_vector(file, &t("attn_q.bias"))?,
                bk: optional_vector(file, &t("attn_k.bias"))?,
                bv: optional_vector(file, &t("attn_v.bias"))?,
                ffn_norm: vector(file, &t("ffn_norm.weight"))?,
            });
        }
        let token_embd = matrix(file, "token_embd.weight")?;
        let output = if file.tensors.contains_key("output.weight") { matrix(file, "output.weight")? } else { token_embd.clone() };
        let half = c.head_dim / 2;
        let ctx = c.context_length.min(8192);
        let mut cos = vec![0f32; ctx * half];
        let mut sin = vec![0f32; ctx * half];
        for p in 0..ctx {
            for i in 0..half {
                let theta = (c.rope_base as f64).powf(-2.0 * i as f64 / c.head_dim as f64);
                let angle = p as f64 * theta;
                cos[p * half + i] = angle.cos() as f32;
                sin[p * half + i] = angle.sin() as f32;
            }
        }
        let dev = Device::Cpu;
        Ok(Self {
            output_norm: vector(file, "output_norm.weight")?,
            token_embd,
            output,
            layers,
            cos: Tensor::from_vec(cos, (ctx, half), &dev)?,
            sin: Tensor::from_vec(sin, (ctx, half), &dev)?,
            neox: c.arch != Arch::Llama,
            config: c,
        })
    }
}

/// `x / sqrt(mean(x²) + eps) · w` over the last dimension.
pub fn rms_norm(x: &Tensor, w: &Tensor, eps: f64) -> Result<Tensor> {
    let ms = x.sqr()?.mean_keepdim(D::Minus1)?;
    Ok(x.broadcast_div(&(ms + eps)?.sqrt()?)?.broadcast_mul(w)?)
}

/// Rotary position embedding of x (B, H, T, hd) at positions 0..T.
fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor, neox: bool) -> Result<Tensor> {
    let (b, h, t, hd) = x.dims4()?;
    let half = hd / 2;
    let (cos, sin) = (cos.narrow(0, 0, t)?, sin.narrow(0, 0, t)?);
    if neox {
        let x0 = x.narrow(3, 0, half)?;
        let x1 = x.narrow(3, half, half)?;
        let r0 = (x0.broadcast_mul(&cos)? - x1.broadcast_mul(&sin)?)?;
        let r1 = (x0.broadcast_mul(&sin)? + x1.broadcast_mul(&cos)?)?;
        Ok(Tensor::cat(&[r0, r1], 3)?)
    } else {
        let pairs = x.reshape((b, h, t, half, 2))?;
        let x0 = pairs.narrow(4, 0, 1)?.squeeze(4)?;
        let x1 = pairs.narrow(4, 1, 1)?.squeeze(4)?;
        let r0 = (x0.broadcast_mul(&cos)? - x1.broadcast_mul(&sin)?)?;
        let r1 = (x0.broadcast_mul(&sin)? + x1.broadcast_mul(&cos)?)?;
        Ok(Tensor::stack(&[r0, r1], 4)?.reshape((b, h, t, hd))?)
    }
}

/// A frozen base with trainable LoRA pairs.
pub struct LoraModel {
    pub base: FrozenBase,
    pub lora: LoraConfig,
    /// `<target>.lora_a` and `<target>.lora_b` for every adapted weight, in pairs.
    pub params: Vec<Param>,
    index: std::collections::HashMap<String, usize>,
}

/// `x Aᵀ Bᵀ · scale` plus the frozen product: one LoRA layer.
pub fn lora_linear(x: &Tensor, w: &Tensor, bias: Option<&Tensor>, ab: Option<(&Tensor, &Tensor)>, scale: f64) -> Result<Tensor> {
    let y = linear(x, w, bias)?;
    match ab {
        Some((a, b)) => Ok((y + (linear(&linear(x, a, None)?, b, None)? * scale)?)?),
        None => Ok(y),
    }
}

impl LoraModel {
    /// Adapters with A ~ N(0, 1/in) and B = 0: the model starts as the base exactly.
    pub fn new(base: FrozenBase, lora: LoraConfig, seed: u64) -> Result<Self> {
        lora.validate()?;
        let mut rng = StdRng::seed_from_u64(seed);
        let mut params = Vec::new();
        let mut index = std::collections::HashMap::new();
        for (l, layer) in base.layers.iter().enumerate() {
            for kind in lora.gguf_kinds() {
                let (out, inp) = layer.w[kind].dims2()?;
                let dist = Normal::new(0.0, 1.0 / (inp as f64).sqrt()).map_err(|e| TrainError::InvalidSetting(e.to_string()))?;
                let a: Vec<f32> = (0..lora.rank * inp).map(|_| dist.sample(&mut rng) as f32).collect();
                let target = format!("blk.{l}.{kind}.weight");
                index.insert(target.clone(), params.len());
                let dev = Device::Cpu;
                params.push(Param { name: format!("{target}.lora_a"), var: Var::from_tensor(&Tensor::from_vec(a, (lora.rank, inp), &dev)?)?, decay: false });
                params.push(Param { name: format!("{target}.lora_b"), var: Var::zeros((out, lora.rank), DType::F32, &dev)?, decay: false });
            }
        }
        Ok(Self { base, lora, params, index })
    }

    fn pair(&self, l: usize, kind: &str) -> Option<(&Tensor, &Tensor)> {
        let i = *self.index.get(&format!("blk.{l}.{kind}.weight"))?;
        Some((self.params[i].var.as_tensor(), self.params[i + 1].var.as_tensor()))
    }

    /// Trainable values.
    pub fn trainable_parameters(&self) -> usize {
        self.params.iter().map(|p| p.var.elem_count()).sum()
    }

    /// Logits (B·T, V) for ids (B, T).
    pub fn forward(&self, idx: &Tensor) -> Result<Tensor> {
        let (b, t) = idx.dims2()?;
        let base = &self.base;
        let c = &base.config;
        let (d, hd, h, hkv) = (c.n_embd, c.head_dim, c.n_head, c.n_head_kv);
        let scale = self.lora.alpha / self.lora.rank as f64;
        let eps = c.rms_eps as f64;
        let mut x = base.token_embd.index_select(&idx.flatten_all()?, 0)?.reshape((b, t, d))?;
        let mask = causal_mask(t, DType::F32, &Device::Cpu)?;
        for (l, layer) in base.layers.iter().enumerate() {
            let proj = |x: &Tensor, kind: &'static str, bias: Option<&Tensor>| lora_linear(x, &layer.w[kind], bias, self.pair(l, kind), scale);
            let hn = rms_norm(&x, &layer.attn_norm, eps)?;
            let heads = |y: Tensor, n: usize| -> Result<Tensor> { Ok(y.reshape((b, t, n, hd))?.transpose(1, 2)?.contiguous()?) };
            let q = rope(&heads(proj(&hn, "attn_q", layer.bq.as_ref())?, h)?, &base.cos, &base.sin, base.neox)?;
            let k = rope(&heads(proj(&hn, "attn_k", layer.bk.as_ref())?, hkv)?, &base.cos, &base.sin, base.neox)?;
            let v = heads(proj(&hn, "attn_v", layer.bv.as_ref())?, hkv)?;
            // Grouped-query attention: each key/value head serves h/hkv query heads.
            let group = h / hkv;
            let expand = |z: Tensor| -> Result<Tensor> {
                if group == 1 {
                    return Ok(z);
                }
                Ok(z.unsqueeze(2)?.broadcast_as((b, hkv, group, t, hd))?.contiguous()?.reshape((b, h, t, hd))?)
            };
            let (k, v) = (expand(k)?, expand(v)?);
            let scores = (q.matmul(&k.t()?)? * (1.0 / (hd as f64).sqrt()))?.broadcast_add(&mask)?;
            let y = softmax_last_dim(&scores)?.matmul(&v)?.transpose(1, 2)?.reshape((b, t, h * hd))?;
            x = (x + proj(&y, "attn_output", None)?)?;
            let hn = rms_norm(&x, &layer.ffn_norm, eps)?;
            let gate = proj(&hn, "ffn_gate", None)?.silu()?;
            let up = proj(&hn, "ffn_up", None)?;
            x = (x + proj(&(gate * up)?, "ffn_down", None)?)?;
        }
        let x = rms_norm(&x, &base.output_norm, eps)?;
        Ok(x.reshape((b * t, d))?.matmul(&base.output.t()?)?)
    }

    pub fn loss(&self, idx: &Tensor, targets: &Tensor) -> Result<Tensor> {
        cross_entropy(&self.forward(idx)?, &targets.flatten_all()?)
    }

    /// Writes the adapters as a GGUF LoRA adapter (the layout llama.cpp reads), atomically.
    pub fn write_adapter(&self, path: &Path, base_name: &str) -> Result<()> {
        let meta: Vec<(String, Value)> = vec![
            ("general.architecture".into(), Value::String(self.base.config.arch_name.clone())),
            ("general.type".into(), Value::String("adapter".into())),
            ("general.name".into(), Value::String(format!("LoRA for {base_name}"))),
            ("adapter.type".into(), Value::String("lora".into())),
            ("adapter.lora.alpha".into(), Value::F32(self.lora.alpha as f32)),
        ];
        let mut tensors = Vec::with_capacity(self.params.len());
        for p in &self.params {
            tensors.push((p.name.clone(), QTensor::quantize(&p.var.as_tensor().detach(), GgmlDType::F32)?));
        }
        let meta_refs: Vec<(&str, &Value)> = meta.iter().map(|(k, v)| (k.as_str(), v)).collect();
        let tensor_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
        let tmp = path.with_extension("gguf.tmp");
        let mut f = std::fs::File::create(&tmp).map_err(TrainError::write(&tmp))?;
        candle_core::quantized::gguf_file::write(&mut f, &meta_refs, &tensor_refs)?;
        drop(f);
        std::fs::rename(&tmp, path).map_err(TrainError::write(path))
    }
}
