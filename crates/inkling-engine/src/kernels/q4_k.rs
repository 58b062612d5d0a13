//! Q4_K weights against Q8_K activations: the attention output and half the down matrices
//! of Q4_K_M files (Gemma 3, Qwen2.5).
//!
//! A Q4_K super-block holds 256 values in eight sub-blocks of 32: 4-bit codes `qs` (128
//! bytes; bytes `32c..32c + 32` hold sub-block `2c` in their low nibbles and `2c + 1` in their
//! high ones), a 6-bit scale and a 6-bit min per sub-block packed into 12 bytes, and two f16
//! scales `d` and `dmin`; value = d · scale · q − dmin · min. With the Q8_K block sums the
//! mins become one product per block: `Σ (d·sc·q − dmin·m)·y = d·Σ sc·Σ q·y − dmin·Σ m·bsum`,
//! all in integers before the two scales, as llama.cpp's kernel computes it.
//!
//! Like `q6_k`, a weight super-block is unpacked once for up to four activation rows, where
//! candle's kernel takes one activation row per call.

use super::q6_k::BlockQ8K;
use half::f16;

pub const BLOCK: usize = 256;

/// The kernel set for Q4_K weights.
pub struct Q4K;

impl super::RowKernel for Q4K {
    type Weight = BlockQ4K;
    type Act = BlockQ8K;
    const BLOCK: usize = BLOCK;

    fn quantize(x: &[f32], out: &mut [BlockQ8K]) {
        super::q6_k::quantize_q8_k(x, out)
    }

    fn dot_many_portable(w_row: &[BlockQ4K], xs: &[BlockQ8K], out: &mut [f32]) {
        dot_many_portable(w_row, xs, out)
    }

    #[cfg(target_arch = "x86_64")]
    unsafe fn dot_many_avx2(w_row: &[BlockQ4K], xs: &[BlockQ8K], out: &mut [f32]) {
        // SAFETY: the caller guarantees AVX2 and FMA.
        unsafe { avx2::dot_many(w_row, xs, out) }
    }
}

/// ggml's `block_q4_K`, byte for byte.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BlockQ4K {
    pub d: u16,
    pub dmin: u16,
    pub scales: [u8; 12],
    pub qs: [u8; 128],
}
const _: () = assert!(std::mem::size_of::<BlockQ4K>() == 144);

/// The eight 6-bit scales and eight 6-bit mins packed in `scales` (ggml's
/// `get_scale_min_k4`): sub-blocks 0..4 in the low six bits of bytes 0..4 and 4..8, sub-blocks
/// 4..8 in the nibbles of bytes 8..12 with their top two bits in the spare bits of 0..8.
pub fn scales_and_mins(s: &[u8; 12]) -> ([u8; 8], [u8; 8]) {
    let mut sc = [0u8; 8];
    let mut m = [0u8; 8];
    for j in 0..8 {
        if j < 4 {
            sc[j] = s[j] & 63;
            m[j] = s[j + 4] & 63;
        } else {
            sc[j] = (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4);
            m[j] = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
        }
    }
    (sc, m)
}

/// The same eight scales and eight mins, as bytes 0..8 and 8..16 (ggml's unpacking with
/// 32-bit masks, a dozen integer operations instead of sixteen lookups).
pub fn scales_and_mins_words(s: &[u8; 12]) -> [u8; 16] {
    const KMASK1: u32 = 0x3f3f_3f3f;
    const KMASK2: u32 = 0x0f0f_0f0f;
    const KMASK3: u32 = 0x0303_0303;
    let word = |k: usize| u32::from_le_bytes([s[4 * k], s[4 * k + 1], s[4 * k + 2], s[4 * k + 3]]);
    let (u0, u1, u2) = (word(0), word(1), word(2));
    let words = [u0 & KMASK1, (u2 & KMASK2) | (((u0 >> 6) & KMASK3) << 4), u1 & KMASK1, ((u2 >> 4) & KMASK2) | (((u1 >> 6) & KMASK3) << 4)];
    let mut out = [0u8; 16];
    for (o, w) in out.chunks_exact_mut(4).zip(words) {
        o.copy_from_slice(&w.to_le_bytes());
    }
    out
}

/// The 256 codes of a super-block, 0..16, in value order.
pub fn codes(w: &BlockQ4K) -> [u8; 256] {
    let mut q = [0u8; 256];
    for c in 0..4 {
        for l in 0..32 {
            q[64 * c + l] = w.qs[32 * c + l] & 0xF;
            q[64 * c + 32 + l] = w.qs[32 * c + l] >> 4;
        }
    }
    q
}

pub fn dot_many_portable(w_row: &[BlockQ4K], xs: &[BlockQ8K], out: &mut [f32]) {
    let nb = w_row.len();
    for (i, o) in out.iter_mut().enumerate() {
        let mut acc = 0f32;
        for (w, y) in w_row.iter().zip(&xs[i * nb..(i + 1) * nb]) {
            let q = codes(w);
            let (sc, m) = scales_and_mins(&w.scales);
            let (mut sum, mut mins) = (0i32, 0i32);
            for j in 0..8 {
                let sub: i32 = (0..32).map(|l| q[32 * j + l] as i32 * y.qs[32 * j + l] as i32).sum();
                sum += sc[j] as i32 * sub;
                mins += m[j] as i32 * (y.bsums[2 * j] as i32 + y.bsums[2 * j + 1] as i32);
            }
            acc += f16::from_bits(w.d).to_f32() * y.d * sum as f32 - f16::from_bits(w.dmin).to_f32() * y.d * mins as f32;
        }
        *o = acc;
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{BlockQ4K, BlockQ8K};
    use half::f16;
    use std::arch::x86_64::*;

    /// Activation rows that share each unpacked super-block.
    const ROWS: usize = 4;

    super::super::grouped_dot_many!(BlockQ4K, BlockQ8K);

    /// `out[i..i + R]`: weight row times activation rows `i..i + R`.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn dot_rows<const R: usize>(w_row: &[BlockQ4K], xs: &[BlockQ8K], i: usize, out: &mut [f32]) {
        let nb = w_row.len();
        let m4 = _mm256_set1_epi8(0x0F);
        let mut acc = [_mm256_setzero_ps(); R];
        let mut acc_m = [_mm_setzero_ps(); R];
        // The shuffle that spreads 16-bit scale j over all 16 lanes.
        let spread = |j: usize| _mm256_set1_epi16((((2 * j + 1) << 8) | (2 * j)) as i16);
        for (b, w) in w_row.iter().enumerate() {
            super::super::prefetch_ahead(w);
            let (d, dmin) = (f16::from_bits(w.d).to_f32(), f16::from_bits(w.dmin).to_f32());
            // Eight scales then eight mins, as 16-bit lanes.
            let packed = super::scales_and_mins_words(&w.scales);
            // SAFETY: 16 readable bytes.
            let scales_mins = _mm256_cvtepu8_epi16(unsafe { _mm_loadu_si128(packed.as_ptr() as *const __m128i) });
            let scales128 = _mm256_castsi256_si128(scales_mins);
            let mins = _mm256_extracti128_si256(scales_mins, 1);
            let scales = _mm256_set_m128i(scales128, scales128);
            let mut sumi = [_mm256_setzero_si256(); R];
            for c in 0..4 {
                // SAFETY: 32 bytes of codes at this chunk's offset are in the block.
                let raw = unsafe { _mm256_loadu_si256(w.qs.as_ptr().add(32 * c) as *const __m256i) };
                let (lo, hi) = (_mm256_and_si256(raw, m4), _mm256_and_si256(_mm256_srli_epi16(raw, 4), m4));
                let (sc_lo, sc_hi) = (_mm256_shuffle_epi8(scales, spread(2 * c)), _mm256_shuffle_epi8(scales, spread(2 * c + 1)));
                for r in 0..R {
                    let y = &xs[(i + r) * nb + b];
                    // SAFETY: 64 codes at this chunk's offset are in the block.
                    let (ylo, yhi) = unsafe { (_mm256_loadu_si256(y.qs.as_ptr().add(64 * c) as *const __m256i), _mm256_loadu_si256(y.qs.as_ptr().add(64 * c + 32) as *const __m256i)) };
                    let plo = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, ylo), sc_lo);
                    let phi = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, yhi), sc_hi);
                    sumi[r] = _mm256_add_epi32(sumi[r], _mm256_add_epi32(plo, phi));
                }
            }
            for r in 0..R {
                let y = &xs[(i + r) * nb + b];
                // SAFETY: 16 readable sums.
                let bsums = unsafe { _mm256_loadu_si256(y.bsums.as_ptr() as *const __m256i) };
                // Each sub-block's two 16-code sums added, times its min.
                let pair_sums = _mm_hadd_epi16(_mm256_castsi256_si128(bsums), _mm256_extracti128_si256(bsums, 1));
                let min_sums = _mm_cvtepi32_ps(_mm_madd_epi16(mins, pair_sums));
                acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(d * y.d), _mm256_cvtepi32_ps(sumi[r]), acc[r]);
                acc_m[r] = _mm_fmadd_ps(_mm_set1_ps(dmin * y.d), min_sums, acc_m[r]);
            }
        }
        for r in 0..R {
            let m = _mm_add_ps(acc_m[r], _mm_movehl_ps(acc_m[r], acc_m[r]));
            let m = _mm_cvtss_f32(_mm_add_ss(m, _mm_shuffle_ps(m, m, 1)));
            out[i + r] = super::super::hsum_avx2(acc[r]) - m;
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rand::Rng;

    pub(crate) fn random_block(rng: &mut rand::rngs::StdRng) -> BlockQ4K {
        BlockQ4K {
            d: f16::from_f32(rng.random_range(0.0001f32..0.002)).to_bits(),
            dmin: f16::from_f32(rng.random_range(0.0001f32..0.002)).to_bits(),
            scales: std::array::from_fn(|_| rng.random()),
            qs: std::array::from_fn(|_| rng.random()),
        }
    }

    #[test]
    fn simd_and_portable_agree_with_the_dequantized_reference() {
        crate::kernels::check_kernel::<Q4K, _>(random_block, |b| {
            let (d, dmin) = (f16::from_bits(b.d).to_f32(), f16::from_bits(b.dmin).to_f32());
            let (sc, m) = scales_and_mins(&b.scales);
            let q = codes(b);
            (0..256).map(|j| d * sc[j / 32] as f32 * q[j] as f32 - dmin * m[j / 32] as f32).collect::<Vec<f32>>()
        });
    }

    #[test]
    fn both_scale_unpackings_agree() {
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(12);
        for _ in 0..1000 {
            let s: [u8; 12] = rng.random();
            let (sc, m) = scales_and_mins(&s);
            let words = scales_and_mins_words(&s);
            assert_eq!(&words[..8], &sc);
            assert_eq!(&words[8..], &m);
        }
    }

    #[test]
    fn matches_candles_kernel_on_the_same_blocks() {
        use candle_core::quantized::k_quants::{BlockQ4K as CandleQ4K, BlockQ8K as CandleQ8K, GgmlType};
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(4);
        let nb = 3;
        let blocks: Vec<BlockQ4K> = (0..nb).map(|_| random_block(&mut rng)).collect();
        let x: Vec<f32> = (0..nb * 256).map(|_| rng.random_range(-3.0f32..3.0)).collect();
        let mut ours = vec![BlockQ8K::default(); nb];
        super::super::q6_k::quantize_q8_k(&x, &mut ours);
        // SAFETY: both are ggml's repr(C) layouts of the same sizes (asserted).
        let theirs_w: &[CandleQ4K] = unsafe {
            assert_eq!(std::mem::size_of::<CandleQ4K>(), std::mem::size_of::<BlockQ4K>());
            std::slice::from_raw_parts(blocks.as_ptr() as *const CandleQ4K, nb)
        };
        let mut theirs_x: Vec<CandleQ8K> = (0..nb).map(|_| unsafe { std::mem::zeroed() }).collect();
        CandleQ8K::from_float(&x, &mut theirs_x);
        let want = CandleQ4K::vec_dot(nb * 256, theirs_w, &theirs_x);
        let mut got = [0f32; 1];
        <Q4K as crate::kernels::RowKernel>::dot_many(crate::kernels::best_isa(), &blocks, &ours, &mut got);
        let mut portable = [0f32; 1];
        dot_many_portable(&blocks, &ours, &mut portable);
        assert!((got[0] - want).abs() <= 1e-4 * want.abs().max(1.0), "ours {} candle {want}", got[0]);
        assert!((portable[0] - want).abs() <= 1e-4 * want.abs().max(1.0), "portable {} candle {want}", portable[0]);
    }
}
