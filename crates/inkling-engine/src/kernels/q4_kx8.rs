//! Q4_K weights repacked eight rows at a time (`BlockQ4Kx8`) against Q8_K activations: the
//! bulk of a Q4_K_M file (Qwen2.5's and Gemma's query, key, output, gate and up matrices).
//!
//! Why: the row kernel (`q4_k`) spends two multiply instructions per 32 products
//! (`maddubs`, then `madd` by the sub-block's scale), so reading a prompt through a 1.5B
//! model is bound by the integer-multiply pipes. Interleaved, row `r`'s four consecutive
//! codes sit in 32-bit lane `r`, so one `maddubs` against four broadcast activation bytes
//! advances all eight rows, and its 16-bit sums add up over a whole 32-value sub-block
//! (eight steps of at most 2 · 15 · 127: 30,480, no overflow) before one `madd` multiplies
//! them by the eight rows' scales and widens them: 9 multiply instructions per 256
//! products instead of 16. The rows' results land in one vector: no horizontal sums.
//!
//! The mins term, `dmin · Σ_j m_j · (Σ of sub-block j's activation codes)`, is four `madd`s
//! per block and activation row, over pairs of sub-blocks, from the Q8_K block sums.
//! The integers are exactly those of the row kernel and ggml; only the float rounding
//! order of the final sums differs.
//!
//! Layout of one packed block (eight rows, one 256-value column): the rows' f16 `d` and
//! `dmin`; their 6-bit scales unpacked, `scales[8j + r]` = row `r`'s scale of sub-block `j`;
//! their mins unpacked in pairs of sub-blocks, `mins[16p + 2r + h]` = row `r`'s min of
//! sub-block `2p + h`; then 1,024 bytes of codes in 32 loads of 32: load `8c + l`, bytes
//! `4r..4r + 4`, are row `r`'s original `qs[32c + 4l..32c + 4l + 4]`, whose low nibbles are
//! values `64c + 4l..+4` (sub-block `2c`) and high nibbles values `64c + 32 + 4l..+4`
//! (sub-block `2c + 1`). 1,184 bytes against the eight original blocks' 1,152.

use super::q4_k::{BlockQ4K, scales_and_mins};
use super::q6_k::BlockQ8K;
use half::f16;

/// Eight weight rows' Q4_K blocks of one column, interleaved (see the module docs).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BlockQ4Kx8 {
    pub d: [u16; 8],
    pub dmin: [u16; 8],
    pub scales: [u8; 64],
    pub mins: [u8; 64],
    pub qs: [u8; 1024],
}
const _: () = assert!(std::mem::size_of::<BlockQ4Kx8>() == 1184);

/// Interleaves eight rows' Q4_K blocks of one column into one packed block.
pub fn pack_block(src: [&BlockQ4K; 8]) -> BlockQ4Kx8 {
    let mut out = BlockQ4Kx8 { d: src.map(|s| s.d), dmin: src.map(|s| s.dmin), scales: [0; 64], mins: [0; 64], qs: [0; 1024] };
    for (r, s) in src.iter().enumerate() {
        let (sc, m) = scales_and_mins(&s.scales);
        for j in 0..8 {
            out.scales[8 * j + r] = sc[j];
            out.mins[16 * (j / 2) + 2 * r + j % 2] = m[j];
        }
        for c in 0..4 {
            for l in 0..8 {
                out.qs[(8 * c + l) * 32 + 4 * r..][..4].copy_from_slice(&s.qs[32 * c + 4 * l..][..4]);
            }
        }
    }
    out
}

/// `out[i * 8 + r] = dot(row r of the group, xs row i)` for every activation row `i`,
/// where `group` holds the group's `nb` packed blocks and `xs` holds `n` rows of `nb`.
pub fn dot_group_portable(group: &[BlockQ4Kx8], xs: &[BlockQ8K], out: &mut [f32]) {
    let nb = group.len();
    for (i, o) in out.chunks_exact_mut(8).enumerate() {
        let mut acc = [0f32; 8];
        for (w, y) in group.iter().zip(&xs[i * nb..(i + 1) * nb]) {
            for (r, a) in acc.iter_mut().enumerate() {
                let (mut sum, mut mins) = (0i32, 0i32);
                for c in 0..4 {
                    let (mut lo, mut hi) = (0i32, 0i32);
                    for l in 0..8 {
                        for k in 0..4 {
                            let byte = w.qs[(8 * c + l) * 32 + 4 * r + k];
                            lo += (byte & 0x0F) as i32 * y.qs[64 * c + 4 * l + k] as i32;
                            hi += (byte >> 4) as i32 * y.qs[64 * c + 32 + 4 * l + k] as i32;
                        }
                    }
                    sum += w.scales[8 * (2 * c) + r] as i32 * lo + w.scales[8 * (2 * c + 1) + r] as i32 * hi;
                }
                for j in 0..8 {
                    let bsum = y.bsums[2 * j] as i32 + y.bsums[2 * j + 1] as i32;
                    mins += w.mins[16 * (j / 2) + 2 * r + j % 2] as i32 * bsum;
                }
                let (d, dmin) = (f16::from_bits(w.d[r]).to_f32(), f16::from_bits(w.dmin[r]).to_f32());
                *a += d * y.d * sum as f32 - dmin * y.d * mins as f32;
            }
        }
        o.copy_from_slice(&acc);
    }
}

#[cfg(target_arch = "x86_64")]
pub mod avx2 {
    use super::{BlockQ4Kx8, BlockQ8K};
    use std::arch::x86_64::*;

    /// Activation rows that share each unpacked weight load: two 16-bit and one 32-bit
    /// accumulator each, with the codes and constants, fill the sixteen vector registers.
    const ROWS: usize = 4;

    super::super::grouped_dot_group!(BlockQ4Kx8, BlockQ8K);

    /// The sixteen 16-bit lanes `[s0, s0, s1, s1, .., s7, s7]` from eight bytes: each row's
    /// scale against both of the row's 16-bit sums.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn row_pairs(bytes: *const u8) -> __m256i {
        // SAFETY: the caller points at eight readable bytes.
        let x = unsafe { _mm_loadl_epi64(bytes as *const __m128i) };
        _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(x, x))
    }

    /// `acc` plus one block's product for one activation row: `sumi`, the eight rows'
    /// scaled code sums, times `d`, less the mins term, `dmin · Σ_j m_j · bsum_j`.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn add_block(acc: __m256, sumi: __m256i, d: __m256, dmin: __m256, w: &BlockQ4Kx8, y: &BlockQ8K) -> __m256 {
        // SAFETY: every load is inside the packed block or the activation block.
        unsafe {
            // Each sub-block's two 16-code sums added: eight 16-bit sums, in order.
            let bsums = _mm256_loadu_si256(y.bsums.as_ptr() as *const __m256i);
            let pairs = _mm_hadd_epi16(_mm256_castsi256_si128(bsums), _mm256_extracti128_si256(bsums, 1));
            let pairs = _mm256_broadcastsi128_si256(pairs);
            let mut mins = _mm256_setzero_si256();
            for p in 0..4 {
                // Sub-blocks 2p and 2p + 1's sums in every 32-bit lane, against each
                // row's two mins.
                let sums = match p {
                    0 => _mm256_shuffle_epi32(pairs, 0x00),
                    1 => _mm256_shuffle_epi32(pairs, 0x55),
                    2 => _mm256_shuffle_epi32(pairs, 0xAA),
                    _ => _mm256_shuffle_epi32(pairs, 0xFF),
                };
                let m = _mm256_cvtepu8_epi16(_mm_loadu_si128(w.mins.as_ptr().add(16 * p) as *const __m128i));
                mins = _mm256_add_epi32(mins, _mm256_madd_epi16(m, sums));
            }
            let yd = _mm256_set1_ps(y.d);
            let acc = _mm256_fmadd_ps(_mm256_mul_ps(d, yd), _mm256_cvtepi32_ps(sumi), acc);
            _mm256_fnmadd_ps(_mm256_mul_ps(dmin, yd), _mm256_cvtepi32_ps(mins), acc)
        }
    }

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn rows<const R: usize>(group: &[BlockQ4Kx8], xs: &[BlockQ8K], i: usize, out: &mut [f32]) {
        let nb = group.len();
        let mask = _mm256_set1_epi8(0x0F);
        let mut acc = [_mm256_setzero_ps(); R];
        for (b, w) in group.iter().enumerate() {
            // SAFETY: every load below is inside the packed block or an activation block
            // (rows i..i + R of xs exist, each with nb blocks).
            unsafe {
                super::super::prefetch_ahead(w);
                let mut sumi = [_mm256_setzero_si256(); R];
                for c in 0..4 {
                    let mut lo = [_mm256_setzero_si256(); R];
                    let mut hi = [_mm256_setzero_si256(); R];
                    for l in 0..8 {
                        let raw = _mm256_loadu_si256(w.qs.as_ptr().add(32 * (8 * c + l)) as *const __m256i);
                        let (wl, wh) = (_mm256_and_si256(raw, mask), _mm256_and_si256(_mm256_srli_epi16(raw, 4), mask));
                        for r in 0..R {
                            let y = xs.get_unchecked((i + r) * nb + b).qs.as_ptr().add(64 * c + 4 * l);
                            let ylo = _mm256_set1_epi32((y as *const i32).read_unaligned());
                            let yhi = _mm256_set1_epi32((y.add(32) as *const i32).read_unaligned());
                            lo[r] = _mm256_add_epi16(lo[r], _mm256_maddubs_epi16(wl, ylo));
                            hi[r] = _mm256_add_epi16(hi[r], _mm256_maddubs_epi16(wh, yhi));
                        }
                    }
                    let (sl, sh) = (row_pairs(w.scales.as_ptr().add(16 * c)), row_pairs(w.scales.as_ptr().add(16 * c + 8)));
                    for r in 0..R {
                        sumi[r] = _mm256_add_epi32(sumi[r], _mm256_add_epi32(_mm256_madd_epi16(lo[r], sl), _mm256_madd_epi16(hi[r], sh)));
                    }
                }
                let d = _mm256_cvtph_ps(_mm_loadu_si128(w.d.as_ptr() as *const __m128i));
                let dmin = _mm256_cvtph_ps(_mm_loadu_si128(w.dmin.as_ptr() as *const __m128i));
                for r in 0..R {
                    acc[r] = add_block(acc[r], sumi[r], d, dmin, w, xs.get_unchecked((i + r) * nb + b));
                }
            }
        }
        super::super::store_rows(&acc, out, i);
    }
}

/// The AVX-512 VNNI body: `vpdpbusd` (at 256 bits) multiplies the unsigned codes by the
/// signed activation codes, adds each lane's four products and accumulates in 32 bits, where
/// AVX2 needs `maddubs` and a 16-bit add. Each sub-block's sums are kept in two accumulators,
/// of its even and odd steps: sixteen products each, within 16 bits (16 · 15 · 127 = 30,480),
/// so one `vpdpwssd` against the rows' scales (each in the low half of its 32-bit lane)
/// multiplies and adds them to the block's sum. 5 instructions per 64 products of a row
/// instead of 9, and the same integers as the AVX2 and portable bodies.
#[cfg(target_arch = "x86_64")]
pub mod vnni {
    use super::{BlockQ4Kx8, BlockQ8K};
    use std::arch::x86_64::*;

    /// Activation rows that share each unpacked weight load: six accumulators each (four
    /// of codes, the block's sum, the result) and the weights fill most of the 32 registers.
    const ROWS: usize = 4;

    super::super::grouped_dot_group!(BlockQ4Kx8, BlockQ8K, "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni", [4, 3, 2]);

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    unsafe fn rows<const R: usize>(group: &[BlockQ4Kx8], xs: &[BlockQ8K], i: usize, out: &mut [f32]) {
        let nb = group.len();
        let mask = _mm256_set1_epi8(0x0F);
        let mut acc = [_mm256_setzero_ps(); R];
        for (b, w) in group.iter().enumerate() {
            // SAFETY: every load below is inside the packed block or an activation block
            // (rows i..i + R of xs exist, each with nb blocks).
            unsafe {
                super::super::prefetch_ahead(w);
                let mut sumi = [_mm256_setzero_si256(); R];
                for c in 0..4 {
                    let mut lo = [[_mm256_setzero_si256(); 2]; R];
                    let mut hi = [[_mm256_setzero_si256(); 2]; R];
                    for l in 0..8 {
                        let raw = _mm256_loadu_si256(w.qs.as_ptr().add(32 * (8 * c + l)) as *const __m256i);
                        let (wl, wh) = (_mm256_and_si256(raw, mask), _mm256_and_si256(_mm256_srli_epi16(raw, 4), mask));
                        for r in 0..R {
                            let y = xs.get_unchecked((i + r) * nb + b).qs.as_ptr().add(64 * c + 4 * l);
                            let ylo = _mm256_set1_epi32((y as *const i32).read_unaligned());
                            let yhi = _mm256_set1_epi32((y.add(32) as *const i32).read_unaligned());
                            lo[r][l % 2] = _mm256_dpbusd_epi32(lo[r][l % 2], wl, ylo);
                            hi[r][l % 2] = _mm256_dpbusd_epi32(hi[r][l % 2], wh, yhi);
                        }
                    }
                    let sl = _mm256_cvtepu8_epi32(_mm_loadl_epi64(w.scales.as_ptr().add(16 * c) as *const __m128i));
                    let sh = _mm256_cvtepu8_epi32(_mm_loadl_epi64(w.scales.as_ptr().add(16 * c + 8) as *const __m128i));
                    for r in 0..R {
                        for half in 0..2 {
                            sumi[r] = _mm256_dpwssd_epi32(sumi[r], lo[r][half], sl);
                            sumi[r] = _mm256_dpwssd_epi32(sumi[r], hi[r][half], sh);
                        }
                    }
                }
                let d = _mm256_cvtph_ps(_mm_loadu_si128(w.d.as_ptr() as *const __m128i));
                let dmin = _mm256_cvtph_ps(_mm_loadu_si128(w.dmin.as_ptr() as *const __m128i));
                for r in 0..R {
                    acc[r] = super::avx2::add_block(acc[r], sumi[r], d, dmin, w, xs.get_unchecked((i + r) * nb + b));
                }
            }
        }
        super::super::store_rows(&acc, out, i);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::q4_k::tests::random_block;

    /// The packed kernels (portable and SIMD) give what the row kernel gives on the same
    /// blocks, for odd block counts and every remainder of activation rows, with codes and
    /// scales at their extremes (all-15 nibbles and 63 scales test the 16-bit sums).
    #[test]
    fn packed_kernels_match_the_row_kernel() {
        let mut extreme = 0;
        crate::kernels::check_group_kernel::<BlockQ4Kx8>(
            44,
            &[(1, 1), (3, 2), (5, 3), (7, 5), (2, 4), (4, 9)],
            1e-4,
            |rng| {
                extreme += 1;
                if extreme % 5 == 0 { BlockQ4K { qs: [0xFF; 128], scales: [0xFF; 12], ..random_block(rng) } } else { random_block(rng) }
            },
            crate::kernels::q4_k::dot_many_portable,
        );
    }

    /// The largest 16-bit sums the kernel forms: every nibble 15 against codes of 127 in
    /// magnitude, every scale and min 63; the SIMD sums must not wrap.
    #[test]
    fn the_largest_sums_do_not_overflow() {
        let w = BlockQ4K { d: f16::from_f32(0.001).to_bits(), dmin: f16::from_f32(0.001).to_bits(), scales: [0xFF; 12], qs: [0xFF; 128] };
        crate::kernels::check_largest_sums::<BlockQ4Kx8>(w, crate::kernels::q4_k::dot_many_portable);
    }
}
