//! Page-aligned read buffers for O_DIRECT.
//!
//! A buffer is handed to the kernel by raw pointer when a read is submitted. Its memory must stay
//! allocated until the kernel has posted that read's completion (upstream freed buffers of hung
//! reads early, and the late DMA then wrote into reused memory). So a buffer is never freed by the
//! code that submitted it: the ring keeps it with the read's run (one buffer holds all of a
//! run's slots), or in its orphan list when the run ends first, and drops it only after the
//! completions arrived (or leaks it on shutdown).
use std::{
    alloc::{self, Layout},
    ptr::NonNull,
};

/// A zeroed heap buffer aligned to the page size. Moving the struct does not move the memory.
pub(crate) struct AlignedBuf {
    ptr: NonNull<u8>,
    layout: Layout,
}

// The buffer is plain memory; which thread frees it does not matter.
unsafe impl Send for AlignedBuf {}
// A shared reference only gives out the address (nothing is read or written through it), so
// sharing one between threads is harmless; the ring shares a run's area among the entries of
// its reads still in flight after the run ended.
unsafe impl Sync for AlignedBuf {}

impl AlignedBuf {
    /// `len` bytes aligned to the page size (O_DIRECT needs at least logical-block alignment;
    /// the page size satisfies every block size up to it, as the spec asks).
    pub(crate) fn new(len: usize) -> Self {
        Self::with_align(len, page_size())
    }

    fn with_align(len: usize, align: usize) -> Self {
        assert!(len > 0, "zero-length read buffer");
        let layout =
            Layout::from_size_align(len, align).expect("block size and page size fit a Layout");
        // SAFETY: the layout has a non-zero size.
        let raw = unsafe { alloc::alloc_zeroed(layout) };
        let ptr = NonNull::new(raw).unwrap_or_else(|| alloc::handle_alloc_error(layout));
        Self { ptr, layout }
    }

    pub(crate) fn as_mut_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    pub(crate) fn len(&self) -> usize {
        self.layout.size()
    }

    /// Give up the memory for good: for buffers a hung read may still write into when the
    /// sampler shuts down and cannot wait any longer.
    pub(crate) fn leak(self) {
        std::mem::forget(self);
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        // SAFETY: allocated in `with_align` with this very layout.
        unsafe { alloc::dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

/// The system page size (4096 if sysconf cannot tell).
pub(crate) fn page_size() -> usize {
    // SAFETY: sysconf has no memory-safety preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size)
        .ok()
        .filter(|s| s.is_power_of_two())
        .unwrap_or(4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_page_aligned_and_zeroed() {
        for len in [512, 4096, 65536] {
            let buf = AlignedBuf::new(len);
            assert_eq!(buf.as_mut_ptr() as usize % page_size(), 0);
            assert_eq!(buf.len(), len);
            // SAFETY: the buffer owns `len` initialised (zeroed) bytes.
            let bytes = unsafe { std::slice::from_raw_parts(buf.as_mut_ptr(), len) };
            assert!(bytes.iter().all(|&b| b == 0));
        }
    }

    #[test]
    fn moving_a_buffer_keeps_its_address() {
        let buf = AlignedBuf::new(4096);
        let before = buf.as_mut_ptr();
        let moved = Box::new(buf);
        assert_eq!(moved.as_mut_ptr(), before);
    }
}
