//! The GPT's training step written by hand for the CPU: the forward and backward passes of
//! [`crate::gpt`]'s model over flat `f32` buffers allocated once, one copy of the model per
//! core.
//!
//! Why: through candle's autograd a baby-GPT step built and freed hundreds of small tensors,
//! and its thread pool synchronised inside every one of them; a step took 4x PyTorch's time.
//! Here the parameters and their gradients are each one vector, activations live in buffers
//! sized once for the batch, and the batch is split between threads that each run the whole
//! forward and backward on their share and meet once, to sum gradients (data parallelism).
//!
//! [`crate::gpt::Gpt`] stays the readable reference: `tests/cpu_step.rs` checks this step's
//! loss and every gradient against candle's autograd through it.
//!
//! Invariants:
//! - Parameters are stored in the order and under the names of [`Gpt::new`], so checkpoints,
//!   the exported GGUF and the reference model convert without renaming.
//! - A step is deterministic for a given thread count: the batch is split in fixed
//!   contiguous shares and the gradients summed in worker order.

pub mod ops;

use crate::error::{Result, TrainError};
use crate::gpt::{Gpt, GptConfig, LN_EPS, Param, Positions, sinusoidal_table};
use candle_core::{Device, Tensor, Var};
use ops::AttnShape;
use std::ops::Range;

/// Where one layer's weight (or gain) and optional bias are in the flat vector.
struct Slot {
    w: Range<usize>,
    b: Option<Range<usize>>,
}

/// Where one transformer block's parameters are.
struct BlockSlots {
    ln1: Slot,
    qkv: Slot,
    proj: Slot,
    ln2: Slot,
    up: Slot,
    down: Slot,
}

/// Where every parameter is in the flat vector.
struct Slots {
    wte: Range<usize>,
    wpe: Option<Range<usize>>,
    blocks: Vec<BlockSlots>,
    lnf: Slot,
}

/// A named parameter's place in the flat vector.
pub struct ParamSlot {
    pub name: String,
    pub shape: Vec<usize>,
    pub range: Range<usize>,
    /// Weight decay applies (matrices only).
    pub decay: bool,
}

/// A GPT as flat parameters, with the buffers its steps use.
pub struct CpuGpt {
    pub config: GptConfig,
    pub slots: Vec<ParamSlot>,
    /// Every parameter, one after another, in `slots` order.
    pub weights: Vec<f32>,
    /// The gradient of the last step, same layout (summed over workers).
    pub grads: Vec<f32>,
    index: Slots,
    sinusoidal: Option<Vec<f32>>,
    workers: Vec<Worker>,
}

/// One thread's share of a step: its activations and its own gradients.
struct Worker {
    acts: Activations,
    grads: Vec<f32>,
}

fn slice<'a>(v: &'a [f32], r: &Range<usize>) -> &'a [f32] {
    &v[r.clone()]
}

fn opt<'a>(v: &'a [f32], r: &Option<Range<usize>>) -> Option<&'a [f32]> {
    r.as_ref().map(|r| &v[r.clone()])
}

/// A slot's weight and bias in `v`, mutably (their gradients): two disjoint ranges.
fn pair_mut<'a>(v: &'a mut [f32], slot: &Slot) -> (&'a mut [f32], Option<&'a mut [f32]>) {
    let (a, b) = (&slot.w, &slot.b);
    match b {
        None => (&mut v[a.clone()], None),
        Some(b) if b.start >= a.end => {
            let (lo, hi) = v.split_at_mut(b.start);
            (&mut lo[a.clone()], Some(&mut hi[..b.len()]))
        }
        Some(b) => {
            assert!(b.end <= a.start, "parameter slots overlap");
            let (lo, hi) = v.split_at_mut(a.start);
            (&mut hi[..a.len()], Some(&mut lo[b.clone()]))
        }
    }
}

impl CpuGpt {
    /// The flat form of `gpt` (a copy of its parameters).
    pub fn from_gpt(gpt: &Gpt) -> Result<Self> {
        let mut slots = Vec::with_capacity(gpt.params.len());
        let mut weights = Vec::with_capacity(gpt.config.parameters());
        for p in &gpt.params {
            let values = p.var.as_tensor().flatten_all()?.to_vec1::<f32>()?;
            let start = weights.len();
            weights.extend_from_slice(&values);
            slots.push(ParamSlot { name: p.name.clone(), shape: p.var.dims().to_vec(), range: start..weights.len(), decay: p.decay });
        }
        let config = gpt.config.clone();
        let index = Self::index(&config, &slots)?;
        let sinusoidal = (config.positions == Positions::Sinusoidal).then(|| sinusoidal_table(config.block_size, config.n_embd));
        let grads = vec![0.0; weights.len()];
        Ok(Self { config, slots, weights, grads, index, sinusoidal, workers: Vec::new() })
    }

    /// A freshly initialised model (the same weights as `Gpt::new` with this seed).
    pub fn new(config: GptConfig, seed: u64) -> Result<Self> {
        Self::from_gpt(&Gpt::new(config, seed)?)
    }

    fn index(c: &GptConfig, slots: &[ParamSlot]) -> Result<Slots> {
        let find = |name: &str| -> Option<Range<usize>> { slots.iter().find(|s| s.name == name).map(|s| s.range.clone()) };
        let need = |name: &str| find(name).ok_or_else(|| TrainError::InvalidSetting(format!("the model has no parameter `{name}`")));
        let blocks = (0..c.n_layer)
            .map(|l| {
                let n = |s: &str| format!("blk.{l}.{s}");
                let slot = |s: &str| -> Result<Slot> { Ok(Slot { w: need(&n(&format!("{s}.weight")))?, b: find(&n(&format!("{s}.bias"))) }) };
                Ok(BlockSlots { ln1: slot("attn_norm")?, qkv: slot("attn_qkv")?, proj: slot("attn_output")?, ln2: slot("ffn_norm")?, up: slot("ffn_up")?, down: slot("ffn_down")? })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Slots {
            wte: need("token_embd.weight")?,
            wpe: if c.positions == Positions::Learned { Some(need("position_embd.weight")?) } else { None },
            blocks,
            lnf: Slot { w: need("output_norm.weight")?, b: find("output_norm.bias") },
        })
    }

    /// The reference model with these parameters (for export, checkpoints and tests).
    pub fn to_gpt(&self) -> Result<Gpt> {
        let params = self
            .slots
            .iter()
            .map(|s| {
                let t = Tensor::from_slice(&self.weights[s.range.clone()], s.shape.as_slice(), &Device::Cpu)?;
                Ok(Param { name: s.name.clone(), var: Var::from_tensor(&t)?, decay: s.decay })
            })
            .collect::<Result<Vec<_>>>()?;
        Gpt::from_params(self.config.clone(), params)
    }

    /// Named copies of every parameter.
    pub fn tensors(&self) -> Result<Vec<(String, Tensor)>> {
        self.slots.iter().map(|s| Ok((s.name.clone(), Tensor::from_slice(&self.weights[s.range.clone()], s.shape.as_slice(), &Device::Cpu)?))).collect()
    }

    /// Replaces parameter `name`'s values (a checkpoint being restored).
    pub fn set(&mut self, name: &str, values: &[f32]) -> Result<()> {
        let slot = self.slots.iter().find(|s| s.name == name).ok_or_else(|| TrainError::InvalidSetting(format!("the model has no parameter `{name}`")))?;
        if slot.range.len() != values.len() {
            return Err(TrainError::InvalidSetting(format!("`{name}` has {} values, not {}", slot.range.len(), values.len())));
        }
        self.weights[slot.range.clone()].copy_from_slice(values);
        Ok(())
    }

    /// Checks a batch: `x` and `y` hold `b` rows of `t` token ids each, within the model.
    fn check_batch(&self, x: &[u32], y: &[u32], b: usize, t: usize) -> Result<()> {
        let c = &self.config;
        if b == 0 || t == 0 || t > c.block_size || x.len() != b * t || y.len() != b * t {
            return Err(TrainError::InvalidSetting(format!("a batch of {b}x{t} tokens does not fit a model with a block of {}", c.block_size)));
        }
        if let Some(bad) = x.iter().chain(y).find(|&&id| id as usize >= c.vocab_size) {
            return Err(TrainError::InvalidSetting(format!("token id {bad} is outside the vocabulary of {}", c.vocab_size)));
        }
        Ok(())
    }

    /// Shares of a batch of `b` rows for `threads` workers: contiguous, fixed by (b, threads).
    fn shares(b: usize, threads: usize) -> Vec<Range<usize>> {
        let n = threads.clamp(1, b);
        (0..n).map(|i| (i * b / n)..((i + 1) * b / n)).collect()
    }

    fn ensure_workers(&mut self, shares: &[Range<usize>], t: usize) {
        let rows = shares.iter().map(|s| s.len()).max().unwrap_or(1);
        while self.workers.len() < shares.len() {
            self.workers.push(Worker { acts: Activations::empty(), grads: Vec::new() });
        }
        for w in &mut self.workers {
            w.acts.reserve(&self.config, rows, t);
            w.grads.resize(self.weights.len(), 0.0);
        }
    }

    /// Mean cross-entropy of predicting `y` from `x` (b rows of t tokens) and, when
    /// `backward`, its gradient in `self.grads`. Runs on up to `threads` threads.
    pub fn loss(&mut self, x: &[u32], y: &[u32], b: usize, t: usize, threads: usize, backward: bool) -> Result<f32> {
        self.check_batch(x, y, b, t)?;
        let shares = Self::shares(b, threads);
        self.ensure_workers(&shares, t);
        let scale = 1.0 / (b * t) as f32;
        let model = Model { config: &self.config, index: &self.index, weights: &self.weights, sinusoidal: self.sinusoidal.as_deref() };
        let mut sums = vec![0f64; shares.len()];
        let (sum0, sums_rest) = sums.split_at_mut(1);
        let (first, rest) = self.workers.split_at_mut(1);
        std::thread::scope(|scope| {
            let handles: Vec<_> = rest
                .iter_mut()
                .zip(&shares[1..])
                .zip(sums_rest.iter_mut())
                .map(|((w, share), sum)| {
                    let (xs, ys) = (&x[share.start * t..share.end * t], &y[share.start * t..share.end * t]);
                    scope.spawn(move || *sum = model.run(w, xs, ys, share.len(), t, scale, backward))
                })
                .collect();
            let share = &shares[0];
            sum0[0] = model.run(&mut first[0], &x[share.start * t..share.end * t], &y[share.start * t..share.end * t], share.len(), t, scale, backward);
            for h in handles {
                // A worker only panics on a bug (shapes are checked above); surface it.
                if let Err(p) = h.join() {
                    std::panic::resume_unwind(p);
                }
            }
        });
        if backward {
            self.grads.copy_from_slice(&self.workers[0].grads);
            for w in &self.workers[1..shares.len()] {
                self.grads.iter_mut().zip(&w.grads).for_each(|(g, o)| *g += o);
            }
        }
        Ok((sums.iter().sum::<f64>() * f64::from(scale)) as f32)
    }
}

/// What a worker reads: the configuration and the parameters.
#[derive(Clone, Copy)]
struct Model<'a> {
    config: &'a GptConfig,
    index: &'a Slots,
    weights: &'a [f32],
    sinusoidal: Option<&'a [f32]>,
}

/// A worker's buffers for `rows` sequences of up to `t` tokens (n = rows·t positions).
struct Activations {
    /// Residual stream entering each block, and leaving the last: (L+1)·n·c.
    res: Vec<f32>,
    /// After each block's attention: L·n·c.
    res_mid: Vec<f32>,
    ln1: Vec<f32>,
    ln1_stats: Vec<f32>,
    qkv: Vec<f32>,
    att: Vec<f32>,
    atty: Vec<f32>,
    ln2: Vec<f32>,
    ln2_stats: Vec<f32>,
    fc: Vec<f32>,
    fc_gelu: Vec<f32>,
    lnf: Vec<f32>,
    lnf_stats: Vec<f32>,
    logits: Vec<f32>,
    // Backward scratch, reused by every block.
    d_res: Vec<f32>,
    d_ln: Vec<f32>,
    d_atty: Vec<f32>,
    d_qkv: Vec<f32>,
    d_fc: Vec<f32>,
    d_fc_gelu: Vec<f32>,
    d_scores: Vec<f32>,
}

impl Activations {
    fn empty() -> Self {
        let e = Vec::new;
        Self {
            res: e(),
            res_mid: e(),
            ln1: e(),
            ln1_stats: e(),
            qkv: e(),
            att: e(),
            atty: e(),
            ln2: e(),
            ln2_stats: e(),
            fc: e(),
            fc_gelu: e(),
            lnf: e(),
            lnf_stats: e(),
            logits: e(),
            d_res: e(),
            d_ln: e(),
            d_atty: e(),
            d_qkv: e(),
            d_fc: e(),
            d_fc_gelu: e(),
            d_scores: e(),
        }
    }

    /// Grows the buffers to hold `rows` sequences of `t` tokens (never shrinks; a no-op once
    /// they are large enough).
    fn reserve(&mut self, c: &GptConfig, rows: usize, t: usize) {
        let n = rows * t;
        let (l, d, v, h) = (c.n_layer, c.n_embd, c.vocab_size, c.n_head);
        let grow = |buf: &mut Vec<f32>, len: usize| buf.resize(len.max(buf.len()), 0.0);
        grow(&mut self.res, (l + 1) * n * d);
        for buf in [&mut self.res_mid, &mut self.ln1, &mut self.atty, &mut self.ln2] {
            grow(buf, l * n * d);
        }
        for buf in [&mut self.ln1_stats, &mut self.ln2_stats] {
            grow(buf, l * 2 * n);
        }
        grow(&mut self.qkv, l * n * 3 * d);
        grow(&mut self.att, l * rows * h * t * t);
        grow(&mut self.fc, l * n * 4 * d);
        grow(&mut self.fc_gelu, l * n * 4 * d);
        grow(&mut self.lnf, n * d);
        grow(&mut self.lnf_stats, 2 * n);
        grow(&mut self.logits, n * v);
        for buf in [&mut self.d_res, &mut self.d_ln, &mut self.d_atty] {
            grow(buf, n * d);
        }
        grow(&mut self.d_qkv, n * 3 * d);
        grow(&mut self.d_fc, n * 4 * d);
        grow(&mut self.d_fc_gelu, n * 4 * d);
        grow(&mut self.d_scores, t * t);
    }
}

impl Model<'_> {
    /// Forward (and backward) over `b` rows of `t` tokens; returns the summed loss.
    #[allow(clippy::too_many_arguments)]
    fn run(&self, w: &mut Worker, x: &[u32], y: &[u32], b: usize, t: usize, scale: f32, backward: bool) -> f64 {
        self.forward(&mut w.acts, x, b, t);
        let (n, v) = (b * t, self.config.vocab_size);
        let logits = &mut w.acts.logits[..n * v];
        if !backward {
            return ops::cross_entropy(logits, y, v);
        }
        let loss = ops::cross_entropy_forward_backward(logits, y, v, scale);
        w.grads.fill(0.0);
        self.backward(&mut w.acts, &mut w.grads, x, b, t);
        loss
    }

    fn forward(&self, a: &mut Activations, x: &[u32], b: usize, t: usize) {
        let c = self.config;
        let (n, d, v) = (b * t, c.n_embd, c.vocab_size);
        let eps = LN_EPS as f32;
        let wt = self.weights;
        let s = self.index;
        let wte = slice(wt, &s.wte);
        let pos = match (&s.wpe, self.sinusoidal) {
            (Some(r), _) => slice(wt, r),
            (None, Some(table)) => table,
            (None, None) => unreachable!("a model has learned or sinusoidal positions"),
        };
        // Token embedding plus positional encoding.
        for (i, &id) in x.iter().enumerate() {
            let (e, p) = (&wte[id as usize * d..][..d], &pos[(i % t) * d..][..d]);
            a.res[i * d..(i + 1) * d].iter_mut().zip(e.iter().zip(p)).for_each(|(r, (e, p))| *r = e + p);
        }
        let shape = AttnShape { b, t, h: c.n_head, c: d };
        for (l, bs) in s.blocks.iter().enumerate() {
            let nd = n * d;
            let (done, next) = a.res.split_at_mut((l + 1) * nd);
            let res_in = &done[l * nd..];
            let res_out = &mut next[..nd];
            let res_mid = &mut a.res_mid[l * nd..(l + 1) * nd];
            let ln1 = &mut a.ln1[l * nd..(l + 1) * nd];
            let (m1, r1) = a.ln1_stats[l * 2 * n..(l + 1) * 2 * n].split_at_mut(n);
            ops::layer_norm_forward(ln1, m1, r1, res_in, slice(wt, &bs.ln1.w), opt(wt, &bs.ln1.b), n, d, eps);
            let qkv = &mut a.qkv[l * 3 * nd..(l + 1) * 3 * nd];
            ops::linear_forward(qkv, ln1, slice(wt, &bs.qkv.w), opt(wt, &bs.qkv.b), n, d, 3 * d);
            let att = &mut a.att[l * b * c.n_head * t * t..(l + 1) * b * c.n_head * t * t];
            let atty = &mut a.atty[l * nd..(l + 1) * nd];
            ops::attention_forward(atty, att, qkv, shape);
            ops::linear_forward(res_mid, atty, slice(wt, &bs.proj.w), opt(wt, &bs.proj.b), n, d, d);
            res_mid.iter_mut().zip(res_in).for_each(|(m, r)| *m += r);
            let ln2 = &mut a.ln2[l * nd..(l + 1) * nd];
            let (m2, r2) = a.ln2_stats[l * 2 * n..(l + 1) * 2 * n].split_at_mut(n);
            ops::layer_norm_forward(ln2, m2, r2, res_mid, slice(wt, &bs.ln2.w), opt(wt, &bs.ln2.b), n, d, eps);
            let fc = &mut a.fc[l * 4 * nd..(l + 1) * 4 * nd];
            ops::linear_forward(fc, ln2, slice(wt, &bs.up.w), opt(wt, &bs.up.b), n, d, 4 * d);
            let fc_gelu = &mut a.fc_gelu[l * 4 * nd..(l + 1) * 4 * nd];
            ops::gelu_forward(fc_gelu, fc);
            ops::linear_forward(res_out, fc_gelu, slice(wt, &bs.down.w), opt(wt, &bs.down.b), n, 4 * d, d);
            res_out.iter_mut().zip(res_mid.iter()).for_each(|(o, m)| *o += m);
        }
        let last = &a.res[c.n_layer * n * d..(c.n_layer + 1) * n * d];
        let (mf, rf) = a.lnf_stats[..2 * n].split_at_mut(n);
        ops::layer_norm_forward(&mut a.lnf[..n * d], mf, rf, last, slice(wt, &s.lnf.w), opt(wt, &s.lnf.b), n, d, eps);
        // Weight tying: the output layer is the token embedding.
        ops::linear_forward(&mut a.logits[..n * v], &a.lnf[..n * d], wte, None, n, d, v);
    }

    /// Backward from `a.logits`, which the loss has turned into d loss / d logits.
    fn backward(&self, a: &mut Activations, g: &mut [f32], x: &[u32], b: usize, t: usize) {
        let c = self.config;
        let (n, d, v) = (b * t, c.n_embd, c.vocab_size);
        let nd = n * d;
        let wt = self.weights;
        let s = self.index;
        let d_res = &mut a.d_res[..nd];
        let d_ln = &mut a.d_ln[..nd];
        ops::linear_backward(d_ln, &mut g[s.wte.clone()], None, &a.logits[..n * v], &a.lnf[..nd], slice(wt, &s.wte), (n, d, v), false);
        d_res.fill(0.0);
        let last = &a.res[c.n_layer * nd..(c.n_layer + 1) * nd];
        let (gw, gb) = pair_mut(g, &s.lnf);
        ops::layer_norm_backward(d_res, gw, gb, d_ln, last, slice(wt, &s.lnf.w), &a.lnf_stats[..n], &a.lnf_stats[n..2 * n], n, d);
        let shape = AttnShape { b, t, h: c.n_head, c: d };
        for (l, bs) in s.blocks.iter().enumerate().rev() {
            let res_in = &a.res[l * nd..(l + 1) * nd];
            let res_mid = &a.res_mid[l * nd..(l + 1) * nd];
            let fc = &a.fc[l * 4 * nd..(l + 1) * 4 * nd];
            let fc_gelu = &a.fc_gelu[l * 4 * nd..(l + 1) * 4 * nd];
            let (d_fc, d_fc_gelu) = (&mut a.d_fc[..4 * nd], &mut a.d_fc_gelu[..4 * nd]);
            // res_out = res_mid + FFN(LN2(res_mid)): d_res flows to res_mid unchanged, plus
            // what comes back through the feed-forward.
            let (gw, gb) = pair_mut(g, &bs.down);
            ops::linear_backward(d_fc_gelu, gw, gb, d_res, fc_gelu, slice(wt, &bs.down.w), (n, 4 * d, d), false);
            ops::gelu_backward(d_fc, fc, d_fc_gelu);
            let (gw, gb) = pair_mut(g, &bs.up);
            ops::linear_backward(d_ln, gw, gb, d_fc, &a.ln2[l * nd..(l + 1) * nd], slice(wt, &bs.up.w), (n, d, 4 * d), false);
            let st = &a.ln2_stats[l * 2 * n..(l + 1) * 2 * n];
            let (gw, gb) = pair_mut(g, &bs.ln2);
            ops::layer_norm_backward(d_res, gw, gb, d_ln, res_mid, slice(wt, &bs.ln2.w), &st[..n], &st[n..], n, d);
            // res_mid = res_in + W_o·Attn(LN1(res_in)).
            let d_atty = &mut a.d_atty[..nd];
            let (gw, gb) = pair_mut(g, &bs.proj);
            ops::linear_backward(d_atty, gw, gb, d_res, &a.atty[l * nd..(l + 1) * nd], slice(wt, &bs.proj.w), (n, d, d), false);
            let qkv = &a.qkv[l * 3 * nd..(l + 1) * 3 * nd];
            let att = &a.att[l * b * c.n_head * t * t..(l + 1) * b * c.n_head * t * t];
            let d_qkv = &mut a.d_qkv[..3 * nd];
            ops::attention_backward(d_qkv, &mut a.d_scores, d_atty, qkv, att, shape);
            let (gw, gb) = pair_mut(g, &bs.qkv);
            ops::linear_backward(d_ln, gw, gb, d_qkv, &a.ln1[l * nd..(l + 1) * nd], slice(wt, &bs.qkv.w), (n, d, 3 * d), false);
            let st = &a.ln1_stats[l * 2 * n..(l + 1) * 2 * n];
            let (gw, gb) = pair_mut(g, &bs.ln1);
            ops::layer_norm_backward(d_res, gw, gb, d_ln, res_in, slice(wt, &bs.ln1.w), &st[..n], &st[n..], n, d);
        }
        // Embeddings: each position's gradient goes to its token's row and its position's.
        let d_res = &a.d_res[..nd];
        for (i, &id) in x.iter().enumerate() {
            let row = &d_res[i * d..(i + 1) * d];
            g[s.wte.start + id as usize * d..][..d].iter_mut().zip(row).for_each(|(g, r)| *g += r);
            if let Some(wpe) = &s.wpe {
                g[wpe.start + (i % t) * d..][..d].iter_mut().zip(row).for_each(|(g, r)| *g += r);
            }
        }
    }
}
