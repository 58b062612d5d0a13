//! The key/value cache of one sequence.
//!
//! Layout per layer: `[position][kv_head * head_dim]`, so appending a token is a copy onto
//! the end and forking a sequence (n candidates from one prompt) is a clone of the prefix.
//! Entries are f16, as in llama.cpp: half the memory of f32, and the same numbers.

use half::f16;

#[derive(Clone, Debug)]
pub struct KvCache {
    kv_dim: usize,
    len: usize,
    keys: Vec<Vec<f16>>,
    values: Vec<Vec<f16>>,
}

impl KvCache {
    pub fn new(n_layer: usize, kv_dim: usize, capacity: usize) -> Self {
        Self {
            kv_dim,
            len: 0,
            keys: (0..n_layer).map(|_| Vec::with_capacity(capacity * kv_dim)).collect(),
            values: (0..n_layer).map(|_| Vec::with_capacity(capacity * kv_dim)).collect(),
        }
    }

    /// Number of positions stored (identical in every layer once a forward pass completes).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// A copy of this cache with room for `extra` more positions (n candidates from one prefill).
    pub fn fork(&self, extra: usize) -> Self {
        let copy = |v: &Vec<f16>| {
            let mut c = Vec::with_capacity(v.len() + extra * self.kv_dim);
            c.extend_from_slice(v);
            c
        };
        Self { kv_dim: self.kv_dim, len: self.len, keys: self.keys.iter().map(copy).collect(), values: self.values.iter().map(copy).collect() }
    }

    /// Drops every position from `len` on: the cache then describes a shorter prefix.
    pub fn truncate(&mut self, len: usize) {
        let len = len.min(self.len);
        for l in 0..self.keys.len() {
            self.keys[l].truncate(len * self.kv_dim);
            self.values[l].truncate(len * self.kv_dim);
        }
        self.len = len;
    }

    pub(crate) fn push(&mut self, layer: usize, k: &[f32], v: &[f32]) {
        self.keys[layer].extend(k.iter().map(|x| f16::from_f32(*x)));
        self.values[layer].extend(v.iter().map(|x| f16::from_f32(*x)));
    }

    pub(crate) fn set_len(&mut self, len: usize) {
        debug_assert!(self.keys.iter().all(|k| k.len() == len * self.kv_dim));
        self.len = len;
    }

    pub(crate) fn layer(&self, layer: usize) -> (&[f16], &[f16]) {
        (&self.keys[layer], &self.values[layer])
    }

    /// Bytes held by keys and values.
    pub fn size_in_bytes(&self) -> usize {
        self.keys.iter().chain(&self.values).map(|v| v.capacity() * 2).sum()
    }
}
