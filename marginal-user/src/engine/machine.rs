//! The engine: the registry of maps and paths, events in, decisions out.
use std::{collections::BTreeSet, fmt};

use super::{
    Params,
    clock::Timestamp,
    decisions::{Decision, Reason},
    events::Event,
    ids::{MapName, PathKey},
    path::{Ctx, MapView, PathRecord},
    registry::Registry,
    snapshot::{MapSnapshot, PathSnapshot},
};

/// A registry call named a map or path the engine does not know.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EngineError {
    UnknownMap(MapName),
    UnknownPath(PathKey),
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EngineError::UnknownMap(map) => write!(f, "unknown multipath map {map}"),
            EngineError::UnknownPath(path) => write!(f, "unknown path {path}"),
        }
    }
}

impl std::error::Error for EngineError {}

/// The marginal-path rules for every map of the host. See the [module docs](super).
#[derive(Clone, Debug, Default)]
pub struct Engine {
    registry: Registry,
}

impl Engine {
    pub fn new() -> Self {
        Self::default()
    }

    // ----- registry: what discovery and configuration tell the engine -----

    /// Adds a map, or changes its parameters (None: checking off). Turning checking off returns
    /// every path the engine holds out and forgets pending failures. Changed parameters apply
    /// from the next transition: a run in progress keeps its length, a recheck its due time.
    pub fn upsert_map(
        &mut self,
        map: MapName,
        params: Option<Params>,
        now: Timestamp,
    ) -> Vec<Decision> {
        let mut out = Vec::new();
        let previous = self.registry.upsert_map(map.clone(), params);
        if params.is_none() && matches!(previous, Some(Some(_))) {
            for path in self.registry.paths_of(&map) {
                self.with_record(&path, now, &mut out, |record, ctx, _| {
                    record.checking_disabled(ctx)
                });
            }
        }
        self.finish(now, out)
    }

    /// Removes a map and its paths. Runs in progress are stopped; held-out paths are released.
    pub fn remove_map(&mut self, map: &MapName, now: Timestamp) -> Vec<Decision> {
        let mut out = Vec::new();
        for (path, entry) in self.registry.remove_map(map) {
            let mut ctx = Ctx {
                path: &path,
                map: &entry.map,
                now,
                out: &mut out,
            };
            entry.record.forget(&mut ctx, Reason::MapRemoved);
        }
        self.finish(now, out)
    }

    /// Adds a path to a map, with its dm state. A path already in the map only has its dm
    /// state updated; a path in another map moves (its old state is dropped, as by
    /// [`Engine::remove_path`]).
    pub fn add_path(
        &mut self,
        map: &MapName,
        path: PathKey,
        dm_active: bool,
        now: Timestamp,
    ) -> Result<Vec<Decision>, EngineError> {
        if self.registry.map(map).is_none() {
            return Err(EngineError::UnknownMap(map.clone()));
        }
        let mut out = Vec::new();
        if let Some(entry) = self.registry.path(&path) {
            if &entry.map == map {
                self.registry
                    .update_path(&path, |e| e.record.dm_active = dm_active);
                return Ok(self.finish(now, out));
            }
            out = self.remove_path(&path, now);
        }
        let inserted = self
            .registry
            .insert_path(map, path, PathRecord::new(dm_active, now));
        debug_assert!(inserted, "map checked above");
        Ok(self.finish(now, out))
    }

    /// Removes a path (it left its map or vanished): its run is stopped and its state dropped.
    /// If that leaves its map without an active path, held-out siblings are recovered.
    pub fn remove_path(&mut self, path: &PathKey, now: Timestamp) -> Vec<Decision> {
        let mut out = Vec::new();
        if let Some(entry) = self.registry.remove_path(path) {
            let mut ctx = Ctx {
                path,
                map: &entry.map,
                now,
                out: &mut out,
            };
            entry.record.forget(&mut ctx, Reason::PathRemoved);
        }
        self.finish(now, out)
    }

    /// Takes back a path a previous run of the daemon had failed (its persisted state): the
    /// path is held out and resampled at once, or recovered if its map has no other active
    /// path. With checking now off for its map, it is reinstated instead. Add all of the map's
    /// paths first, so the engine knows whether the map can spare it.
    pub fn adopt_failed_path(
        &mut self,
        path: &PathKey,
        now: Timestamp,
    ) -> Result<Vec<Decision>, EngineError> {
        if self.registry.path(path).is_none() {
            return Err(EngineError::UnknownPath(path.clone()));
        }
        let mut out = Vec::new();
        self.with_record(path, now, &mut out, |record, ctx, view| match view {
            Some(view) => record.adopt(ctx, view),
            None if !record.dm_active => ctx.out.push(Decision::ReinstatePath {
                path: ctx.path.clone(),
                map: ctx.map.clone(),
                reason: Reason::CheckingDisabled,
            }),
            None => {}
        });
        Ok(self.finish(now, out))
    }

    // ----- events and time -----

    /// Applies one observation. Events about unknown paths or maps are ignored.
    pub fn handle(&mut self, now: Timestamp, event: Event) -> Vec<Decision> {
        let mut out = Vec::new();
        match event {
            Event::PathFailed { path, at } => {
                self.with_record(&path, now, &mut out, |record, ctx, view| {
                    record.failed(ctx, view, at)
                });
            }
            Event::DoubleFailure {
                path,
                first_at,
                second_at,
            } => {
                self.with_record(&path, now, &mut out, |record, ctx, view| {
                    record.failed_twice(ctx, view, first_at, second_at)
                });
            }
            Event::PathReinstated { path } => {
                self.with_record(&path, now, &mut out, |record, ctx, view| {
                    record.reinstated(ctx, view)
                });
            }
            Event::PathActive { path, active } => {
                self.registry
                    .update_path(&path, |e| e.record.dm_active = active);
            }
            Event::MapActivePaths { map, active } => self.resync_map(&map, &active),
            Event::SamplingFinished {
                path,
                reads,
                errors,
                latency_ns,
            } => {
                self.with_checked_record(&path, now, &mut out, |record, ctx, view| {
                    record.sampling_finished(ctx, view, reads, errors, latency_ns)
                });
            }
            Event::Slow {
                path,
                mean_ns,
                siblings_ns,
            } => {
                self.with_checked_record(&path, now, &mut out, |record, ctx, view| {
                    record.slow(ctx, view, mean_ns, siblings_ns)
                });
            }
            Event::SamplingFailed { path, error } => {
                self.with_checked_record(&path, now, &mut out, |record, ctx, view| {
                    record.sampling_failed(ctx, view, Reason::SamplingFailed(error))
                });
            }
        }
        self.finish(now, out)
    }

    /// Time-driven transitions due at `now`: rechecks of marginal paths, and sampling runs
    /// whose report never came. Call it at [`Engine::next_deadline`].
    pub fn poll(&mut self, now: Timestamp) -> Vec<Decision> {
        let mut out = Vec::new();
        let due: Vec<PathKey> = self
            .registry
            .paths()
            .filter(|(_, e)| e.record.state.deadline().is_some_and(|d| d <= now))
            .map(|(p, _)| p.clone())
            .collect();
        for path in due {
            self.with_checked_record(&path, now, &mut out, |record, ctx, view| {
                record.poll(ctx, view)
            });
        }
        self.finish(now, out)
    }

    /// The earliest time [`Engine::poll`] has something to do, if any.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        self.registry
            .paths()
            .filter_map(|(_, e)| e.record.state.deadline())
            .min()
    }

    // ----- views -----

    pub fn knows_path(&self, path: &PathKey) -> bool {
        self.registry.path(path).is_some()
    }

    /// One path's state, for status and metrics.
    pub fn path(&self, path: &PathKey) -> Option<PathSnapshot> {
        let entry = self.registry.path(path)?;
        let params = self.registry.map(&entry.map).and_then(|m| m.params);
        Some(PathSnapshot::of(path, entry, params))
    }

    /// Every path's state, sorted by path name.
    pub fn snapshot(&self) -> Vec<PathSnapshot> {
        self.registry
            .paths()
            .map(|(path, entry)| {
                let params = self.registry.map(&entry.map).and_then(|m| m.params);
                PathSnapshot::of(path, entry, params)
            })
            .collect()
    }

    /// Every map, sorted by name.
    pub fn maps(&self) -> Vec<MapSnapshot> {
        self.registry
            .maps()
            .map(|(name, entry)| {
                let held_out = entry
                    .paths
                    .iter()
                    .filter_map(|p| self.registry.path(p))
                    .filter(|e| e.record.state.held_out())
                    .count();
                MapSnapshot::of(name, entry, self.registry.active_paths(name), held_out)
            })
            .collect()
    }

    /// What to do on shutdown to leave every map as many active paths as the engine can vouch
    /// for: reinstate every path it holds out (nobody watches them once the daemon is gone;
    /// a restart adopts the ones it chooses to keep failed). Changes nothing in the engine:
    /// the daemon decides whether to carry it out.
    pub fn shutdown_plan(&self) -> Vec<Decision> {
        self.registry
            .paths()
            .filter(|(_, e)| e.record.state.held_out())
            .map(|(path, e)| Decision::ReinstatePath {
                path: path.clone(),
                map: e.map.clone(),
                reason: Reason::Shutdown,
            })
            .collect()
    }

    // ----- plumbing -----

    /// Runs `transition` on the path's record with its map's view (None: checking off).
    fn with_record(
        &mut self,
        path: &PathKey,
        now: Timestamp,
        out: &mut Vec<Decision>,
        transition: impl FnOnce(&mut PathRecord, &mut Ctx, Option<MapView>),
    ) {
        let view = self.registry.map_view(path);
        let Some(map) = self.registry.path(path).map(|e| e.map.clone()) else {
            return;
        };
        let mut ctx = Ctx {
            path,
            map: &map,
            now,
            out,
        };
        self.registry
            .update_path(path, |entry| transition(&mut entry.record, &mut ctx, view));
    }

    /// As [`Engine::with_record`], only for paths whose map has checking on.
    fn with_checked_record(
        &mut self,
        path: &PathKey,
        now: Timestamp,
        out: &mut Vec<Decision>,
        transition: impl FnOnce(&mut PathRecord, &mut Ctx, MapView),
    ) {
        self.with_record(path, now, out, |record, ctx, view| {
            if let Some(view) = view {
                transition(record, ctx, view);
            }
        });
    }

    fn resync_map(&mut self, map: &MapName, active: &BTreeSet<PathKey>) {
        for path in self.registry.paths_of(map) {
            let dm_active = active.contains(&path);
            self.registry
                .update_path(&path, |e| e.record.dm_active = dm_active);
        }
    }

    /// Ends every public call: no map may be left without an active path while the engine
    /// holds one of its paths out, whatever event took the last one away. Only the maps the
    /// call touched can have lost one.
    fn finish(&mut self, now: Timestamp, mut out: Vec<Decision>) -> Vec<Decision> {
        for map in self.registry.take_touched() {
            if self.registry.active_paths(&map) > 0 {
                continue;
            }
            for path in self.registry.paths_of(&map) {
                self.with_record(&path, now, &mut out, |record, ctx, _| {
                    record.recover(ctx, Reason::MapWithoutActivePath)
                });
            }
        }
        out
    }
}
