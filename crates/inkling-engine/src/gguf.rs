//! GGUF files: metadata through candle's parser, tensor bytes straight from a memory map.
//!
//! Mapping instead of reading keeps model load near-instant and lets the OS share pages
//! between processes; the matmul kernels read the quantized blocks in place.

use crate::error::{EngineError, Result};
use candle_core::quantized::{GgmlDType, gguf_file};
use memmap2::Mmap;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use gguf_file::Value;

/// The raw bytes of one tensor: inside a mapped GGUF file, or computed at load (a weight
/// with a LoRA adapter merged in).
#[derive(Clone)]
pub struct TensorBytes {
    storage: Storage,
    start: usize,
    len: usize,
}

#[derive(Clone)]
enum Storage {
    Map(Arc<Mmap>),
    /// f32 values (their alignment is what the f32 kernels need).
    Owned(Arc<Vec<f32>>),
}

impl TensorBytes {
    /// f32 values held in memory.
    pub fn from_f32(values: Vec<f32>) -> Self {
        let len = values.len() * 4;
        TensorBytes { storage: Storage::Owned(Arc::new(values)), start: 0, len }
    }

    pub fn bytes(&self) -> &[u8] {
        match &self.storage {
            Storage::Map(map) => &map[self.start..self.start + self.len],
            Storage::Owned(values) => {
                // SAFETY: any f32 is valid as 4 bytes; the view lives as long as `values`.
                let all = unsafe { std::slice::from_raw_parts(values.as_ptr() as *const u8, values.len() * 4) };
                &all[self.start..self.start + self.len]
            }
        }
    }

    /// Tells the kernel this process no longer needs the file pages wholly inside this
    /// tensor (after its weights were repacked into memory of their own), so they stop
    /// counting towards resident memory. Later reads still work: the pages come back from
    /// the file. Owned storage is left alone.
    pub fn release_pages(&self) {
        #[cfg(unix)]
        if let Storage::Map(map) = &self.storage {
            let page = 4096;
            let base = map.as_ptr() as usize;
            let first = (base + self.start).div_ceil(page) * page - base;
            let end = ((base + self.start + self.len) / page * page).saturating_sub(base);
            if end > first {
                // SAFETY: a read-only file mapping: dropped pages are read back from the file
                // on the next access, so no data is lost and no reference is invalidated.
                let _ = unsafe { map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, first, end - first) };
            }
        }
    }

    /// `len` bytes from `offset` within this tensor (a row range of a fused matrix).
    pub fn slice(&self, offset: usize, len: usize) -> TensorBytes {
        debug_assert!(offset + len <= self.len);
        TensorBytes { storage: self.storage.clone(), start: self.start + offset, len }
    }
}

/// Where a tensor lives and what it is.
#[derive(Clone, Debug)]
pub struct TensorEntry {
    pub dtype: GgmlDType,
    /// Dimensions, outermost first (rows, cols for a matrix), as candle reports them.
    pub dims: Vec<usize>,
    start: usize,
    len: usize,
}

/// An opened GGUF file.
pub struct GgufFile {
    pub path: PathBuf,
    pub metadata: HashMap<String, Value>,
    pub tensors: HashMap<String, TensorEntry>,
    pub file_size: u64,
    map: Arc<Mmap>,
}

/// Any numeric metadata value as f64 (GGUF writers pick integer widths freely).
pub fn value_as_f64(v: &Value) -> Option<f64> {
    use Value::*;
    Some(match v {
        U8(x) => *x as f64,
        I8(x) => *x as f64,
        U16(x) => *x as f64,
        I16(x) => *x as f64,
        U32(x) => *x as f64,
        I32(x) => *x as f64,
        U64(x) => *x as f64,
        I64(x) => *x as f64,
        F32(x) => *x as f64,
        F64(x) => *x,
        _ => return None,
    })
}

/// Names of the ggml tensor types candle cannot read, for error messages.
fn ggml_type_name(id: u32) -> String {
    let name = match id {
        16 => "IQ2_XXS",
        17 => "IQ2_XS",
        18 => "IQ3_XXS",
        19 => "IQ1_S",
        20 => "IQ4_NL",
        21 => "IQ3_S",
        22 => "IQ2_S",
        23 => "IQ4_XS",
        24..=27 => "an integer type",
        28 => "F64",
        29 => "IQ1_M",
        34 => "TQ1_0",
        35 => "TQ2_0",
        39 => "MXFP4",
        _ => return format!("type {id}"),
    };
    format!("{name} (type {id})")
}

impl GgufFile {
    pub fn open(path: &Path) -> Result<Self> {
        if !path.exists() {
            return Err(EngineError::ModelNotFound { path: path.to_path_buf() });
        }
        let io = |source| EngineError::Io { path: path.to_path_buf(), error: source };
        let mut file = std::fs::File::open(path).map_err(io)?;
        let file_size = file.metadata().map_err(io)?.len();
        let bad = |reason: String| EngineError::BadGguf { path: path.to_path_buf(), reason };
        let content = gguf_file::Content::read(&mut file).map_err(|e| {
            // candle may append a backtrace; the first line is the message.
            let msg = e.to_string().lines().next().unwrap_or_default().to_string();
            match msg.strip_prefix("unknown dtype for tensor ").and_then(|n| n.trim().parse::<u32>().ok()) {
                Some(id) => EngineError::UnsupportedQuantization { tensor: "a tensor".into(), dtype: ggml_type_name(id) },
                None => bad(msg),
            }
        })?;
        // SAFETY: the map is read-only; inkling never writes model files while they are open.
        let map = unsafe { Mmap::map(&file) }.map_err(io)?;
        let mut tensors = HashMap::with_capacity(content.tensor_infos.len());
        for (name, info) in &content.tensor_infos {
            let dims = info.shape.dims().to_vec();
            let elems: usize = dims.iter().product();
            let block = info.ggml_dtype.block_size();
            if !elems.is_multiple_of(block) {
                return Err(bad(format!("tensor `{name}` has {elems} elements, not a multiple of its block size {block}")));
            }
            let len = elems / block * info.ggml_dtype.type_size();
            let start = content.tensor_data_offset as usize + info.offset as usize;
            if start.checked_add(len).is_none_or(|end| end as u64 > file_size) {
                return Err(bad(format!("tensor `{name}` needs bytes {start}..{} but the file has {file_size}: the file is truncated", start + len)));
            }
            tensors.insert(name.clone(), TensorEntry { dtype: info.ggml_dtype, dims, start, len });
        }
        Ok(Self { path: path.to_path_buf(), metadata: content.metadata, tensors, file_size, map: Arc::new(map) })
    }

    pub fn tensor_bytes(&self, entry: &TensorEntry) -> TensorBytes {
        TensorBytes { storage: Storage::Map(self.map.clone()), start: entry.start, len: entry.len }
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.metadata.get(key)
    }

    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(|v| v.to_string().ok()).map(|s| s.as_str())
    }

    /// An integer of any width, as llama.cpp reads it.
    pub fn get_usize(&self, key: &str) -> Option<usize> {
        match self.get(key)? {
            Value::F32(_) | Value::F64(_) => None,
            v => value_as_f64(v).filter(|n| *n >= 0.0).map(|n| n as usize),
        }
    }

    pub fn get_f32(&self, key: &str) -> Option<f32> {
        self.get(key).and_then(value_as_f64).map(|v| v as f32)
    }

    pub fn get_bool(&self, key: &str) -> Option<bool> {
        match self.get(key)? {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub fn require_usize(&self, key: &str, why: &'static str) -> Result<usize> {
        self.get_usize(key).ok_or_else(|| EngineError::MissingMetadata { key: key.into(), why })
    }

    pub fn architecture(&self) -> Result<&str> {
        self.get_str("general.architecture").ok_or(EngineError::MissingMetadata { key: "general.architecture".into(), why: "it names the model family" })
    }
}
