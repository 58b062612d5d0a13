//! A slice that parallel tasks write in disjoint parts: each task owns some positions (a
//! group of weight rows' columns in a product) and writes them
//! in place, with no lock and no copy through per-task buffers.

use std::marker::PhantomData;

pub(crate) struct DisjointSlice<'a> {
    ptr: *mut f32,
    len: usize,
    _borrow: PhantomData<&'a mut [f32]>,
}

// SAFETY: tasks write disjoint positions (the contract of `write` and `part`), and the
// exclusive borrow of the slice lasts as long as this value.
unsafe impl Sync for DisjointSlice<'_> {}
unsafe impl Send for DisjointSlice<'_> {}

impl<'a> DisjointSlice<'a> {
    pub(crate) fn new(values: &'a mut [f32]) -> Self {
        DisjointSlice { ptr: values.as_mut_ptr(), len: values.len(), _borrow: PhantomData }
    }

    /// Writes `values` from position `at`.
    ///
    /// # Safety
    /// No other task may read or write these positions while this value lives.
    pub(crate) unsafe fn write(&self, at: usize, values: &[f32]) {
        assert!(at <= self.len && values.len() <= self.len - at, "write out of bounds");
        // SAFETY: in bounds (checked above); no other access to them (caller's contract).
        unsafe { std::ptr::copy_nonoverlapping(values.as_ptr(), self.ptr.add(at), values.len()) };
    }
}
