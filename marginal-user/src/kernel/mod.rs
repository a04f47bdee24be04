//! The kernel edge: every signal marginal takes from the kernel. Its eBPF programs, their maps
//! and their events, and the netlink uevents of dm-mpath and of block devices.
//!
//! * [`probes`] loads and attaches the programs and owns the maps: the watch map user space
//!   fills with the path devices to count, and the per-path records the kernel keeps.
//! * [`tracefs`] finds the block error tracepoint and reads its record layout at load time.
//! * [`events`] reads the ring buffer with tokio and decodes [`KernelEvent`]s.
//! * [`btf`] reads struct offsets from kernel BTF for the latency program.
//! * [`latency`] attaches the latency program and keeps its maps.
//! * [`stats`] turns on the kernel's accounting of program cost.
//! * [`uevent`] listens for dm-mpath's PATH_FAILED / PATH_REINSTATED and block device
//!   add/remove uevents (netlink), the signal that works without eBPF.
//! * [`batch`] reads a whole eBPF hash map in a few syscalls (a scrape at 16,384 paths).
pub mod batch;
pub mod btf;
pub mod events;
pub mod latency;
pub mod probes;
pub mod stats;
pub mod tracefs;
pub mod uevent;

pub use events::{EventStream, KernelEvent};
pub use latency::LatencyProgram;
pub use probes::{BlockErrorProgram, KernelProbes, LiveSignals, ProgramStats};
pub use tracefs::BlockErrorTracepoint;
