//! The key/value cache of one sequence.
//!
//! Layout: one buffer per layer and key/value head, `[position][head_dim]`, so appending a
//! token is a copy onto the end of each, forking a sequence (n candidates from one prompt) is
//! a clone of the prefix, and attention reads one head's positions as one contiguous stream
//! (with the heads interleaved, a head's rows were a whole row of heads apart, and decoding
//! over a long cache waited on memory). Entries are f16, as in llama.cpp: half the memory of
//! f32, and the same numbers.

use half::f16;

#[derive(Clone, Debug)]
pub struct KvCache {
    n_kv_head: usize,
    head_dim: usize,
    len: usize,
    /// Indexed by `layer * n_kv_head + head`.
    keys: Vec<Vec<f16>>,
    values: Vec<Vec<f16>>,
}

impl KvCache {
    pub fn new(n_layer: usize, n_kv_head: usize, head_dim: usize, capacity: usize) -> Self {
        let buffers = || (0..n_layer * n_kv_head).map(|_| Vec::with_capacity(capacity * head_dim)).collect();
        Self { n_kv_head, head_dim, len: 0, keys: buffers(), values: buffers() }
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
            let mut c = Vec::with_capacity(v.len() + extra * self.head_dim);
            c.extend_from_slice(v);
            c
        };
        Self {
            n_kv_head: self.n_kv_head,
            head_dim: self.head_dim,
            len: self.len,
            keys: self.keys.iter().map(copy).collect(),
            values: self.values.iter().map(copy).collect(),
        }
    }

    /// Drops every position from `len` on: the cache then describes a shorter prefix.
    pub fn truncate(&mut self, len: usize) {
        let len = len.min(self.len);
        for b in self.keys.iter_mut().chain(self.values.iter_mut()) {
            b.truncate(len * self.head_dim);
        }
        self.len = len;
    }

    /// Appends one position's keys and values of `layer` (every head, head after head).
    pub(crate) fn push(&mut self, layer: usize, k: &[f32], v: &[f32]) {
        let hd = self.head_dim;
        for h in 0..self.n_kv_head {
            let b = layer * self.n_kv_head + h;
            self.keys[b].extend(k[h * hd..(h + 1) * hd].iter().map(|x| f16::from_f32(*x)));
            self.values[b].extend(v[h * hd..(h + 1) * hd].iter().map(|x| f16::from_f32(*x)));
        }
    }

    pub(crate) fn set_len(&mut self, len: usize) {
        debug_assert!(self.keys.iter().all(|k| k.len() == len * self.head_dim));
        self.len = len;
    }

    /// Keys and values of one key/value head of `layer`: position `p` at `p * head_dim`.
    pub(crate) fn head(&self, layer: usize, head: usize) -> (&[f16], &[f16]) {
        let b = layer * self.n_kv_head + head;
        (&self.keys[b], &self.values[b])
    }

    /// Bytes held by keys and values.
    pub fn size_in_bytes(&self) -> usize {
        self.keys.iter().chain(&self.values).map(|v| v.capacity() * 2).sum()
    }
}
