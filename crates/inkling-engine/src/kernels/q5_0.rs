//! Q5_0 weights (32 values: f16 scale, 32 high bits, 16 bytes of low nibbles; value =
//! d * (q - 16)) against Q8_0 activations. Gemma 3 and Qwen2.5 files use Q5_0 for the
//! matrices whose width is not a multiple of 256; candle's kernel for it is scalar.

use super::q8_0::BlockQ8Act;
use half::f16;

pub const BLOCK: usize = 32;

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BlockQ5_0 {
    pub d: u16,
    pub qh: [u8; 4],
    pub qs: [u8; 16],
}
const _: () = assert!(std::mem::size_of::<BlockQ5_0>() == 22);

/// The kernel set for Q5_0 weights.
pub struct Q5_0;

impl super::RowKernel for Q5_0 {
    type Weight = BlockQ5_0;
    type Act = BlockQ8Act;
    const BLOCK: usize = BLOCK;

    fn quantize(x: &[f32], out: &mut [BlockQ8Act]) {
        super::q8_0::quantize(x, out)
    }

    fn dot_many_portable(w_row: &[BlockQ5_0], xs: &[BlockQ8Act], out: &mut [f32]) {
        dot_many_portable(w_row, xs, out)
    }

    #[cfg(target_arch = "x86_64")]
    unsafe fn dot_many_avx2(w_row: &[BlockQ5_0], xs: &[BlockQ8Act], out: &mut [f32]) {
        // SAFETY: the caller guarantees AVX2 and FMA.
        unsafe { avx2::dot_many(w_row, xs, out) }
    }
}

/// The 32 signed 5-bit codes of a block, in order.
pub fn codes(b: &BlockQ5_0) -> [i32; 32] {
    let qh = u32::from_le_bytes(b.qh);
    std::array::from_fn(|j| {
        let (nib, hi) = if j < 16 { (b.qs[j] & 0x0F, (qh >> j) & 1) } else { (b.qs[j - 16] >> 4, (qh >> j) & 1) };
        (nib as i32 | (hi as i32) << 4) - 16
    })
}

pub fn dot_many_portable(w_row: &[BlockQ5_0], xs: &[BlockQ8Act], out: &mut [f32]) {
    let nb = w_row.len();
    for (i, o) in out.iter_mut().enumerate() {
        let mut acc = 0f32;
        for (w, y) in w_row.iter().zip(&xs[i * nb..(i + 1) * nb]) {
            let sum: i32 = codes(w).iter().zip(&y.qs).map(|(a, b)| a * *b as i32).sum();
            acc += f16::from_bits(w.d).to_f32() * y.d * sum as f32;
        }
        *o = acc;
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{BlockQ5_0, BlockQ8Act};
    use half::f16;
    use std::arch::x86_64::*;

    /// 0xFF in byte j where bit j of `bits` is set.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn bytes_from_bits(bits: u32) -> __m256i {
        let shuffle = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0);
        let bytes = _mm256_shuffle_epi8(_mm256_set1_epi32(bits as i32), shuffle);
        let select = _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe);
        _mm256_cmpeq_epi8(_mm256_or_si256(bytes, select), _mm256_set1_epi64x(-1))
    }

    /// Activation rows that share each unpacked weight block: eight accumulators, the
    /// block's codes and their magnitudes fit the sixteen vector registers, and unpacking
    /// (a dozen instructions) is paid once per eight products instead of once per four.
    const ROWS: usize = 8;

    super::super::grouped_dot_many!(BlockQ5_0, BlockQ8Act);

    /// `out[i..i + R]`: weight row times activation rows `i..i + R`.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn dot_rows<const R: usize>(w_row: &[BlockQ5_0], xs: &[BlockQ8Act], i: usize, out: &mut [f32]) {
        let nb = w_row.len();
        let mask = _mm_set1_epi8(0x0F);
        let ones = _mm256_set1_epi16(1);
        let mut acc = [_mm256_setzero_ps(); R];
        for (b, w) in w_row.iter().enumerate() {
            // SAFETY: 16 readable bytes in the block.
            let raw = unsafe { _mm_loadu_si128(w.qs.as_ptr() as *const __m128i) };
            let lo = _mm_and_si128(raw, mask);
            let hi = _mm_and_si128(_mm_srli_epi16(raw, 4), mask);
            let nib = _mm256_set_m128i(hi, lo);
            // Where the fifth bit is clear the code is nibble - 16: set the top four bits.
            let high = bytes_from_bits(u32::from_le_bytes(w.qh));
            let q = _mm256_or_si256(nib, _mm256_andnot_si256(high, _mm256_set1_epi8(0xF0u8 as i8)));
            let qa = _mm256_sign_epi8(q, q);
            let d = f16::from_bits(w.d).to_f32();
            for (r, acc) in acc.iter_mut().enumerate() {
                let y = &xs[(i + r) * nb + b];
                // SAFETY: 32 readable bytes in the block.
                let yq = unsafe { _mm256_loadu_si256(y.qs.as_ptr() as *const __m256i) };
                let p = _mm256_madd_epi16(_mm256_maddubs_epi16(qa, _mm256_sign_epi8(yq, q)), ones);
                *acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(d * y.d), *acc);
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
        crate::kernels::check_kernel::<Q5_0, _>(
            |rng| BlockQ5_0 { d: f16::from_f32(rng.random_range(0.001f32..0.05)).to_bits(), qh: rng.random(), qs: rng.random() },
            |b| codes(b).map(|q| q as f32 * f16::from_bits(b.d).to_f32()),
        );
    }
}
