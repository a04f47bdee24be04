//! What the daemon tells the engine: observations of the kernel, dm and the sampler.
use std::collections::BTreeSet;

use super::{
    clock::Timestamp,
    ids::{MapName, PathKey},
};

/// One observation, fed to [`super::Engine::handle`] together with the current time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The path went to failed in dm (one failure transition, not one failed I/O), at `at`.
    /// Also marks the path inactive in dm.
    PathFailed { path: PathKey, at: Timestamp },
    /// The kernel saw the path fail twice within its window: the second failure at
    /// `second_at`, the first at `first_at` (which may or may not have been reported as a
    /// `PathFailed` already). The engine re-checks the window with the map's own parameters,
    /// so it stays correct if the kernel's window is stale.
    DoubleFailure {
        path: PathKey,
        first_at: Timestamp,
        second_at: Timestamp,
    },
    /// dm reinstated the path (multipathd's checker, an admin, or the engine's own decision).
    PathReinstated { path: PathKey },
    /// Resynchronisation of one path's dm state (e.g. from `dmsetup status`); not a failure.
    PathActive { path: PathKey, active: bool },
    /// Resynchronisation of a whole map: exactly these of its paths are active in dm; the
    /// others are failed. Not counted as failures.
    MapActivePaths {
        map: MapName,
        active: BTreeSet<PathKey>,
    },
    /// The sampling run the engine started on the path finished with these counts. Timed-out
    /// reads count as errors (once each).
    SamplingFinished {
        path: PathKey,
        reads: u64,
        errors: u64,
        /// Mean latency of the run's completed reads (the kernel's histogram of the path over
        /// the run), when measured; a slow path's check judges it too.
        latency_ns: Option<u64>,
    },
    /// The path's latency over a window was above its active siblings' by the map's factor
    /// ([`super::slow::compare`]): check it like a double failure.
    Slow {
        path: PathKey,
        mean_ns: u64,
        siblings_ns: u64,
    },
    /// The sampling run could not be carried out or finished (device vanished, open failed...).
    SamplingFailed { path: PathKey, error: String },
}

impl Event {
    /// The path the event is about, if it is about one path.
    pub fn path(&self) -> Option<&PathKey> {
        match self {
            Event::PathFailed { path, .. }
            | Event::DoubleFailure { path, .. }
            | Event::PathReinstated { path }
            | Event::PathActive { path, .. }
            | Event::SamplingFinished { path, .. }
            | Event::Slow { path, .. }
            | Event::SamplingFailed { path, .. } => Some(path),
            Event::MapActivePaths { .. } => None,
        }
    }
}
