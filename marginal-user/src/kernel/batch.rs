//! Every entry of a BPF hash map in a few syscalls (`BPF_MAP_LOOKUP_BATCH`, Linux 5.6), for
//! the status snapshot: aya 0.14 reads one entry per syscall (and iterates with two), and one
//! lookup per watched path was a fifth of a scrape's CPU at 16,384 paths.
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use aya::Pod;

/// `BPF_MAP_LOOKUP_BATCH` (include/uapi/linux/bpf.h, `enum bpf_cmd`).
const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;

/// Entries asked for per syscall; more than a hash bucket ever holds (a bucket larger than
/// the count is refused with ENOSPC).
const CHUNK: usize = 4096;

/// The `batch` member of `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

/// Every (key, value) of the hash map `map` (not a per-CPU map: its values are laid out per
/// CPU). An error (a kernel without batch operations) leaves the caller to look entries up
/// one by one.
pub fn lookup_all<K: Pod + Default, V: Pod + Default>(map: BorrowedFd) -> io::Result<Vec<(K, V)>> {
    let mut out = Vec::new();
    let mut keys = vec![K::default(); CHUNK];
    let mut values = vec![V::default(); CHUNK];
    // For a hash map the position between calls is a bucket index, written by the kernel.
    let mut position: u32 = 0;
    let mut next: u32 = 0;
    let mut first = true;
    loop {
        let mut attr = BatchAttr {
            in_batch: if first { 0 } else { &raw const position as u64 },
            out_batch: &raw mut next as u64,
            keys: keys.as_mut_ptr() as u64,
            values: values.as_mut_ptr() as u64,
            count: CHUNK as u32,
            map_fd: map.as_raw_fd() as u32,
            ..Default::default()
        };
        // SAFETY: bpf(2) with a batch attribute whose buffers hold `count` keys and values of
        // the map's key and value sizes (K and V are the map's types) and live through the
        // call; the kernel writes back `count` and `next`.
        let result = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_MAP_LOOKUP_BATCH,
                &raw mut attr,
                std::mem::size_of::<BatchAttr>() as libc::c_uint,
            )
        };
        let error = (result < 0).then(io::Error::last_os_error);
        // On the last call the kernel answers ENOENT with the entries it still copied.
        let done = match &error {
            None => false,
            Some(e) if e.raw_os_error() == Some(libc::ENOENT) => true,
            Some(_) => return Err(error.expect("checked")),
        };
        let copied = (attr.count as usize).min(CHUNK);
        out.extend(
            keys[..copied]
                .iter()
                .copied()
                .zip(values[..copied].iter().copied()),
        );
        if done {
            return Ok(out);
        }
        position = next;
        first = false;
    }
}
