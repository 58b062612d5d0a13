//! Hand-written matrix-product kernels for the weight formats where candle's block kernels
//! are scalar (Q4_1, the default model's format; Q5_0), round differently from ggml (Q8_0),
//! or take one activation row per call (Q4_K, Q6_K: ours unpack a weight block once for
//! several). Q4_1, Q5_0, Q8_0, Q4_K and Q6_K matrices are repacked eight rows at a time at
//! load (`*x8` modules); the row kernels serve matrices whose rows are not a multiple of 8. Each kernel has a portable version that the
//! tests compare with the SIMD one, and the SIMD version is chosen at run time from the CPU's
//! features, so a binary built on one machine still runs correctly on another.

pub mod attend;
pub mod q4_1;
// The group kernels index several register arrays by the same row.
#[allow(clippy::needless_range_loop)]
pub mod q4_1x8;
pub mod q4_k;
pub mod q4_kx8;
pub mod q5_0;
// The group kernels index several register arrays by the same row.
#[allow(clippy::needless_range_loop)]
pub mod q5_0x8;
pub mod q6_k;
// The group kernels index several register arrays by the same row.
#[allow(clippy::needless_range_loop)]
pub mod q6_kx8;
pub mod q8_0;
// The group kernels index several register arrays by the same row.
#[allow(clippy::needless_range_loop)]
pub mod q8_0x8;

/// `v` rounded through f16, as ggml stores block scales and the KV cache.
#[inline]
pub fn round_f16(v: f32) -> f32 {
    half::f16::from_f32(v).to_f32()
}

/// ggml's 8-bit activation quantization of one block: scale `amax / 127`, codes
/// `round_ties_even(v * 127 / amax)`. Returns the f32 scale and the sum of the codes.
pub fn quantize_block_i8(x: &[f32], qs: &mut [i8]) -> (f32, i32) {
    let amax = x.iter().fold(0f32, |a, v| a.max(v.abs()));
    let d = amax / 127.0;
    let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
    let mut sum = 0i32;
    for (q, v) in qs.iter_mut().zip(x) {
        // Codes stay within ±127 even when `127 / amax` overflows (a subnormal block: only a
        // damaged model makes one), where the product would otherwise saturate to i32::MAX.
        let r = ((v * id).round_ties_even() as i32).clamp(-127, 127);
        *q = r as i8;
        sum += r;
    }
    (d, sum)
}

/// A weight format with its own kernels: how activations are quantized for it and how one
/// weight row is multiplied with a batch of quantized activation rows.
pub trait RowKernel {
    /// One block of weights as stored in the GGUF file.
    type Weight: Copy + Sync;
    /// One block of quantized activations.
    type Act: Copy + Default + Send + Sync;
    const BLOCK: usize;
    fn quantize(x: &[f32], out: &mut [Self::Act]);
    /// `out[i] = dot(w_row, xs[i])` for each activation row `i` of `xs`, in plain Rust.
    fn dot_many_portable(w_row: &[Self::Weight], xs: &[Self::Act], out: &mut [f32]);
    /// The same with AVX2 and FMA.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[cfg(target_arch = "x86_64")]
    unsafe fn dot_many_avx2(w_row: &[Self::Weight], xs: &[Self::Act], out: &mut [f32]);

    /// The product on the given instruction set. The row kernels have no AVX-512 bodies:
    /// they serve only matrices whose rows are not a multiple of eight, a small share.
    fn dot_many(isa: Isa, w_row: &[Self::Weight], xs: &[Self::Act], out: &mut [f32]) {
        match isa {
            Isa::Portable => Self::dot_many_portable(w_row, xs, out),
            #[cfg(target_arch = "x86_64")]
            // SAFETY: both are only chosen after run-time detection of AVX2 and FMA.
            Isa::Avx2 | Isa::Avx512Vnni => unsafe { Self::dot_many_avx2(w_row, xs, out) },
        }
    }
}

/// A weight format repacked eight rows at a time (`q4_1x8`, `q5_0x8`): one call multiplies
/// a group of eight weight rows with a batch of quantized activation rows.
/// Implemented by the packed block type itself: eight rows' blocks of one column.
pub trait GroupKernel: Copy + Send + Sync + Sized {
    /// One block of weights as stored in the GGUF file.
    type Weight: Copy + Sync;
    /// One block of quantized activations.
    type Act: Copy + Default + Send + Sync;
    const BLOCK: usize;
    fn quantize(x: &[f32], out: &mut [Self::Act]);
    /// Eight rows' blocks of one column, interleaved.
    fn pack_block(src: [&Self::Weight; 8]) -> Self;
    /// `out[i * 8 + r] = dot(row r, xs row i)`, in plain Rust.
    fn dot_group_portable(group: &[Self], xs: &[Self::Act], out: &mut [f32]);
    /// The same with AVX2, FMA and F16C.
    ///
    /// # Safety
    /// The CPU must support AVX2, FMA and F16C.
    #[cfg(target_arch = "x86_64")]
    unsafe fn dot_group_avx2(group: &[Self], xs: &[Self::Act], out: &mut [f32]);
    /// The same with AVX-512 VNNI at 256 bits (`vpdpbusd` multiplies, adds four products
    /// and accumulates in 32 bits in one instruction).
    ///
    /// # Safety
    /// The CPU must support AVX2, FMA, F16C, AVX-512 F/BW/VL and AVX-512 VNNI.
    #[cfg(target_arch = "x86_64")]
    unsafe fn dot_group_vnni(group: &[Self], xs: &[Self::Act], out: &mut [f32]);

    /// The product on the given instruction set.
    fn dot_group(isa: Isa, group: &[Self], xs: &[Self::Act], out: &mut [f32]) {
        match isa {
            Isa::Portable => Self::dot_group_portable(group, xs, out),
            #[cfg(target_arch = "x86_64")]
            // SAFETY: Isa::Avx2 is only chosen after detecting AVX2, FMA and F16C.
            Isa::Avx2 => unsafe { Self::dot_group_avx2(group, xs, out) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: Isa::Avx512Vnni is only chosen after detecting its features and AVX2's.
            Isa::Avx512Vnni => unsafe { Self::dot_group_vnni(group, xs, out) },
        }
    }
}

/// Implements [`GroupKernel`] for a packed module's block type: `$module` supplies
/// `pack_block`, `dot_group_portable`, `avx2::dot_group` and `vnni::dot_group`; `$quantize` quantizes the
/// activations.
macro_rules! group_kernel {
    ($module:ident :: $packed:ident, weight: $weight:ty, act: $act:ty, block: $block:expr, quantize: $quantize:path) => {
        impl GroupKernel for $module::$packed {
            type Weight = $weight;
            type Act = $act;
            const BLOCK: usize = $block;
            fn quantize(x: &[f32], out: &mut [Self::Act]) {
                $quantize(x, out)
            }
            fn pack_block(src: [&Self::Weight; 8]) -> Self {
                $module::pack_block(src)
            }
            fn dot_group_portable(group: &[Self], xs: &[Self::Act], out: &mut [f32]) {
                $module::dot_group_portable(group, xs, out)
            }
            #[cfg(target_arch = "x86_64")]
            unsafe fn dot_group_avx2(group: &[Self], xs: &[Self::Act], out: &mut [f32]) {
                // SAFETY: the caller guarantees the features.
                unsafe { $module::avx2::dot_group(group, xs, out) }
            }
            #[cfg(target_arch = "x86_64")]
            unsafe fn dot_group_vnni(group: &[Self], xs: &[Self::Act], out: &mut [f32]) {
                // SAFETY: the caller guarantees the features.
                unsafe { $module::vnni::dot_group(group, xs, out) }
            }
        }
    };
}

group_kernel!(q4_1x8::BlockQ4_1x8, weight: q4_1::BlockQ4_1, act: q4_1::BlockQ8_1, block: 32, quantize: q4_1::quantize_q8_1);
group_kernel!(q5_0x8::BlockQ5_0x8, weight: q5_0::BlockQ5_0, act: q5_0x8::BlockQ8Sum, block: 32, quantize: q5_0x8::quantize);
group_kernel!(q8_0x8::BlockQ8_0x8, weight: q8_0::BlockQ8_0, act: q8_0::BlockQ8Act, block: 32, quantize: q8_0::quantize);
group_kernel!(q4_kx8::BlockQ4Kx8, weight: q4_k::BlockQ4K, act: q6_k::BlockQ8K, block: 256, quantize: q6_k::quantize_q8_k);
group_kernel!(q6_kx8::BlockQ6Kx8, weight: q6_k::BlockQ6K, act: q6_k::BlockQ8K, block: 256, quantize: q6_k::quantize_q8_k);

/// Interleaves a row-major matrix's blocks (whole groups of eight rows, `nb` blocks per row)
/// into `out`: group `g`, block column `b` lands at `g * nb + b`. Every slot of `out` (one
/// per eight blocks) is written.
pub fn pack_into<K: GroupKernel>(blocks: &[K::Weight], nb: usize, out: &mut [std::mem::MaybeUninit<K>]) {
    debug_assert_eq!(blocks.len() % (8 * nb), 0);
    debug_assert_eq!(out.len() * 8, blocks.len());
    for (group, dst) in blocks.chunks_exact(8 * nb).zip(out.chunks_mut(nb)) {
        for (b, slot) in dst.iter_mut().enumerate() {
            slot.write(K::pack_block(std::array::from_fn(|r| &group[r * nb + b])));
        }
    }
}

/// [`pack_into`] a new vector (the tests' way; `quant` packs in parallel chunks).
#[cfg(test)]
pub fn pack<K: GroupKernel>(blocks: &[K::Weight], nb: usize) -> Vec<K> {
    let total = blocks.len() / 8;
    let mut out = Vec::with_capacity(total);
    pack_into(blocks, nb, &mut out.spare_capacity_mut()[..total]);
    // SAFETY: pack_into wrote slots 0..total.
    unsafe { out.set_len(total) };
    out
}

/// Instruction sets a kernel can use, detected once, in rising order: each includes the
/// features of those before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Isa {
    Portable,
    /// AVX2, FMA and F16C.
    #[cfg(target_arch = "x86_64")]
    Avx2,
    /// AVX2's features and AVX-512 F, BW, VL and VNNI (Ice Lake and later Xeons, Zen 4).
    /// The kernels use 256-bit registers: `vpdpbusd` is the gain, and 256 bits keep
    /// the clock up on Intel and are full-rate on Zen 4, whose 512-bit ops take two cycles.
    #[cfg(target_arch = "x86_64")]
    Avx512Vnni,
}

impl Isa {
    /// The name `INKLING_KERNELS` takes and `inkling bench` prints.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Portable => "portable",
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => "avx2",
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512Vnni => "avx512vnni",
        }
    }

    /// Every instruction set this build knows, lowest first.
    pub fn all() -> &'static [Isa] {
        #[cfg(target_arch = "x86_64")]
        return &[Isa::Portable, Isa::Avx2, Isa::Avx512Vnni];
        #[allow(unreachable_code)]
        &[Isa::Portable]
    }

    /// The instruction set named `name` (see [`Isa::name`]).
    pub fn named(name: &str) -> Option<Isa> {
        Isa::all().iter().copied().find(|isa| isa.name() == name)
    }
}

/// Set by [`limit_kernels`]: the highest instruction set the kernels may use.
static CEILING: std::sync::Mutex<Option<Isa>> = std::sync::Mutex::new(None);

/// Keeps the kernels at or below `ceiling` from now on, even where the CPU has more: the
/// binary's `INKLING_KERNELS=avx2` measures the AVX2 path on an AVX-512 machine, and
/// `portable` the plain-Rust one. Call it before the first model loads: the choice is made
/// once.
pub fn limit_kernels(ceiling: Isa) {
    if let Ok(mut c) = CEILING.lock() {
        *c = Some(ceiling);
    }
}

/// The best instruction set this CPU has (ignoring [`limit_kernels`]).
pub fn detected_isa() -> Isa {
    #[cfg(target_arch = "x86_64")]
    {
        let avx2 = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") && is_x86_feature_detected!("f16c");
        let vnni = is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bw") && is_x86_feature_detected!("avx512vl") && is_x86_feature_detected!("avx512vnni");
        return match (avx2, vnni) {
            (true, true) => Isa::Avx512Vnni,
            (true, false) => Isa::Avx2,
            _ => Isa::Portable,
        };
    }
    #[allow(unreachable_code)]
    Isa::Portable
}

/// The instruction set the kernels use, chosen at the first call from what the CPU has and
/// the ceiling [`limit_kernels`] set.
pub fn best_isa() -> Isa {
    static ISA: std::sync::OnceLock<Isa> = std::sync::OnceLock::new();
    *ISA.get_or_init(|| {
        let ceiling = CEILING.lock().ok().and_then(|c| *c);
        let detected = detected_isa();
        ceiling.map_or(detected, |c| c.min(detected))
    })
}

/// Calls `rows(i, count)` over `0..n` in groups: once for each whole group of `R`
/// activation rows starting at `i` (`count == R`), then once for the leftover rows
/// (`count < R`). The kernels' drivers: a group shares each unpacked weight block, and so
/// does the remainder (three candidates decoding together unpack each block once, not thrice).
#[inline]
pub(crate) fn in_groups<const R: usize>(n: usize, mut rows: impl FnMut(usize, usize)) {
    let mut i = 0;
    while i + R <= n {
        rows(i, R);
        i += R;
    }
    if i < n {
        rows(i, n - i);
    }
}

/// Defines a kernel's `dot_many`: its `dot_rows::<ROWS>` over each whole group of activation
/// rows, then `dot_rows::<k>` over the `k < ROWS` left (see [`in_groups`]).
macro_rules! grouped_dot_many {
    ($weight:ty, $act:ty) => {
        #[target_feature(enable = "avx2,fma")]
        pub unsafe fn dot_many(w_row: &[$weight], xs: &[$act], out: &mut [f32]) {
            super::super::in_groups::<ROWS>(out.len(), |i, count| {
                // SAFETY: AVX2 and FMA as the caller guarantees.
                unsafe {
                    if count == ROWS {
                        dot_rows::<ROWS>(w_row, xs, i, out)
                    } else {
                        match count {
                            7 => dot_rows::<7>(w_row, xs, i, out),
                            6 => dot_rows::<6>(w_row, xs, i, out),
                            5 => dot_rows::<5>(w_row, xs, i, out),
                            4 => dot_rows::<4>(w_row, xs, i, out),
                            3 => dot_rows::<3>(w_row, xs, i, out),
                            2 => dot_rows::<2>(w_row, xs, i, out),
                            _ => dot_rows::<1>(w_row, xs, i, out),
                        }
                    }
                }
            });
        }
    };
}
#[cfg(target_arch = "x86_64")]
pub(crate) use grouped_dot_many;

/// Defines a packed kernel's `dot_group` (the SIMD version of its `dot_group_portable`): its
/// `rows::<ROWS>` over each whole group of activation rows, then `rows::<k>` over the
/// `k < ROWS` left. The AVX2 kernels take at most four rows per pass (sixteen registers);
/// the AVX-512 ones, with thirty-two, name their features and the counts they take.
macro_rules! grouped_dot_group {
    ($group:ty, $act:ty) => {
        super::super::grouped_dot_group!($group, $act, "avx2,fma,f16c", [4, 3, 2]);
    };
    ($group:ty, $act:ty, $features:literal, [$($count:literal),*]) => {
        /// `out[i * 8 + r] = dot(row r of the group, xs row i)`, with SIMD.
        ///
        /// # Safety
        /// The CPU must support the features this function enables.
        #[target_feature(enable = $features)]
        pub unsafe fn dot_group(group: &[$group], xs: &[$act], out: &mut [f32]) {
            super::super::in_groups::<ROWS>(out.len() / 8, |i, count| {
                // SAFETY: the features as the caller guarantees.
                unsafe {
                    match count {
                        $($count => rows::<$count>(group, xs, i, out),)*
                        _ => rows::<1>(group, xs, i, out),
                    }
                }
            });
        }
    };
}
#[cfg(target_arch = "x86_64")]
pub(crate) use grouped_dot_group;

/// How the kernels ask for weights ahead of reading them. Weights stream through once per
/// token, and how best to keep enough reads in flight depends on the pages under them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightPrefetch {
    /// No software prefetch.
    Off,
    /// All of a block's cache lines requested as its product starts: the lines arrive
    /// together instead of one miss after another in the kernel's reading order. Best on
    /// 2 MiB pages, where the hardware prefetchers run on ahead by themselves: a 2-core Zen 4
    /// decoded the 1.5B at 13.2-14.6 tok/s on one thread, against 8.5-10.4 with no prefetch
    /// and 8.5-8.8 with `Ahead` (BENCHMARKS.md).
    Current,
    /// The lines 4 KiB past the block. On 4 KiB pages the hardware prefetchers stop at each
    /// page's end: Gemma's Q8_0 output projection went from 12 to 17 GB/s on two Zen 1 cores.
    Ahead,
}

impl WeightPrefetch {
    /// The name `INKLING_PREFETCH` takes.
    pub fn named(name: &str) -> Option<WeightPrefetch> {
        match name {
            "off" => Some(WeightPrefetch::Off),
            "current" => Some(WeightPrefetch::Current),
            "ahead" => Some(WeightPrefetch::Ahead),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            WeightPrefetch::Off => "off",
            WeightPrefetch::Current => "current",
            WeightPrefetch::Ahead => "ahead",
        }
    }
}

/// Set by [`set_weight_prefetch`].
static PREFETCH_CHOICE: std::sync::Mutex<Option<WeightPrefetch>> = std::sync::Mutex::new(None);

/// Sets how the kernels prefetch weights, whatever [`weight_prefetch`] would choose (the
/// binary's `INKLING_PREFETCH`, to measure each). Call it before the first product: the
/// choice is made once.
pub fn set_weight_prefetch(choice: WeightPrefetch) {
    if let Ok(mut c) = PREFETCH_CHOICE.lock() {
        *c = Some(choice);
    }
}

/// How the kernels prefetch weights: [`WeightPrefetch::Current`] where the repacked weights
/// can have 2 MiB pages (`quant::huge_pages_available`), else [`WeightPrefetch::Ahead`].
pub fn weight_prefetch() -> WeightPrefetch {
    static CHOICE: std::sync::OnceLock<WeightPrefetch> = std::sync::OnceLock::new();
    *CHOICE.get_or_init(|| PREFETCH_CHOICE.lock().ok().and_then(|c| *c).unwrap_or(if crate::quant::huge_pages_available() { WeightPrefetch::Current } else { WeightPrefetch::Ahead }))
}

/// Asks for `block`'s cache lines, or those 4 KiB past it, as [`weight_prefetch`] says. A
/// hint: addresses past the weights' end are harmless.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) fn prefetch_ahead<T>(block: &T) {
    use std::arch::x86_64::*;
    let distance = match weight_prefetch() {
        WeightPrefetch::Off => return,
        WeightPrefetch::Current => 0,
        WeightPrefetch::Ahead => 4096,
    };
    let p = (block as *const T as *const i8).wrapping_add(distance);
    for off in (0..std::mem::size_of::<T>()).step_by(64) {
        // Prefetching never faults, whatever the address.
        _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(off));
    }
}

/// Writes a packed kernel's results: `acc[r]`, the group's eight rows against activation row
/// `i + r`, to `out[(i + r) * 8..][..8]`.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) fn store_rows(acc: &[std::arch::x86_64::__m256], out: &mut [f32], i: usize) {
    for (r, a) in acc.iter().enumerate() {
        let row = &mut out[(i + r) * 8..][..8];
        // SAFETY: `row` holds the eight values the store writes.
        unsafe { std::arch::x86_64::_mm256_storeu_ps(row.as_mut_ptr(), *a) };
    }
}

/// Horizontal sum of eight floats.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2,fma")]
pub(crate) fn hsum_avx2(v: std::arch::x86_64::__m256) -> f32 {
    use std::arch::x86_64::*;
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    _mm_cvtss_f32(_mm_add_ss(s, _mm_shuffle_ps(s, s, 1)))
}

/// Every instruction set this CPU can run, so the tests compare each with the portable
/// kernels, not only the best (an AVX-512 machine still checks its AVX2 bodies).
#[cfg(test)]
pub(crate) fn available_isas() -> impl Iterator<Item = Isa> {
    Isa::all().iter().copied().filter(|isa| *isa <= detected_isa())
}

/// Checks a kernel set on random blocks: the SIMD and portable paths agree, and both match
/// a dequantize-then-f32 reference, for odd block counts and batch sizes.
#[cfg(test)]
pub(crate) fn check_kernel<K: RowKernel, D: IntoIterator<Item = f32>>(mut block: impl FnMut(&mut rand::rngs::StdRng) -> K::Weight, dense: impl Fn(&K::Weight) -> D) {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(K::BLOCK as u64);
    for (nb, n) in [(1, 1), (3, 2), (7, 5), (20, 9)] {
        let w: Vec<K::Weight> = (0..nb).map(|_| block(&mut rng)).collect();
        let x: Vec<f32> = (0..n * nb * K::BLOCK).map(|_| rng.random_range(-2.0f32..2.0)).collect();
        let mut xq = vec![K::Act::default(); n * nb];
        for (q, row) in xq.chunks_mut(nb).zip(x.chunks(nb * K::BLOCK)) {
            K::quantize(row, q);
        }
        let reference: Vec<f32> = w.iter().flat_map(&dense).collect();
        let mut slow = vec![0f32; n];
        K::dot_many_portable(&w, &xq, &mut slow);
        let mut fast = vec![0f32; n];
        K::dot_many(best_isa(), &w, &xq, &mut fast);
        for i in 0..n {
            let exact: f32 = reference.iter().zip(&x[i * nb * K::BLOCK..]).map(|(a, b)| a * b).sum();
            assert!((slow[i] - fast[i]).abs() <= 1e-3 * (1.0 + exact.abs()), "simd {} vs portable {}", fast[i], slow[i]);
            assert!((slow[i] - exact).abs() < 0.02 * ((nb * K::BLOCK) as f32).sqrt() + 0.01 * exact.abs(), "{} vs {exact}", slow[i]);
        }
    }
}

/// Checks a packed kernel set on random blocks: for each `(blocks per row, activation rows)`
/// of `shapes`, 16 weight rows are packed, and every group's product matches between the
/// SIMD and portable paths (to `simd_tol`) and matches `row_kernel`, the row-at-a-time
/// kernel on the unpacked rows (to 1e-4).
#[cfg(test)]
pub(crate) fn check_group_kernel<K: GroupKernel>(
    seed: u64,
    shapes: &[(usize, usize)],
    simd_tol: f32,
    mut block: impl FnMut(&mut rand::rngs::StdRng) -> K::Weight,
    row_kernel: impl Fn(&[K::Weight], &[K::Act], &mut [f32]),
) {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    for &(nb, n) in shapes {
        let rows = 16;
        let w: Vec<K::Weight> = (0..rows * nb).map(|_| block(&mut rng)).collect();
        let x: Vec<f32> = (0..n * nb * K::BLOCK).map(|_| rng.random_range(-2.0f32..2.0)).collect();
        let mut xq = vec![K::Act::default(); n * nb];
        for (q, row) in xq.chunks_mut(nb).zip(x.chunks(nb * K::BLOCK)) {
            K::quantize(row, q);
        }
        let packed = pack::<K>(&w, nb);
        for g in 0..rows / 8 {
            let group = &packed[g * nb..(g + 1) * nb];
            let mut slow = vec![0f32; n * 8];
            K::dot_group_portable(group, &xq, &mut slow);
            for isa in available_isas() {
                let mut fast = vec![0f32; n * 8];
                K::dot_group(isa, group, &xq, &mut fast);
                for (a, b) in fast.iter().zip(&slow) {
                    assert!((a - b).abs() <= simd_tol * (1.0 + b.abs()), "{isa:?} {a} vs portable {b}");
                }
            }
            for r in 0..8 {
                let mut want = vec![0f32; n];
                row_kernel(&w[(g * 8 + r) * nb..(g * 8 + r + 1) * nb], &xq, &mut want);
                for i in 0..n {
                    let got = slow[i * 8 + r];
                    assert!((got - want[i]).abs() <= 1e-4 * (1.0 + want[i].abs()), "row {r} act {i}: packed {got} vs row kernel {}", want[i]);
                }
            }
        }
    }
}

/// Checks a packed K-quant kernel where its 16-bit sums are largest: eight copies of block
/// `w` (its codes and scales at their maximum) against activations of all +1 and all -1
/// (codes of magnitude 127). SIMD and portable must match the row kernel; a wrapped 16-bit
/// sum would not.
#[cfg(test)]
pub(crate) fn check_largest_sums<K: GroupKernel<Act = q6_k::BlockQ8K>>(w: K::Weight, row_kernel: impl Fn(&[K::Weight], &[q6_k::BlockQ8K], &mut [f32])) {
    let group = [K::pack_block([&w; 8])];
    for value in [1.0f32, -1.0] {
        let mut y = [q6_k::BlockQ8K::default()];
        K::quantize(&[value; 256], &mut y);
        assert_eq!(y[0].qs[0].unsigned_abs(), 127);
        let mut want = [0f32];
        row_kernel(std::slice::from_ref(&w), &y, &mut want);
        for isa in available_isas() {
            let mut got = [0f32; 8];
            K::dot_group(isa, &group, &y, &mut got);
            for g in got {
                assert!((g - want[0]).abs() <= 1e-4 * want[0].abs(), "{isa:?}: {g} vs {}", want[0]);
            }
        }
    }
}
