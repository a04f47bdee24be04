//! Large buffers written once per scrape.

/// Asks for transparent huge pages under a large buffer about to be written once. Each 4 KiB
/// page of fresh memory costs a page fault on first write, a few microseconds each in a VM
/// or a memory cgroup: for the 24 MB of a 16,384-path exposition that was a quarter of the
/// writing. With 2 MiB pages it is a dozen faults. The memory is still returned when the
/// buffer is freed; where THP is off (`never`) this does nothing.
pub(crate) fn advise_huge_pages(start: *const u8, len: usize) {
    const HUGE_PAGE: usize = 2 << 20;
    let first = (start as usize).next_multiple_of(HUGE_PAGE);
    let end = (start as usize + len) / HUGE_PAGE * HUGE_PAGE;
    if end > first {
        // SAFETY: an advice about whole pages inside an allocation of ours; it changes how
        // they are backed, never their contents. A refusal (no THP) is harmless.
        unsafe {
            libc::madvise(first as *mut libc::c_void, end - first, libc::MADV_HUGEPAGE);
        }
    }
}
