//! Quantized weight matrices and the matrix products the forward pass runs on them.
//!
//! Weights stay in their GGUF block format (read in place from the memory map). A product
//! quantizes each activation row once into the block type the weight format pairs with
//! (Q8_0, Q8_1 or Q8_K) and runs integer dot products per weight row: inkling's kernels
//! (`kernels`) for Q4_1, Q5_0, Q8_0 and Q6_K, candle's per-block kernels for the other
//! formats. Rows are split across the worker pool.
//! This module is the seam a faster kernel set replaces; tests compare it against a
//! dequantize-then-f32 reference.

use crate::error::{EngineError, Result};
use crate::gguf::{GgufFile, TensorBytes};
use crate::kernels::{self, RowKernel};
use candle_core::quantized::GgmlDType;
use candle_core::quantized::k_quants::{
    BlockQ2K, BlockQ3K, BlockQ4_0, BlockQ4_1, BlockQ4K, BlockQ5_0, BlockQ5_1, BlockQ5K, BlockQ6K,
    BlockQ8_0, GgmlType,
};
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
}

/// Runs `$body` with `$t` bound to the candle block type of `$dtype`.
macro_rules! with_block_type {
    ($dtype:expr, $t:ident => $body:expr) => {
        match $dtype {
            GgmlDType::F32 => { type $t = f32; $body }
            GgmlDType::F16 => { type $t = f16; $body }
            GgmlDType::BF16 => { type $t = bf16; $body }
            GgmlDType::Q4_0 => { type $t = BlockQ4_0; $body }
            GgmlDType::Q4_1 => { type $t = BlockQ4_1; $body }
            GgmlDType::Q5_0 => { type $t = BlockQ5_0; $body }
            GgmlDType::Q5_1 => { type $t = BlockQ5_1; $body }
            GgmlDType::Q8_0 => { type $t = BlockQ8_0; $body }
            GgmlDType::Q2K => { type $t = BlockQ2K; $body }
            GgmlDType::Q3K => { type $t = BlockQ3K; $body }
            GgmlDType::Q4K => { type $t = BlockQ4K; $body }
            GgmlDType::Q5K => { type $t = BlockQ5K; $body }
            GgmlDType::Q6K => { type $t = BlockQ6K; $body }
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
            return Err(EngineError::BadTensor {
                name: name.into(),
                problem: format!("has rows of {cols} values, not a multiple of its block size {}", dtype.block_size()),
            });
        }
        Ok(Self { dtype, rows, cols, bytes, packed: None })
    }

    /// Loads tensor `name` from `file`, checking its shape against `expect` (rows, cols).
    pub fn load(file: &GgufFile, name: &str, expect: Option<(usize, usize)>) -> Result<Self> {
        let entry = file
            .tensors
            .get(name)
            .ok_or_else(|| EngineError::BadTensor { name: name.into(), problem: "is missing from the file".into() })?;
        let m = Self::new(name, entry.dtype, &entry.dims, file.tensor_bytes(entry))?;
        if let Some((r, c)) = expect
            && (m.rows, m.cols) != (r, c)
        {
            return Err(EngineError::BadTensor {
                name: name.into(),
                problem: format!("has shape {}x{}, the model config says {r}x{c}", m.rows, m.cols),
            });
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

    /// Repacks the weights for the kernels that read several rows at once (Q4_1, with a
    /// multiple of eight rows), then releases the file pages they came from. Formats without
    /// such a kernel are returned as they are. Products give the same values up to rounding
    /// order; the model loader calls this on every projection.
    pub fn into_packed(mut self) -> Self {
        if self.rows % 8 != 0 || self.packed.is_some() {
            return self;
        }
        let nb = self.cols / 32;
        self.packed = match self.dtype {
            GgmlDType::Q4_1 => Some(Packed::Q4_1x8(Arc::new(kernels::q4_1x8::pack(as_blocks(self.bytes.bytes()), nb)))),
            GgmlDType::Q5_0 => Some(Packed::Q5_0x8(Arc::new(kernels::q5_0x8::pack(as_blocks(self.bytes.bytes()), nb)))),
            _ => return self,
        };
        self.bytes.release_pages();
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
        debug_assert_eq!(x.len() % self.cols, 0);
        let n = x.len() / self.cols;
        debug_assert_eq!(y.len(), n * self.rows);
        match &self.packed {
            Some(Packed::Q4_1x8(groups)) => return matmul_groups(self, groups, x, n, y),
            Some(Packed::Q5_0x8(groups)) => return matmul_groups(self, groups, x, n, y),
            None => {}
        }
        match self.dtype {
            GgmlDType::Q4_1 => return matmul_kernel::<kernels::q4_1::Q4_1>(self, x, n, y),
            GgmlDType::Q8_0 => return matmul_kernel::<kernels::q8_0::Q8_0>(self, x, n, y),
            GgmlDType::Q5_0 => return matmul_kernel::<kernels::q5_0::Q5_0>(self, x, n, y),
            GgmlDType::Q6K => return matmul_kernel::<kernels::q6_k::Q6K>(self, x, n, y),
            _ => {}
        }
        with_block_type!(self.dtype, T => matmul_typed::<T>(self, x, n, y))
    }
}

/// Weight rows handed to one worker task.
const ROWS_PER_TASK: usize = 16;

/// Writes `yt` (`rows` x `n`, computed one weight row at a time) into `y` (`n` x `rows`).
fn transpose_into(yt: &[f32], n: usize, rows: usize, y: &mut [f32]) {
    y.par_chunks_mut(rows).enumerate().for_each(|(i, yrow)| {
        for (r, v) in yrow.iter_mut().enumerate() {
            *v = yt[r * n + i];
        }
    });
}

/// A product through one of inkling's own kernel sets (see `kernels`).
fn matmul_kernel<K: RowKernel>(w: &QMatrix, x: &[f32], n: usize, y: &mut [f32]) {
    let nb = w.cols / K::BLOCK;
    let mut xq = vec![K::Act::default(); n * nb];
    xq.par_chunks_mut(nb).zip(x.par_chunks(w.cols)).for_each(|(q, row)| K::quantize(row, q));
    let blocks = as_blocks::<K::Weight>(w.bytes.bytes());
    let isa = crate::kernels::best_isa();
    by_weight_rows(n, w.rows, y, |r, out| K::dot_many(isa, &blocks[r * nb..(r + 1) * nb], &xq, out));
}

/// A product through a kernel over groups of eight weight rows (see `kernels::GroupKernel`):
/// work is split by groups, and each group's results are written straight into their
/// columns of `y`.
fn matmul_groups<K: kernels::GroupKernel>(w: &QMatrix, groups: &[K], x: &[f32], n: usize, y: &mut [f32]) {
    let nb = w.cols / K::BLOCK;
    let mut xq = vec![K::Act::default(); n * nb];
    xq.par_chunks_mut(nb).zip(x.par_chunks(w.cols)).for_each(|(q, row)| K::quantize(row, q));
    let isa = kernels::best_isa();
    let out = Columns::new(y, w.rows);
    (0..w.rows / 8).into_par_iter().with_min_len(ROWS_PER_TASK / 8).for_each_init(
        || vec![0f32; n * 8],
        |o, g| {
            K::dot_group(isa, &groups[g * nb..(g + 1) * nb], &xq, o);
            for (i, v) in o.chunks_exact(8).enumerate() {
                // SAFETY: group g is the only writer of columns 8g..8g + 8.
                unsafe { out.write(i, 8 * g, v) };
            }
        },
    );
}

/// The output matrix of a product (`n` rows of `cols` values) shared by tasks that each
/// write their own columns, so results land in place without a transposing copy.
struct Columns {
    ptr: *mut f32,
    cols: usize,
    len: usize,
}

// SAFETY: tasks write disjoint columns (the callers' contract on `write`).
unsafe impl Sync for Columns {}

impl Columns {
    fn new(y: &mut [f32], cols: usize) -> Self {
        Columns { ptr: y.as_mut_ptr(), cols, len: y.len() }
    }

    /// Writes `values` into row `i` from column `col`.
    ///
    /// # Safety
    /// No other task may write these columns while the borrow of `y` lasts.
    unsafe fn write(&self, i: usize, col: usize, values: &[f32]) {
        let at = i * self.cols + col;
        assert!(col + values.len() <= self.cols && at + values.len() <= self.len);
        // SAFETY: in bounds (checked above); disjoint from other writers (caller's contract).
        unsafe { std::ptr::copy_nonoverlapping(values.as_ptr(), self.ptr.add(at), values.len()) };
    }
}

/// Runs `row(r, out)` for every weight row `r` across the worker pool, where `out` receives
/// the `n` dot products of that row; the results land in `y` as `n` rows of `rows` values.
/// Computing by weight row reads each weight once per product, whatever `n` is.
fn by_weight_rows(n: usize, rows: usize, y: &mut [f32], row: impl Fn(usize, &mut [f32]) + Sync) {
    let run = |dst: &mut [f32]| {
        dst.par_chunks_mut(ROWS_PER_TASK * n).enumerate().for_each(|(c, out)| {
            for (j, o) in out.chunks_mut(n).enumerate() {
                row(c * ROWS_PER_TASK + j, o);
            }
        })
    };
    if n == 1 {
        run(y);
    } else {
        let mut yt = vec![0f32; n * rows];
        run(&mut yt);
        transpose_into(&yt, n, rows, y);
    }
}

fn matmul_typed<T: GgmlType + Sync>(w: &QMatrix, x: &[f32], n: usize, y: &mut [f32])
where
    T::VecDotType: Sync + Send,
{
    let k = w.cols;
    let qb = k / T::VecDotType::BLCK_SIZE;
    let mut xq: Vec<T::VecDotType> = zeroed_blocks(n * qb);
    xq.par_chunks_mut(qb).zip(x.par_chunks(k)).for_each(|(q, row)| T::VecDotType::from_float(row, q));
    let blocks = as_blocks::<T>(w.bytes.bytes());
    let wb = k / T::BLCK_SIZE;
    by_weight_rows(n, w.rows, y, |r, out| {
        let wrow = &blocks[r * wb..(r + 1) * wb];
        for (i, o) in out.iter_mut().enumerate() {
            *o = T::vec_dot(k, wrow, &xq[i * qb..(i + 1) * qb]);
        }
    });
}
