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

/// A 2-D weight: `rows` outputs, each a dot product over `cols` inputs.
#[derive(Clone)]
pub struct QMatrix {
    pub dtype: GgmlDType,
    pub rows: usize,
    pub cols: usize,
    bytes: TensorBytes,
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
        Ok(Self { dtype, rows, cols, bytes })
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
        QMatrix { dtype: GgmlDType::F32, rows, cols, bytes: TensorBytes::from_f32(values) }
    }

    /// Rows `start..start + n` as a matrix of their own (no copy).
    pub fn rows_range(&self, start: usize, n: usize) -> QMatrix {
        let rb = self.row_bytes();
        QMatrix { dtype: self.dtype, rows: n, cols: self.cols, bytes: self.bytes.slice(start * rb, n * rb) }
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
