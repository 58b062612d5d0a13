//! Q6_K weights repacked eight rows at a time (`BlockQ6Kx8`) against Q8_K activations: the
//! value and half the down matrices of a Q4_K_M file, and its output projection.
//!
//! As in `q4_kx8`, row `r`'s four consecutive codes sit in 32-bit lane `r`, so one
//! `maddubs` against four broadcast activation bytes advances eight rows. Six-bit codes
//! (0..64) allow only two such steps in 16 bits (2 · 2 · 63 · 127 = 32,004) before a `madd`
//! multiplies by the eight rows' scales of that 16-value sub-block and widens: 12 multiply
//! instructions per 256 products instead of the row kernel's 16, no horizontal sums, and the
//! codes unpacked once for four activation rows. The −32 offset is one `madd` per pair of
//! sub-blocks and activation row, from the Q8_K block sums (`Σ sc·(q − 32)·y = Σ sc·q·y −
//! 32·Σ sc·bsum`): the same integers as the row kernel and ggml.
//!
//! Layout of one packed block (eight rows, one 256-value column), the eight original
//! blocks' 1,680 bytes rearranged: the rows' f16 `d`; `scales[8s + r]`, row `r`'s scale of
//! sub-block `s` (values `16s..16s + 16`); then for each half `h` and step `t` (four values
//! each, `t < 8`), three loads of 32 bytes whose bytes `4r..4r + 4` are row `r`'s
//! `ql[64h + 4t..+4]` (`ql` load `2(8h + t)`), `ql[64h + 32 + 4t..+4]` (`ql` load
//! `2(8h + t) + 1`) and `qh[32h + 4t..+4]` (`qh` load `8h + t`). Those give the codes of
//! values `128h + 32g + 4t..+4` for the four quarters `g`: low nibbles of the first and
//! second `ql` load for `g` = 0 and 1, their high nibbles for 2 and 3, each with bits
//! `2g..2g + 2` of the `qh` load above them.

use super::q6_k::{BlockQ6K, BlockQ8K};
use half::f16;

/// Eight weight rows' Q6_K blocks of one column, interleaved (see the module docs).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BlockQ6Kx8 {
    pub d: [u16; 8],
    pub scales: [i8; 128],
    pub ql: [u8; 1024],
    pub qh: [u8; 512],
}
const _: () = assert!(std::mem::size_of::<BlockQ6Kx8>() == 8 * std::mem::size_of::<BlockQ6K>());

/// Interleaves eight rows' Q6_K blocks of one column into one packed block.
pub fn pack_block(src: [&BlockQ6K; 8]) -> BlockQ6Kx8 {
    let mut out = BlockQ6Kx8 { d: src.map(|s| s.d), scales: [0; 128], ql: [0; 1024], qh: [0; 512] };
    for (r, s) in src.iter().enumerate() {
        for (sb, &sc) in s.scales.iter().enumerate() {
            out.scales[8 * sb + r] = sc;
        }
        for h in 0..2 {
            for t in 0..8 {
                let step = 8 * h + t;
                out.ql[64 * step + 4 * r..][..4].copy_from_slice(&s.ql[64 * h + 4 * t..][..4]);
                out.ql[64 * step + 32 + 4 * r..][..4].copy_from_slice(&s.ql[64 * h + 32 + 4 * t..][..4]);
                out.qh[32 * step + 4 * r..][..4].copy_from_slice(&s.qh[32 * h + 4 * t..][..4]);
            }
        }
    }
    out
}

/// Row `r`'s code of value `128h + 32g + 4t + k` in a packed block.
fn code(w: &BlockQ6Kx8, r: usize, h: usize, g: usize, t: usize, k: usize) -> i32 {
    let step = 8 * h + t;
    let ql = w.ql[64 * step + 32 * (g % 2) + 4 * r + k];
    let low = if g < 2 { ql & 0xF } else { ql >> 4 };
    let high = (w.qh[32 * step + 4 * r + k] >> (2 * g)) & 3;
    (low | (high << 4)) as i32
}

/// `out[i * 8 + r] = dot(row r of the group, xs row i)` for every activation row `i`,
/// where `group` holds the group's `nb` packed blocks and `xs` holds `n` rows of `nb`.
pub fn dot_group_portable(group: &[BlockQ6Kx8], xs: &[BlockQ8K], out: &mut [f32]) {
    let nb = group.len();
    for (i, o) in out.chunks_exact_mut(8).enumerate() {
        let mut acc = [0f32; 8];
        for (w, y) in group.iter().zip(&xs[i * nb..(i + 1) * nb]) {
            for (r, a) in acc.iter_mut().enumerate() {
                let mut sum = 0i32;
                for h in 0..2 {
                    for g in 0..4 {
                        for t in 0..8 {
                            let v = 128 * h + 32 * g + 4 * t;
                            let sc = w.scales[8 * (v / 16) + r] as i32;
                            let part: i32 = (0..4).map(|k| (code(w, r, h, g, t, k) - 32) * y.qs[v + k] as i32).sum();
                            sum += sc * part;
                        }
                    }
                }
                *a += f16::from_bits(w.d[r]).to_f32() * y.d * sum as f32;
            }
        }
        o.copy_from_slice(&acc);
    }
}

#[cfg(target_arch = "x86_64")]
pub mod avx2 {
    use super::{BlockQ6Kx8, BlockQ8K};
    use std::arch::x86_64::*;

    /// Activation rows that share each unpacked weight load.
    const ROWS: usize = 4;

    super::super::grouped_dot_group!(BlockQ6Kx8, BlockQ8K);

    /// The sixteen 16-bit lanes `[s0, s0, s1, s1, .., s7, s7]` from eight signed bytes:
    /// each row's scale against both of the row's 16-bit sums.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn row_pairs(bytes: *const i8) -> __m256i {
        // SAFETY: the caller points at eight readable bytes.
        let x = unsafe { _mm_loadl_epi64(bytes as *const __m128i) };
        _mm256_cvtepi8_epi16(_mm_unpacklo_epi8(x, x))
    }

    /// `acc` plus one block's product for one activation row: `sumi`, the eight rows'
    /// scaled code sums, less the offset `32 · Σ_s sc_s · bsum_s`, times `d`.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn add_block(acc: __m256, sumi: __m256i, d: __m256, w: &BlockQ6Kx8, y: &BlockQ8K) -> __m256 {
        // SAFETY: every load is inside the packed block or the activation block.
        unsafe {
            let mut offset = _mm256_setzero_si256();
            for p in 0..8 {
                // Sub-blocks 2p and 2p + 1's scales, row by row: [sc(2p, r), sc(2p + 1, r)].
                let even = _mm_loadl_epi64(w.scales.as_ptr().add(16 * p) as *const __m128i);
                let odd = _mm_loadl_epi64(w.scales.as_ptr().add(16 * p + 8) as *const __m128i);
                let pair = _mm256_cvtepi8_epi16(_mm_unpacklo_epi8(even, odd));
                let sums = _mm256_set1_epi32((y.bsums.as_ptr().add(2 * p) as *const i32).read_unaligned());
                offset = _mm256_add_epi32(offset, _mm256_madd_epi16(pair, sums));
            }
            let total = _mm256_sub_epi32(sumi, _mm256_slli_epi32(offset, 5));
            _mm256_fmadd_ps(_mm256_mul_ps(d, _mm256_set1_ps(y.d)), _mm256_cvtepi32_ps(total), acc)
        }
    }

    /// Row `r`'s 32 codes of `step`'s quarter `g`, in 32-bit lane `r` (see the module docs).
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn codes(w: &BlockQ6Kx8, step: usize, g: usize) -> __m256i {
        let (m4, m30) = (_mm256_set1_epi8(0x0F), _mm256_set1_epi8(0x30));
        // SAFETY: step < 16 and g < 4 keep both loads inside the block.
        let (ql, qh) = unsafe { (_mm256_loadu_si256(w.ql.as_ptr().add(64 * step + 32 * (g % 2)) as *const __m256i), _mm256_loadu_si256(w.qh.as_ptr().add(32 * step) as *const __m256i)) };
        let low = if g < 2 { _mm256_and_si256(ql, m4) } else { _mm256_and_si256(_mm256_srli_epi16(ql, 4), m4) };
        // Bits 2g..2g + 2 of qh moved to bits 4..6.
        let high = match g {
            0 => _mm256_slli_epi16(qh, 4),
            1 => _mm256_slli_epi16(qh, 2),
            2 => qh,
            _ => _mm256_srli_epi16(qh, 2),
        };
        _mm256_or_si256(low, _mm256_and_si256(high, m30))
    }

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn rows<const R: usize>(group: &[BlockQ6Kx8], xs: &[BlockQ8K], i: usize, out: &mut [f32]) {
        let nb = group.len();
        let mut acc = [_mm256_setzero_ps(); R];
        for (b, w) in group.iter().enumerate() {
            // SAFETY: every load below is inside the packed block or an activation block
            // (rows i..i + R of xs exist, each with nb blocks).
            unsafe {
                super::super::prefetch_ahead(w);
                let mut sumi = [_mm256_setzero_si256(); R];
                for h in 0..2 {
                    for g in 0..4 {
                        for half in 0..2 {
                            // Sub-block 8h + 2g + half: steps 4·half..4·half + 4.
                            let scales = row_pairs(w.scales.as_ptr().add(8 * (8 * h + 2 * g + half)));
                            for pair in 0..2 {
                                let mut s16 = [_mm256_setzero_si256(); R];
                                for t in 4 * half + 2 * pair..4 * half + 2 * pair + 2 {
                                    let q = codes(w, 8 * h + t, g);
                                    for r in 0..R {
                                        let y = xs.get_unchecked((i + r) * nb + b).qs.as_ptr().add(128 * h + 32 * g + 4 * t);
                                        let yv = _mm256_set1_epi32((y as *const i32).read_unaligned());
                                        s16[r] = _mm256_add_epi16(s16[r], _mm256_maddubs_epi16(q, yv));
                                    }
                                }
                                for r in 0..R {
                                    sumi[r] = _mm256_add_epi32(sumi[r], _mm256_madd_epi16(s16[r], scales));
                                }
                            }
                        }
                    }
                }
                let d = _mm256_cvtph_ps(_mm_loadu_si128(w.d.as_ptr() as *const __m128i));
                for r in 0..R {
                    acc[r] = add_block(acc[r], sumi[r], d, w, xs.get_unchecked((i + r) * nb + b));
                }
            }
        }
        super::super::store_rows(&acc, out, i);
    }
}

/// The AVX-512 VNNI body: `vpdpbusd` (at 256 bits) multiplies the six-bit codes by the
/// activation codes, adds each lane's four products and accumulates in 32 bits, so a whole
/// 16-value sub-block (at most 16 · 63 · 127 = 128,016 in a lane) sums before one 32-bit
/// multiply by the rows' scales: 6 instructions per 16 products of a row instead of 12 (two
/// `maddubs`, their 16-bit adds, a `madd` and its add per pair of steps). The same integers.
#[cfg(target_arch = "x86_64")]
pub mod vnni {
    use super::{BlockQ6Kx8, BlockQ8K};
    use std::arch::x86_64::*;

    /// Activation rows that share each unpacked weight load.
    const ROWS: usize = 4;

    super::super::grouped_dot_group!(BlockQ6Kx8, BlockQ8K, "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni", [4, 3, 2]);

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    unsafe fn rows<const R: usize>(group: &[BlockQ6Kx8], xs: &[BlockQ8K], i: usize, out: &mut [f32]) {
        let nb = group.len();
        let mut acc = [_mm256_setzero_ps(); R];
        for (b, w) in group.iter().enumerate() {
            // SAFETY: every load below is inside the packed block or an activation block
            // (rows i..i + R of xs exist, each with nb blocks).
            unsafe {
                super::super::prefetch_ahead(w);
                let mut sumi = [_mm256_setzero_si256(); R];
                // Step by step through the block, as the file stores it: each step's three
                // loads give the codes of all four quarters, which feed four sub-blocks'
                // sums at once (four independent chains a row, the block read in order).
                for h in 0..2 {
                    for half in 0..2 {
                        let mut s32 = [[_mm256_setzero_si256(); 4]; R];
                        for t in 4 * half..4 * half + 4 {
                            let q: [__m256i; 4] = std::array::from_fn(|g| super::avx2::codes(w, 8 * h + t, g));
                            for r in 0..R {
                                let y = xs.get_unchecked((i + r) * nb + b).qs.as_ptr().add(128 * h + 4 * t);
                                for g in 0..4 {
                                    let yv = _mm256_set1_epi32((y.add(32 * g) as *const i32).read_unaligned());
                                    s32[r][g] = _mm256_dpbusd_epi32(s32[r][g], q[g], yv);
                                }
                            }
                        }
                        for g in 0..4 {
                            // Sub-block 8h + 2g + half: quarter g of steps 4·half..4·half + 4.
                            let scales = _mm256_cvtepi8_epi32(_mm_loadl_epi64(w.scales.as_ptr().add(8 * (8 * h + 2 * g + half)) as *const __m128i));
                            for r in 0..R {
                                sumi[r] = _mm256_add_epi32(sumi[r], _mm256_mullo_epi32(s32[r][g], scales));
                            }
                        }
                    }
                }
                let d = _mm256_cvtph_ps(_mm_loadu_si128(w.d.as_ptr() as *const __m128i));
                for r in 0..R {
                    acc[r] = super::avx2::add_block(acc[r], sumi[r], d, w, xs.get_unchecked((i + r) * nb + b));
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

    fn random_block(rng: &mut rand::rngs::StdRng) -> BlockQ6K {
        BlockQ6K {
            ql: std::array::from_fn(|_| rng.random()),
            qh: std::array::from_fn(|_| rng.random()),
            scales: std::array::from_fn(|_| rng.random_range(-128..=127)),
            d: f16::from_f32(rng.random_range(0.0001f32..0.002)).to_bits(),
        }
    }

    /// The packed kernels (portable and SIMD) give what the row kernel gives on the same
    /// blocks, for odd block counts and every remainder of activation rows.
    #[test]
    fn packed_kernels_match_the_row_kernel() {
        crate::kernels::check_group_kernel::<BlockQ6Kx8>(66, &[(1, 1), (3, 2), (5, 3), (7, 5), (2, 4), (4, 9)], 1e-4, random_block, crate::kernels::q6_k::dot_many_portable);
    }

    /// The largest 16-bit sums the kernel forms: every code 63 against codes of 127 in
    /// magnitude; the SIMD sums must not wrap.
    #[test]
    fn the_largest_sums_do_not_overflow() {
        let w = BlockQ6K { ql: [0xFF; 128], qh: [0xFF; 64], scales: [127; 16], d: f16::from_f32(0.001).to_bits() };
        crate::kernels::check_largest_sums::<BlockQ6Kx8>(w, crate::kernels::q6_k::dot_many_portable);
    }
}
