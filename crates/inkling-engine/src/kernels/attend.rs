//! Attention of several queries over a run of cached f16 positions, for decoding and for a
//! prompt's runs of queries: the scores `scale * q_j·k_p` and the weighted sums
//! `Σ w_jp v_p`, reading the cache in place.
//!
//! Why several queries at once: a decoded token's attention is a few queries (the heads of a
//! grouped-query group, and, over a prompt that candidates share, every candidate's) against
//! hundreds or thousands of cached rows. Each cached row is loaded and converted from f16 once
//! per tile of up to four queries instead of once per query, and two positions (scores) or
//! sixteen output values (weighted sums) per query are in flight at once so the multiply-adds
//! do not wait on each other.
//!
//! Invariant: each query's result is the same arithmetic whatever the other queries of the
//! call and however the positions are split between calls (the fused multiply-adds run over
//! the head in order; every score is reduced by the same tree; weighted sums continue from
//! `out`). So a candidate's attention does not depend on whether its prompt is shared, and a
//! run of positions split at the end of a shared prefix gives what it gives whole.
//!
//! Both need a head width that is a multiple of 8 for the SIMD path; others take the portable
//! one, which the tests compare against.

use super::Isa;
use half::f16;
use std::ops::Range;

/// For each query `j` (`qs` holds them back to back, `hd` values each) and position `p`:
/// `out[j * row + p - positions.start] = scale * dot(q_j, keys[p * hd..][..hd])`.
#[allow(clippy::too_many_arguments)]
pub fn scores(isa: Isa, qs: &[f32], hd: usize, keys: &[f16], positions: Range<usize>, scale: f32, out: &mut [f32], row: usize) {
    debug_assert!(hd > 0 && qs.len().is_multiple_of(hd) && row >= positions.len());
    debug_assert!(out.len() >= (qs.len() / hd).saturating_sub(1) * row + positions.len());
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: Isa::Avx2 and above are only chosen after detecting AVX2, FMA and F16C.
        Isa::Avx2 | Isa::Avx512Vnni if hd.is_multiple_of(8) => unsafe { avx2::scores(qs, hd, keys, positions, scale, out, row) },
        _ => {
            let first = positions.start;
            for (j, q) in qs.chunks_exact(hd).enumerate() {
                for p in positions.clone() {
                    let k = &keys[p * hd..][..hd];
                    out[j * row + p - first] = scale * q.iter().zip(k).map(|(a, b)| a * b.to_f32()).sum::<f32>();
                }
            }
        }
    }
}

/// For each query `j`: `out[j * hd..][..hd] += Σ_p weights[j * row + p - positions.start] *
/// values[p * hd..][..hd]`, in position order.
pub fn weighted_values(isa: Isa, weights: &[f32], row: usize, values: &[f16], hd: usize, positions: Range<usize>, out: &mut [f32]) {
    debug_assert!(hd > 0 && out.len().is_multiple_of(hd) && row >= positions.len());
    debug_assert!(weights.len() >= (out.len() / hd).saturating_sub(1) * row + positions.len());
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: Isa::Avx2 and above are only chosen after detecting AVX2, FMA and F16C.
        Isa::Avx2 | Isa::Avx512Vnni if hd.is_multiple_of(8) => unsafe { avx2::weighted_values(weights, row, values, hd, positions, out) },
        _ => {
            let first = positions.start;
            for (j, o) in out.chunks_exact_mut(hd).enumerate() {
                for p in positions.clone() {
                    let w = weights[j * row + p - first];
                    let v = &values[p * hd..][..hd];
                    o.iter_mut().zip(v).for_each(|(o, v)| *o = w.mul_add(v.to_f32(), *o));
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use half::f16;
    use std::arch::x86_64::*;
    use std::ops::Range;

    /// Queries per tile: each converted row serves this many.
    const QUERIES: usize = 4;
    /// Positions ahead of the current one whose rows are prefetched.
    const AHEAD: usize = 48;

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    fn load8(row: &[f16], c: usize) -> __m256 {
        let s = &row[c..c + 8];
        // SAFETY: eight halfs in bounds (sliced above).
        unsafe { _mm256_cvtph_ps(_mm_loadu_si128(s.as_ptr() as *const __m128i)) }
    }

    /// Asks for a row (`bytes` long) ahead of its use: one core does not keep enough reads
    /// in flight on its own to stream a long cache at the memory's speed.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn prefetch(row: *const f16, bytes: usize) {
        for off in (0..bytes).step_by(64) {
            // Prefetching never faults, whatever the address.
            _mm_prefetch::<_MM_HINT_T0>((row as *const i8).wrapping_add(off));
        }
    }

    /// The four horizontal sums of `a`, `b`, `c`, `d`, each by the same tree:
    /// ((x0 + x1) + (x2 + x3)) + ((x4 + x5) + (x6 + x7)).
    #[inline]
    #[target_feature(enable = "avx2")]
    fn hsum4(a: __m256, b: __m256, c: __m256, d: __m256) -> __m128 {
        let h = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
        _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1))
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn scores(qs: &[f32], hd: usize, keys: &[f16], positions: Range<usize>, scale: f32, out: &mut [f32], row: usize) {
        let m = qs.len() / hd;
        let mut j = 0;
        while j < m {
            let take = (m - j).min(QUERIES);
            let (q, o) = (&qs[j * hd..(j + take) * hd], &mut out[j * row..]);
            match take {
                4 => scores_tile::<4>(q, hd, keys, positions.clone(), scale, o, row),
                3 => scores_tile::<3>(q, hd, keys, positions.clone(), scale, o, row),
                2 => scores_tile::<2>(q, hd, keys, positions.clone(), scale, o, row),
                _ => scores_tile::<1>(q, hd, keys, positions.clone(), scale, o, row),
            }
            j += take;
        }
    }

    /// `Q` queries, two positions at a time (a lone last position is computed twice and
    /// stored once).
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    fn scores_tile<const Q: usize>(qs: &[f32], hd: usize, keys: &[f16], positions: Range<usize>, scale: f32, out: &mut [f32], row: usize) {
        let first = positions.start;
        let scale = _mm_set1_ps(scale);
        let mut p = first;
        while p < positions.end {
            let pair = p + 1 < positions.end;
            for a in (p + AHEAD..p + AHEAD + 2).take_while(|a| *a < positions.end) {
                prefetch(keys.as_ptr().wrapping_add(a * hd), hd * 2);
            }
            let r0 = &keys[p * hd..][..hd];
            let r1 = if pair { &keys[(p + 1) * hd..][..hd] } else { r0 };
            // acc[2j + k]: query j, position p + k; the rest stay zero for the sums below.
            let mut acc = [_mm256_setzero_ps(); 8];
            for c in (0..hd).step_by(8) {
                let (k0, k1) = (load8(r0, c), load8(r1, c));
                for jq in 0..Q {
                    // SAFETY: jq * hd + c + 8 <= Q * hd = qs.len().
                    let qv = unsafe { _mm256_loadu_ps(qs.as_ptr().add(jq * hd + c)) };
                    acc[2 * jq] = _mm256_fmadd_ps(qv, k0, acc[2 * jq]);
                    acc[2 * jq + 1] = _mm256_fmadd_ps(qv, k1, acc[2 * jq + 1]);
                }
            }
            let mut sums = [0f32; 8];
            // SAFETY: four floats each, in bounds of `sums`.
            unsafe {
                _mm_storeu_ps(sums.as_mut_ptr(), _mm_mul_ps(hsum4(acc[0], acc[1], acc[2], acc[3]), scale));
                if Q > 2 {
                    _mm_storeu_ps(sums.as_mut_ptr().add(4), _mm_mul_ps(hsum4(acc[4], acc[5], acc[6], acc[7]), scale));
                }
            }
            for jq in 0..Q {
                out[jq * row + p - first] = sums[2 * jq];
                if pair {
                    out[jq * row + p + 1 - first] = sums[2 * jq + 1];
                }
            }
            p += 2;
        }
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn weighted_values(weights: &[f32], row: usize, values: &[f16], hd: usize, positions: Range<usize>, out: &mut [f32]) {
        let m = out.len() / hd;
        let mut j = 0;
        while j < m {
            let take = (m - j).min(QUERIES);
            let (w, o) = (&weights[j * row..], &mut out[j * hd..(j + take) * hd]);
            for c0 in (0..hd).step_by(16) {
                let wide = hd - c0 >= 16;
                match (take, wide) {
                    (4, true) => values_tile::<4, 2>(w, row, values, hd, positions.clone(), o, c0),
                    (3, true) => values_tile::<3, 2>(w, row, values, hd, positions.clone(), o, c0),
                    (2, true) => values_tile::<2, 2>(w, row, values, hd, positions.clone(), o, c0),
                    (_, true) => values_tile::<1, 2>(w, row, values, hd, positions.clone(), o, c0),
                    (4, false) => values_tile::<4, 1>(w, row, values, hd, positions.clone(), o, c0),
                    (3, false) => values_tile::<3, 1>(w, row, values, hd, positions.clone(), o, c0),
                    (2, false) => values_tile::<2, 1>(w, row, values, hd, positions.clone(), o, c0),
                    (_, false) => values_tile::<1, 1>(w, row, values, hd, positions.clone(), o, c0),
                }
            }
            j += take;
        }
    }

    /// `Q` queries' output values `c0..c0 + 8D`, kept in registers across all positions.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    fn values_tile<const Q: usize, const D: usize>(weights: &[f32], row: usize, values: &[f16], hd: usize, positions: Range<usize>, out: &mut [f32], c0: usize) {
        let first = positions.start;
        let mut acc = [[_mm256_setzero_ps(); D]; Q];
        for (jq, a) in acc.iter_mut().enumerate() {
            for (d, a) in a.iter_mut().enumerate() {
                // SAFETY: jq * hd + c0 + 8d + 8 <= Q * hd = out.len().
                *a = unsafe { _mm256_loadu_ps(out.as_ptr().add(jq * hd + c0 + 8 * d)) };
            }
        }
        for p in positions.clone() {
            if p + AHEAD < positions.end {
                prefetch(values.as_ptr().wrapping_add((p + AHEAD) * hd + c0), 16 * D);
            }
            let v = &values[p * hd..][..hd];
            let vs: [__m256; D] = std::array::from_fn(|d| load8(v, c0 + 8 * d));
            for (jq, a) in acc.iter_mut().enumerate() {
                let w = _mm256_set1_ps(weights[jq * row + p - first]);
                for (a, v) in a.iter_mut().zip(&vs) {
                    *a = _mm256_fmadd_ps(w, *v, *a);
                }
            }
        }
        for (jq, a) in acc.iter().enumerate() {
            for (d, a) in a.iter().enumerate() {
                // SAFETY: as for the loads above.
                unsafe { _mm256_storeu_ps(out.as_mut_ptr().add(jq * hd + c0 + 8 * d), *a) };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// SIMD and portable paths agree for every query count and head width tried, and the
    /// portable path is the plain definition.
    #[test]
    fn simd_and_portable_attention_agree() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for (hd, m, positions) in [(64, 3, 37), (256, 1, 9), (40, 2, 5), (8, 1, 1), (128, 9, 4), (64, 5, 2), (24, 7, 11)] {
            let cache: Vec<f16> = (0..hd * (positions + 3)).map(|_| f16::from_f32(rng.random_range(-1.0f32..1.0))).collect();
            let qs: Vec<f32> = (0..m * hd).map(|_| rng.random_range(-1.0f32..1.0)).collect();
            let range = 2..2 + positions;
            let row = positions + 3;
            let (mut fast, mut slow) = (vec![0f32; m * row], vec![0f32; m * row]);
            scores(crate::kernels::best_isa(), &qs, hd, &cache, range.clone(), 0.125, &mut fast, row);
            scores(Isa::Portable, &qs, hd, &cache, range.clone(), 0.125, &mut slow, row);
            for (a, b) in fast.iter().zip(&slow) {
                assert!((a - b).abs() < 1e-5 * (1.0 + b.abs()), "scores {a} vs {b} (hd {hd}, {m} queries)");
            }
            for (j, q) in qs.chunks_exact(hd).enumerate() {
                for p in range.clone() {
                    let want = 0.125 * q.iter().zip(&cache[p * hd..]).map(|(a, b)| a * b.to_f32()).sum::<f32>();
                    assert_eq!(slow[j * row + p - 2], want);
                }
                assert!(slow[j * row + positions..(j + 1) * row].iter().all(|x| *x == 0.0), "wrote past the positions");
            }
            let w: Vec<f32> = (0..m * row).map(|_| rng.random_range(0.0f32..1.0)).collect();
            let start: Vec<f32> = (0..m * hd).map(|_| rng.random_range(-1.0f32..1.0)).collect();
            let (mut fast, mut slow) = (start.clone(), start.clone());
            weighted_values(crate::kernels::best_isa(), &w, row, &cache, hd, range.clone(), &mut fast);
            weighted_values(Isa::Portable, &w, row, &cache, hd, range.clone(), &mut slow);
            for (a, b) in fast.iter().zip(&slow) {
                assert!((a - b).abs() < 1e-5 * (1.0 + b.abs()), "values {a} vs {b} (hd {hd}, {m} queries)");
            }
        }
    }

    /// A query's results are bit for bit the same alone or among others, and over a run of
    /// positions whole or split in two (what sharing a prompt's cache between candidates
    /// relies on).
    #[test]
    fn a_query_is_independent_of_its_company_and_of_splits() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let isa = crate::kernels::best_isa();
        let (hd, m, n) = (64, 7, 45);
        let cache: Vec<f16> = (0..hd * n).map(|_| f16::from_f32(rng.random_range(-1.0f32..1.0))).collect();
        let qs: Vec<f32> = (0..m * hd).map(|_| rng.random_range(-1.0f32..1.0)).collect();
        let mut all = vec![0f32; m * n];
        scores(isa, &qs, hd, &cache, 0..n, 0.125, &mut all, n);
        for (j, q) in qs.chunks_exact(hd).enumerate() {
            for cut in [0, 1, 2, 17, 30, n] {
                let mut one = vec![0f32; n];
                scores(isa, q, hd, &cache, 0..cut, 0.125, &mut one, n);
                scores(isa, q, hd, &cache, cut..n, 0.125, &mut one[cut..], n - cut);
                assert_eq!(one, all[j * n..(j + 1) * n], "query {j}, split at {cut}");
            }
        }
        let w: Vec<f32> = (0..m * n).map(|_| rng.random_range(0.0f32..1.0)).collect();
        let mut all = vec![0f32; m * hd];
        weighted_values(isa, &w, n, &cache, hd, 0..n, &mut all);
        for j in 0..m {
            for cut in [0, 3, 22, n] {
                let mut one = vec![0f32; hd];
                weighted_values(isa, &w[j * n..], n, &cache, hd, 0..cut, &mut one);
                weighted_values(isa, &w[j * n + cut..], n - cut, &cache, hd, cut..n, &mut one);
                assert_eq!(one, all[j * hd..(j + 1) * hd], "query {j}, split at {cut}");
            }
        }
    }
}
