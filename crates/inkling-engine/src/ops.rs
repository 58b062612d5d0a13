//! The small element-wise operations of a transformer block, on plain f32 rows.
//! Written as simple loops over slices so the compiler vectorises them for the target CPU.

/// RMSNorm: `x * w / sqrt(mean(x²) + eps)`, in place on each row of `x`.
pub fn rms_norm(x: &mut [f32], weight: &[f32], eps: f32) {
    for row in x.chunks_mut(weight.len()) {
        let ss: f32 = row.iter().map(|v| v * v).sum::<f32>() / row.len() as f32;
        let scale = 1.0 / (ss + eps).sqrt();
        for (v, w) in row.iter_mut().zip(weight) {
            *v *= scale * w;
        }
    }
}

/// RMSNorm from `src` into `dst` (keeps the residual stream intact).
pub fn rms_norm_into(src: &[f32], dst: &mut [f32], weight: &[f32], eps: f32) {
    dst.copy_from_slice(src);
    rms_norm(dst, weight, eps);
}

/// LayerNorm: `(x - mean) / sqrt(var + eps) * w + b` on each row of `src`, into `dst`.
pub fn layer_norm_into(src: &[f32], dst: &mut [f32], weight: &[f32], bias: Option<&[f32]>, eps: f32) {
    let n = weight.len();
    for (row, out) in src.chunks(n).zip(dst.chunks_mut(n)) {
        let mean = row.iter().sum::<f32>() / n as f32;
        let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n as f32;
        let inv = 1.0 / (var + eps).sqrt();
        for (i, (o, v)) in out.iter_mut().zip(row).enumerate() {
            *o = (v - mean) * inv * weight[i] + bias.map_or(0.0, |b| b[i]);
        }
    }
}

/// Rotary position embedding for one rotation base.
#[derive(Clone, Debug)]
pub struct Rope {
    pairs: usize,
    /// Ratio between successive pair frequencies: `base^(-2/dims)`.
    theta_scale: f32,
    freq_scale: f32,
    /// Pairs are (i, i + d/2) ("NeoX" layout) instead of (2i, 2i + 1).
    neox: bool,
}

impl Rope {
    pub fn new(rot_dims: usize, base: f32, neox: bool, freq_scale: f32) -> Self {
        Self { pairs: rot_dims / 2, theta_scale: base.powf(-2.0 / rot_dims as f32), freq_scale, neox }
    }

    /// Rotates every head (of `head_dim` values) in `x` by position `pos`.
    pub fn apply(&self, x: &mut [f32], head_dim: usize, pos: usize) {
        let half = self.pairs;
        // Angles by repeated f32 multiplication and f32 sin/cos, the way ggml builds its
        // tables: small models' greedy choices are sensitive to the last bit here.
        let mut theta = pos as f32;
        let (mut sin, mut cos) = (Vec::with_capacity(half), Vec::with_capacity(half));
        for _ in 0..half {
            let t = theta * self.freq_scale;
            sin.push(t.sin());
            cos.push(t.cos());
            theta *= self.theta_scale;
        }
        for head in x.chunks_mut(head_dim) {
            for i in 0..half {
                let (a, b) = if self.neox { (i, i + half) } else { (2 * i, 2 * i + 1) };
                let (x0, x1) = (head[a], head[b]);
                head[a] = x0 * cos[i] - x1 * sin[i];
                head[b] = x0 * sin[i] + x1 * cos[i];
            }
        }
    }
}

/// Numerically stable softmax in place.
pub fn softmax(x: &mut [f32]) {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    x.iter_mut().for_each(|v| *v = exp(*v - max));
    let sum: f32 = x.iter().sum();
    let inv = 1.0 / sum;
    for v in x.iter_mut() {
        *v *= inv;
    }
}

pub fn silu(x: f32) -> f32 {
    x / (1.0 + exp(-x))
}

/// `e^x` in a form the compiler can vectorise (libm's `expf` is a call per element), as
/// ggml's softmax and SiLU use a vectorised exp too. `x = n·ln2 + r` with |r| ≤ ln2/2; `e^r`
/// by its degree-6 Taylor polynomial (relative error under 2e-7 there), times 2^n built in
/// the exponent bits. Below -87 the result is 0 (a masked score must weigh nothing; the true
/// value is under f32's smallest normal number); above 88 it is e^88, as f32 would overflow.
#[inline]
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split in two so that n·LN2_HI is exact in f32.
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    // Adding 1.5·2^23 rounds to an integer, which then sits in the low mantissa bits.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    let shifted = x.mul_add(LOG2E, ROUND);
    let n = shifted - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = 1.0 + r * (1.0 + r * (0.5 + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    let n_bits = shifted.to_bits().wrapping_sub(ROUND.to_bits()) as i32;
    let e = p * f32::from_bits(((n_bits + 127) << 23) as u32);
    // A select, not a branch: the loops calling this still vectorise.
    if x <= -87.0 { 0.0 } else { e }
}

/// Converts a row of the f16 KV cache to f32: eight values per instruction where the CPU
/// has F16C (chosen at run time, like the kernels), else one at a time.
pub fn f16_to_f32(isa: crate::kernels::Isa, src: &[half::f16], dst: &mut [f32]) {
    debug_assert_eq!(src.len(), dst.len());
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: Isa::Avx2 and above are only chosen after detecting AVX2, FMA and F16C.
        crate::kernels::Isa::Avx2 | crate::kernels::Isa::Avx512Vnni => unsafe { f16_to_f32_f16c(src, dst) },
        _ => src.iter().zip(dst.iter_mut()).for_each(|(s, d)| *d = s.to_f32()),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,f16c")]
unsafe fn f16_to_f32_f16c(src: &[half::f16], dst: &mut [f32]) {
    use std::arch::x86_64::*;
    let whole = src.len() / 8 * 8;
    for i in (0..whole).step_by(8) {
        // SAFETY: i + 8 <= len for both slices.
        unsafe { _mm256_storeu_ps(dst.as_mut_ptr().add(i), _mm256_cvtph_ps(_mm_loadu_si128(src.as_ptr().add(i) as *const __m128i))) };
    }
    for i in whole..src.len() {
        dst[i] = src[i].to_f32();
    }
}

/// GELU, tanh approximation (what llama.cpp and Gemma use). `1 + tanh(y) = 2e / (e + 1)`
/// with `e = exp(2y)`, through the vectorisable [`exp`]: libm's `tanhf` is a call per value
/// and showed in Gemma's decoding profile.
pub fn gelu(x: f32) -> f32 {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    let e = exp(2.0 * SQRT_2_OVER_PI * x * (1.0 + 0.044715 * x * x));
    x - x / (e + 1.0)
}

/// Replaces each score by `exp(score - max)` and returns `(max, sum of the results)`: one
/// chunk's share of a softmax, which [`Model::attention_decode`](crate::model) finishes once
/// every chunk of the head is known. Eight lanes of partial results, so the loops vectorise.
pub fn exp_below_max(x: &mut [f32]) -> (f32, f32) {
    let mut lanes = [f32::NEG_INFINITY; 8];
    let chunks = x.chunks_exact(8);
    let mut max = chunks.remainder().iter().copied().fold(f32::NEG_INFINITY, f32::max);
    for c in chunks {
        for l in 0..8 {
            lanes[l] = if c[l] > lanes[l] { c[l] } else { lanes[l] };
        }
    }
    max = lanes.iter().copied().fold(max, f32::max);
    x.iter_mut().for_each(|v| *v = exp(*v - max));
    let mut sums = [0f32; 8];
    let chunks = x.chunks_exact(8);
    let tail: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for l in 0..8 {
            sums[l] += c[l];
        }
    }
    (max, sums.iter().sum::<f32>() + tail)
}

/// `x[i] = round_f16(x[i] * factor)`: softmax weights scaled to their final value and rounded
/// through f16 as ggml rounds them before multiplying the f16 values. F16C where the CPU
/// has it (round to nearest even, like `half`).
pub fn scale_round_f16(isa: crate::kernels::Isa, x: &mut [f32], factor: f32) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: Isa::Avx2 and above are only chosen after detecting AVX2, FMA and F16C.
        crate::kernels::Isa::Avx2 | crate::kernels::Isa::Avx512Vnni => unsafe { scale_round_f16_f16c(x, factor) },
        _ => x.iter_mut().for_each(|v| *v = crate::kernels::round_f16(*v * factor)),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,f16c")]
unsafe fn scale_round_f16_f16c(x: &mut [f32], factor: f32) {
    use std::arch::x86_64::*;
    let whole = x.len() / 8 * 8;
    let f = _mm256_set1_ps(factor);
    for i in (0..whole).step_by(8) {
        // SAFETY: i + 8 <= len.
        unsafe {
            let p = x.as_mut_ptr().add(i);
            let h = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(_mm256_mul_ps(_mm256_loadu_ps(p), f));
            _mm256_storeu_ps(p, _mm256_cvtph_ps(h));
        }
    }
    for v in &mut x[whole..] {
        *v = crate::kernels::round_f16(*v * factor);
    }
}

pub fn add_assign(x: &mut [f32], y: &[f32]) {
    for (a, b) in x.iter_mut().zip(y) {
        *a += b;
    }
}

pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    // Eight lanes of partial sums over exact chunks: the loop compiles to vector code.
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_libm() {
        let mut worst = 0f32;
        for i in -86_999..=87_999 {
            let x = i as f32 * 1e-3;
            let (ours, std) = (exp(x), x.exp());
            worst = worst.max(((ours - std) / std).abs());
        }
        assert!(worst < 4e-7, "relative error {worst}");
        assert_eq!(exp(-1000.0), 0.0);
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert!(exp(1000.0).is_finite());
    }

    #[test]
    fn f16_rows_convert_exactly_on_every_path() {
        let src: Vec<half::f16> = (0..37).map(|i| half::f16::from_f32(i as f32 * 0.37 - 5.0)).collect();
        let want: Vec<f32> = src.iter().map(|v| v.to_f32()).collect();
        for isa in [crate::kernels::Isa::Portable, crate::kernels::best_isa()] {
            let mut got = vec![0f32; src.len()];
            f16_to_f32(isa, &src, &mut got);
            assert_eq!(got, want, "{isa:?}");
        }
    }

    #[test]
    fn gelu_matches_the_tanh_formula() {
        const SQRT_2_OVER_PI: f32 = 0.797_884_6;
        for i in -10_000..=10_000 {
            let x = i as f32 * 1e-3;
            let want = 0.5 * x * (1.0 + (SQRT_2_OVER_PI * x * (1.0 + 0.044715 * x * x)).tanh());
            assert!((gelu(x) - want).abs() <= 1e-6 * (1.0 + want.abs()), "gelu({x}) = {} vs {want}", gelu(x));
        }
        assert_eq!(gelu(-100.0), 0.0);
        assert_eq!(gelu(100.0), 100.0);
    }

    /// A softmax split into chunks (each chunk's exp below its own max, then rescaled) gives
    /// the one-piece softmax, rounded through f16 on every path.
    #[test]
    fn chunked_softmax_matches_the_whole() {
        let scores: Vec<f32> = (0..301).map(|i| ((i * 37) % 101) as f32 * 0.13 - 6.0).collect();
        let mut whole = scores.clone();
        softmax(&mut whole);
        let mut chunks: Vec<Vec<f32>> = scores.chunks(128).map(|c| c.to_vec()).collect();
        let stats: Vec<(f32, f32)> = chunks.iter_mut().map(|c| exp_below_max(c)).collect();
        let max = stats.iter().map(|s| s.0).fold(f32::NEG_INFINITY, f32::max);
        let sum: f32 = stats.iter().map(|(m, s)| s * exp(m - max)).sum();
        for isa in [crate::kernels::Isa::Portable, crate::kernels::best_isa()] {
            let got: Vec<f32> = chunks
                .iter()
                .zip(&stats)
                .flat_map(|(c, (m, _))| {
                    let mut c = c.clone();
                    scale_round_f16(isa, &mut c, exp(m - max) / sum);
                    c
                })
                .collect();
            for (g, w) in got.iter().zip(&whole) {
                assert!((g - crate::kernels::round_f16(*w)).abs() <= 1e-3 * w, "{isa:?}: {g} vs {w}");
                assert_eq!(*g, crate::kernels::round_f16(*g), "{isa:?}: {g} is not an f16 value");
            }
        }
    }

    #[test]
    fn softmax_sums_to_one_and_keeps_order() {
        let mut x = vec![1.0, 3.0, 2.0, -1e9];
        softmax(&mut x);
        assert!((x.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(x[1] > x[2] && x[2] > x[0] && x[3] == 0.0);
    }

    #[test]
    fn rope_preserves_norm_and_is_identity_at_zero() {
        let r = Rope::new(8, 10000.0, true, 1.0);
        let orig: Vec<f32> = (0..8).map(|i| i as f32 - 3.5).collect();
        let mut x = orig.clone();
        r.apply(&mut x, 8, 0);
        assert_eq!(x, orig);
        r.apply(&mut x, 8, 17);
        let n0: f32 = orig.iter().map(|v| v * v).sum();
        let n1: f32 = x.iter().map(|v| v * v).sum();
        assert!((n0 - n1).abs() < 1e-3);
        assert_ne!(x, orig);
    }

    #[test]
    fn rms_norm_gives_unit_rms() {
        let mut x = vec![3.0, -4.0, 5.0, 0.5];
        rms_norm(&mut x, &[1.0; 4], 0.0);
        let ms: f32 = x.iter().map(|v| v * v).sum::<f32>() / 4.0;
        assert!((ms - 1.0).abs() < 1e-5);
    }

    #[test]
    fn dot_matches_naive_on_odd_lengths() {
        let a: Vec<f32> = (0..37).map(|i| (i as f32).sin()).collect();
        let b: Vec<f32> = (0..37).map(|i| (i as f32).cos()).collect();
        let naive: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot(&a, &b) - naive).abs() < 1e-4);
    }
}
