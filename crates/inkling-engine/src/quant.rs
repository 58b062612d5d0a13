//! Quantized weight matrices and the matrix products the forward pass runs on them.
//!
//! Weights stay in their GGUF block format (read in place from the memory map). A product
//! quantizes each activation row once into the block type the weight format pairs with
//! (Q8_0, Q8_1 or Q8_K) and runs integer dot products per weight row: inkling's kernels
//! (`kernels`) for Q4_1, Q5_0, Q8_0, Q4_K and Q6_K, candle's per-block kernels for the other
//! formats. Rows are split across the worker pool.
//! This module is the seam a faster kernel set replaces; tests compare it against a
//! dequantize-then-f32 reference.

use crate::disjoint::DisjointSlice;
use crate::error::{EngineError, Result};
use crate::gguf::{GgufFile, TensorBytes};
use crate::kernels::{self, RowKernel};
use candle_core::quantized::GgmlDType;
use candle_core::quantized::k_quants::{BlockQ2K, BlockQ3K, BlockQ4_0, BlockQ4_1, BlockQ4K, BlockQ5_0, BlockQ5_1, BlockQ5K, BlockQ6K, BlockQ8_0, GgmlType};
use half::{bf16, f16};
use rayon::prelude::*;
use std::sync::Arc;

/// A 2-D weight: `rows` outputs, each a dot product over `cols` inputs.
#[derive(Clone)]
pub struct QMatrix {
    pub dtype: GgmlDType,
    pub rows: usize,
    pub cols: usize,
    bytes: TensorBytes,
    /// The same weights repacked for a kernel that wants another layout (see
    /// [`QMatrix::into_packed`]); products use it when present, lookups use `bytes`.
    packed: Option<Packed>,
}

/// Weights in a repacked layout, held in memory of their own.
#[derive(Clone)]
enum Packed {
    Q4_1x8(Arc<Vec<kernels::q4_1x8::BlockQ4_1x8>>),
    Q5_0x8(Arc<Vec<kernels::q5_0x8::BlockQ5_0x8>>),
    Q8_0x8(Arc<Vec<kernels::q8_0x8::BlockQ8_0x8>>),
    Q4Kx8(Arc<Vec<kernels::q4_kx8::BlockQ4Kx8>>),
    Q6Kx8(Arc<Vec<kernels::q6_kx8::BlockQ6Kx8>>),
}

/// Runs `$body` with `$t` bound to the candle block type of `$dtype`.
macro_rules! with_block_type {
    ($dtype:expr, $t:ident => $body:expr) => {
        match $dtype {
            GgmlDType::F32 => {
                type $t = f32;
                $body
            }
            GgmlDType::F16 => {
                type $t = f16;
                $body
            }
            GgmlDType::BF16 => {
                type $t = bf16;
                $body
            }
            GgmlDType::Q4_0 => {
                type $t = BlockQ4_0;
                $body
            }
            GgmlDType::Q4_1 => {
                type $t = BlockQ4_1;
                $body
            }
            GgmlDType::Q5_0 => {
                type $t = BlockQ5_0;
                $body
            }
            GgmlDType::Q5_1 => {
                type $t = BlockQ5_1;
                $body
            }
            GgmlDType::Q8_0 => {
                type $t = BlockQ8_0;
                $body
            }
            GgmlDType::Q2K => {
                type $t = BlockQ2K;
                $body
            }
            GgmlDType::Q3K => {
                type $t = BlockQ3K;
                $body
            }
            GgmlDType::Q4K => {
                type $t = BlockQ4K;
                $body
            }
            GgmlDType::Q5K => {
                type $t = BlockQ5K;
                $body
            }
            GgmlDType::Q6K => {
                type $t = BlockQ6K;
                $body
            }
            GgmlDType::Q8_1 | GgmlDType::Q8K => unreachable!("rejected by QMatrix::new"),
        }
    };
}

fn supported(dtype: GgmlDType) -> bool {
    !matches!(dtype, GgmlDType::Q8_1 | GgmlDType::Q8K)
}

/// Reinterprets raw GGUF bytes as blocks. The candle block types are `repr(C)` plain data.
fn as_blocks<T>(bytes: &[u8]) -> &[T] {
    let size = std::mem::size_of::<T>();
    assert_eq!(bytes.len() % size, 0, "tensor byte length is a whole number of blocks");
    assert_eq!(bytes.as_ptr() as usize % std::mem::align_of::<T>(), 0, "GGUF tensor data is aligned");
    // SAFETY: length and alignment checked above; every bit pattern is a valid block.
    unsafe { std::slice::from_raw_parts(bytes.as_ptr() as *const T, bytes.len() / size) }
}

fn zeroed_blocks<T: GgmlType>(n: usize) -> Vec<T> {
    // SAFETY: block types are plain integers and halfs; all-zero is a valid value.
    (0..n).map(|_| unsafe { std::mem::zeroed() }).collect()
}

impl QMatrix {
    pub fn new(name: &str, dtype: GgmlDType, dims: &[usize], bytes: TensorBytes) -> Result<Self> {
        if !supported(dtype) {
            return Err(EngineError::UnsupportedQuantization { tensor: name.into(), dtype: format!("{dtype:?}") });
        }
        let (rows, cols) = match dims {
            [c] => (1, *c),
            [r, c] => (*r, *c),
            _ => return Err(EngineError::BadTensor { name: name.into(), problem: format!("has shape {dims:?}, expected a matrix") }),
        };
        if cols % dtype.block_size() != 0 {
            return Err(EngineError::BadTensor { name: name.into(), problem: format!("has rows of {cols} values, not a multiple of its block size {}", dtype.block_size()) });
        }
        Ok(Self { dtype, rows, cols, bytes, packed: None })
    }

    /// Loads tensor `name` from `file`, checking its shape against `expect` (rows, cols).
    pub fn load(file: &GgufFile, name: &str, expect: Option<(usize, usize)>) -> Result<Self> {
        let entry = file.tensors.get(name).ok_or_else(|| EngineError::BadTensor { name: name.into(), problem: "is missing from the file".into() })?;
        let m = Self::new(name, entry.dtype, &entry.dims, file.tensor_bytes(entry))?;
        if let Some((r, c)) = expect
            && (m.rows, m.cols) != (r, c)
        {
            return Err(EngineError::BadTensor { name: name.into(), problem: format!("has shape {}x{}, the model config says {r}x{c}", m.rows, m.cols) });
        }
        Ok(m)
    }

    fn row_bytes(&self) -> usize {
        self.cols / self.dtype.block_size() * self.dtype.type_size()
    }

    /// An f32 matrix from values held in memory (row-major, `rows * cols`).
    pub fn from_f32(rows: usize, cols: usize, values: Vec<f32>) -> QMatrix {
        debug_assert_eq!(values.len(), rows * cols);
        QMatrix { dtype: GgmlDType::F32, rows, cols, bytes: TensorBytes::from_f32(values), packed: None }
    }

    /// Rows `start..start + n` as a matrix of their own (no copy).
    pub fn rows_range(&self, start: usize, n: usize) -> QMatrix {
        let rb = self.row_bytes();
        QMatrix { dtype: self.dtype, rows: n, cols: self.cols, bytes: self.bytes.slice(start * rb, n * rb), packed: None }
    }

    /// Repacks the weights for the kernels that read several rows at once (Q4_1, Q5_0, Q8_0,
    /// Q4_K and Q6_K, with a multiple of eight rows), releasing the file pages they came from. Formats without
    /// such a kernel are returned as they are. Products give the same values up to rounding
    /// order; the model loader calls this on every projection.
    pub fn into_packed(mut self) -> Self {
        if !self.rows.is_multiple_of(8) || self.packed.is_some() {
            return self;
        }
        let nb = self.cols / self.dtype.block_size();
        let bytes = &self.bytes;
        self.packed = match self.dtype {
            GgmlDType::Q4_1 => Some(Packed::Q4_1x8(Arc::new(pack_released(bytes, nb)))),
            GgmlDType::Q5_0 => Some(Packed::Q5_0x8(Arc::new(pack_released(bytes, nb)))),
            GgmlDType::Q8_0 => Some(Packed::Q8_0x8(Arc::new(pack_released(bytes, nb)))),
            GgmlDType::Q4K => Some(Packed::Q4Kx8(Arc::new(pack_released(bytes, nb)))),
            GgmlDType::Q6K => Some(Packed::Q6Kx8(Arc::new(pack_released(bytes, nb)))),
            _ => return self,
        };
        self
    }

    pub fn size_in_bytes(&self) -> usize {
        self.rows * self.row_bytes()
    }

    /// Dequantizes row `r` into `out` (used for embedding lookups and 1-D weights).
    pub fn dequantize_row(&self, r: usize, out: &mut [f32]) {
        let rb = self.row_bytes();
        let bytes = &self.bytes.bytes()[r * rb..(r + 1) * rb];
        with_block_type!(self.dtype, T => T::to_float(as_blocks::<T>(bytes), &mut out[..self.cols]))
    }

    /// The whole matrix as f32 (small tensors: norms, biases).
    pub fn to_f32(&self) -> Vec<f32> {
        let mut out = vec![0f32; self.rows * self.cols];
        for (r, chunk) in out.chunks_mut(self.cols).enumerate() {
            self.dequantize_row(r, chunk);
        }
        out
    }

    /// `y[i][r] = dot(x[i], W[r])` for every activation row `i`.
    /// `x` holds `n` rows of `cols` values; `y` receives `n` rows of `rows` values.
    pub fn matmul(&self, x: &[f32], y: &mut [f32]) {
        matmul_many(x, &mut [(self, y)]);
    }

    /// This product made ready to run: activations quantized, work split into tasks.
    fn prepare<'a>(&'a self, x: &[f32], y: &'a mut [f32]) -> Prepared<'a> {
        debug_assert_eq!(x.len() % self.cols, 0);
        let n = x.len() / self.cols;
        debug_assert_eq!(y.len(), n * self.rows);
        match &self.packed {
            Some(Packed::Q4_1x8(groups)) => return prepare_groups(self, groups, x, n, y),
            Some(Packed::Q5_0x8(groups)) => return prepare_groups(self, groups, x, n, y),
            Some(Packed::Q8_0x8(groups)) => return prepare_groups(self, groups, x, n, y),
            Some(Packed::Q4Kx8(groups)) => return prepare_groups(self, groups, x, n, y),
            Some(Packed::Q6Kx8(groups)) => return prepare_groups(self, groups, x, n, y),
            None => {}
        }
        match self.dtype {
            GgmlDType::Q4_1 => prepare_kernel::<kernels::q4_1::Q4_1>(self, x, n, y),
            GgmlDType::Q8_0 => prepare_kernel::<kernels::q8_0::Q8_0>(self, x, n, y),
            GgmlDType::Q5_0 => prepare_kernel::<kernels::q5_0::Q5_0>(self, x, n, y),
            GgmlDType::Q4K => prepare_kernel::<kernels::q4_k::Q4K>(self, x, n, y),
            GgmlDType::Q6K => prepare_kernel::<kernels::q6_k::Q6K>(self, x, n, y),
            _ => with_block_type!(self.dtype, T => prepare_typed::<T>(self, x, n, y)),
        }
    }
}

/// File bytes repacked per task by [`pack_released`].
const PACK_CHUNK_BYTES: usize = 1 << 20;

/// Repacks a row-major matrix's blocks (`nb` per row, rows a multiple of 8) for kernel `K`,
/// in parallel, releasing each stretch of file pages as soon as it is packed: the file's copy
/// and the packed copy are never both resident in full, so peak memory stays one copy (plus
/// a megabyte per worker) even for Gemma's 180 MB output projection.
fn pack_released<K: kernels::GroupKernel>(bytes: &TensorBytes, nb: usize) -> Vec<K> {
    let blocks = as_blocks::<K::Weight>(bytes.bytes());
    let block_bytes = std::mem::size_of::<K::Weight>();
    let total = blocks.len() / 8;
    let groups_per_chunk = (PACK_CHUNK_BYTES / (8 * nb * block_bytes)).max(1);
    let mut out: Vec<K> = Vec::with_capacity(total);
    advise_huge_pages(&mut out);
    out.spare_capacity_mut()[..total].par_chunks_mut(groups_per_chunk * nb).enumerate().for_each(|(c, dst)| {
        let first = c * groups_per_chunk * 8 * nb;
        let src = &blocks[first..first + dst.len() * 8];
        kernels::pack_into(src, nb, dst);
        bytes.slice(first * block_bytes, std::mem::size_of_val(src)).release_pages();
    });
    // SAFETY: the chunks above cover slots 0..total, and pack_into writes every slot of each.
    unsafe { out.set_len(total) };
    out
}

/// Asks Linux to back a large, not yet touched buffer with 2 MiB pages where transparent huge
/// pages are on `madvise` (the common default). Decoding streams every weight once per token,
/// and on 4 KiB pages the hardware prefetchers stop at each page's end and every page costs a
/// TLB walk. A hint: where the kernel declines, the buffer works as before.
fn advise_huge_pages<T>(buffer: &mut Vec<T>) {
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        let start = buffer.as_mut_ptr() as usize;
        let end = start + buffer.capacity() * std::mem::size_of::<T>();
        let (first, last) = (start.next_multiple_of(HUGE), end / HUGE * HUGE);
        if last > first {
            // SAFETY: the range lies inside the buffer's own allocation, and MADV_HUGEPAGE
            // changes how its pages are backed, never their contents.
            unsafe { libc::madvise(first as *mut libc::c_void, last - first, libc::MADV_HUGEPAGE) };
        }
    }
}

/// Whether Linux can back [`advise_huge_pages`]'s buffers with 2 MiB pages: transparent huge
/// pages set to `always` or `madvise`. Read once, like the CPU's features.
pub(crate) fn huge_pages_available() -> bool {
    #[cfg(target_os = "linux")]
    {
        static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        return *AVAILABLE.get_or_init(|| std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").is_ok_and(|s| s.contains("[always]") || s.contains("[madvise]")));
    }
    #[allow(unreachable_code)]
    false
}

/// Several products of the same activations (a layer's query, key and value projections;
/// its gate and up projections) run as one batch of tasks across the worker pool. Decoding
/// one token is a string of small products, and each trip through the pool costs about as
/// much as a small product: one trip for three products instead of three.
pub fn matmul_many(x: &[f32], products: &mut [(&QMatrix, &mut [f32])]) {
    let prepared: Vec<Prepared<'_>> = products.iter_mut().map(|(w, y)| w.prepare(x, y)).collect();
    let starts: Vec<usize> = prepared
        .iter()
        .scan(0, |acc, p| {
            let s = *acc;
            *acc += p.tasks;
            Some(s)
        })
        .collect();
    let total: usize = prepared.iter().map(|p| p.tasks).sum();
    let run = |t: usize| {
        let m = starts.partition_point(|&s| s <= t) - 1;
        (prepared[m].run)(t - starts[m]);
    };
    if total == 1 {
        run(0);
    } else {
        (0..total).into_par_iter().for_each(run);
    }
}

/// A product ready to run as `tasks` independent calls of `run`.
struct Prepared<'a> {
    tasks: usize,
    run: Box<dyn Fn(usize) + Sync + 'a>,
}

/// Weight rows handed to one worker task.
const ROWS_PER_TASK: usize = 16;

/// Activation rows below which quantizing them runs on the calling thread: a trip through
/// the worker pool costs more than quantizing a few rows.
const SERIAL_QUANTIZE_ROWS: usize = 8;

/// Quantizes `n` rows of `x` into blocks with `quantize`, in parallel when there are many.
fn quantize_rows<A: Copy + Default + Send>(x: &[f32], n: usize, per_row: usize, quantize: impl Fn(&[f32], &mut [A]) + Sync) -> Vec<A> {
    let mut xq = vec![A::default(); n * per_row];
    let cols = x.len() / n.max(1);
    if n < SERIAL_QUANTIZE_ROWS {
        xq.chunks_mut(per_row).zip(x.chunks(cols)).for_each(|(q, row)| quantize(row, q));
    } else {
        xq.par_chunks_mut(per_row).zip(x.par_chunks(cols)).for_each(|(q, row)| quantize(row, q));
    }
    xq
}

/// A product through one of inkling's own row kernels (see `kernels`).
fn prepare_kernel<'a, K: RowKernel + 'a>(w: &'a QMatrix, x: &[f32], n: usize, y: &'a mut [f32]) -> Prepared<'a> {
    let nb = w.cols / K::BLOCK;
    let xq = quantize_rows(x, n, nb, K::quantize);
    let blocks = as_blocks::<K::Weight>(w.bytes.bytes());
    let isa = crate::kernels::best_isa();
    let row_bytes = nb * std::mem::size_of::<K::Act>();
    by_weight_rows(n, w.rows, row_bytes, y, move |r, acts, out| K::dot_many(isa, &blocks[r * nb..(r + 1) * nb], &xq[acts.start * nb..acts.end * nb], out))
}

/// A product through a kernel over groups of eight weight rows (see `kernels::GroupKernel`):
/// each task takes a few groups and, tile of activation rows by tile, writes their results
/// straight into their columns of `y`.
fn prepare_groups<'a, K: kernels::GroupKernel>(w: &'a QMatrix, groups: &'a [K], x: &[f32], n: usize, y: &'a mut [f32]) -> Prepared<'a> {
    let nb = w.cols / K::BLOCK;
    let xq = quantize_rows(x, n, nb, K::quantize);
    let isa = kernels::best_isa();
    let out = DisjointSlice::new(y);
    let cols = w.rows;
    let per_task = ROWS_PER_TASK / 8;
    let count = w.rows / 8;
    let tiles = activation_tiles(n, nb * std::mem::size_of::<K::Act>());
    Prepared {
        tasks: count.div_ceil(per_task),
        run: Box::new(move |t| {
            let mut o = Vec::new();
            for acts in tiles.clone() {
                o.resize(acts.len() * 8, 0.0);
                for g in t * per_task..((t + 1) * per_task).min(count) {
                    K::dot_group(isa, &groups[g * nb..(g + 1) * nb], &xq[acts.start * nb..acts.end * nb], &mut o);
                    for (i, v) in acts.clone().zip(o.chunks_exact(8)) {
                        // SAFETY: group g is the only writer of columns 8g..8g + 8.
                        unsafe { out.write(i * cols + 8 * g, v) };
                    }
                }
            }
        }),
    }
}

/// Quantized activations a task keeps in cache while it sweeps its weight rows: a prompt's
/// 256 rows of a 8,960-wide down projection are 2.6 MB of Q8_K blocks, and each weight row
/// reading all of them from the last-level cache left the Q4_K and Q6_K kernels waiting
/// on memory. A tile of this size stays in a core's L2 (512 KiB on Zen, 1-2 MiB on Xeons).
const ACTIVATION_TILE_BYTES: usize = 192 << 10;

/// `0..n` activation rows cut into tiles for rows of `row_bytes` quantized bytes: each a
/// multiple of eight rows but the last, so the kernels' groups of four or eight rows fall as
/// they would without tiling.
fn activation_tiles(n: usize, row_bytes: usize) -> impl Iterator<Item = std::ops::Range<usize>> + Clone {
    let tile = (ACTIVATION_TILE_BYTES / row_bytes.max(1)).max(8) / 8 * 8;
    (0..n).step_by(tile).map(move |start| start..(start + tile).min(n))
}

/// Runs `row(r, acts, out)` for every weight row `r` and tile `acts` of activation rows
/// (of `row_bytes` quantized bytes each, see [`activation_tiles`]), `ROWS_PER_TASK` weight rows per task, where `out` receives the products
/// of that row with those activation rows; the results land in `y` as `n` rows of `rows`
/// values. Each weight is read once per tile, and each tile once per weight row of the
/// task from the cache. A row's products do not depend on the tiling: the kernels compute
/// each activation row with the same operations whatever rows share the call.
fn by_weight_rows<'a>(n: usize, rows: usize, row_bytes: usize, y: &'a mut [f32], row: impl Fn(usize, std::ops::Range<usize>, &mut [f32]) + Sync + 'a) -> Prepared<'a> {
    let out = DisjointSlice::new(y);
    let tiles = activation_tiles(n, row_bytes);
    Prepared {
        tasks: rows.div_ceil(ROWS_PER_TASK),
        run: Box::new(move |t| {
            let first = t * ROWS_PER_TASK;
            let count = ROWS_PER_TASK.min(rows - first);
            let mut yt = vec![0f32; n * count];
            for acts in tiles.clone() {
                for (j, o) in yt.chunks_mut(n).enumerate() {
                    row(first + j, acts.clone(), &mut o[acts.clone()]);
                }
            }
            let mut strip = vec![0f32; count];
            for i in 0..n {
                strip.iter_mut().enumerate().for_each(|(j, v)| *v = yt[j * n + i]);
                // SAFETY: this task is the only writer of columns first..first + count.
                unsafe { out.write(i * rows + first, &strip) };
            }
        }),
    }
}

fn prepare_typed<'a, T: GgmlType + Sync + 'a>(w: &'a QMatrix, x: &[f32], n: usize, y: &'a mut [f32]) -> Prepared<'a>
where
    T::VecDotType: Sync + Send,
{
    let k = w.cols;
    let qb = k / T::VecDotType::BLCK_SIZE;
    let mut xq: Vec<T::VecDotType> = zeroed_blocks(n * qb);
    xq.par_chunks_mut(qb).zip(x.par_chunks(k)).for_each(|(q, row)| T::VecDotType::from_float(row, q));
    let blocks = as_blocks::<T>(w.bytes.bytes());
    let wb = k / T::BLCK_SIZE;
    let row_bytes = qb * std::mem::size_of::<T::VecDotType>();
    by_weight_rows(n, w.rows, row_bytes, y, move |r, acts, out| {
        let wrow = &blocks[r * wb..(r + 1) * wb];
        for (i, o) in acts.zip(out.iter_mut()) {
            *o = T::vec_dot(k, wrow, &xq[i * qb..(i + 1) * qb]);
        }
    })
}
