//! The GPT's operations, each a forward and a backward function over flat row-major `f32`
//! buffers (the layout of `llm.c`): no tensors, no allocation, no autograd graph. Backward
//! functions *add* into their weight gradients (a step's gradients start at zero) and write
//! or add into their input gradients as each says.
//!
//! The formulas are the ones [`crate::gpt`] documents; `tests/cpu_step.rs` checks every
//! gradient here against candle's autograd through that reference model.

use gemm::Parallelism;

/// A read-only matrix view: element (r, c) is `data[r * rs + c * cs]`.
#[derive(Clone, Copy)]
pub struct View<'a> {
    pub data: &'a [f32],
    pub rs: usize,
    pub cs: usize,
}

impl<'a> View<'a> {
    /// A row-major matrix with `cols` columns.
    pub fn rows(data: &'a [f32], cols: usize) -> Self {
        Self { data, rs: cols, cs: 1 }
    }
    /// The transpose of a row-major matrix with `cols` columns.
    pub fn transposed(data: &'a [f32], cols: usize) -> Self {
        Self { data, rs: 1, cs: cols }
    }
    fn fits(&self, rows: usize, cols: usize) -> bool {
        rows == 0 || cols == 0 || (rows - 1) * self.rs + (cols - 1) * self.cs < self.data.len()
    }
}

/// `dst (m×n, row-major) = a (m×k) · b (k×n)`, or `dst += a·b` when `accumulate`.
///
/// One thread: the step runs one copy of the model per core instead (see [`super::CpuGpt`]),
/// which keeps every core busy without synchronising inside an operation.
pub fn matmul(dst: &mut [f32], m: usize, n: usize, k: usize, a: View<'_>, b: View<'_>, accumulate: bool) {
    matmul_strided(dst, n, m, n, k, a, b, accumulate);
}

/// [`matmul`] into a destination whose rows are `dst_rs` apart.
#[allow(clippy::too_many_arguments)]
pub fn matmul_strided(dst: &mut [f32], dst_rs: usize, m: usize, n: usize, k: usize, a: View<'_>, b: View<'_>, accumulate: bool) {
    // Checked in release too: the unsafe call below relies on it.
    let dst_fits = m == 0 || n == 0 || (dst_rs >= n && (m - 1) * dst_rs + n <= dst.len());
    assert!(dst_fits && a.fits(m, k) && b.fits(k, n), "matmul shapes do not fit their buffers");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            dst.chunks_mut(dst_rs).take(m).for_each(|row| row[..n].fill(0.0));
        }
        return;
    }
    // SAFETY: every index gemm touches, (m-1)·rs + (n-1)·cs for dst and the same for a and b,
    // is within the slices (asserted above); dst does not alias a or b (&mut vs &).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_rs as isize,
            accumulate,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            Parallelism::None,
        );
    }
}

/// `out (n×o) = inp (n×i) · wᵀ + bias`, w of shape (o, i): a linear layer.
pub fn linear_forward(out: &mut [f32], inp: &[f32], w: &[f32], bias: Option<&[f32]>, n: usize, i: usize, o: usize) {
    matmul(out, n, o, i, View::rows(inp, i), View::transposed(w, i), false);
    if let Some(b) = bias {
        for row in out[..n * o].chunks_exact_mut(o) {
            row.iter_mut().zip(b).for_each(|(y, b)| *y += b);
        }
    }
}

/// Backward of [`linear_forward`]: `d_inp = d_out · w` (written, or added when
/// `accumulate_inp`), `d_w += d_outᵀ · inp`, `d_bias += Σ_rows d_out`.
#[allow(clippy::too_many_arguments)]
pub fn linear_backward(d_inp: &mut [f32], d_w: &mut [f32], d_bias: Option<&mut [f32]>, d_out: &[f32], inp: &[f32], w: &[f32], (n, i, o): (usize, usize, usize), accumulate_inp: bool) {
    matmul(d_inp, n, i, o, View::rows(d_out, o), View::rows(w, i), accumulate_inp);
    matmul(d_w, o, i, n, View::transposed(d_out, o), View::rows(inp, i), true);
    if let Some(db) = d_bias {
        for row in d_out[..n * o].chunks_exact(o) {
            db.iter_mut().zip(row).for_each(|(g, d)| *g += d);
        }
    }
}

/// Layer norm of each row of `inp` (n×c); saves each row's mean and 1/std for the backward.
#[allow(clippy::too_many_arguments)]
pub fn layer_norm_forward(out: &mut [f32], mean: &mut [f32], rstd: &mut [f32], inp: &[f32], w: &[f32], bias: Option<&[f32]>, n: usize, c: usize, eps: f32) {
    for r in 0..n {
        let x = &inp[r * c..(r + 1) * c];
        let m = x.iter().sum::<f32>() / c as f32;
        let var = x.iter().map(|v| (v - m) * (v - m)).sum::<f32>() / c as f32;
        let s = 1.0 / (var + eps).sqrt();
        let y = &mut out[r * c..(r + 1) * c];
        match bias {
            Some(b) => {
                for j in 0..c {
                    y[j] = (x[j] - m) * s * w[j] + b[j];
                }
            }
            None => {
                for j in 0..c {
                    y[j] = (x[j] - m) * s * w[j];
                }
            }
        }
        mean[r] = m;
        rstd[r] = s;
    }
}

/// Backward of [`layer_norm_forward`]; *adds* into `d_inp` (it is the residual stream's
/// gradient), `d_w` and `d_bias`.
#[allow(clippy::too_many_arguments)]
pub fn layer_norm_backward(d_inp: &mut [f32], d_w: &mut [f32], d_bias: Option<&mut [f32]>, d_out: &[f32], inp: &[f32], w: &[f32], mean: &[f32], rstd: &[f32], n: usize, c: usize) {
    let mut d_bias = d_bias;
    for r in 0..n {
        let (x, dy) = (&inp[r * c..(r + 1) * c], &d_out[r * c..(r + 1) * c]);
        let (m, s) = (mean[r], rstd[r]);
        // With x̂ = (x - mean)·rstd and g = dy·w: dx = rstd·(g - mean(g) - x̂·mean(g·x̂)).
        let mut g_mean = 0.0;
        let mut gx_mean = 0.0;
        for j in 0..c {
            let g = dy[j] * w[j];
            g_mean += g;
            gx_mean += g * (x[j] - m) * s;
        }
        g_mean /= c as f32;
        gx_mean /= c as f32;
        let dx = &mut d_inp[r * c..(r + 1) * c];
        for j in 0..c {
            let xh = (x[j] - m) * s;
            dx[j] += s * (dy[j] * w[j] - g_mean - xh * gx_mean);
            d_w[j] += dy[j] * xh;
        }
        if let Some(db) = d_bias.as_deref_mut() {
            db.iter_mut().zip(dy).for_each(|(g, d)| *g += d);
        }
    }
}

/// Shapes of one attention call: `b` sequences of `t` tokens, `h` heads over width `c`.
#[derive(Clone, Copy)]
pub struct AttnShape {
    pub b: usize,
    pub t: usize,
    pub h: usize,
    pub c: usize,
}

impl AttnShape {
    fn head_dim(&self) -> usize {
        self.c / self.h
    }
}

/// Multi-head causal attention. `qkv` is (b·t, 3c) — queries, keys, values side by side,
/// head `h` at columns `h·hd..(h+1)·hd` of each; `out` is (b·t, c); `att` (b, h, t, t) keeps
/// the softmax probabilities (zero above the diagonal) for the backward.
///
/// Each head's products are whole t×t matrix products: computing the masked half too costs
/// less than dot products one score at a time.
pub fn attention_forward(out: &mut [f32], att: &mut [f32], qkv: &[f32], s: AttnShape) {
    let (t_len, c, hd) = (s.t, s.c, s.head_dim());
    let scale = 1.0 / (hd as f32).sqrt();
    for b in 0..s.b {
        let seq = &qkv[b * t_len * 3 * c..];
        for h in 0..s.h {
            let p = &mut att[(b * s.h + h) * t_len * t_len..][..t_len * t_len];
            let (q, k, v) = (&seq[h * hd..], &seq[c + h * hd..], &seq[2 * c + h * hd..]);
            // Scores q·kᵀ, then each row's causal softmax in place.
            matmul(p, t_len, t_len, hd, View { data: q, rs: 3 * c, cs: 1 }, View { data: k, rs: 1, cs: 3 * c }, false);
            for (t, row) in p.chunks_exact_mut(t_len).enumerate() {
                let max = row[..=t].iter().fold(f32::NEG_INFINITY, |a, &x| a.max(x)) * scale;
                let mut sum = 0.0;
                for a in &mut row[..=t] {
                    *a = exp(*a * scale - max);
                    sum += *a;
                }
                let inv = 1.0 / sum;
                row[..=t].iter_mut().for_each(|a| *a *= inv);
                row[t + 1..].fill(0.0);
            }
            let o = &mut out[b * t_len * c + h * hd..];
            matmul_strided(o, c, t_len, hd, t_len, View::rows(p, t_len), View { data: v, rs: 3 * c, cs: 1 }, false);
        }
    }
}

/// Backward of [`attention_forward`]: writes `d_qkv` (b·t, 3c) whole. `d_scores` is
/// scratch of t·t.
pub fn attention_backward(d_qkv: &mut [f32], d_scores: &mut [f32], d_out: &[f32], qkv: &[f32], att: &[f32], s: AttnShape) {
    let (t_len, c, hd) = (s.t, s.c, s.head_dim());
    let scale = 1.0 / (hd as f32).sqrt();
    let ds = &mut d_scores[..t_len * t_len];
    for b in 0..s.b {
        let seq = &qkv[b * t_len * 3 * c..];
        let d_seq = &mut d_qkv[b * t_len * 3 * c..];
        for h in 0..s.h {
            let p = &att[(b * s.h + h) * t_len * t_len..][..t_len * t_len];
            let (q, k, v) = (&seq[h * hd..], &seq[c + h * hd..], &seq[2 * c + h * hd..]);
            let dy = View { data: &d_out[b * t_len * c + h * hd..], rs: c, cs: 1 };
            // Through y = p·v: d p = dy·vᵀ, d v = pᵀ·dy.
            matmul(ds, t_len, t_len, hd, dy, View { data: v, rs: 1, cs: 3 * c }, false);
            matmul_strided(&mut d_seq[2 * c + h * hd..], 3 * c, t_len, hd, t_len, View::transposed(p, t_len), dy, false);
            // Through the softmax: d s = p·(d p - Σ p·d p), and the score scale. Above the
            // diagonal p = 0, so d s = 0 there.
            for (prow, drow) in p.chunks_exact(t_len).zip(ds.chunks_exact_mut(t_len)) {
                let pd: f32 = prow.iter().zip(drow.iter()).map(|(p, d)| p * d).sum();
                drow.iter_mut().zip(prow).for_each(|(d, p)| *d = p * (*d - pd) * scale);
            }
            // Through s = q·kᵀ: d q = d s·k, d k = d sᵀ·q.
            let ds = &*ds;
            matmul_strided(&mut d_seq[h * hd..], 3 * c, t_len, hd, t_len, View::rows(ds, t_len), View { data: k, rs: 3 * c, cs: 1 }, false);
            matmul_strided(&mut d_seq[c + h * hd..], 3 * c, t_len, hd, t_len, View::transposed(ds, t_len), View { data: q, rs: 3 * c, cs: 1 }, false);
        }
    }
}

const SQRT_2_OVER_PI: f32 = 0.797_884_6;
const GELU_C: f32 = 0.044_715;

/// GELU, tanh approximation (as [`crate::fused`] and the engine), element-wise.
pub fn gelu_forward(out: &mut [f32], inp: &[f32]) {
    for (y, &x) in out.iter_mut().zip(inp) {
        *y = 0.5 * x * (1.0 + tanh(SQRT_2_OVER_PI * (x + GELU_C * x * x * x)));
    }
}

/// Backward of [`gelu_forward`]: `d_inp = gelu'(inp)·d_out` (written).
pub fn gelu_backward(d_inp: &mut [f32], inp: &[f32], d_out: &[f32]) {
    for ((g, &x), &d) in d_inp.iter_mut().zip(inp).zip(d_out) {
        let th = tanh(SQRT_2_OVER_PI * (x + GELU_C * x * x * x));
        let local = 0.5 * (1.0 + th) + 0.5 * x * (1.0 - th * th) * SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_C * x * x);
        *g = local * d;
    }
}

/// tanh through one exponential: `1 - 2/(e^{2x} + 1)`.
#[inline]
fn tanh(x: f32) -> f32 {
    1.0 - 2.0 / (exp(2.0 * x) + 1.0)
}

pub use inkling_engine::ops::exp;

/// Softmax cross-entropy of each row of `logits` (n×v) against `targets`; returns the sum
/// of the rows' losses, and turns `logits` into their gradient `scale·(softmax - onehot)`
/// (the loss is a mean over the whole batch, so `scale` is 1 / its token count).
pub fn cross_entropy_forward_backward(logits: &mut [f32], targets: &[u32], v: usize, scale: f32) -> f64 {
    let mut total = 0f64;
    for (row, &y) in logits.chunks_exact_mut(v).zip(targets) {
        let max = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        let mut sum = 0.0;
        for z in row.iter_mut() {
            *z = exp(*z - max);
            sum += *z;
        }
        let inv = 1.0 / sum;
        let y = y as usize;
        total -= f64::from((row[y] * inv).ln());
        for z in row.iter_mut() {
            *z *= inv * scale;
        }
        row[y] -= scale;
    }
    total
}

/// The rows' summed cross-entropy without gradients (evaluation).
pub fn cross_entropy(logits: &[f32], targets: &[u32], v: usize) -> f64 {
    let mut total = 0f64;
    for (row, &y) in logits.chunks_exact(v).zip(targets) {
        let max = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        let lse = max + row.iter().map(|z| exp(z - max)).sum::<f32>().ln();
        total += f64::from(lse - row[y as usize]);
    }
    total
}
