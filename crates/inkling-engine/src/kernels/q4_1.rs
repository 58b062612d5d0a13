//! Q4_1 weights (32 values: f16 scale `d`, f16 minimum `m`, 16 bytes of 4-bit codes; value =
//! d * q + m) against activations quantized to Q8_1 (f32 scale, f32 scaled sum, 32 int8).
//!
//! `dot(w, x) = Σ_blocks d_w * d_x * Σ q_w q_x + m_w * s_x`, where `s_x = d_x * Σ q_x`.
//! One weight row is unpacked once per block and multiplied with every activation row of the
//! batch, so a prefill reads each weight byte once per chunk instead of once per token.

use half::f16;

pub const BLOCK: usize = 32;

/// The kernel set for Q4_1 weights.
pub struct Q4_1;

impl super::RowKernel for Q4_1 {
    type Weight = BlockQ4_1;
    type Act = BlockQ8_1;
    const BLOCK: usize = BLOCK;

    fn quantize(x: &[f32], out: &mut [BlockQ8_1]) {
        quantize_q8_1(x, out)
    }

    fn dot_many_portable(w_row: &[BlockQ4_1], xs: &[BlockQ8_1], out: &mut [f32]) {
        dot_many_portable(w_row, xs, out)
    }

    #[cfg(target_arch = "x86_64")]
    unsafe fn dot_many_avx2(w_row: &[BlockQ4_1], xs: &[BlockQ8_1], out: &mut [f32]) {
        // SAFETY: the caller guarantees AVX2 and FMA.
        unsafe { avx2::dot_many(w_row, xs, out) }
    }
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BlockQ4_1 {
    pub d: u16,
    pub m: u16,
    pub qs: [u8; 16],
}
const _: () = assert!(std::mem::size_of::<BlockQ4_1>() == 20);

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct BlockQ8_1 {
    pub d: f32,
    pub s: f32,
    pub qs: [i8; 32],
}

/// Quantizes `x` (a multiple of 32 values) into Q8_1 blocks, rounding exactly as llama.cpp
/// does (scales through f16, ties to even) so greedy decoding agrees with it.
pub fn quantize_q8_1(x: &[f32], out: &mut [BlockQ8_1]) {
    for (xb, ob) in x.chunks_exact(BLOCK).zip(out.iter_mut()) {
        let (d, sum) = super::quantize_block_i8(xb, &mut ob.qs);
        ob.d = super::round_f16(d);
        ob.s = super::round_f16(d * sum as f32);
    }
}

pub fn dot_many_portable(w_row: &[BlockQ4_1], xs: &[BlockQ8_1], out: &mut [f32]) {
    let nb = w_row.len();
    for (i, o) in out.iter_mut().enumerate() {
        let x = &xs[i * nb..(i + 1) * nb];
        let mut acc = 0f32;
        for (w, y) in w_row.iter().zip(x) {
            let mut sum = 0i32;
            for j in 0..16 {
                let lo = (w.qs[j] & 0x0F) as i32;
                let hi = (w.qs[j] >> 4) as i32;
                sum += lo * y.qs[j] as i32 + hi * y.qs[j + 16] as i32;
            }
            acc += f16::from_bits(w.d).to_f32() * y.d * sum as f32 + f16::from_bits(w.m).to_f32() * y.s;
        }
        *o = acc;
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{BlockQ4_1, BlockQ8_1};
    use half::f16;
    use std::arch::x86_64::*;

    /// Activation rows that share each unpacked weight block (see `q5_0::avx2`).
    const ROWS: usize = 8;

    super::super::grouped_dot_many!(BlockQ4_1, BlockQ8_1);

    /// `out[i..i + R]`: weight row times activation rows `i..i + R`.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn dot_rows<const R: usize>(w_row: &[BlockQ4_1], xs: &[BlockQ8_1], i: usize, out: &mut [f32]) {
        let nb = w_row.len();
        let mask = _mm_set1_epi8(0x0F);
        let ones = _mm256_set1_epi16(1);
        let mut acc = [_mm256_setzero_ps(); R];
        let mut macc = [0f32; R];
        for (b, w) in w_row.iter().enumerate() {
            // SAFETY: 16 readable bytes in the block.
            let raw = unsafe { _mm_loadu_si128(w.qs.as_ptr() as *const __m128i) };
            let lo = _mm_and_si128(raw, mask);
            let hi = _mm_and_si128(_mm_srli_epi16(raw, 4), mask);
            let q = _mm256_set_m128i(hi, lo);
            let d = f16::from_bits(w.d).to_f32();
            let m = f16::from_bits(w.m).to_f32();
            for r in 0..R {
                let y = &xs[(i + r) * nb + b];
                // SAFETY: 32 readable bytes in the block.
                let yq = unsafe { _mm256_loadu_si256(y.qs.as_ptr() as *const __m256i) };
                let p = _mm256_madd_epi16(_mm256_maddubs_epi16(q, yq), ones);
                acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(d * y.d), acc[r]);
                macc[r] += m * y.s;
            }
        }
        for r in 0..R {
            out[i + r] = super::super::hsum_avx2(acc[r]) + macc[r];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    #[test]
    fn simd_and_portable_agree_with_the_dequantized_reference() {
        crate::kernels::check_kernel::<Q4_1, [f32; 32]>(
            |rng| BlockQ4_1 { d: f16::from_f32(rng.random_range(0.001f32..0.1)).to_bits(), m: f16::from_f32(rng.random_range(-0.5f32..0.5)).to_bits(), qs: std::array::from_fn(|_| rng.random()) },
            |b| {
                let (d, m) = (f16::from_bits(b.d).to_f32(), f16::from_bits(b.m).to_f32());
                std::array::from_fn(|j| if j < 16 { d * (b.qs[j] & 0x0F) as f32 + m } else { d * (b.qs[j - 16] >> 4) as f32 + m })
            },
        );
    }
}
