//! Slow paths in the daemon: turns the kernel's latency measuring on for the maps with
//! slow-path checking, feeds each map's latency windows ([`LatencyWindows`]) and tells the
//! engine which paths are slow; a sampling run's latency is the kernel's histogram of the path
//! over the run (its reads are timed where every other I/O of the path is).
use std::collections::HashMap;

use marginal_common::PathLatency;

use super::core::Daemon;
use crate::engine::{Event, LatencyCounts, LatencyWindows, PathKey, Timestamp};

/// The daemon's latency bookkeeping.
#[derive(Debug, Default)]
pub struct LatencyState {
    /// Per map (by name): its comparison windows.
    pub windows: HashMap<String, LatencyWindows>,
    /// Per path being sampled: its counts when the run started.
    pub run_started: HashMap<PathKey, LatencyCounts>,
    /// Devices whose measuring the kernel refused, so it is said once, not every round.
    pub refused: std::collections::HashSet<u32>,
}

/// Reads and writes together: the comparison is of everything the path carried.
pub fn counts(latency: &PathLatency) -> LatencyCounts {
    LatencyCounts {
        ios: latency.read.count() + latency.write.count(),
        sum_ns: latency.read.sum_ns.wrapping_add(latency.write.sum_ns),
    }
}

impl Daemon {
    /// Turn latency measuring on or off for `dev`; a refusal (no kernel BTF) is logged once.
    pub(crate) fn measure_latency(&mut self, dev: u32, on: bool) {
        match self.kernel.measure_latency(dev, on) {
            Ok(()) => {
                self.latency.refused.remove(&dev);
            }
            Err(e) => {
                if self.latency.refused.insert(dev) {
                    log::warn!("latency of path device {dev:#x} is not measured: {e:#}");
                }
            }
        }
    }

    /// End of a window for maps whose window has passed: slow paths go to the engine.
    pub fn on_latency_tick(&mut self, now: Timestamp) {
        let mut events = Vec::new();
        for map in &self.topology.maps {
            let Some(slow) = self.params_for(&map.identity).and_then(|p| p.slow) else {
                self.latency.windows.remove(&map.name);
                continue;
            };
            let paths: Vec<_> = map
                .paths
                .iter()
                .filter_map(|path| {
                    let latency = self.kernel.latency(path.device.kernel_dev())?;
                    let active = self
                        .engine
                        .path(&path.key)
                        .is_some_and(|p| p.dm_active && !p.held_out);
                    Some((path.key.clone(), active, counts(&latency)))
                })
                .collect();
            let windows = self.latency.windows.entry(map.name.clone()).or_default();
            for (path, comparison) in windows.observe(now, &paths, slow) {
                if let crate::engine::Comparison::Slow {
                    mean_ns,
                    siblings_ns,
                } = comparison
                {
                    log::info!(
                        "{path}: mean latency {:.1} ms over the last {}s, its siblings' {:.1} ms",
                        mean_ns as f64 / 1e6,
                        slow.window.as_secs(),
                        siblings_ns as f64 / 1e6
                    );
                    events.push(Event::Slow {
                        path,
                        mean_ns,
                        siblings_ns,
                    });
                }
            }
        }
        for event in events {
            let decisions = self.engine.handle(now, event);
            self.apply(decisions, now);
        }
    }

    /// A sampling run starts on `path`: remember its counts.
    pub(crate) fn latency_run_started(&mut self, path: &PathKey) {
        let Some((_, watched)) = self.topology.path(path) else {
            return;
        };
        if let Some(latency) = self.kernel.latency(watched.device.kernel_dev()) {
            self.latency
                .run_started
                .insert(path.clone(), counts(&latency));
        }
    }

    /// The mean latency of what `path` completed since its run started, if measured.
    pub(crate) fn latency_of_run(&mut self, path: &PathKey) -> Option<u64> {
        let started = self.latency.run_started.remove(path)?;
        let (_, watched) = self.topology.path(path)?;
        let now = counts(&self.kernel.latency(watched.device.kernel_dev())?);
        now.since(started).mean_ns()
    }

    /// The last window's comparison of `path` in `map`, for status and metrics.
    pub fn latency_comparison(
        &self,
        map: &str,
        path: &PathKey,
    ) -> Option<crate::engine::Comparison> {
        self.latency.windows.get(map)?.last(path)
    }
}
