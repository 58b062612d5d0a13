//! AdamW (Loshchilov & Hutter 2019) with a warmup-then-cosine learning rate and global
//! gradient-norm clipping.
//!
//! Written here rather than taken from candle-nn because a resumed run must continue with
//! the same moment estimates (candle-nn keeps them private) and because weight decay must
//! skip gains and biases (candle-nn decays every variable). The update, per parameter θ
//! with gradient g at step t:
//!
//! ```text
//! m = β1·m + (1-β1)·g            v = β2·v + (1-β2)·g²
//! θ = θ - lr·λ·θ                  (decoupled weight decay, matrices only)
//! θ = θ - lr · (m / (1-β1^t)) / (sqrt(v / (1-β2^t)) + ε)
//! ```

use crate::cpu::ParamSlot;
use crate::error::Result;
use crate::gpt::Param;
use candle_core::Tensor;
use candle_core::backprop::GradStore;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdamWConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    /// Clip the global gradient norm to this (0: no clipping).
    pub grad_clip: f64,
}

impl Default for AdamWConfig {
    /// nanoGPT's Shakespeare settings.
    fn default() -> Self {
        Self { beta1: 0.9, beta2: 0.99, eps: 1e-8, weight_decay: 0.1, grad_clip: 1.0 }
    }
}

/// The optimiser's state: everything a resumed run needs.
pub struct AdamW {
    pub config: AdamWConfig,
    pub step: u64,
    /// First and second moment estimates, one flat vector per parameter.
    pub m: Vec<Vec<f32>>,
    pub v: Vec<Vec<f32>>,
}

/// Learning rate at iteration `it`: linear warmup, then cosine decay to `min_lr` at
/// `decay_iters`, then constant (nanoGPT's `get_lr`).
pub fn learning_rate(it: usize, lr: f64, min_lr: f64, warmup: usize, decay_iters: usize) -> f64 {
    if it < warmup {
        return lr * (it + 1) as f64 / (warmup + 1) as f64;
    }
    if it > decay_iters || decay_iters <= warmup {
        return min_lr;
    }
    let ratio = (it - warmup) as f64 / (decay_iters - warmup) as f64;
    let coeff = 0.5 * (1.0 + (std::f64::consts::PI * ratio).cos());
    min_lr + coeff * (lr - min_lr)
}

impl AdamW {
    pub fn new(config: AdamWConfig, params: &[Param]) -> Self {
        Self::with_sizes(config, params.iter().map(|p| p.var.elem_count()))
    }

    /// Zero moments for parameters of the given sizes.
    pub fn with_sizes(config: AdamWConfig, sizes: impl Iterator<Item = usize>) -> Self {
        let m: Vec<Vec<f32>> = sizes.map(|n| vec![0f32; n]).collect();
        Self { config, step: 0, v: m.clone(), m }
    }

    /// Applies one update with learning rate `lr`. Returns the gradient norm before clipping.
    /// Parameters without a gradient (unused in the loss) are left as they are.
    pub fn step(&mut self, params: &[Param], grads: &GradStore, lr: f64) -> Result<f64> {
        let mut flat: Vec<Option<Vec<f32>>> = Vec::with_capacity(params.len());
        let mut sq = 0f64;
        for p in params {
            let g = match grads.get(p.var.as_tensor()) {
                Some(g) => Some(g.flatten_all()?.to_vec1::<f32>()?),
                None => None,
            };
            if let Some(g) = &g {
                sq += g.iter().map(|x| (*x as f64) * (*x as f64)).sum::<f64>();
            }
            flat.push(g);
        }
        let norm = sq.sqrt();
        let update = self.begin_update(norm, lr);
        for (i, p) in params.iter().enumerate() {
            let Some(g) = &flat[i] else { continue };
            let mut theta = p.var.as_tensor().flatten_all()?.to_vec1::<f32>()?;
            update.apply(&mut theta, g, &mut self.m[i], &mut self.v[i], p.decay);
            p.var.set(&Tensor::from_vec(theta, p.var.shape(), p.var.device())?)?;
        }
        Ok(norm)
    }

    /// The same update for a model held as one flat vector ([`crate::cpu::CpuGpt`]):
    /// `grads` in the layout of `weights`, each parameter at its slot.
    pub fn step_flat(&mut self, weights: &mut [f32], grads: &[f32], slots: &[ParamSlot], lr: f64) -> f64 {
        let norm = slots.iter().map(|s| grads[s.range.clone()].iter().map(|x| f64::from(*x) * f64::from(*x)).sum::<f64>()).sum::<f64>().sqrt();
        let update = self.begin_update(norm, lr);
        for (i, s) in slots.iter().enumerate() {
            update.apply(&mut weights[s.range.clone()], &grads[s.range.clone()], &mut self.m[i], &mut self.v[i], s.decay);
        }
        norm
    }

    /// Counts the step and fixes its constants: clipping scale, bias corrections.
    fn begin_update(&mut self, norm: f64, lr: f64) -> Update {
        let c = &self.config;
        let scale = if c.grad_clip > 0.0 && norm > c.grad_clip { (c.grad_clip / (norm + 1e-6)) as f32 } else { 1.0 };
        self.step += 1;
        let t = self.step as i32;
        Update {
            scale,
            beta1: c.beta1 as f32,
            beta2: c.beta2 as f32,
            eps: c.eps as f32,
            step_size: (lr / (1.0 - c.beta1.powi(t))) as f32,
            bc2_sqrt: (1.0 - c.beta2.powi(t)).sqrt() as f32,
            decay: 1.0 - (lr * c.weight_decay) as f32,
        }
    }
}

/// One step's constants (see the module doc for the update).
struct Update {
    scale: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    step_size: f32,
    bc2_sqrt: f32,
    decay: f32,
}

impl Update {
    fn apply(&self, theta: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], decay: bool) {
        let (b1, b2) = (self.beta1, self.beta2);
        let decay = if decay { self.decay } else { 1.0 };
        for j in 0..theta.len() {
            let gj = g[j] * self.scale;
            m[j] = b1 * m[j] + (1.0 - b1) * gj;
            v[j] = b2 * v[j] + (1.0 - b2) * gj * gj;
            let denom = v[j].sqrt() / self.bc2_sqrt + self.eps;
            theta[j] = theta[j] * decay - self.step_size * m[j] / denom;
        }
    }
}
