//! Attention of one query over a run of cached f16 positions, for decoding: the scores
//! `scale * q·k_p` and the weighted sum `Σ w_p v_p`, reading the cache in place.
//!
//! Why: a decoded token's attention is one query against hundreds or thousands of cached
//! rows. Converting each row into a buffer and calling a dot product per position leaves the
//! multiply-adds waiting on each other; here four positions are in flight at once (scores)
//! and the output stays in registers across positions (values), converting f16 on the fly.
//! Both need a head width that is a multiple of 8 for the SIMD path; others take the portable
//! one, which the tests compare against.

use super::Isa;
use half::f16;
use std::ops::Range;

/// `out[j] = scale * dot(q, key of position positions.start + j)`, where position `p`'s key
/// is `keys[p * stride + at..][..q.len()]`.
pub fn scores(isa: Isa, q: &[f32], keys: &[f16], stride: usize, at: usize, positions: Range<usize>, scale: f32, out: &mut [f32]) {
    debug_assert_eq!(out.len(), positions.len());
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: Isa::Avx2 is only chosen after detecting AVX2, FMA and F16C.
        Isa::Avx2 if q.len() % 8 == 0 => unsafe { avx2::scores(q, keys, stride, at, positions, scale, out) },
        _ => {
            for (p, o) in positions.zip(out.iter_mut()) {
                let k = &keys[p * stride + at..][..q.len()];
                *o = scale * q.iter().zip(k).map(|(a, b)| a * b.to_f32()).sum::<f32>();
            }
        }
    }
}

/// `out += Σ_j weights[j] * value of position positions.start + j` (values laid out as keys
/// in [`scores`]).
pub fn weighted_values(isa: Isa, weights: &[f32], values: &[f16], stride: usize, at: usize, positions: Range<usize>, out: &mut [f32]) {
    debug_assert_eq!(weights.len(), positions.len());
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: Isa::Avx2 is only chosen after detecting AVX2, FMA and F16C.
        Isa::Avx2 if out.len() % 8 == 0 => unsafe { avx2::weighted_values(weights, values, stride, at, positions, out) },
        _ => {
            for (p, &w) in positions.zip(weights) {
                let v = &values[p * stride + at..][..out.len()];
                out.iter_mut().zip(v).for_each(|(o, v)| *o = w.mul_add(v.to_f32(), *o));
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use half::f16;
    use std::arch::x86_64::*;
    use std::ops::Range;

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    fn load8(row: &[f16], c: usize) -> __m256 {
        let s = &row[c..c + 8];
        // SAFETY: eight halfs in bounds (sliced above).
        unsafe { _mm256_cvtph_ps(_mm_loadu_si128(s.as_ptr() as *const __m128i)) }
    }

    /// Asks for position `p`'s row (`bytes` long from `row`) ahead of its use: rows are a
    /// stride apart (the other heads' entries lie between), which the hardware prefetcher
    /// follows poorly, and decoding over a long cache otherwise waits on memory.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn prefetch(row: *const f16, bytes: usize) {
        for off in (0..bytes).step_by(64) {
            // Prefetching never faults, whatever the address.
            _mm_prefetch::<_MM_HINT_T0>((row as *const i8).wrapping_add(off));
        }
    }

    /// Positions ahead of the current one whose rows are prefetched.
    const AHEAD: usize = 48;

    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn scores(q: &[f32], keys: &[f16], stride: usize, at: usize, positions: Range<usize>, scale: f32, out: &mut [f32]) {
        let hd = q.len();
        let row = |p: usize| &keys[p * stride + at..][..hd];
        let first = positions.start;
        let mut p = first;
        while p + 4 <= positions.end {
            for a in p + AHEAD..(p + AHEAD + 4).min(positions.end) {
                prefetch(keys.as_ptr().wrapping_add(a * stride + at), hd * 2);
            }
            let (r0, r1, r2, r3) = (row(p), row(p + 1), row(p + 2), row(p + 3));
            let mut acc = [_mm256_setzero_ps(); 4];
            for c in (0..hd).step_by(8) {
                // SAFETY: c + 8 <= hd = q.len().
                let qv = unsafe { _mm256_loadu_ps(q.as_ptr().add(c)) };
                acc[0] = _mm256_fmadd_ps(qv, load8(r0, c), acc[0]);
                acc[1] = _mm256_fmadd_ps(qv, load8(r1, c), acc[1]);
                acc[2] = _mm256_fmadd_ps(qv, load8(r2, c), acc[2]);
                acc[3] = _mm256_fmadd_ps(qv, load8(r3, c), acc[3]);
            }
            // Four horizontal sums at once: pairwise adds, then the two 128-bit halves.
            let h = _mm256_hadd_ps(_mm256_hadd_ps(acc[0], acc[1]), _mm256_hadd_ps(acc[2], acc[3]));
            let sums = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
            let scaled = _mm_mul_ps(sums, _mm_set1_ps(scale));
            let dst = &mut out[p - first..p - first + 4];
            // SAFETY: four floats in bounds (sliced above).
            unsafe { _mm_storeu_ps(dst.as_mut_ptr(), scaled) };
            p += 4;
        }
        while p < positions.end {
            let r = row(p);
            let mut acc = _mm256_setzero_ps();
            for c in (0..hd).step_by(8) {
                // SAFETY: c + 8 <= hd = q.len().
                acc = _mm256_fmadd_ps(unsafe { _mm256_loadu_ps(q.as_ptr().add(c)) }, load8(r, c), acc);
            }
            out[p - first] = scale * super::super::hsum_avx2(acc);
            p += 1;
        }
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn weighted_values(weights: &[f32], values: &[f16], stride: usize, at: usize, positions: Range<usize>, out: &mut [f32]) {
        let hd = out.len();
        // Sixty-four output values at a time stay in eight registers across all positions.
        for c0 in (0..hd).step_by(64) {
            let width = (hd - c0).min(64) / 8;
            let mut acc = [_mm256_setzero_ps(); 8];
            for (r, a) in acc.iter_mut().enumerate().take(width) {
                // SAFETY: c0 + 8r + 8 <= hd.
                *a = unsafe { _mm256_loadu_ps(out.as_ptr().add(c0 + 8 * r)) };
            }
            for (p, &w) in positions.clone().zip(weights) {
                if p + AHEAD < positions.end {
                    prefetch(values.as_ptr().wrapping_add((p + AHEAD) * stride + at + c0), (hd - c0).min(64) * 2);
                }
                let v = &values[p * stride + at..][..hd];
                let wv = _mm256_set1_ps(w);
                for (r, a) in acc.iter_mut().enumerate().take(width) {
                    *a = _mm256_fmadd_ps(wv, load8(v, c0 + 8 * r), *a);
                }
            }
            for (r, a) in acc.iter().enumerate().take(width) {
                // SAFETY: c0 + 8r + 8 <= hd.
                unsafe { _mm256_storeu_ps(out.as_mut_ptr().add(c0 + 8 * r), *a) };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn simd_and_portable_attention_agree() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for (hd, heads, positions) in [(64, 3, 37), (256, 1, 9), (40, 2, 5), (8, 1, 1), (128, 2, 4)] {
            let stride = hd * heads;
            let cache: Vec<f16> = (0..stride * (positions + 3)).map(|_| f16::from_f32(rng.random_range(-1.0f32..1.0))).collect();
            let q: Vec<f32> = (0..hd).map(|_| rng.random_range(-1.0f32..1.0)).collect();
            let at = (heads - 1) * hd;
            let range = 2..2 + positions;
            let (mut fast, mut slow) = (vec![0f32; positions], vec![0f32; positions]);
            scores(crate::kernels::best_isa(), &q, &cache, stride, at, range.clone(), 0.125, &mut fast);
            scores(Isa::Portable, &q, &cache, stride, at, range.clone(), 0.125, &mut slow);
            for (a, b) in fast.iter().zip(&slow) {
                assert!((a - b).abs() < 1e-5 * (1.0 + b.abs()), "scores {a} vs {b} (hd {hd})");
            }
            let w: Vec<f32> = (0..positions).map(|_| rng.random_range(0.0f32..1.0)).collect();
            let start: Vec<f32> = (0..hd).map(|_| rng.random_range(-1.0f32..1.0)).collect();
            let (mut fast, mut slow) = (start.clone(), start.clone());
            weighted_values(crate::kernels::best_isa(), &w, &cache, stride, at, range.clone(), &mut fast);
            weighted_values(Isa::Portable, &w, &cache, stride, at, range, &mut slow);
            for (a, b) in fast.iter().zip(&slow) {
                assert!((a - b).abs() < 1e-5 * (1.0 + b.abs()), "values {a} vs {b} (hd {hd})");
            }
            // And the portable path is the plain definition.
            let mut want = vec![0f32; positions];
            for (j, o) in want.iter_mut().enumerate() {
                *o = 0.125 * q.iter().zip(&cache[(2 + j) * stride + at..]).map(|(a, b)| a * b.to_f32()).sum::<f32>();
            }
            let mut plain = vec![0f32; positions];
            scores(Isa::Portable, &q, &cache, stride, at, 2..2 + positions, 0.125, &mut plain);
            assert_eq!(plain, want);
        }
    }
}
