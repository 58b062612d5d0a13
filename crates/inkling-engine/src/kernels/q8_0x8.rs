//! Q8_0 weights repacked eight rows at a time (`BlockQ8_0x8`) against Q8_0 activations: the
//! output projection of every default-catalog model (Gemma-3-270M reads 180 MB of it per
//! token) and the value projections of the Q4_K_M files.
//!
//! As in `q4_1x8`, row `r`'s four consecutive codes sit in 32-bit lane `r`: one `maddubs`
//! against four broadcast activation bytes advances eight rows. Its 16-bit pair sums (at most
//! 2 * 128 * 127 = 32,512) cannot be added to each other without overflowing, so each is
//! widened at once, but into eight rows' 32-bit block sums that need no horizontal sum: one
//! conversion and one `fma` per eight row-blocks, where the row kernel paid a conversion,
//! an `fma` and a scalar scale per row-block and a horizontal sum per row. The integer block
//! sums are exactly ggml's.
//!
//! Layout of one packed block (eight rows, one column of 32 values): eight f16 scales, then
//! eight loads of 32 bytes where load `k`, bytes `4r..4r + 4`, are row `r`'s `qs[4k..4k + 4]`.
//! Same size as the eight original blocks.

use super::q8_0::{BlockQ8_0, BlockQ8Act};
use half::f16;

/// Eight weight rows' blocks of one column, interleaved (see the module docs).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BlockQ8_0x8 {
    pub d: [u16; 8],
    pub qs: [i8; 256],
}
const _: () = assert!(std::mem::size_of::<BlockQ8_0x8>() == 8 * 34);

/// Interleaves eight rows' Q8_0 blocks of one column into one packed block.
pub fn pack_block(src: [&BlockQ8_0; 8]) -> BlockQ8_0x8 {
    let mut qs = [0i8; 256];
    for (r, s) in src.iter().enumerate() {
        for k in 0..8 {
            qs[32 * k + 4 * r..][..4].copy_from_slice(&s.qs[4 * k..4 * k + 4]);
        }
    }
    BlockQ8_0x8 { d: src.map(|s| s.d), qs }
}

/// `out[i * 8 + r] = dot(row r of the group, xs row i)` for every activation row `i`,
/// where `group` holds the group's `nb` packed blocks and `xs` holds `n` rows of `nb`.
pub fn dot_group_portable(group: &[BlockQ8_0x8], xs: &[BlockQ8Act], out: &mut [f32]) {
    let nb = group.len();
    for (i, o) in out.chunks_exact_mut(8).enumerate() {
        let mut acc = [0f32; 8];
        for (w, y) in group.iter().zip(&xs[i * nb..(i + 1) * nb]) {
            for (r, a) in acc.iter_mut().enumerate() {
                let mut sum = 0i32;
                for k in 0..8 {
                    for j in 0..4 {
                        sum += w.qs[32 * k + 4 * r + j] as i32 * y.qs[4 * k + j] as i32;
                    }
                }
                *a = (sum as f32).mul_add(f16::from_bits(w.d[r]).to_f32() * y.d, *a);
            }
        }
        o.copy_from_slice(&acc);
    }
}

#[cfg(target_arch = "x86_64")]
pub mod avx2 {
    use super::{BlockQ8_0x8, BlockQ8Act};
    use std::arch::x86_64::*;

    /// Activation rows that share each weight load.
    const ROWS: usize = 4;

    super::super::grouped_dot_group!(BlockQ8_0x8, BlockQ8Act);

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn rows<const R: usize>(group: &[BlockQ8_0x8], xs: &[BlockQ8Act], i: usize, out: &mut [f32]) {
        let nb = group.len();
        let ones = _mm256_set1_epi16(1);
        let mut acc = [_mm256_setzero_ps(); R];
        for (b, w) in group.iter().enumerate() {
            // SAFETY: the block holds 8 halfs and 256 bytes; every load is in bounds, and
            // activation row i + r < n holds nb blocks.
            unsafe {
                super::super::prefetch_ahead(w);
                let d = _mm256_cvtph_ps(_mm_loadu_si128(w.d.as_ptr() as *const __m128i));
                let mut isum = [_mm256_setzero_si256(); R];
                for k in 0..8 {
                    let q = _mm256_loadu_si256(w.qs.as_ptr().add(32 * k) as *const __m256i);
                    // maddubs needs one unsigned operand: |w| times y with w's sign moved onto y.
                    let qa = _mm256_sign_epi8(q, q);
                    for r in 0..R {
                        let y = xs.get_unchecked((i + r) * nb + b).qs.as_ptr();
                        let yb = _mm256_set1_epi32((y.add(4 * k) as *const i32).read_unaligned());
                        let p = _mm256_maddubs_epi16(qa, _mm256_sign_epi8(yb, q));
                        isum[r] = _mm256_add_epi32(isum[r], _mm256_madd_epi16(p, ones));
                    }
                }
                for r in 0..R {
                    let yd = xs.get_unchecked((i + r) * nb + b).d;
                    acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[r]), _mm256_mul_ps(d, _mm256_set1_ps(yd)), acc[r]);
                }
            }
        }
        super::super::store_rows(&acc, out, i);
    }
}

/// The AVX-512 VNNI body: `vpdpbusd` (at 256 bits) takes |w| times y with w's sign moved
/// onto y, adds each lane's four products and accumulates in 32 bits: one sign and one
/// multiply-accumulate per step of a row where AVX2 needs `maddubs`, a widening `madd` and an
/// add. With 32 registers, eight activation rows share each load.
#[cfg(target_arch = "x86_64")]
pub mod vnni {
    use super::{BlockQ8_0x8, BlockQ8Act};
    use std::arch::x86_64::*;

    /// Activation rows that share each weight load (two accumulators each).
    const ROWS: usize = 8;

    super::super::grouped_dot_group!(BlockQ8_0x8, BlockQ8Act, "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni", [8, 7, 6, 5, 4, 3, 2]);

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    unsafe fn rows<const R: usize>(group: &[BlockQ8_0x8], xs: &[BlockQ8Act], i: usize, out: &mut [f32]) {
        let nb = group.len();
        let mut acc = [_mm256_setzero_ps(); R];
        for (b, w) in group.iter().enumerate() {
            // SAFETY: the block holds 8 halfs and 256 bytes; every load is in bounds, and
            // activation row i + r < n holds nb blocks.
            unsafe {
                super::super::prefetch_ahead(w);
                let d = _mm256_cvtph_ps(_mm_loadu_si128(w.d.as_ptr() as *const __m128i));
                let mut isum = [_mm256_setzero_si256(); R];
                for k in 0..8 {
                    let q = _mm256_loadu_si256(w.qs.as_ptr().add(32 * k) as *const __m256i);
                    let qa = _mm256_sign_epi8(q, q);
                    for r in 0..R {
                        let y = xs.get_unchecked((i + r) * nb + b).qs.as_ptr();
                        let yb = _mm256_set1_epi32((y.add(4 * k) as *const i32).read_unaligned());
                        isum[r] = _mm256_dpbusd_epi32(isum[r], qa, _mm256_sign_epi8(yb, q));
                    }
                }
                for r in 0..R {
                    let yd = xs.get_unchecked((i + r) * nb + b).d;
                    acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[r]), _mm256_mul_ps(d, _mm256_set1_ps(yd)), acc[r]);
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
    /// the same blocks, for odd block counts, every remainder of activation rows, and codes
    /// of -128 (which `|w|` must read as 128).
    #[test]
    fn packed_kernels_match_the_row_kernel() {
        crate::kernels::check_group_kernel::<BlockQ8_0x8>(
            80,
            &[(1, 1), (3, 2), (5, 3), (7, 5), (20, 9), (2, 4)],
            1e-5,
            |rng| BlockQ8_0 { d: f16::from_f32(rng.random_range(0.001f32..0.05)).to_bits(), qs: std::array::from_fn(|_| rng.random_range(-128..=127)) },
            crate::kernels::q8_0::dot_many_portable,
        );
    }
}
