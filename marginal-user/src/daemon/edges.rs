//! The daemon core's edges to the outside world, each behind a small trait so that the core's
//! rules are unit-tested with fakes (`daemon/tests`): the kernel's maps, the sampler, and who
//! acts on paths. Device-mapper is [`crate::dm::MapSource`], the actuators
//! [`crate::actuator::Actuators`].
use std::{path::Path, time::Duration};

use anyhow::Result;
use marginal_common::{PathControl, PathLatency, PathRecord, WatchSettings};

use crate::{
    kernel::{KernelProbes, ProgramStats},
    sampler::SamplerHandle,
};

/// The eBPF maps: which devices the kernel counts, and what it counted.
pub trait KernelEdge {
    /// Start (or keep) counting `dev` with these settings; counters survive a re-watch.
    fn watch(&mut self, dev: u32, settings: WatchSettings) -> Result<()>;
    fn unwatch(&mut self, dev: u32) -> Result<()>;
    /// Edit what the kernel knows of marginal's own work on `dev`.
    fn control(&mut self, dev: u32, change: &mut dyn FnMut(&mut PathControl)) -> Result<()>;
    /// The control last written for `dev`.
    fn current_control(&self, dev: u32) -> PathControl;
    fn record(&self, dev: u32) -> Option<PathRecord>;
    /// Every watched device's record at once, where that is cheaper than asking
    /// [`KernelEdge::record`] per device (None: ask per device).
    fn all_records(&self) -> Option<std::collections::HashMap<u32, PathRecord>> {
        None
    }
    /// Entries of the watch map (benchmarks).
    fn watched_count(&self) -> usize;
    /// Events the kernel dropped because the ring buffer was full.
    fn events_lost(&self) -> u64;
    fn program_stats(&self) -> Vec<ProgramStats>;
    /// Measure `dev`'s latency in the kernel (or stop); its histograms survive a repeat.
    fn measure_latency(&mut self, dev: u32, on: bool) -> Result<()>;
    /// `dev`'s latency histograms, if measured.
    fn latency(&self, dev: u32) -> Option<PathLatency>;
}

impl KernelEdge for KernelProbes {
    fn watch(&mut self, dev: u32, settings: WatchSettings) -> Result<()> {
        KernelProbes::watch(self, dev, settings)
    }

    fn unwatch(&mut self, dev: u32) -> Result<()> {
        KernelProbes::unwatch(self, dev)
    }

    fn control(&mut self, dev: u32, change: &mut dyn FnMut(&mut PathControl)) -> Result<()> {
        KernelProbes::control(self, dev, change)
    }

    fn current_control(&self, dev: u32) -> PathControl {
        KernelProbes::current_control(self, dev)
    }

    fn record(&self, dev: u32) -> Option<PathRecord> {
        KernelProbes::record(self, dev)
    }

    fn all_records(&self) -> Option<std::collections::HashMap<u32, PathRecord>> {
        match KernelProbes::records_batch(self) {
            Ok(records) => Some(records.into_iter().collect()),
            Err(e) => {
                log::debug!("reading the watch map in batches: {e}; one lookup per path");
                None
            }
        }
    }

    fn watched_count(&self) -> usize {
        KernelProbes::records(self).len()
    }

    fn events_lost(&self) -> u64 {
        KernelProbes::events_lost(self)
    }

    fn program_stats(&self) -> Vec<ProgramStats> {
        KernelProbes::program_stats(self)
    }

    fn measure_latency(&mut self, dev: u32, on: bool) -> Result<()> {
        KernelProbes::measure_latency(self, dev, on)
    }

    fn latency(&self, dev: u32) -> Option<PathLatency> {
        KernelProbes::latency(self, dev)
    }
}

/// The io_uring sampler.
pub trait SamplerEdge {
    /// Start a run; `one_at_a_time`: one read in flight (a slow path's check).
    fn start(&self, key: &str, node: &Path, duration: Duration, one_at_a_time: bool) -> Result<()>;
    /// Whether a run was found to stop.
    fn stop(&self, key: &str) -> Result<bool>;
    /// Reads and errors of the run in progress.
    fn progress(&self, key: &str) -> Option<(u64, u64)>;
}

impl SamplerEdge for SamplerHandle {
    fn start(&self, key: &str, node: &Path, duration: Duration, one_at_a_time: bool) -> Result<()> {
        SamplerHandle::start_with_slots(self, key, node, duration, one_at_a_time.then_some(1))
    }

    fn stop(&self, key: &str) -> Result<bool> {
        SamplerHandle::stop(self, key)
    }

    fn progress(&self, key: &str) -> Option<(u64, u64)> {
        SamplerHandle::progress(self, key)
    }
}
