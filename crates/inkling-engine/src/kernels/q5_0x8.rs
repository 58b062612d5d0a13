//! Q5_0 weights repacked eight rows at a time (`BlockQ5_0x8`) against 8-bit activations
//! that carry their code sum (`BlockQ8Sum`). The same idea as `q4_1x8`: row `r`'s four
//! consecutive codes sit in 32-bit lane `r`, one `maddubs` against four broadcast activation
//! bytes advances eight rows, and 16-bit results are summed before one `madd` widens them.
//!
//! Codes are taken unsigned, `u = nibble | fifth bit << 4` in 0..31, and the offset comes
//! back through the activation sum: `Σ (u - 16) y = Σ u y - 16 Σ y`, all in integers, so the
//! result is exactly ggml's per block. A `maddubs` pair is at most 2 * 31 * 127 = 7,874, so
//! four steps (at most 31,496) are summed in 16 bits before each widening.
//!
//! Layout of one packed block (eight rows, one column of 32 values): eight f16 scales; 32
//! bytes of fifth bits, where byte `4r + k` holds in bit `2l + h` the fifth bit of row `r`'s
//! value `16h + 4l + k`; then the nibbles in four loads of 32 bytes as in `q4_1x8` (load `l`,
//! bytes `4r..4r + 4` = row `r`'s `qs[4l..4l + 4]`). Same size as the eight original blocks.

use super::q5_0::BlockQ5_0;
use half::f16;

/// Eight weight rows' blocks of one column, interleaved (see the module docs).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BlockQ5_0x8 {
    pub d: [u16; 8],
    pub qh: [u8; 32],
    pub qs: [u8; 128],
}
const _: () = assert!(std::mem::size_of::<BlockQ5_0x8>() == 176);

/// 32 activation codes with their f16-rounded scale (as ggml's Q8_0) and their sum.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct BlockQ8Sum {
    pub d: f32,
    pub sum: i32,
    pub qs: [i8; 32],
}

/// Quantizes `x` (a multiple of 32 values) exactly as ggml's Q8_0, keeping each block's sum.
pub fn quantize(x: &[f32], out: &mut [BlockQ8Sum]) {
    for (xb, ob) in x.chunks_exact(32).zip(out.iter_mut()) {
        let (d, sum) = super::quantize_block_i8(xb, &mut ob.qs);
        ob.d = super::round_f16(d);
        ob.sum = sum;
    }
}

/// Interleaves eight rows' Q5_0 blocks of one column into one packed block.
pub fn pack_block(src: [&BlockQ5_0; 8]) -> BlockQ5_0x8 {
    let mut qs = [0u8; 128];
    let mut qh = [0u8; 32];
    for (r, s) in src.iter().enumerate() {
        let bits = u32::from_le_bytes(s.qh);
        for l in 0..4 {
            qs[l * 32 + 4 * r..][..4].copy_from_slice(&s.qs[4 * l..4 * l + 4]);
            for k in 0..4 {
                for h in 0..2 {
                    let bit = (bits >> (16 * h + 4 * l + k)) & 1;
                    qh[4 * r + k] |= (bit as u8) << (2 * l + h);
                }
            }
        }
    }
    BlockQ5_0x8 { d: src.map(|s| s.d), qh, qs }
}

/// `out[i * 8 + r] = dot(row r of the group, xs row i)` for every activation row `i`,
/// where `group` holds the group's `nb` packed blocks and `xs` holds `n` rows of `nb`.
pub fn dot_group_portable(group: &[BlockQ5_0x8], xs: &[BlockQ8Sum], out: &mut [f32]) {
    let nb = group.len();
    for (i, o) in out.chunks_exact_mut(8).enumerate() {
        let mut acc = [0f32; 8];
        for (w, y) in group.iter().zip(&xs[i * nb..(i + 1) * nb]) {
            for (r, a) in acc.iter_mut().enumerate() {
                let mut sum = 0i32;
                for l in 0..4 {
                    for k in 0..4 {
                        let byte = w.qs[l * 32 + 4 * r + k];
                        let hb = |h: usize| ((w.qh[4 * r + k] >> (2 * l + h)) & 1) << 4;
                        let (lo, hi) = ((byte & 0x0F) | hb(0), (byte >> 4) | hb(1));
                        sum += lo as i32 * y.qs[4 * l + k] as i32 + hi as i32 * y.qs[16 + 4 * l + k] as i32;
                    }
                }
                let total = sum - 16 * y.sum;
                *a = (total as f32).mul_add(f16::from_bits(w.d[r]).to_f32() * y.d, *a);
            }
        }
        o.copy_from_slice(&acc);
    }
}

#[cfg(target_arch = "x86_64")]
pub mod avx2 {
    use super::{BlockQ5_0x8, BlockQ8Sum};
    use std::arch::x86_64::*;

    /// Activation rows that share each unpacked weight load.
    const ROWS: usize = 4;

    super::super::grouped_dot_group!(BlockQ5_0x8, BlockQ8Sum);

    /// Bit `t` of each byte of `qh`, moved to bit 4 (the fifth bit of a code), others clear.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(super) fn fifth_bits(qh: __m256i, t: usize) -> __m256i {
        let moved = match t {
            0 => _mm256_slli_epi16(qh, 4),
            1 => _mm256_slli_epi16(qh, 3),
            2 => _mm256_slli_epi16(qh, 2),
            3 => _mm256_slli_epi16(qh, 1),
            4 => qh,
            5 => _mm256_srli_epi16(qh, 1),
            6 => _mm256_srli_epi16(qh, 2),
            _ => _mm256_srli_epi16(qh, 3),
        };
        _mm256_and_si256(moved, _mm256_set1_epi8(0x10))
    }

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn rows<const R: usize>(group: &[BlockQ5_0x8], xs: &[BlockQ8Sum], i: usize, out: &mut [f32]) {
        let nb = group.len();
        let mask = _mm256_set1_epi8(0x0F);
        let ones = _mm256_set1_epi16(1);
        let mut acc = [_mm256_setzero_ps(); R];
        for (b, w) in group.iter().enumerate() {
            // SAFETY: the block holds 8 halfs, 32 + 128 bytes; every load is in bounds.
            unsafe {
                super::super::prefetch_ahead(w);
                let d = _mm256_cvtph_ps(_mm_loadu_si128(w.d.as_ptr() as *const __m128i));
                let qh = _mm256_loadu_si256(w.qh.as_ptr() as *const __m256i);
                let mut isum = [_mm256_setzero_si256(); R];
                for half in 0..2 {
                    let mut sums = [_mm256_setzero_si256(); R];
                    for l in 2 * half..2 * half + 2 {
                        let raw = _mm256_loadu_si256(w.qs.as_ptr().add(32 * l) as *const __m256i);
                        let lo = _mm256_or_si256(_mm256_and_si256(raw, mask), fifth_bits(qh, 2 * l));
                        let hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(raw, 4), mask), fifth_bits(qh, 2 * l + 1));
                        for r in 0..R {
                            let y = xs.get_unchecked((i + r) * nb + b).qs.as_ptr();
                            let ylo = _mm256_set1_epi32((y.add(4 * l) as *const i32).read_unaligned());
                            let yhi = _mm256_set1_epi32((y.add(16 + 4 * l) as *const i32).read_unaligned());
                            let p = _mm256_add_epi16(_mm256_maddubs_epi16(lo, ylo), _mm256_maddubs_epi16(hi, yhi));
                            sums[r] = _mm256_add_epi16(sums[r], p);
                        }
                    }
                    for r in 0..R {
                        isum[r] = _mm256_add_epi32(isum[r], _mm256_madd_epi16(sums[r], ones));
                    }
                }
                for r in 0..R {
                    let y = xs.get_unchecked((i + r) * nb + b);
                    let total = _mm256_sub_epi32(isum[r], _mm256_set1_epi32(16 * y.sum));
                    acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(total), _mm256_mul_ps(d, _mm256_set1_ps(y.d)), acc[r]);
                }
            }
        }
        super::super::store_rows(&acc, out, i);
    }
}

/// The AVX-512 VNNI body: `vpdpbusd` (at 256 bits) multiplies the unsigned five-bit codes by
/// the activation codes and accumulates in 32 bits, so the block needs neither the 16-bit
/// adds nor the widening `madd`s: 2 instructions per step of a row instead of 4.
#[cfg(target_arch = "x86_64")]
pub mod vnni {
    use super::{BlockQ5_0x8, BlockQ8Sum};
    use std::arch::x86_64::*;

    /// Activation rows that share each unpacked weight load (two accumulators each).
    const ROWS: usize = 8;

    super::super::grouped_dot_group!(BlockQ5_0x8, BlockQ8Sum, "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni", [8, 7, 6, 5, 4, 3, 2]);

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    unsafe fn rows<const R: usize>(group: &[BlockQ5_0x8], xs: &[BlockQ8Sum], i: usize, out: &mut [f32]) {
        use super::avx2::fifth_bits;
        let nb = group.len();
        let mask = _mm256_set1_epi8(0x0F);
        let mut acc = [_mm256_setzero_ps(); R];
        for (b, w) in group.iter().enumerate() {
            // SAFETY: the block holds 8 halfs, 32 + 128 bytes; every load is in bounds.
            unsafe {
                super::super::prefetch_ahead(w);
                let d = _mm256_cvtph_ps(_mm_loadu_si128(w.d.as_ptr() as *const __m128i));
                let qh = _mm256_loadu_si256(w.qh.as_ptr() as *const __m256i);
                let mut isum = [_mm256_setzero_si256(); R];
                for l in 0..4 {
                    let raw = _mm256_loadu_si256(w.qs.as_ptr().add(32 * l) as *const __m256i);
                    let lo = _mm256_or_si256(_mm256_and_si256(raw, mask), fifth_bits(qh, 2 * l));
                    let hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(raw, 4), mask), fifth_bits(qh, 2 * l + 1));
                    for r in 0..R {
                        let y = xs.get_unchecked((i + r) * nb + b).qs.as_ptr();
                        let ylo = _mm256_set1_epi32((y.add(4 * l) as *const i32).read_unaligned());
                        let yhi = _mm256_set1_epi32((y.add(16 + 4 * l) as *const i32).read_unaligned());
                        isum[r] = _mm256_dpbusd_epi32(_mm256_dpbusd_epi32(isum[r], lo, ylo), hi, yhi);
                    }
                }
                for r in 0..R {
                    let y = xs.get_unchecked((i + r) * nb + b);
                    let total = _mm256_sub_epi32(isum[r], _mm256_set1_epi32(16 * y.sum));
                    acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(total), _mm256_mul_ps(d, _mm256_set1_ps(y.d)), acc[r]);
                }
            }
        }
        super::super::store_rows(&acc, out, i);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::q8_0::BlockQ8Act;
    use rand::Rng;

    /// The packed kernels (portable and SIMD) give what the row-at-a-time kernel gives on
    /// the same blocks, for odd block counts and every remainder of activation rows.
    #[test]
    fn packed_kernels_match_the_row_kernel() {
        crate::kernels::check_group_kernel::<BlockQ5_0x8>(
            50,
            &[(1, 1), (3, 2), (5, 3), (7, 5), (20, 9), (2, 4)],
            1e-5,
            |rng| BlockQ5_0 { d: f16::from_f32(rng.random_range(0.001f32..0.05)).to_bits(), qh: rng.random(), qs: rng.random() },
            |w, xs, out| {
                // The row kernel's activations: the same codes and scales, without the sum.
                let plain: Vec<BlockQ8Act> = xs.iter().map(|b| BlockQ8Act { d: b.d, qs: b.qs }).collect();
                crate::kernels::q5_0::dot_many_portable(w, &plain, out)
            },
        );
    }
}
