//! Q8_0 weights (32 int8 codes and an f16 scale) against Q8_0 activations: the token
//! embedding and output projection of SmolLM2 and many layers of other files.
//! Same structure as `q4_1`: one weight row, up to eight activation rows per pass.

use half::f16;

pub const BLOCK: usize = 32;

/// The kernel set for Q8_0 weights.
pub struct Q8_0;

impl super::RowKernel for Q8_0 {
    type Weight = BlockQ8_0;
    type Act = BlockQ8Act;
    const BLOCK: usize = BLOCK;

    fn quantize(x: &[f32], out: &mut [BlockQ8Act]) {
        quantize(x, out)
    }

    fn dot_many_portable(w_row: &[BlockQ8_0], xs: &[BlockQ8Act], out: &mut [f32]) {
        dot_many_portable(w_row, xs, out)
    }

    #[cfg(target_arch = "x86_64")]
    unsafe fn dot_many_avx2(w_row: &[BlockQ8_0], xs: &[BlockQ8Act], out: &mut [f32]) {
        // SAFETY: the caller guarantees AVX2 and FMA.
        unsafe { avx2::dot_many(w_row, xs, out) }
    }
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BlockQ8_0 {
    pub d: u16,
    pub qs: [i8; 32],
}
const _: () = assert!(std::mem::size_of::<BlockQ8_0>() == 34);

/// Activation block: the scale kept as the f32 value of its f16 rounding.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct BlockQ8Act {
    pub d: f32,
    pub qs: [i8; 32],
}

pub fn quantize(x: &[f32], out: &mut [BlockQ8Act]) {
    for (xb, ob) in x.chunks_exact(BLOCK).zip(out.iter_mut()) {
        let (d, _) = super::quantize_block_i8(xb, &mut ob.qs);
        ob.d = super::round_f16(d);
    }
}

pub fn dot_many_portable(w_row: &[BlockQ8_0], xs: &[BlockQ8Act], out: &mut [f32]) {
    let nb = w_row.len();
    for (i, o) in out.iter_mut().enumerate() {
        let mut acc = 0f32;
        for (w, y) in w_row.iter().zip(&xs[i * nb..(i + 1) * nb]) {
            let sum: i32 = w.qs.iter().zip(&y.qs).map(|(a, b)| *a as i32 * *b as i32).sum();
            acc += f16::from_bits(w.d).to_f32() * y.d * sum as f32;
        }
        *o = acc;
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{BlockQ8_0, BlockQ8Act};
    use half::f16;
    use std::arch::x86_64::*;

    /// Activation rows that share each loaded weight block (see `q5_0::avx2`).
    const ROWS: usize = 8;

    super::super::grouped_dot_many!(BlockQ8_0, BlockQ8Act);

    /// `out[i..i + R]`: weight row times activation rows `i..i + R`.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn dot_rows<const R: usize>(w_row: &[BlockQ8_0], xs: &[BlockQ8Act], i: usize, out: &mut [f32]) {
        let nb = w_row.len();
        let ones = _mm256_set1_epi16(1);
        let mut acc = [_mm256_setzero_ps(); R];
        for (b, w) in w_row.iter().enumerate() {
            // SAFETY: 32 readable bytes in the block.
            let q = unsafe { _mm256_loadu_si256(w.qs.as_ptr() as *const __m256i) };
            // maddubs needs one unsigned operand: |w| times y with w's sign moved onto y.
            let qa = _mm256_sign_epi8(q, q);
            let d = f16::from_bits(w.d).to_f32();
            for (r, acc) in acc.iter_mut().enumerate() {
                let y = &xs[(i + r) * nb + b];
                // SAFETY: 32 readable bytes in the block.
                let yq = unsafe { _mm256_loadu_si256(y.qs.as_ptr() as *const __m256i) };
                let ys = _mm256_sign_epi8(yq, q);
                let p = _mm256_madd_epi16(_mm256_maddubs_epi16(qa, ys), ones);
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
        crate::kernels::check_kernel::<Q8_0, _>(
            |rng| BlockQ8_0 { d: f16::from_f32(rng.random_range(0.001f32..0.05)).to_bits(), qs: std::array::from_fn(|_| rng.random_range(-127..=127)) },
            |b| b.qs.map(|q| q as f32 * f16::from_bits(b.d).to_f32()),
        );
    }
}
