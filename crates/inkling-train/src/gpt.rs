//! A decoder-only GPT in candle, written to be read beside the formulas (nanoGPT's layout).
//!
//! For a batch of token ids `idx` of shape (B, T):
//!
//! - **Token embedding**: `x = E[idx]`, E of shape (V, d).
//! - **Positional encoding**: `x += P[0..T]`, P either learned (V-independent, shape
//!   (block, d)) or sinusoidal, fixed: `P[p, 2i] = sin(p / 10000^(2i/d))`,
//!   `P[p, 2i+1] = cos(p / 10000^(2i/d))` (Vaswani et al. 2017).
//! - **Blocks** (pre-norm residual): `x += Attn(LN(x))`, `x += FFN(LN(x))`.
//! - **Layer norm**: `LN(x) = (x - mean(x)) / sqrt(var(x) + eps) * g + b` over the width d.
//! - **Multi-head causal self-attention**: `q, k, v = x W_qkv`, split into h heads of
//!   d/h; per head `softmax(q kᵀ / sqrt(d/h) + M) v` with `M[i, j] = -inf` for j > i (a
//!   position never sees the future); heads concatenated and projected by `W_o`.
//! - **Feed-forward**: `FFN(x) = GELU(x W_up + b_up) W_down + b_down`, width 4d.
//! - **Output**: `logits = LN_f(x) Eᵀ` — the output layer reuses the token embedding
//!   (weight tying, Press & Wolf 2017).
//!
//! Parameters are named as the GGUF "gpt2" layout names them, so exporting to the engine
//! is a rename-free copy.

use crate::error::{Result, TrainError};
use candle_core::{D, DType, Device, Tensor, Var};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

/// How positions enter the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Positions {
    Learned,
    Sinusoidal,
}

impl std::str::FromStr for Positions {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "learned" => Ok(Self::Learned),
            "sinusoidal" => Ok(Self::Sinusoidal),
            other => Err(format!("unknown positional encoding `{other}`: use learned or sinusoidal")),
        }
    }
}

/// The shape of a GPT.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GptConfig {
    pub vocab_size: usize,
    /// Context length in tokens.
    pub block_size: usize,
    pub n_layer: usize,
    pub n_head: usize,
    pub n_embd: usize,
    pub positions: Positions,
    /// Biases in linear layers and layer norms (nanoGPT's default: none).
    pub bias: bool,
}

pub const LN_EPS: f64 = 1e-5;

impl GptConfig {
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(TrainError::InvalidSetting(m));
        if self.n_layer == 0 || self.n_head == 0 || self.n_embd == 0 || self.block_size < 2 {
            return bad("layers, heads and width must be at least 1 and the block at least 2 tokens".into());
        }
        if !self.n_embd.is_multiple_of(self.n_head) {
            return bad(format!("the width {} must be a multiple of the number of heads {}", self.n_embd, self.n_head));
        }
        if self.positions == Positions::Sinusoidal && !self.n_embd.is_multiple_of(2) {
            return bad(format!("sinusoidal positions need an even width, not {}", self.n_embd));
        }
        Ok(())
    }

    pub fn head_dim(&self) -> usize {
        self.n_embd / self.n_head
    }

    /// Parameter count (the position table counts only when learned).
    pub fn parameters(&self) -> usize {
        let d = self.n_embd;
        let b = usize::from(self.bias);
        let block = 2 * (d + b * d) + (3 * d * d + b * 3 * d) + (d * d + b * d) + (4 * d * d + b * 4 * d) + (4 * d * d + b * d);
        self.vocab_size * d + if self.positions == Positions::Learned { self.block_size * d } else { 0 } + self.n_layer * block + d + b * d
    }
}

/// One named trainable tensor, and whether weight decay applies to it (matrices only, as
/// in nanoGPT: decaying gains and biases hurts).
pub struct Param {
    pub name: String,
    pub var: Var,
    pub decay: bool,
}

/// A GPT's parameters.
pub struct Gpt {
    pub config: GptConfig,
    pub params: Vec<Param>,
    /// The fixed sinusoidal table, when positions are not learned.
    sinusoidal: Option<Tensor>,
}

/// The sinusoidal positional encoding table of shape (len, d).
pub fn sinusoidal_table(len: usize, d: usize) -> Vec<f32> {
    let mut t = vec![0f32; len * d];
    for p in 0..len {
        for i in 0..d / 2 {
            let angle = p as f64 / 10_000f64.powf(2.0 * i as f64 / d as f64);
            t[p * d + 2 * i] = angle.sin() as f32;
            t[p * d + 2 * i + 1] = angle.cos() as f32;
        }
    }
    t
}

impl Gpt {
    /// A freshly initialised model: weights ~ N(0, 0.02), residual projections scaled by
    /// 1/sqrt(2·layers) (GPT-2), gains 1, biases 0. Seeded: the same seed gives the same model.
    pub fn new(config: GptConfig, seed: u64) -> Result<Self> {
        config.validate()?;
        let dev = Device::Cpu;
        let mut rng = StdRng::seed_from_u64(seed);
        let (d, v) = (config.n_embd, config.vocab_size);
        let mut params = Vec::new();
        let mut normal = |name: String, shape: (usize, usize), std: f64, params: &mut Vec<Param>| -> Result<()> {
            let dist = Normal::new(0.0, std).map_err(|e| TrainError::InvalidSetting(e.to_string()))?;
            let data: Vec<f32> = (0..shape.0 * shape.1).map(|_| dist.sample(&mut rng) as f32).collect();
            params.push(Param { name, var: Var::from_tensor(&Tensor::from_vec(data, shape, &dev)?)?, decay: true });
            Ok(())
        };
        let constant = |name: String, len: usize, value: f32, params: &mut Vec<Param>| -> Result<()> {
            params.push(Param { name, var: Var::from_tensor(&Tensor::full(value, len, &dev)?)?, decay: false });
            Ok(())
        };
        let resid_std = 0.02 / (2.0 * config.n_layer as f64).sqrt();
        normal("token_embd.weight".into(), (v, d), 0.02, &mut params)?;
        if config.positions == Positions::Learned {
            normal("position_embd.weight".into(), (config.block_size, d), 0.02, &mut params)?;
        }
        for l in 0..config.n_layer {
            let n = |s: &str| format!("blk.{l}.{s}");
            constant(n("attn_norm.weight"), d, 1.0, &mut params)?;
            normal(n("attn_qkv.weight"), (3 * d, d), 0.02, &mut params)?;
            normal(n("attn_output.weight"), (d, d), resid_std, &mut params)?;
            constant(n("ffn_norm.weight"), d, 1.0, &mut params)?;
            normal(n("ffn_up.weight"), (4 * d, d), 0.02, &mut params)?;
            normal(n("ffn_down.weight"), (d, 4 * d), resid_std, &mut params)?;
            if config.bias {
                for (s, len) in [("attn_norm.bias", d), ("attn_qkv.bias", 3 * d), ("attn_output.bias", d), ("ffn_norm.bias", d), ("ffn_up.bias", 4 * d), ("ffn_down.bias", d)] {
                    constant(n(s), len, 0.0, &mut params)?;
                }
            }
        }
        constant("output_norm.weight".into(), d, 1.0, &mut params)?;
        if config.bias {
            constant("output_norm.bias".into(), d, 0.0, &mut params)?;
        }
        Self::from_params(config, params)
    }

    /// A model over given parameters (a checkpoint), checking every expected one is there.
    pub fn from_params(config: GptConfig, params: Vec<Param>) -> Result<Self> {
        let sinusoidal = match config.positions {
            Positions::Sinusoidal => Some(Tensor::from_vec(sinusoidal_table(config.block_size, config.n_embd), (config.block_size, config.n_embd), &Device::Cpu)?),
            Positions::Learned => None,
        };
        let gpt = Self { config, params, sinusoidal };
        for name in gpt.expected_names() {
            gpt.param(&name)?;
        }
        Ok(gpt)
    }

    fn expected_names(&self) -> Vec<String> {
        let c = &self.config;
        let mut names = vec!["token_embd.weight".to_string(), "output_norm.weight".into()];
        if c.positions == Positions::Learned {
            names.push("position_embd.weight".into());
        }
        for l in 0..c.n_layer {
            for s in ["attn_norm.weight", "attn_qkv.weight", "attn_output.weight", "ffn_norm.weight", "ffn_up.weight", "ffn_down.weight"] {
                names.push(format!("blk.{l}.{s}"));
            }
        }
        names
    }

    pub fn param(&self, name: &str) -> Result<&Tensor> {
        self.params.iter().find(|p| p.name == name).map(|p| p.var.as_tensor()).ok_or_else(|| TrainError::InvalidSetting(format!("the model has no parameter `{name}`")))
    }

    fn opt_param(&self, name: &str) -> Option<&Tensor> {
        self.params.iter().find(|p| p.name == name).map(|p| p.var.as_tensor())
    }

    /// Logits of shape (B·T, V) for token ids of shape (B, T).
    pub fn forward(&self, idx: &Tensor) -> Result<Tensor> {
        let (b, t) = idx.dims2()?;
        let c = &self.config;
        if t > c.block_size {
            return Err(TrainError::InvalidSetting(format!("{t} tokens do not fit the model's block of {}", c.block_size)));
        }
        let d = c.n_embd;
        let wte = self.param("token_embd.weight")?;
        let tok = wte.index_select(&idx.flatten_all()?, 0)?.reshape((b, t, d))?;
        let pos = match &self.sinusoidal {
            Some(table) => table.narrow(0, 0, t)?,
            None => self.param("position_embd.weight")?.narrow(0, 0, t)?,
        };
        let mut x = tok.broadcast_add(&pos)?;
        let mask = causal_mask(t, x.dtype(), x.device())?;
        for l in 0..c.n_layer {
            x = self.block(l, &x, &mask)?;
        }
        let x = layer_norm(&x, self.param("output_norm.weight")?, self.opt_param("output_norm.bias"))?;
        // Weight tying: the output layer is the token embedding, transposed.
        Ok(x.reshape((b * t, d))?.matmul(&wte.t()?)?)
    }

    /// One pre-norm transformer block.
    fn block(&self, l: usize, x: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let p = |s: &str| self.param(&format!("blk.{l}.{s}"));
        let o = |s: &str| self.opt_param(&format!("blk.{l}.{s}"));
        let h = layer_norm(x, p("attn_norm.weight")?, o("attn_norm.bias"))?;
        let a = causal_self_attention(&h, p("attn_qkv.weight")?, o("attn_qkv.bias"), self.config.n_head, mask)?;
        let x = (x + linear(&a, p("attn_output.weight")?, o("attn_output.bias"))?)?;
        let h = layer_norm(&x, p("ffn_norm.weight")?, o("ffn_norm.bias"))?;
        let h = crate::fused::gelu_fused(&linear(&h, p("ffn_up.weight")?, o("ffn_up.bias"))?)?;
        Ok((&x + linear(&h, p("ffn_down.weight")?, o("ffn_down.bias"))?)?)
    }

    /// Mean cross-entropy of predicting `targets` (B, T) from `idx` (B, T).
    pub fn loss(&self, idx: &Tensor, targets: &Tensor) -> Result<Tensor> {
        cross_entropy(&self.forward(idx)?, &targets.flatten_all()?)
    }

    /// Named copies of every parameter (checkpoints, export).
    pub fn tensors(&self) -> Vec<(String, Tensor)> {
        self.params.iter().map(|p| (p.name.clone(), p.var.as_tensor().detach())).collect()
    }

    /// The position table the model uses, learned or fixed, as (block, d) values.
    pub fn position_table(&self) -> Result<Tensor> {
        match &self.sinusoidal {
            Some(t) => Ok(t.clone()),
            None => Ok(self.param("position_embd.weight")?.detach()),
        }
    }
}

/// Multi-head causal self-attention over x of shape (B, T, d) with fused projection
/// `w_qkv` (3d, d); returns the concatenated heads, (B, T, d), before the output projection.
pub fn causal_self_attention(x: &Tensor, w_qkv: &Tensor, b_qkv: Option<&Tensor>, n_head: usize, mask: &Tensor) -> Result<Tensor> {
    let (b, t, d) = x.dims3()?;
    let hd = d / n_head;
    let qkv = linear(x, w_qkv, b_qkv)?;
    let heads = |i: usize| -> Result<Tensor> { Ok(qkv.narrow(D::Minus1, i * d, d)?.reshape((b, t, n_head, hd))?.transpose(1, 2)?.contiguous()?) };
    let (q, k, v) = (heads(0)?, heads(1)?, heads(2)?);
    let scores = (q.matmul(&k.t()?)? * (1.0 / (hd as f64).sqrt()))?.broadcast_add(mask)?;
    let y = softmax_last_dim(&scores)?.matmul(&v)?; // (B, h, T, hd)
    Ok(y.transpose(1, 2)?.reshape((b, t, d))?)
}

/// `x Wᵀ + b` for x of shape (..., in) and W of shape (out, in).
pub fn linear(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
    let dims = x.dims().to_vec();
    let inner = dims[dims.len() - 1];
    let rows: usize = dims[..dims.len() - 1].iter().product();
    let y = x.reshape((rows, inner))?.matmul(&w.t()?)?;
    let y = match b {
        Some(b) => y.broadcast_add(b)?,
        None => y,
    };
    let mut out = dims;
    let last = out.len() - 1;
    out[last] = w.dim(0)?;
    Ok(y.reshape(out)?)
}

/// Layer normalisation over the last dimension (see the module doc for the formula).
pub fn layer_norm(x: &Tensor, gain: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    let mean = x.mean_keepdim(D::Minus1)?;
    let centered = x.broadcast_sub(&mean)?;
    let var = centered.sqr()?.mean_keepdim(D::Minus1)?;
    let normed = centered.broadcast_div(&(var + LN_EPS)?.sqrt()?)?.broadcast_mul(gain)?;
    Ok(match bias {
        Some(b) => normed.broadcast_add(b)?,
        None => normed,
    })
}

/// Softmax over the last dimension. The row maximum is subtracted for stability; it is
/// detached because softmax does not depend on it, so no gradient flows through it.
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    let max = x.max_keepdim(D::Minus1)?.detach();
    let e = x.broadcast_sub(&max)?.exp()?;
    Ok(e.broadcast_div(&e.sum_keepdim(D::Minus1)?)?)
}

/// Log-softmax over the last dimension.
pub fn log_softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    let max = x.max_keepdim(D::Minus1)?.detach();
    let shifted = x.broadcast_sub(&max)?;
    let lse = shifted.exp()?.sum_keepdim(D::Minus1)?.log()?;
    Ok(shifted.broadcast_sub(&lse)?)
}

/// Mean of `-log softmax(logits)[target]` over rows; logits (N, V), targets (N,) u32.
pub fn cross_entropy(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let logp = log_softmax_last_dim(logits)?;
    let picked = logp.gather(&targets.unsqueeze(1)?, 1)?;
    Ok(picked.mean_all()?.neg()?)
}

/// (T, T) additive mask: 0 on and below the diagonal, -inf above.
pub fn causal_mask(t: usize, dtype: DType, dev: &Device) -> Result<Tensor> {
    let m: Vec<f32> = (0..t * t).map(|i| if i % t > i / t { f32::NEG_INFINITY } else { 0.0 }).collect();
    Ok(Tensor::from_vec(m, (t, t), dev)?.to_dtype(dtype)?)
}
