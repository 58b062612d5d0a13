//! Q6_K weights against Q8_K activations: the output projection and the value/down matrices
//! of Q4_K_M files (Gemma 3, Qwen2.5).
//!
//! A Q6_K super-block holds 256 values: low nibbles `ql` (128 bytes), two high bits each in
//! `qh` (64 bytes), sixteen signed 8-bit scales (one per 16 values) and an f16 scale `d`;
//! value = d · scale · (q − 32) with q in 0..64. A Q8_K block holds 256 int8 codes, an f32
//! scale and the sums of each 16 codes (`bsums`), so the −32 offset becomes one product with
//! the scales per block: `Σ sc·Σ(q−32)·y = Σ sc·Σ q·y − 32·Σ sc·bsum` — the same integers as
//! llama.cpp's kernel, hence the same result.
//!
//! Unlike candle's kernel (one weight row times one activation row per call), a weight
//! super-block is unpacked once for up to four activation rows.

use half::f16;

pub const BLOCK: usize = 256;

/// The kernel set for Q6_K weights.
pub struct Q6K;

impl super::RowKernel for Q6K {
    type Weight = BlockQ6K;
    type Act = BlockQ8K;
    const BLOCK: usize = BLOCK;

    fn quantize(x: &[f32], out: &mut [BlockQ8K]) {
        quantize_q8_k(x, out)
    }

    fn dot_many_portable(w_row: &[BlockQ6K], xs: &[BlockQ8K], out: &mut [f32]) {
        dot_many_portable(w_row, xs, out)
    }

    #[cfg(target_arch = "x86_64")]
    unsafe fn dot_many_avx2(w_row: &[BlockQ6K], xs: &[BlockQ8K], out: &mut [f32]) {
        // SAFETY: the caller guarantees AVX2 and FMA.
        unsafe { avx2::dot_many(w_row, xs, out) }
    }
}

/// ggml's `block_q6_K`, byte for byte.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BlockQ6K {
    pub ql: [u8; 128],
    pub qh: [u8; 64],
    pub scales: [i8; 16],
    pub d: u16,
}
const _: () = assert!(std::mem::size_of::<BlockQ6K>() == 210);

/// ggml's `block_q8_K`: 256 codes, their scale, and the sum of each 16 codes.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BlockQ8K {
    pub d: f32,
    pub qs: [i8; 256],
    pub bsums: [i16; 16],
}

impl Default for BlockQ8K {
    fn default() -> Self {
        Self { d: 0.0, qs: [0; 256], bsums: [0; 16] }
    }
}

/// Quantizes `x` (a multiple of 256 values) into Q8_K exactly as ggml's reference does: the
/// scale comes from the value of largest magnitude *with its sign* (`-127 / max`), codes are
/// rounded to nearest even and capped at 127.
pub fn quantize_q8_k(x: &[f32], out: &mut [BlockQ8K]) {
    for (xb, ob) in x.chunks_exact(BLOCK).zip(out.iter_mut()) {
        let (mut amax, mut max) = (0f32, 0f32);
        for &v in xb {
            if v.abs() > amax {
                amax = v.abs();
                max = v;
            }
        }
        if amax == 0.0 {
            *ob = BlockQ8K::default();
            continue;
        }
        let iscale = -127.0 / max;
        for (q, &v) in ob.qs.iter_mut().zip(xb) {
            *q = ((iscale * v).round_ties_even() as i32).min(127) as i8;
        }
        for (s, chunk) in ob.bsums.iter_mut().zip(ob.qs.chunks_exact(16)) {
            *s = chunk.iter().map(|&q| q as i16).sum();
        }
        ob.d = 1.0 / iscale;
    }
}

/// The 256 codes of a super-block, 0..64, in value order.
pub fn codes(w: &BlockQ6K) -> [u8; 256] {
    let mut q = [0u8; 256];
    for half in 0..2 {
        let (ql, qh) = (&w.ql[half * 64..], &w.qh[half * 32..]);
        let out = &mut q[half * 128..];
        for l in 0..32 {
            out[l] = (ql[l] & 0xF) | ((qh[l] & 3) << 4);
            out[l + 32] = (ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4);
            out[l + 64] = (ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4);
            out[l + 96] = (ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4);
        }
    }
    q
}

pub fn dot_many_portable(w_row: &[BlockQ6K], xs: &[BlockQ8K], out: &mut [f32]) {
    let nb = w_row.len();
    for (i, o) in out.iter_mut().enumerate() {
        let mut acc = 0f32;
        for (w, y) in w_row.iter().zip(&xs[i * nb..(i + 1) * nb]) {
            let q = codes(w);
            let mut sum = 0i32;
            for (g, sc) in w.scales.iter().enumerate() {
                let group: i32 = (0..16).map(|j| (q[g * 16 + j] as i32 - 32) * y.qs[g * 16 + j] as i32).sum();
                sum += *sc as i32 * group;
            }
            acc += f16::from_bits(w.d).to_f32() * y.d * sum as f32;
        }
        *o = acc;
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{BlockQ6K, BlockQ8K};
    use half::f16;
    use std::arch::x86_64::*;

    /// Activation rows that share each unpacked super-block: its eight code vectors and
    /// four rows' accumulators fill the sixteen vector registers.
    const ROWS: usize = 4;

    super::super::grouped_dot_many!(BlockQ6K, BlockQ8K);

    /// `out[i..i + R]`: weight row times activation rows `i..i + R`.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn dot_rows<const R: usize>(w_row: &[BlockQ6K], xs: &[BlockQ8K], i: usize, out: &mut [f32]) {
        let nb = w_row.len();
        let m4 = _mm256_set1_epi8(0x0F);
        let m2 = _mm256_set1_epi8(0x03);
        let mut acc = [_mm256_setzero_ps(); R];
        for (b, w) in w_row.iter().enumerate() {
            super::super::prefetch_ahead(w);
            let d = f16::from_bits(w.d).to_f32();
            // SAFETY: 16 readable bytes of scales.
            let scales8 = unsafe { _mm_loadu_si128(w.scales.as_ptr() as *const __m128i) };
            let scales16 = _mm256_cvtepi8_epi16(scales8);
            let mut sumi = [_mm256_setzero_si256(); R];
            for half in 0..2 {
                // SAFETY: 64 bytes of ql and 32 of qh from this half's offsets are in the block.
                let (ql0, ql1, qh) = unsafe {
                    (
                        _mm256_loadu_si256(w.ql.as_ptr().add(half * 64) as *const __m256i),
                        _mm256_loadu_si256(w.ql.as_ptr().add(half * 64 + 32) as *const __m256i),
                        _mm256_loadu_si256(w.qh.as_ptr().add(half * 32) as *const __m256i),
                    )
                };
                // The four groups of 32 codes of this half, in value order.
                let q = [
                    _mm256_or_si256(_mm256_and_si256(ql0, m4), _mm256_slli_epi16(_mm256_and_si256(qh, m2), 4)),
                    _mm256_or_si256(_mm256_and_si256(ql1, m4), _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), m2), 4)),
                    _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4), _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), m2), 4)),
                    _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4), _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), m2), 4)),
                ];
                // Each group's two scales, as 16-bit lanes: the first for its first 16 values.
                let sc: [__m256i; 4] = std::array::from_fn(|g| {
                    let s = half * 8 + g * 2;
                    _mm256_set_m128i(_mm_set1_epi16(w.scales[s + 1] as i16), _mm_set1_epi16(w.scales[s] as i16))
                });
                for r in 0..R {
                    let y = &xs[(i + r) * nb + b];
                    for g in 0..4 {
                        // SAFETY: 32 codes at this group's offset are in the block.
                        let yq = unsafe { _mm256_loadu_si256(y.qs.as_ptr().add(half * 128 + g * 32) as *const __m256i) };
                        let p = _mm256_madd_epi16(_mm256_maddubs_epi16(q[g], yq), sc[g]);
                        sumi[r] = _mm256_add_epi32(sumi[r], p);
                    }
                }
            }
            for r in 0..R {
                let y = &xs[(i + r) * nb + b];
                // SAFETY: 16 readable sums.
                let bsums = unsafe { _mm256_loadu_si256(y.bsums.as_ptr() as *const __m256i) };
                let offset = _mm256_slli_epi32(_mm256_madd_epi16(bsums, scales16), 5);
                let total = _mm256_sub_epi32(sumi[r], offset);
                acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(d * y.d), _mm256_cvtepi32_ps(total), acc[r]);
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            out[i + r] = super::super::hsum_avx2(*acc);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    #[test]
    fn simd_and_portable_agree_with_the_dequantized_reference() {
        crate::kernels::check_kernel::<Q6K, _>(
            |rng| BlockQ6K {
                ql: std::array::from_fn(|_| rng.random()),
                qh: std::array::from_fn(|_| rng.random()),
                scales: std::array::from_fn(|_| rng.random_range(-60..=60)),
                d: f16::from_f32(rng.random_range(0.0001f32..0.002)).to_bits(),
            },
            |b| {
                let d = f16::from_bits(b.d).to_f32();
                let q = codes(b);
                (0..256).map(|j| d * b.scales[j / 16] as f32 * (q[j] as f32 - 32.0)).collect::<Vec<f32>>()
            },
        );
    }

    #[test]
    fn matches_candles_kernel_on_the_same_blocks() {
        use candle_core::quantized::k_quants::{BlockQ6K as CandleQ6K, BlockQ8K as CandleQ8K, GgmlType};
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(6);
        let nb = 3;
        let blocks: Vec<BlockQ6K> = (0..nb)
            .map(|_| BlockQ6K {
                ql: std::array::from_fn(|_| rng.random()),
                qh: std::array::from_fn(|_| rng.random()),
                scales: std::array::from_fn(|_| rng.random_range(-60..=60)),
                d: f16::from_f32(rng.random_range(0.0001f32..0.002)).to_bits(),
            })
            .collect();
        let x: Vec<f32> = (0..nb * 256).map(|_| rng.random_range(-3.0f32..3.0)).collect();
        let mut ours = vec![BlockQ8K::default(); nb];
        quantize_q8_k(&x, &mut ours);
        // The same bytes seen as candle's types.
        // SAFETY: both are ggml's repr(C) layouts of the same sizes (asserted).
        let theirs_w: &[CandleQ6K] = unsafe {
            assert_eq!(std::mem::size_of::<CandleQ6K>(), std::mem::size_of::<BlockQ6K>());
            std::slice::from_raw_parts(blocks.as_ptr() as *const CandleQ6K, nb)
        };
        let mut theirs_x: Vec<CandleQ8K> = (0..nb).map(|_| unsafe { std::mem::zeroed() }).collect();
        CandleQ8K::from_float(&x, &mut theirs_x);
        // SAFETY: as above.
        let theirs_x_bytes = unsafe { std::slice::from_raw_parts(theirs_x.as_ptr() as *const u8, nb * std::mem::size_of::<CandleQ8K>()) };
        let ours_bytes = unsafe { std::slice::from_raw_parts(ours.as_ptr() as *const u8, nb * std::mem::size_of::<BlockQ8K>()) };
        assert_eq!(ours_bytes, theirs_x_bytes, "Q8_K activations are quantized as ggml does");
        let want = CandleQ6K::vec_dot(nb * 256, theirs_w, &theirs_x);
        let mut got = [0f32; 1];
        <Q6K as crate::kernels::RowKernel>::dot_many(crate::kernels::best_isa(), &blocks, &ours, &mut got);
        let mut portable = [0f32; 1];
        dot_many_portable(&blocks, &ours, &mut portable);
        assert!((got[0] - want).abs() <= 1e-5 * want.abs().max(1.0), "ours {} candle {want}", got[0]);
        assert!((portable[0] - want).abs() <= 1e-5 * want.abs().max(1.0), "portable {} candle {want}", portable[0]);
    }
}
