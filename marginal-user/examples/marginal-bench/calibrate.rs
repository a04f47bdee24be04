//! The floor of bpf_stats on this machine: an empty program (`r0 = 0; exit`) attached to the
//! same tracepoint. The kernel times each run with two clock reads around the program, so
//! even an empty program shows a cost; measuring it beside marginal's program tells which
//! part of a run's accounted time is marginal's work and which is the accounting itself.
//!
//! Loaded and attached with raw syscalls (aya loads ELF objects only); both programs run on
//! every hit of the tracepoint, one after the other, with the same caches.
use std::{
    fs,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
};

use anyhow::{Context, Result, bail};

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_RAW_TRACEPOINT_OPEN: libc::c_long = 17;
const BPF_PROG_TYPE_TRACEPOINT: u32 = 5;
const BPF_PROG_TYPE_RAW_TRACEPOINT: u32 = 17;
const PERF_TYPE_TRACEPOINT: u32 = 2;
const PERF_SAMPLE_RAW: u64 = 1 << 10;
const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 8;
const PERF_EVENT_IOC_ENABLE: libc::c_ulong = 0x2400;
const PERF_EVENT_IOC_SET_BPF: libc::c_ulong = 0x4004_2408;

/// An empty tracepoint program, attached while this lives.
pub struct EmptyProgram {
    name: String,
    _program: OwnedFd,
    _event: OwnedFd,
}

impl EmptyProgram {
    pub fn attach(category: &str, tracepoint: &str) -> Result<Self> {
        let id: u64 = fs::read_to_string(format!(
            "/sys/kernel/tracing/events/{category}/{tracepoint}/id"
        ))
        .context("reading the tracepoint id from tracefs")?
        .trim()
        .parse()?;
        let name = format!("mbempty{}", std::process::id() % 100_000_000);
        let program = load_empty(&name)?;
        let event = open_tracepoint_event(id)?;
        // SAFETY: ioctls on fds we own, with an int argument.
        unsafe {
            if libc::ioctl(
                event.as_raw_fd(),
                PERF_EVENT_IOC_SET_BPF,
                program.as_raw_fd(),
            ) != 0
            {
                return Err(std::io::Error::last_os_error()).context("PERF_EVENT_IOC_SET_BPF");
            }
            if libc::ioctl(event.as_raw_fd(), PERF_EVENT_IOC_ENABLE, 0) != 0 {
                return Err(std::io::Error::last_os_error()).context("PERF_EVENT_IOC_ENABLE");
            }
        }
        Ok(Self {
            name,
            _program: program,
            _event: event,
        })
    }

    /// An empty raw tracepoint program on `tracepoint` (for the latency program's floor).
    pub fn attach_raw(tracepoint: &str) -> Result<Self> {
        let name = format!("mbrawempty{}", std::process::id() % 100_000);
        let program = load_empty_of_type(&name, BPF_PROG_TYPE_RAW_TRACEPOINT)?;
        let tp = std::ffi::CString::new(tracepoint)?;
        // union bpf_attr, raw_tracepoint part: name (u64 pointer), prog_fd (u32).
        let mut attr = [0u8; 16];
        attr[0..8].copy_from_slice(&(tp.as_ptr() as u64).to_ne_bytes());
        attr[8..12].copy_from_slice(&(program.as_raw_fd() as u32).to_ne_bytes());
        // SAFETY: bpf(2) reads `attr.len()` bytes; the name outlives the call.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_RAW_TRACEPOINT_OPEN,
                attr.as_ptr(),
                attr.len() as libc::c_uint,
            )
        };
        if fd < 0 {
            return Err(std::io::Error::last_os_error()).context("BPF_RAW_TRACEPOINT_OPEN");
        }
        Ok(Self {
            name,
            _program: program,
            // SAFETY: a new fd the kernel just gave us (the link: closing it detaches).
            _event: unsafe { OwnedFd::from_raw_fd(fd as i32) },
        })
    }

    /// (run_count, run_time ns), as for marginal's programs.
    pub fn stats(&self) -> Result<(u64, u64)> {
        for info in aya::programs::loaded_programs() {
            let Ok(info) = info else { continue };
            if info.name_as_str() == Some(self.name.as_str()) {
                return Ok((info.run_count(), info.run_time().as_nanos() as u64));
            }
        }
        bail!("the empty program {} is not loaded", self.name)
    }
}

fn load_empty(name: &str) -> Result<OwnedFd> {
    load_empty_of_type(name, BPF_PROG_TYPE_TRACEPOINT)
}

fn load_empty_of_type(name: &str, prog_type: u32) -> Result<OwnedFd> {
    // r0 = 0 (BPF_ALU64 | BPF_MOV | BPF_K), exit (BPF_JMP | BPF_EXIT).
    let insns: [u64; 2] = [0xb7, 0x95];
    let license = c"GPL";
    // union bpf_attr, BPF_PROG_LOAD part: prog_type, insn_cnt, insns, license, log_level,
    // log_size, log_buf, kern_version, prog_flags, prog_name[16].
    let mut attr = [0u8; 64];
    attr[0..4].copy_from_slice(&prog_type.to_ne_bytes());
    attr[4..8].copy_from_slice(&2u32.to_ne_bytes());
    attr[8..16].copy_from_slice(&(insns.as_ptr() as u64).to_ne_bytes());
    attr[16..24].copy_from_slice(&(license.as_ptr() as u64).to_ne_bytes());
    let bytes = name.as_bytes();
    attr[48..48 + bytes.len().min(15)].copy_from_slice(&bytes[..bytes.len().min(15)]);
    // SAFETY: bpf(2) reads `attr.len()` bytes; the pointers in it outlive the call.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_LOAD,
            attr.as_ptr(),
            attr.len() as libc::c_uint,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error()).context("BPF_PROG_LOAD of an empty program");
    }
    // SAFETY: a new fd the kernel just gave us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// perf_event_open of the tracepoint on CPU 0, all processes (as aya attaches): the program
/// is attached to the tracepoint itself, so it runs on every CPU.
fn open_tracepoint_event(id: u64) -> Result<OwnedFd> {
    // struct perf_event_attr (PERF_ATTR_SIZE_VER7 = 128 bytes): type, size, config,
    // sample_period, sample_type, ..., wakeup_events at byte 48.
    let mut attr = [0u8; 128];
    attr[0..4].copy_from_slice(&PERF_TYPE_TRACEPOINT.to_ne_bytes());
    attr[4..8].copy_from_slice(&128u32.to_ne_bytes());
    attr[8..16].copy_from_slice(&id.to_ne_bytes());
    attr[24..32].copy_from_slice(&PERF_SAMPLE_RAW.to_ne_bytes());
    attr[48..52].copy_from_slice(&1u32.to_ne_bytes());
    // SAFETY: perf_event_open(2) reads the attr; pid -1, cpu 0, no group.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            attr.as_ptr(),
            -1 as libc::pid_t,
            0 as libc::c_int,
            -1 as libc::c_int,
            PERF_FLAG_FD_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error()).context("perf_event_open of the tracepoint");
    }
    // SAFETY: a new fd the kernel just gave us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}
