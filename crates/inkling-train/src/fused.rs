//! Element-wise operations fused into one pass, with hand-written backward passes.
//!
//! Autograd through candle's GELU chains about a dozen tensor operations in the backward
//! pass, each allocating a tensor and one calling `powf`; on the baby GPT that was a fifth of
//! each step. Here the forward is one loop and the backward another.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Shape, Tensor};

const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;
const C: f64 = 0.044_715;

/// GELU, tanh approximation: `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))` (what GPT-2 and
/// the engine use).
fn gelu(x: f64) -> f64 {
    0.5 * x * (1.0 + (SQRT_2_OVER_PI * (x + C * x * x * x)).tanh())
}

/// d gelu / dx.
fn gelu_grad(x: f64) -> f64 {
    let t = (SQRT_2_OVER_PI * (x + C * x * x * x)).tanh();
    0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * SQRT_2_OVER_PI * (1.0 + 3.0 * C * x * x)
}

/// The same two in f32 (f64's tanh costs twice as much and f32 is what training runs in).
fn gelu32(x: f32) -> f32 {
    0.5 * x * (1.0 + (SQRT_2_OVER_PI as f32 * (x + C as f32 * x * x * x)).tanh())
}

fn gelu_grad32(x: f32) -> f32 {
    let (k, c) = (SQRT_2_OVER_PI as f32, C as f32);
    let t = (k * (x + c * x * x * x)).tanh();
    0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * k * (1.0 + 3.0 * c * x * x)
}

fn contiguous<'a, T>(v: &'a [T], l: &Layout) -> candle_core::Result<&'a [T]> {
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&v[a..b]),
        None => candle_core::bail!("fused ops need contiguous tensors"),
    }
}

struct Gelu;
struct GeluBackward;

impl CustomOp1 for Gelu {
    fn name(&self) -> &'static str {
        "inkling-gelu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let out = match s {
            CpuStorage::F32(v) => CpuStorage::F32(contiguous(v, l)?.iter().map(|&x| gelu32(x)).collect()),
            CpuStorage::F64(v) => CpuStorage::F64(contiguous(v, l)?.iter().map(|&x| gelu(x)).collect()),
            _ => candle_core::bail!("gelu: f32 or f64 tensors only"),
        };
        Ok((out, l.shape().clone()))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(arg.contiguous()?.apply_op2_no_bwd(&grad_res.contiguous()?, &GeluBackward)?))
    }
}

impl CustomOp2 for GeluBackward {
    fn name(&self) -> &'static str {
        "inkling-gelu-backward"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let out = match (s1, s2) {
            (CpuStorage::F32(x), CpuStorage::F32(g)) => CpuStorage::F32(contiguous(x, l1)?.iter().zip(contiguous(g, l2)?).map(|(&x, &g)| gelu_grad32(x) * g).collect()),
            (CpuStorage::F64(x), CpuStorage::F64(g)) => CpuStorage::F64(contiguous(x, l1)?.iter().zip(contiguous(g, l2)?).map(|(&x, &g)| gelu_grad(x) * g).collect()),
            _ => candle_core::bail!("gelu backward: matching f32 or f64 tensors only"),
        };
        Ok((out, l1.shape().clone()))
    }
}

/// GELU with a fused backward pass.
pub fn gelu_fused(x: &Tensor) -> candle_core::Result<Tensor> {
    x.contiguous()?.apply_op1(Gelu)
}

/// Keeps freed memory in the process instead of returning it to the kernel after every
/// tensor (glibc's default for large blocks): training allocates and frees the same sizes
/// every step, and fresh pages cost a fault and a zeroing each time (an eighth of a step).
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator thresholds; called before training starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}
