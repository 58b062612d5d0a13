//! The key/value cache of one sequence.
//!
//! Layout: one buffer per layer and key/value head, `[position][head_dim]`, so appending a
//! token is a copy onto the end of each, and attention reads one head's positions as one
//! contiguous stream (with the heads interleaved, a head's rows were a whole row of heads
//! apart, and decoding over a long cache waited on memory). Entries are f16, as in llama.cpp:
//! half the memory of f32, and the same numbers.
//!
//! Forking (n candidates from one prompt) freezes the positions computed so far into a shared,
//! read-only prefix that every fork points to: the prompt's cache is held once, not n times,
//! and attention reads it once for all candidates (see `Model::attention_decode`). Each cache
//! appends its own positions after the prefix. Truncating into the prefix takes the prefix
//! back as the cache's own (copying it only while other forks still hold it).

use half::f16;
use std::sync::Arc;

#[derive(Clone, Debug)]
pub struct KvCache {
    n_kv_head: usize,
    head_dim: usize,
    len: usize,
    /// Positions `0..prefix.len` (a cache without a prefix of its own), shared with forks.
    prefix: Option<Arc<KvCache>>,
    /// This cache's own positions, `base()..len`, indexed by `layer * n_kv_head + head`.
    keys: Vec<Vec<f16>>,
    values: Vec<Vec<f16>>,
}

/// One key/value head of one layer of a cache: the shared prefix's positions and the
/// cache's own.
#[derive(Clone, Copy, Debug)]
pub(crate) struct HeadView<'a> {
    /// Positions before `base` are in `shared`, the rest in `own` (position `p` at
    /// `(p - base) * head_dim`).
    base: usize,
    shared: (&'a [f16], &'a [f16]),
    own: (&'a [f16], &'a [f16]),
}

/// A run of positions that lie in one buffer: `keys`/`values` hold position `p` of
/// `positions` at `(p - offset) * head_dim`.
pub(crate) struct Segment<'a> {
    pub positions: std::ops::Range<usize>,
    pub offset: usize,
    pub keys: &'a [f16],
    pub values: &'a [f16],
}

impl Segment<'_> {
    /// The positions as indices into `keys`/`values` (in rows of `head_dim`).
    pub fn local(&self) -> std::ops::Range<usize> {
        self.positions.start - self.offset..self.positions.end - self.offset
    }
}

impl<'a> HeadView<'a> {
    /// Whether `positions` lie wholly in the shared prefix.
    pub fn is_shared(&self, positions: &std::ops::Range<usize>) -> bool {
        positions.end <= self.base
    }

    /// `positions` cut at the end of the shared prefix: at most two runs, in order.
    pub fn segments(&self, positions: std::ops::Range<usize>) -> impl Iterator<Item = Segment<'a>> {
        let cut = self.base.clamp(positions.start, positions.end);
        let shared = Segment { positions: positions.start..cut, offset: 0, keys: self.shared.0, values: self.shared.1 };
        let own = Segment { positions: cut..positions.end, offset: self.base, keys: self.own.0, values: self.own.1 };
        [shared, own].into_iter().filter(|s| !s.positions.is_empty())
    }
}

impl KvCache {
    pub fn new(n_layer: usize, n_kv_head: usize, head_dim: usize, capacity: usize) -> Self {
        let buffers = || (0..n_layer * n_kv_head).map(|_| Vec::with_capacity(capacity * head_dim)).collect();
        Self { n_kv_head, head_dim, len: 0, prefix: None, keys: buffers(), values: buffers() }
    }

    /// Number of positions stored (identical in every layer once a forward pass completes).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Positions held in the shared prefix.
    fn base(&self) -> usize {
        self.prefix.as_ref().map_or(0, |p| p.len)
    }

    /// The shared prefix, if this cache has one (forks of one prompt share the same).
    pub(crate) fn prefix(&self) -> Option<&Arc<KvCache>> {
        self.prefix.as_ref()
    }

    /// Another cache for the same prefix, with room for `extra` more positions (n candidates
    /// from one prefill). Every position computed so far (an earlier shared prefix and this
    /// cache's own, such as a reused chapter and the edit after it) becomes one prefix shared
    /// by both.
    pub fn fork(&mut self, extra: usize) -> Self {
        let (n, width) = (self.keys.len(), extra * self.head_dim);
        let fresh = || (0..n).map(|_| Vec::with_capacity(width)).collect::<Vec<_>>();
        if self.len > self.base() {
            let (own_keys, own_values) = (std::mem::replace(&mut self.keys, fresh()), std::mem::replace(&mut self.values, fresh()));
            let (mut keys, mut values) = match self.prefix.take() {
                None => (own_keys, own_values),
                Some(prefix) => {
                    let (mut keys, mut values) = Self::into_buffers(prefix);
                    keys.iter_mut().zip(own_keys).for_each(|(all, own)| all.extend_from_slice(&own));
                    values.iter_mut().zip(own_values).for_each(|(all, own)| all.extend_from_slice(&own));
                    (keys, values)
                }
            };
            keys.iter_mut().chain(values.iter_mut()).for_each(Vec::shrink_to_fit);
            self.prefix = Some(Arc::new(Self { n_kv_head: self.n_kv_head, head_dim: self.head_dim, len: self.len, prefix: None, keys, values }));
        }
        Self { n_kv_head: self.n_kv_head, head_dim: self.head_dim, len: self.len, prefix: self.prefix.clone(), keys: fresh(), values: fresh() }
    }

    /// A prefix's buffers: taken over when no other fork holds it any more, copied otherwise.
    fn into_buffers(prefix: Arc<KvCache>) -> (Vec<Vec<f16>>, Vec<Vec<f16>>) {
        match Arc::try_unwrap(prefix) {
            Ok(p) => (p.keys, p.values),
            Err(shared) => (shared.keys.clone(), shared.values.clone()),
        }
    }

    /// Drops every position from `len` on: the cache then describes a shorter prefix.
    pub fn truncate(&mut self, len: usize) {
        let len = len.min(self.len);
        let base = self.base();
        match self.prefix.take_if(|_| len < base) {
            // The cut falls inside the shared prefix: its first `len` positions become this
            // cache's own.
            Some(prefix) => {
                (self.keys, self.values) = Self::into_buffers(prefix);
                for b in self.keys.iter_mut().chain(self.values.iter_mut()) {
                    b.truncate(len * self.head_dim);
                }
            }
            None => {
                for b in self.keys.iter_mut().chain(self.values.iter_mut()) {
                    b.truncate((len - base) * self.head_dim);
                }
            }
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
        debug_assert!(self.keys.iter().all(|k| k.len() == (len - self.base()) * self.head_dim));
        self.len = len;
    }

    /// Keys and values of one key/value head of `layer`.
    pub(crate) fn head(&self, layer: usize, head: usize) -> HeadView<'_> {
        let b = layer * self.n_kv_head + head;
        let shared = self.prefix.as_ref().map_or((&[][..], &[][..]), |p| (&p.keys[b][..], &p.values[b][..]));
        HeadView { base: self.base(), shared, own: (&self.keys[b], &self.values[b]) }
    }

    /// Bytes held by keys and values, the shared prefix included.
    pub fn size_in_bytes(&self) -> usize {
        let own: usize = self.keys.iter().chain(&self.values).map(|v| v.capacity() * 2).sum();
        own + self.prefix.as_ref().map_or(0, |p| p.size_in_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keys and values of position `p` (2 layers, 2 heads, width 4): all entries equal
    /// `p + layer/4 + head/8` (keys) or its negation (values), exact in f16 for small p.
    fn push_positions(c: &mut KvCache, range: std::ops::Range<usize>) {
        for p in range {
            for layer in 0..2 {
                let k: Vec<f32> = (0..8).map(|i| p as f32 + layer as f32 * 0.25 + (i / 4) as f32 * 0.125).collect();
                let v: Vec<f32> = k.iter().map(|x| -x).collect();
                c.push(layer, &k, &v);
            }
            c.set_len(p + 1);
        }
    }

    fn check(c: &KvCache, len: usize) {
        assert_eq!(c.len(), len);
        for layer in 0..2 {
            for h in 0..2 {
                let view = c.head(layer, h);
                for seg in view.segments(0..len) {
                    for (p, at) in seg.positions.clone().zip(seg.local()) {
                        let want = p as f32 + layer as f32 * 0.25 + h as f32 * 0.125;
                        assert!(seg.keys[at * 4..][..4].iter().all(|x| x.to_f32() == want), "key {p} layer {layer} head {h}");
                        assert!(seg.values[at * 4..][..4].iter().all(|x| x.to_f32() == -want), "value {p}");
                    }
                }
                let seen: Vec<usize> = view.segments(0..len).flat_map(|s| s.positions).collect();
                assert_eq!(seen, (0..len).collect::<Vec<_>>());
            }
        }
    }

    /// Forks share the prompt's positions, append their own, and truncating into the shared
    /// part (the writer edited the prompt) gives back a whole cache, whether or not other
    /// forks still hold the prefix.
    #[test]
    fn forks_share_the_prefix_and_truncate_back_into_it() {
        let mut a = KvCache::new(2, 2, 4, 8);
        push_positions(&mut a, 0..5);
        let mut b = a.fork(3);
        let c = a.fork(3);
        assert!(Arc::ptr_eq(a.prefix().unwrap(), b.prefix().unwrap()) && Arc::ptr_eq(a.prefix().unwrap(), c.prefix().unwrap()));
        push_positions(&mut a, 5..7);
        push_positions(&mut b, 5..6);
        check(&a, 7);
        check(&b, 6);
        check(&c, 5);
        assert_eq!(a.head(0, 0).segments(3..7).map(|s| s.positions).collect::<Vec<_>>(), vec![3..5, 5..7]);
        assert!(a.head(0, 0).is_shared(&(0..5)) && !a.head(0, 0).is_shared(&(4..6)));

        // Truncating within its own positions keeps the prefix.
        a.truncate(6);
        assert!(a.prefix().is_some());
        check(&a, 6);
        // Into the prefix while others hold it: copied.
        a.truncate(3);
        assert!(a.prefix().is_none());
        check(&a, 3);
        push_positions(&mut a, 3..9);
        check(&a, 9);
        check(&b, 6);
        // The last holder takes the prefix over.
        drop(c);
        b.truncate(2);
        assert!(b.prefix().is_none());
        check(&b, 2);
        // Forking a cache that has its own positions after a prefix (a reused chapter, then
        // the edit) shares all of them, whether or not others still hold the old prefix.
        for keep_old in [false, true] {
            let mut d = KvCache::new(2, 2, 4, 0);
            push_positions(&mut d, 0..4);
            let old = d.fork(1);
            let old = keep_old.then_some(old);
            push_positions(&mut d, 4..6);
            let e = d.fork(1);
            assert!(Arc::ptr_eq(d.prefix().unwrap(), e.prefix().unwrap()));
            assert_eq!((d.base(), e.base()), (6, 6));
            check(&d, 6);
            check(&e, 6);
            if let Some(old) = old {
                check(&old, 4);
            }
        }
    }
}
