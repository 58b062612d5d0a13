//! Q4_1 weights repacked eight rows at a time (`BlockQ4_1x8`) against Q8_1 activations.
//!
//! Why: the row-at-a-time kernel (`q4_1`) spends two multiply instructions per 32 products
//! (`maddubs`, then `madd` to widen), and on CPUs with one integer-multiply pipe (AMD Zen 1,
//! many laptop parts) that pipe is the limit. Interleaving eight weight rows puts row `r`'s
//! four consecutive codes in 32-bit lane `r`, so one `maddubs` against four broadcast
//! activation bytes advances all eight rows at once, and its 16-bit results can be summed
//! over a whole block (eight steps, at most 8 * 2 * 15 * 127 = 30,480: no overflow) before a
//! single `madd` widens them: 18 multiply instructions per 256 products instead of 32. The
//! eight sums land in one vector, so no horizontal sum either, and decoding (one activation
//! row) gets eight independent accumulation chains instead of one.
//!
//! Layout of one packed block (eight rows, one column of 32 values): the eight rows' f16
//! scales and minimums, then 128 bytes in four loads of 32: load `l`, bytes `4r..4r + 4` are
//! row `r`'s original `qs[4l..4l + 4]`, whose low nibbles are values `4l..4l + 4` and high
//! nibbles values `16 + 4l..16 + 4l + 4`. Same size as the eight original blocks.

use super::q4_1::{BlockQ4_1, BlockQ8_1};
use half::f16;

/// Eight weight rows' blocks of one column, interleaved (see the module docs).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BlockQ4_1x8 {
    pub d: [u16; 8],
    pub m: [u16; 8],
    pub qs: [u8; 128],
}
const _: () = assert!(std::mem::size_of::<BlockQ4_1x8>() == 160);

/// Interleaves eight rows' Q4_1 blocks of one column into one packed block.
pub fn pack_block(src: [&BlockQ4_1; 8]) -> BlockQ4_1x8 {
    let mut qs = [0u8; 128];
    for l in 0..4 {
        for (r, s) in src.iter().enumerate() {
            qs[l * 32 + 4 * r..][..4].copy_from_slice(&s.qs[4 * l..4 * l + 4]);
        }
    }
    BlockQ4_1x8 { d: src.map(|s| s.d), m: src.map(|s| s.m), qs }
}

/// `out[i * 8 + r] = dot(row r of the group, xs row i)` for every activation row `i`,
/// where `group` holds the group's `nb` packed blocks and `xs` holds `n` rows of `nb`.
pub fn dot_group_portable(group: &[BlockQ4_1x8], xs: &[BlockQ8_1], out: &mut [f32]) {
    let nb = group.len();
    for (i, o) in out.chunks_exact_mut(8).enumerate() {
        let mut acc = [0f32; 8];
        for (w, y) in group.iter().zip(&xs[i * nb..(i + 1) * nb]) {
            for (r, a) in acc.iter_mut().enumerate() {
                let mut sum = 0i32;
                for l in 0..4 {
                    for k in 0..4 {
                        let byte = w.qs[l * 32 + 4 * r + k];
                        sum += (byte & 0x0F) as i32 * y.qs[4 * l + k] as i32 + (byte >> 4) as i32 * y.qs[16 + 4 * l + k] as i32;
                    }
                }
                let (d, m) = (f16::from_bits(w.d[r]).to_f32(), f16::from_bits(w.m[r]).to_f32());
                *a = (sum as f32).mul_add(d * y.d, *a);
                *a = m.mul_add(y.s, *a);
            }
        }
        o.copy_from_slice(&acc);
    }
}

#[cfg(target_arch = "x86_64")]
pub mod avx2 {
    use super::{BlockQ4_1x8, BlockQ8_1};
    use std::arch::x86_64::*;

    /// Activation rows that share each unpacked weight load (two accumulators each; with the
    /// weights and constants this fills the sixteen vector registers).
    const ROWS: usize = 4;

    super::super::grouped_dot_group!(BlockQ4_1x8, BlockQ8_1);

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn rows<const R: usize>(group: &[BlockQ4_1x8], xs: &[BlockQ8_1], i: usize, out: &mut [f32]) {
        let nb = group.len();
        let mask = _mm256_set1_epi8(0x0F);
        let ones = _mm256_set1_epi16(1);
        let mut acc = [_mm256_setzero_ps(); R];
        for (b, w) in group.iter().enumerate() {
            // SAFETY: the block holds 8 + 8 halfs and 128 bytes; every load is in bounds.
            unsafe {
                super::super::prefetch_ahead(w);
                let d = _mm256_cvtph_ps(_mm_loadu_si128(w.d.as_ptr() as *const __m128i));
                let m = _mm256_cvtph_ps(_mm_loadu_si128(w.m.as_ptr() as *const __m128i));
                let mut sums = [_mm256_setzero_si256(); R];
                for l in 0..4 {
                    let raw = _mm256_loadu_si256(w.qs.as_ptr().add(32 * l) as *const __m256i);
                    let lo = _mm256_and_si256(raw, mask);
                    let hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), mask);
                    for r in 0..R {
                        let y = xs.get_unchecked((i + r) * nb + b).qs.as_ptr();
                        let ylo = _mm256_set1_epi32((y.add(4 * l) as *const i32).read_unaligned());
                        let yhi = _mm256_set1_epi32((y.add(16 + 4 * l) as *const i32).read_unaligned());
                        let p = _mm256_add_epi16(_mm256_maddubs_epi16(lo, ylo), _mm256_maddubs_epi16(hi, yhi));
                        sums[r] = _mm256_add_epi16(sums[r], p);
                    }
                }
                for r in 0..R {
                    let y = xs.get_unchecked((i + r) * nb + b);
                    let s = _mm256_cvtepi32_ps(_mm256_madd_epi16(sums[r], ones));
                    acc[r] = _mm256_fmadd_ps(s, _mm256_mul_ps(d, _mm256_set1_ps(y.d)), acc[r]);
                    acc[r] = _mm256_fmadd_ps(m, _mm256_set1_ps(y.s), acc[r]);
                }
            }
        }
        super::super::store_rows(&acc, out, i);
    }
}

/// The AVX-512 VNNI body: `vpdpbusd` (at 256 bits) multiplies the nibbles by the activation
/// codes, adds each lane's four products and accumulates in 32 bits: 2 instructions per
/// step of a row where AVX2 takes two `maddubs` and two adds, and no widening `madd` at the
/// end of the block. With 32 registers, eight activation rows share each unpacked load.
#[cfg(target_arch = "x86_64")]
pub mod vnni {
    use super::{BlockQ4_1x8, BlockQ8_1};
    use std::arch::x86_64::*;

    /// Activation rows that share each unpacked weight load (two accumulators each).
    const ROWS: usize = 8;

    super::super::grouped_dot_group!(BlockQ4_1x8, BlockQ8_1, "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni", [8, 7, 6, 5, 4, 3, 2]);

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    unsafe fn rows<const R: usize>(group: &[BlockQ4_1x8], xs: &[BlockQ8_1], i: usize, out: &mut [f32]) {
        let nb = group.len();
        let mask = _mm256_set1_epi8(0x0F);
        let mut acc = [_mm256_setzero_ps(); R];
        for (b, w) in group.iter().enumerate() {
            // SAFETY: the block holds 8 + 8 halfs and 128 bytes; every load is in bounds.
            unsafe {
                super::super::prefetch_ahead(w);
                let mut sums = [_mm256_setzero_si256(); R];
                for l in 0..4 {
                    let raw = _mm256_loadu_si256(w.qs.as_ptr().add(32 * l) as *const __m256i);
                    let lo = _mm256_and_si256(raw, mask);
                    let hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), mask);
                    for r in 0..R {
                        let y = xs.get_unchecked((i + r) * nb + b).qs.as_ptr();
                        let ylo = _mm256_set1_epi32((y.add(4 * l) as *const i32).read_unaligned());
                        let yhi = _mm256_set1_epi32((y.add(16 + 4 * l) as *const i32).read_unaligned());
                        sums[r] = _mm256_dpbusd_epi32(_mm256_dpbusd_epi32(sums[r], lo, ylo), hi, yhi);
                    }
                }
                let d = _mm256_cvtph_ps(_mm_loadu_si128(w.d.as_ptr() as *const __m128i));
                let m = _mm256_cvtph_ps(_mm_loadu_si128(w.m.as_ptr() as *const __m128i));
                for r in 0..R {
                    let y = xs.get_unchecked((i + r) * nb + b);
                    acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sums[r]), _mm256_mul_ps(d, _mm256_set1_ps(y.d)), acc[r]);
                    acc[r] = _mm256_fmadd_ps(m, _mm256_set1_ps(y.s), acc[r]);
                }
            }
        }
        super::super::store_rows(&acc, out, i);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    /// The packed kernels (portable and SIMD) give what the row-at-a-time kernel gives on
    /// the same blocks, for odd block counts and every remainder of activation rows.
    #[test]
    fn packed_kernels_match_the_row_kernel() {
        crate::kernels::check_group_kernel::<BlockQ4_1x8>(
            41,
            &[(1, 1), (3, 2), (5, 3), (7, 5), (18, 9), (2, 4)],
            1e-4,
            |rng| BlockQ4_1 { d: f16::from_f32(rng.random_range(0.001f32..0.1)).to_bits(), m: f16::from_f32(rng.random_range(-0.5f32..0.5)).to_bits(), qs: std::array::from_fn(|_| rng.random()) },
            crate::kernels::q4_1::dot_many_portable,
        );
    }
}
