//! The transformer forward pass for the llama, qwen2/qwen3, gemma3 and gpt2 families.
//!
//! One code path with per-family switches (bias, QK-norm, post-norms, GELU vs SiLU, gated vs
//! plain feed-forward, LayerNorm vs RMSNorm, learned positions vs RoPE, sliding window, RoPE
//! layout), because these families differ in a handful of places only. The gpt2 family is
//! also what `inkling-train` exports its models as.
//! `forward` takes a batch of sequences, each with its own KV cache and any number of new
//! tokens: a prompt prefill and the decode step of n candidates are the same call.

use crate::error::{EngineError, Result};
use crate::gguf::GgufFile;
use crate::kernels::{attend, round_f16};
use crate::kv_cache::KvCache;
use crate::ops::{self, Rope};
use crate::quant::{self, QMatrix};
use rayon::prelude::*;
use std::collections::HashMap;
use std::sync::Arc;

/// The model families inkling runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    Llama,
    Qwen2,
    Qwen3,
    Gemma3,
    /// GPT-2 layout: LayerNorm with bias, learned (or stored sinusoidal) absolute positions,
    /// a plain GELU feed-forward, biases on every projection.
    Gpt2,
}

impl Arch {
    pub fn from_gguf(name: &str) -> Result<Self> {
        Ok(match name {
            "llama" | "mistral" => Arch::Llama,
            "qwen2" => Arch::Qwen2,
            "qwen3" => Arch::Qwen3,
            "gemma3" => Arch::Gemma3,
            "gpt2" => Arch::Gpt2,
            other => return Err(EngineError::UnsupportedArchitecture { arch: other.into() }),
        })
    }
}

/// Hyper-parameters read from GGUF metadata.
#[derive(Clone, Debug)]
pub struct ModelConfig {
    pub arch: Arch,
    pub arch_name: String,
    pub n_layer: usize,
    pub n_embd: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
    pub n_ff: usize,
    pub vocab_size: usize,
    pub context_length: usize,
    /// Epsilon of the normalisation (RMSNorm, or LayerNorm for gpt2).
    pub rms_eps: f32,
    pub rope_base: f32,
    /// Rotation base of sliding-window layers (gemma3), if different.
    pub rope_base_local: f32,
    pub rope_scale: f32,
    pub sliding_window: Option<usize>,
}

impl ModelConfig {
    pub fn from_gguf(file: &GgufFile) -> Result<Self> {
        let arch_name = file.architecture()?.to_string();
        let arch = Arch::from_gguf(&arch_name)?;
        let a = &arch_name;
        let key = |k: &str| format!("{a}.{k}");
        let n_embd = file.require_usize(&key("embedding_length"), "the width of the model")?;
        let n_head = file.require_usize(&key("attention.head_count"), "the number of attention heads")?;
        let n_head_kv = file.get_usize(&key("attention.head_count_kv")).unwrap_or(n_head);
        if n_head == 0 || n_head_kv == 0 || n_head % n_head_kv != 0 {
            return Err(EngineError::BadGguf { path: file.path.clone(), reason: format!("{n_head} attention heads cannot share {n_head_kv} key/value heads") });
        }
        let head_dim = file.get_usize(&key("attention.key_length")).unwrap_or(n_embd / n_head);
        let vocab_size =
            file.tensors.get("token_embd.weight").map(|t| t.dims[0]).ok_or_else(|| EngineError::BadTensor { name: "token_embd.weight".into(), problem: "is missing from the file".into() })?;
        let rope_base = file.get_f32(&key("rope.freq_base")).unwrap_or(10_000.0);
        let rope_scale = match file.get_str(&key("rope.scaling.type")) {
            Some("linear") => 1.0 / file.get_f32(&key("rope.scaling.factor")).unwrap_or(1.0),
            _ => 1.0,
        };
        let sliding_window = match arch {
            Arch::Gemma3 => file.get_usize(&key("attention.sliding_window")),
            _ => None,
        };
        Ok(Self {
            arch,
            n_layer: file.require_usize(&key("block_count"), "the number of layers")?,
            n_embd,
            n_head,
            n_head_kv,
            head_dim,
            n_ff: file.require_usize(&key("feed_forward_length"), "the feed-forward width")?,
            vocab_size,
            context_length: file.get_usize(&key("context_length")).unwrap_or(2048),
            rms_eps: match arch {
                Arch::Gpt2 => file.get_f32(&key("attention.layer_norm_epsilon")).unwrap_or(1e-5),
                _ => file.get_f32(&key("attention.layer_norm_rms_epsilon")).unwrap_or(1e-5),
            },
            rope_base,
            rope_base_local: if arch == Arch::Gemma3 { 10_000.0 } else { rope_base },
            rope_scale,
            sliding_window,
            arch_name,
        })
    }

    pub fn kv_dim(&self) -> usize {
        self.n_head_kv * self.head_dim
    }

    /// Gemma 3 interleaves five sliding-window layers with one global layer.
    fn is_sliding(&self, layer: usize) -> bool {
        self.sliding_window.is_some() && layer % 6 < 5
    }
}

struct Layer {
    attn_norm: Vec<f32>,
    attn_norm_b: Option<Vec<f32>>,
    wq: QMatrix,
    wk: QMatrix,
    wv: QMatrix,
    wo: QMatrix,
    bq: Option<Vec<f32>>,
    bk: Option<Vec<f32>>,
    bv: Option<Vec<f32>>,
    bo: Option<Vec<f32>>,
    q_norm: Option<Vec<f32>>,
    k_norm: Option<Vec<f32>>,
    post_attn_norm: Option<Vec<f32>>,
    ffn_norm: Vec<f32>,
    ffn_norm_b: Option<Vec<f32>>,
    /// None: a plain (ungated) feed-forward, `down(gelu(up(x)))`.
    w_gate: Option<QMatrix>,
    w_up: QMatrix,
    w_down: QMatrix,
    b_up: Option<Vec<f32>>,
    b_down: Option<Vec<f32>>,
    post_ffn_norm: Option<Vec<f32>>,
    /// None: positions come from `Model::position_embd` instead.
    rope: Option<Rope>,
    window: Option<usize>,
}

impl Layer {
    /// The layer with its projections repacked for the multi-row kernels.
    fn packed(self) -> Self {
        Layer {
            wq: self.wq.into_packed(),
            wk: self.wk.into_packed(),
            wv: self.wv.into_packed(),
            wo: self.wo.into_packed(),
            w_gate: self.w_gate.map(QMatrix::into_packed),
            w_up: self.w_up.into_packed(),
            w_down: self.w_down.into_packed(),
            ..self
        }
    }
}

/// A loaded model: weights (quantized, mapped) and its configuration.
pub struct Model {
    pub config: ModelConfig,
    token_embd: QMatrix,
    /// Learned absolute positions (gpt2), added to the token embeddings.
    position_embd: Option<QMatrix>,
    output_norm: Vec<f32>,
    output_norm_b: Option<Vec<f32>>,
    output: QMatrix,
    layers: Vec<Layer>,
}

/// One sequence's part of a batch: its cache and the new tokens to append.
pub struct SeqBatch<'a> {
    pub cache: &'a mut KvCache,
    pub tokens: &'a [u32],
    /// Return logits for every new token (perplexity, drafted tokens) instead of only the last one.
    pub all_logits: bool,
    /// Compute these tokens' attention with decoding's arithmetic, each row as if it had been
    /// decoded alone (drafted tokens being checked: see `speculative`), rather than as a prompt.
    pub decoding: bool,
}

/// `a[i] = f(a[i], b[i])`, across the worker pool only when there is enough work to pay
/// for the trip (a prompt's worth of rows, not one decoded token's).
fn elementwise(a: &mut [f32], b: &[f32], f: impl Fn(f32, f32) -> f32 + Sync) {
    const CHUNK: usize = 4096;
    let apply = |x: &mut [f32], y: &[f32]| x.iter_mut().zip(y).for_each(|(x, y)| *x = f(*x, *y));
    if a.len() <= 4 * CHUNK {
        apply(a, b);
    } else {
        a.par_chunks_mut(CHUNK).zip(b.par_chunks(CHUNK)).for_each(|(x, y)| apply(x, y));
    }
}

fn add_bias(rows: &mut [f32], bias: &Option<Vec<f32>>) {
    if let Some(b) = bias {
        rows.chunks_mut(b.len()).for_each(|r| ops::add_assign(r, b));
    }
}

fn vector(file: &GgufFile, name: &str, len: usize) -> Result<Vec<f32>> {
    let m = QMatrix::load(file, name, None)?;
    if m.rows * m.cols != len {
        return Err(EngineError::BadTensor { name: name.into(), problem: format!("has {} values, expected {len}", m.rows * m.cols) });
    }
    Ok(m.to_f32())
}

fn optional_vector(file: &GgufFile, name: &str, len: usize) -> Result<Option<Vec<f32>>> {
    if file.tensors.contains_key(name) { vector(file, name, len).map(Some) } else { Ok(None) }
}

type Projections = (QMatrix, QMatrix, QMatrix, Option<Vec<f32>>, Option<Vec<f32>>, Option<Vec<f32>>);

/// Query, key and value projections of layer `l`, stored apart or fused into one `attn_qkv`
/// matrix (GPT-2 files), which is split by rows here.
fn attention_projections(file: &GgufFile, c: &ModelConfig, l: usize) -> Result<Projections> {
    let (d, qd, kv) = (c.n_embd, c.n_head * c.head_dim, c.kv_dim());
    let t = |n: &str| format!("blk.{l}.{n}");
    if file.tensors.contains_key(&t("attn_qkv.weight")) {
        let w = QMatrix::load(file, &t("attn_qkv.weight"), Some((qd + 2 * kv, d)))?;
        let b = optional_vector(file, &t("attn_qkv.bias"), qd + 2 * kv)?;
        let split = |b: &Option<Vec<f32>>, from: usize, n: usize| b.as_ref().map(|b| b[from..from + n].to_vec());
        return Ok((w.rows_range(0, qd), w.rows_range(qd, kv), w.rows_range(qd + kv, kv), split(&b, 0, qd), split(&b, qd, kv), split(&b, qd + kv, kv)));
    }
    Ok((
        QMatrix::load(file, &t("attn_q.weight"), Some((qd, d)))?,
        QMatrix::load(file, &t("attn_k.weight"), Some((kv, d)))?,
        QMatrix::load(file, &t("attn_v.weight"), Some((kv, d)))?,
        optional_vector(file, &t("attn_q.bias"), qd)?,
        optional_vector(file, &t("attn_k.bias"), kv)?,
        optional_vector(file, &t("attn_v.bias"), kv)?,
    ))
}

impl Model {
    pub fn load(file: &GgufFile) -> Result<Self> {
        let c = ModelConfig::from_gguf(file)?;
        let (d, hd) = (c.n_embd, c.head_dim);
        let neox = c.arch != Arch::Llama;
        let gpt2 = c.arch == Arch::Gpt2;
        let rot = file.get_usize(&format!("{}.rope.dimension_count", c.arch_name)).unwrap_or(hd);
        // Not `with_capacity(n_layer)`: a damaged count would ask for terabytes before the
        // first missing layer's tensor is found and named (found by tests/fuzz.rs).
        let mut layers = Vec::new();
        for l in 0..c.n_layer {
            let t = |n: &str| format!("blk.{l}.{n}");
            let sliding = c.is_sliding(l);
            let base = if sliding { c.rope_base_local } else { c.rope_base };
            let gemma = c.arch == Arch::Gemma3;
            let (wq, wk, wv, bq, bk, bv) = attention_projections(file, &c, l)?;
            layers.push(Layer {
                attn_norm: vector(file, &t("attn_norm.weight"), d)?,
                attn_norm_b: optional_vector(file, &t("attn_norm.bias"), d)?,
                wq,
                wk,
                wv,
                wo: QMatrix::load(file, &t("attn_output.weight"), Some((d, c.n_head * hd)))?,
                bq,
                bk,
                bv,
                bo: optional_vector(file, &t("attn_output.bias"), d)?,
                q_norm: optional_vector(file, &t("attn_q_norm.weight"), hd)?,
                k_norm: optional_vector(file, &t("attn_k_norm.weight"), hd)?,
                post_attn_norm: if gemma { Some(vector(file, &t("post_attention_norm.weight"), d)?) } else { None },
                ffn_norm: vector(file, &t("ffn_norm.weight"), d)?,
                ffn_norm_b: optional_vector(file, &t("ffn_norm.bias"), d)?,
                w_gate: if gpt2 { None } else { Some(QMatrix::load(file, &t("ffn_gate.weight"), Some((c.n_ff, d)))?) },
                w_up: QMatrix::load(file, &t("ffn_up.weight"), Some((c.n_ff, d)))?,
                w_down: QMatrix::load(file, &t("ffn_down.weight"), Some((d, c.n_ff)))?,
                b_up: optional_vector(file, &t("ffn_up.bias"), c.n_ff)?,
                b_down: optional_vector(file, &t("ffn_down.bias"), d)?,
                post_ffn_norm: if gemma { Some(vector(file, &t("post_ffw_norm.weight"), d)?) } else { None },
                rope: if gpt2 { None } else { Some(Rope::new(rot, base, neox, c.rope_scale)) },
                window: if sliding { c.sliding_window } else { None },
            });
        }
        // Repacking reads every weight once; the layers go in parallel.
        let layers: Vec<Layer> = layers.into_par_iter().map(Layer::packed).collect();
        let token_embd = QMatrix::load(file, "token_embd.weight", Some((c.vocab_size, d)))?;
        let output = if file.tensors.contains_key("output.weight") {
            QMatrix::load(file, "output.weight", Some((c.vocab_size, d)))?.into_packed()
        } else {
            token_embd.clone().into_packed() // tied embeddings: lookups still read the file
        };
        let position_embd = if gpt2 { Some(QMatrix::load(file, "position_embd.weight", Some((c.context_length, d)))?) } else { None };
        Ok(Self { output_norm: vector(file, "output_norm.weight", d)?, output_norm_b: optional_vector(file, "output_norm.bias", d)?, token_embd, position_embd, output, layers, config: c })
    }

    /// Merges a LoRA adapter into the weights it targets; returns how many it changed.
    pub fn merge_adapter(&mut self, adapter: &crate::adapter::LoraAdapter) -> Result<usize> {
        if adapter.arch != self.config.arch_name {
            return Err(EngineError::AdapterMismatch { path: adapter.path.clone(), reason: format!("it was trained on a {} model, this is {}", adapter.arch, self.config.arch_name) });
        }
        for pair in &adapter.pairs {
            let unknown = || EngineError::AdapterMismatch { path: adapter.path.clone(), reason: format!("the model has no weight {}", pair.target) };
            let rest = pair.target.strip_prefix("blk.").ok_or_else(unknown)?;
            let (l, kind) = rest.split_once('.').ok_or_else(unknown)?;
            let layer = l.parse::<usize>().ok().and_then(|l| self.layers.get_mut(l)).ok_or_else(unknown)?;
            let slot = match kind {
                "attn_q.weight" => &mut layer.wq,
                "attn_k.weight" => &mut layer.wk,
                "attn_v.weight" => &mut layer.wv,
                "attn_output.weight" => &mut layer.wo,
                "ffn_gate.weight" => layer.w_gate.as_mut().ok_or_else(unknown)?,
                "ffn_up.weight" => &mut layer.w_up,
                "ffn_down.weight" => &mut layer.w_down,
                _ => return Err(unknown()),
            };
            *slot = adapter.merged(pair, slot)?;
        }
        Ok(adapter.pairs.len())
    }

    /// Bytes of weights the forward pass reads.
    pub fn weight_bytes(&self) -> usize {
        let l: usize =
            self.layers.iter().map(|l| [&l.wq, &l.wk, &l.wv, &l.wo, &l.w_up, &l.w_down].iter().map(|m| m.size_in_bytes()).sum::<usize>() + l.w_gate.as_ref().map_or(0, QMatrix::size_in_bytes)).sum();
        l + self.token_embd.size_in_bytes()
    }

    pub fn new_cache(&self, capacity: usize) -> KvCache {
        KvCache::new(self.config.n_layer, self.config.n_head_kv, self.config.head_dim, capacity)
    }

    /// Runs the new tokens of every sequence through the model, appending to their caches.
    /// Returns logits: per sequence, one row per returned position (the last token, or all).
    pub fn forward(&self, batch: &mut [SeqBatch<'_>]) -> Vec<Vec<f32>> {
        let c = &self.config;
        let (d, hd, kvd) = (c.n_embd, c.head_dim, c.kv_dim());
        let qd = c.n_head * hd;
        let n: usize = batch.iter().map(|s| s.tokens.len()).sum();
        // (sequence, position) of every row in the activation matrix.
        let mut rows = Vec::with_capacity(n);
        for (s, seq) in batch.iter().enumerate() {
            let start = seq.cache.len();
            rows.extend((0..seq.tokens.len()).map(|i| (s, start + i)));
        }
        let mut x = vec![0f32; n * d];
        let tokens: Vec<u32> = batch.iter().flat_map(|s| s.tokens.iter().copied()).collect();
        for (row, &t) in x.chunks_mut(d).zip(&tokens) {
            self.token_embd.dequantize_row(t as usize, row);
        }
        if c.arch == Arch::Gemma3 {
            let scale = (d as f32).sqrt();
            x.iter_mut().for_each(|v| *v *= scale);
        }
        if let Some(pe) = &self.position_embd {
            let mut p = vec![0f32; d];
            for (row, &(_, pos)) in x.chunks_mut(d).zip(&rows) {
                // The engine never lets a sequence outgrow the context, which is the table's length.
                pe.dequantize_row(pos.min(pe.rows - 1), &mut p);
                ops::add_assign(row, &p);
            }
        }
        let mut h = vec![0f32; n * d];
        let mut q = vec![0f32; n * qd];
        let mut k = vec![0f32; n * kvd];
        let mut v = vec![0f32; n * kvd];
        let mut attn = vec![0f32; n * qd];
        let mut o = vec![0f32; n * d];
        let mut gate = vec![0f32; n * c.n_ff];
        let mut up = vec![0f32; n * c.n_ff];
        for (li, layer) in self.layers.iter().enumerate() {
            self.norm_into(&x, &mut h, &layer.attn_norm, layer.attn_norm_b.as_deref());
            quant::matmul_many(&h, &mut [(&layer.wq, &mut q[..]), (&layer.wk, &mut k[..]), (&layer.wv, &mut v[..])]);
            for (buf, bias) in [(&mut q, &layer.bq), (&mut k, &layer.bk), (&mut v, &layer.bv)] {
                add_bias(buf, bias);
            }
            if let Some(w) = &layer.q_norm {
                ops::rms_norm(&mut q, w, c.rms_eps);
            }
            if let Some(w) = &layer.k_norm {
                ops::rms_norm(&mut k, w, c.rms_eps);
            }
            if let Some(rope) = &layer.rope {
                for (i, &(_, pos)) in rows.iter().enumerate() {
                    rope.apply(&mut q[i * qd..(i + 1) * qd], hd, pos);
                    rope.apply(&mut k[i * kvd..(i + 1) * kvd], hd, pos);
                }
            }
            let mut row = 0;
            for seq in batch.iter_mut() {
                for _ in 0..seq.tokens.len() {
                    seq.cache.push(li, &k[row * kvd..(row + 1) * kvd], &v[row * kvd..(row + 1) * kvd]);
                    row += 1;
                }
            }
            self.attention(layer, li, batch, &rows, &q, &mut attn);
            layer.wo.matmul(&attn, &mut o);
            add_bias(&mut o, &layer.bo);
            if let Some(w) = &layer.post_attn_norm {
                ops::rms_norm(&mut o, w, c.rms_eps);
            }
            ops::add_assign(&mut x, &o);

            self.norm_into(&x, &mut h, &layer.ffn_norm, layer.ffn_norm_b.as_deref());
            if let Some(w_gate) = &layer.w_gate {
                quant::matmul_many(&h, &mut [(w_gate, &mut gate[..]), (&layer.w_up, &mut up[..])]);
                add_bias(&mut up, &layer.b_up);
                if c.arch == Arch::Gemma3 {
                    elementwise(&mut gate, &up, |g, u| ops::gelu(g) * u);
                } else {
                    elementwise(&mut gate, &up, |g, u| ops::silu(g) * u);
                }
            } else {
                layer.w_up.matmul(&h, &mut up);
                add_bias(&mut up, &layer.b_up);
                elementwise(&mut gate, &up, |_, u| ops::gelu(u));
            }
            layer.w_down.matmul(&gate, &mut o);
            add_bias(&mut o, &layer.b_down);
            if let Some(w) = &layer.post_ffn_norm {
                ops::rms_norm(&mut o, w, c.rms_eps);
            }
            ops::add_assign(&mut x, &o);
        }
        for seq in batch.iter_mut() {
            let len = seq.cache.len() + seq.tokens.len();
            seq.cache.set_len(len);
        }
        // Only the rows whose logits are wanted go through the (large) output projection.
        let mut wanted = Vec::new();
        let mut row = 0;
        for seq in batch.iter() {
            let t = seq.tokens.len();
            let first = if seq.all_logits { 0 } else { t.saturating_sub(1) };
            wanted.push(((row + first)..(row + t)).collect::<Vec<_>>());
            row += t;
        }
        let picked: Vec<usize> = wanted.iter().flatten().copied().collect();
        let mut hs = vec![0f32; picked.len() * d];
        for (dst, &r) in hs.chunks_mut(d).zip(&picked) {
            dst.copy_from_slice(&x[r * d..(r + 1) * d]);
        }
        let normed = hs.clone();
        self.norm_into(&normed, &mut hs, &self.output_norm, self.output_norm_b.as_deref());
        let mut logits = vec![0f32; picked.len() * c.vocab_size];
        self.output.matmul(&hs, &mut logits);
        if batch.len() == 1 {
            // One stream decoding: its rows are the whole matrix (1 MiB a step for Gemma's
            // vocabulary), so hand it over rather than copy it.
            return vec![logits];
        }
        let mut out = Vec::with_capacity(batch.len());
        let mut it = logits.chunks(c.vocab_size);
        for w in &wanted {
            let mut rows_out = Vec::with_capacity(w.len() * c.vocab_size);
            for _ in w {
                rows_out.extend_from_slice(it.next().unwrap_or_default());
            }
            out.push(rows_out);
        }
        out
    }

    /// The family's normalisation of each row of `src` into `dst`: LayerNorm (gpt2) or RMSNorm.
    fn norm_into(&self, src: &[f32], dst: &mut [f32], weight: &[f32], bias: Option<&[f32]>) {
        if self.config.arch == Arch::Gpt2 {
            ops::layer_norm_into(src, dst, weight, bias, self.config.rms_eps);
        } else {
            ops::rms_norm_into(src, dst, weight, self.config.rms_eps);
        }
    }

    /// Attention when every sequence of the batch adds one token (decoding), through the
    /// kernels in `kernels::attend`, which read the cache in place.
    ///
    /// Work is split by (key/value head, chunk of [`DECODE_POSITIONS_PER_TASK`] positions,
    /// the rows that read that chunk from the same buffer) in two parallel passes: scores, each
    /// chunk taking exp below its own maximum with the sum; then, once every chunk's maximum
    /// and sum are known, each chunk's weights scaled to their softmax value and rounded to f16
    /// (as ggml's f16 products do) and its weighted values, whose partial sums are added in
    /// chunk order. A chunk of a prompt that candidates share (a forked cache's prefix) is one
    /// task for all of them, read once; every head of a grouped-query group is in the same
    /// task. Chunk bounds are absolute positions and each query's arithmetic does not depend
    /// on the others of its task (see `kernels::attend`), so a sequence's result does not
    /// depend on the rest of the batch or on whether its prompt is shared.
    fn attention_decode(&self, layer: &Layer, li: usize, batch: &[SeqBatch<'_>], rows: &[(usize, usize)], q: &[f32], out: &mut [f32]) {
        struct Task {
            kh: usize,
            chunk: std::ops::Range<usize>,
            /// Indices into `rows`: each contributes `group` queries, in this order.
            rows: Vec<usize>,
        }
        let c = &self.config;
        let (hd, nh, nkv) = (c.head_dim, c.n_head, c.n_head_kv);
        let group = nh / nkv;
        let scale = 1.0 / (hd as f32).sqrt();
        let isa = crate::kernels::best_isa();
        let qr: Vec<f32> = q[..rows.len() * nh * hd].iter().map(|x| round_f16(*x)).collect();
        let mut tasks: Vec<Task> = Vec::new();
        // For each (row, key/value head): its (task, place in the task's rows), in chunk order.
        let mut places: Vec<Vec<(usize, usize)>> = vec![Vec::new(); rows.len() * nkv];
        // Tasks over a shared prefix, by (prefix, head, chunk).
        let mut shared: HashMap<(usize, usize, usize, usize), usize> = HashMap::new();
        for (i, &(s, pos)) in rows.iter().enumerate() {
            let first = layer.window.map_or(0, |w| (pos + 1).saturating_sub(w));
            let cache = &batch[s].cache;
            for kh in 0..nkv {
                let view = cache.head(li, kh);
                for k in first / DECODE_POSITIONS_PER_TASK..=pos / DECODE_POSITIONS_PER_TASK {
                    let chunk = (k * DECODE_POSITIONS_PER_TASK).max(first)..((k + 1) * DECODE_POSITIONS_PER_TASK).min(pos + 1);
                    let key = cache.prefix().filter(|_| view.is_shared(&chunk)).map(|p| (Arc::as_ptr(p) as usize, kh, chunk.start, chunk.end));
                    let t = match key.and_then(|key| shared.get(&key)) {
                        Some(&t) => t,
                        None => {
                            tasks.push(Task { kh, chunk, rows: Vec::new() });
                            if let Some(key) = key {
                                shared.insert(key, tasks.len() - 1);
                            }
                            tasks.len() - 1
                        }
                    };
                    places[i * nkv + kh].push((t, tasks[t].rows.len()));
                    tasks[t].rows.push(i);
                }
            }
        }
        let queries = |t: &Task| -> Vec<f32> { t.rows.iter().flat_map(|&i| &qr[(i * nh + t.kh * group) * hd..][..group * hd]).copied().collect() };
        // Pass 1: scores, one row of the chunk's length per query, each turned into
        // exp(score - the row's max) with that max and the sum (see `ops::exp_below_max`).
        // Per task: its weights, and each query's (max, sum).
        type Scores = (Vec<f32>, Vec<(f32, f32)>);
        let mut parts: Vec<Scores> = tasks
            .par_iter()
            .map(|t| {
                let view = batch[rows[t.rows[0]].0].cache.head(li, t.kh);
                let qs = queries(t);
                let len = t.chunk.len();
                let mut w = vec![0f32; qs.len() / hd * len];
                for seg in view.segments(t.chunk.clone()) {
                    let at = seg.positions.start - t.chunk.start;
                    attend::scores(isa, &qs, hd, seg.keys, seg.local(), scale, &mut w[at..], len);
                }
                let stats = w.chunks_exact_mut(len).map(ops::exp_below_max).collect();
                (w, stats)
            })
            .collect();
        // Each query's softmax over all its chunks: chunk c's weights are scaled by
        // exp(max_c - max) / sum.
        let mut factors: Vec<Vec<f32>> = tasks.iter().map(|t| vec![0f32; t.rows.len() * group]).collect();
        for list in &places {
            for g in 0..group {
                let stat = |&(t, place): &(usize, usize)| parts[t].1[place * group + g];
                let max = list.iter().map(|tp| stat(tp).0).fold(f32::NEG_INFINITY, f32::max);
                let sum: f32 = list.iter().map(|tp| stat(tp).1 * ops::exp(stat(tp).0 - max)).sum();
                for tp in list {
                    factors[tp.0][tp.1 * group + g] = ops::exp(stat(tp).0 - max) / sum;
                }
            }
        }
        // Pass 2: each chunk's final weights (rounded through f16 as ggml does) and weighted
        // values, then each query's partial sums in chunk order.
        let partials: Vec<Vec<f32>> = tasks
            .par_iter()
            .zip(&mut parts)
            .zip(&factors)
            .map(|((t, (w, _)), f)| {
                let view = batch[rows[t.rows[0]].0].cache.head(li, t.kh);
                let len = t.chunk.len();
                for (wj, fj) in w.chunks_exact_mut(len).zip(f) {
                    ops::scale_round_f16(isa, wj, *fj);
                }
                let mut o = vec![0f32; f.len() * hd];
                for seg in view.segments(t.chunk.clone()) {
                    let at = seg.positions.start - t.chunk.start;
                    attend::weighted_values(isa, &w[at..], len, seg.values, hd, seg.local(), &mut o);
                }
                o
            })
            .collect();
        out[..rows.len() * nh * hd].fill(0.0);
        for (at, list) in places.iter().enumerate() {
            let (i, kh) = (at / nkv, at % nkv);
            for &(t, place) in list {
                ops::add_assign(&mut out[(i * nh + kh * group) * hd..][..group * hd], &partials[t][place * group * hd..][..group * hd]);
            }
        }
    }

    /// Causal (and for sliding layers, windowed) attention of every new row over its sequence's cache.
    ///
    /// One new token per sequence (decoding), or drafted tokens to check (`SeqBatch::decoding`),
    /// go to [`Model::attention_decode`], which takes each row over its own positions. Otherwise
    /// work is split by key/value head and by runs of up to [`QUERIES_PER_TASK`] consecutive
    /// rows of one sequence (a prompt's tokens): the run's query vectors (every head of the
    /// group for each row) go through the decoding kernels in `kernels::attend` together, so
    /// each cached key and value is converted from f16 once per tile of four of them.
    fn attention(&self, layer: &Layer, li: usize, batch: &[SeqBatch<'_>], rows: &[(usize, usize)], q: &[f32], out: &mut [f32]) {
        if batch.iter().all(|s| s.decoding || s.tokens.len() == 1) {
            return self.attention_decode(layer, li, batch, rows, q, out);
        }
        let c = &self.config;
        let hd = c.head_dim;
        let group = c.n_head / c.n_head_kv;
        let scale = 1.0 / (hd as f32).sqrt();
        let mut runs = Vec::new();
        let mut start = 0;
        while start < rows.len() {
            let mut end = start + 1;
            while end < rows.len() && end - start < QUERIES_PER_TASK && rows[end].0 == rows[start].0 {
                end += 1;
            }
            runs.push(start..end);
            start = end;
        }
        // One task per run and key/value head: the heads that share a cached key and value
        // (grouped-query attention) read and convert it once between them.
        let tasks: Vec<(std::ops::Range<usize>, usize)> = runs.iter().flat_map(|r| (0..c.n_head_kv).map(move |kh| (r.clone(), kh))).collect();
        let isa = crate::kernels::best_isa();
        let results: Vec<Vec<f32>> = tasks
            .par_iter()
            .map(|(run, kh)| {
                let view = batch[rows[run.start].0].cache.head(li, *kh);
                // Each query's span of cached positions, [first, pos], repeated for each head
                // of the group: query vector j is (row run.start + j / group, head kh * group + j % group).
                let spans: Vec<(usize, usize)> = run.clone().flat_map(|i| std::iter::repeat_n((layer.window.map_or(0, |w| (rows[i].1 + 1).saturating_sub(w)), rows[i].1), group)).collect();
                // Query and attention weights are rounded to f16 as ggml's f16 products do.
                let qs: Vec<f32> = run.clone().flat_map(|i| q[i * c.n_head * hd + kh * group * hd..][..group * hd].iter().map(|x| round_f16(*x))).collect();
                let lo = spans.iter().map(|s| s.0).min().unwrap_or(0);
                let hi = spans.iter().map(|s| s.1).max().unwrap_or(0);
                let len = hi + 1 - lo;
                // One row of scores per query vector over lo..=hi, through the decoding
                // kernels (each cached key converted once per tile of four query vectors);
                // positions outside a query's span weigh nothing.
                let mut scores = vec![0f32; spans.len() * len];
                for seg in view.segments(lo..hi + 1) {
                    let at = seg.positions.start - lo;
                    attend::scores(isa, &qs, hd, seg.keys, seg.local(), scale, &mut scores[at..], len);
                }
                for (j, &(first, pos)) in spans.iter().enumerate() {
                    let row = &mut scores[j * len..(j + 1) * len];
                    let (before, rest) = row.split_at_mut(first - lo);
                    let (span, after) = rest.split_at_mut(pos + 1 - first);
                    before.fill(0.0);
                    after.fill(0.0);
                    let (_, sum) = ops::exp_below_max(span);
                    ops::scale_round_f16(isa, span, 1.0 / sum);
                }
                let mut o = vec![0f32; spans.len() * hd];
                for seg in view.segments(lo..hi + 1) {
                    let at = seg.positions.start - lo;
                    attend::weighted_values(isa, &scores[at..], len, seg.values, hd, seg.local(), &mut o);
                }
                o
            })
            .collect();
        for ((run, kh), o) in tasks.iter().zip(results) {
            for (i, oj) in run.clone().zip(o.chunks_exact(group * hd)) {
                out[i * c.n_head * hd + kh * group * hd..][..group * hd].copy_from_slice(oj);
            }
        }
    }
}

/// Cached positions of one decoding attention task: enough tasks for every core however few
/// key/value heads a model has, and a block every head of the group reads while it is still
/// in the core's cache (128 rows of a 64-wide head: 16 KiB of keys).
const DECODE_POSITIONS_PER_TASK: usize = 128;

/// Query rows of one sequence that share each converted key and value in `attention`.
const QUERIES_PER_TASK: usize = 8;
