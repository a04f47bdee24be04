//! Which maps exist, their parameters, and which paths belong to which map.
use std::collections::{BTreeMap, BTreeSet};

use super::{
    Params,
    ids::{MapName, PathKey},
    path::{MapView, PathRecord},
};

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct MapEntry {
    /// None: checking is off for this map.
    pub params: Option<Params>,
    pub paths: BTreeSet<PathKey>,
    /// How many of `paths` are active (kept up to date by every change of a record, so that
    /// asking costs nothing: a `--watch` group of 16,384 paths is one map).
    active: usize,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PathEntry {
    pub map: MapName,
    pub record: PathRecord,
}

/// Maps and paths. Invariant: every path's map exists and lists the path, and no map lists a
/// path that is not here.
#[derive(Clone, Debug, Default)]
pub(crate) struct Registry {
    maps: BTreeMap<MapName, MapEntry>,
    paths: BTreeMap<PathKey, PathEntry>,
    /// Maps whose paths or parameters may have changed since [`Registry::take_touched`]: the
    /// engine's last-path rule looks at these only, not at every map after every event (which
    /// made taking up a topology quadratic in paths: 52 s for 16,384).
    touched: BTreeSet<MapName>,
}

impl Registry {
    pub fn map(&self, name: &MapName) -> Option<&MapEntry> {
        self.maps.get(name)
    }

    pub fn maps(&self) -> impl Iterator<Item = (&MapName, &MapEntry)> {
        self.maps.iter()
    }

    pub fn path(&self, path: &PathKey) -> Option<&PathEntry> {
        self.paths.get(path)
    }

    /// Changes the path's entry with `change` (which must not move it to another map), keeping
    /// its map's count of active paths, and marks the map touched.
    pub fn update_path<R>(
        &mut self,
        path: &PathKey,
        change: impl FnOnce(&mut PathEntry) -> R,
    ) -> Option<R> {
        let Registry {
            maps,
            paths,
            touched,
        } = self;
        let entry = paths.get_mut(path)?;
        let was_active = entry.record.is_active();
        let result = change(entry);
        let is_active = entry.record.is_active();
        if let Some(map) = maps.get_mut(&entry.map) {
            match (was_active, is_active) {
                (false, true) => map.active += 1,
                (true, false) => map.active -= 1,
                _ => {}
            }
        }
        if !touched.contains(&entry.map) {
            touched.insert(entry.map.clone());
        }
        #[cfg(test)]
        self.check_active_counts();
        Some(result)
    }

    /// Every map's count of active paths is what its paths say.
    #[cfg(test)]
    fn check_active_counts(&self) {
        for (name, map) in &self.maps {
            let counted = map
                .paths
                .iter()
                .filter(|p| self.paths.get(*p).is_some_and(|e| e.record.is_active()))
                .count();
            assert_eq!(map.active, counted, "active paths of {name}");
        }
    }

    /// The maps touched since the last call (see `touched`), that still exist.
    pub fn take_touched(&mut self) -> Vec<MapName> {
        let touched = std::mem::take(&mut self.touched);
        touched
            .into_iter()
            .filter(|m| self.maps.contains_key(m))
            .collect()
    }

    pub fn paths(&self) -> impl Iterator<Item = (&PathKey, &PathEntry)> {
        self.paths.iter()
    }

    pub fn paths_of(&self, map: &MapName) -> Vec<PathKey> {
        self.maps
            .get(map)
            .map(|m| m.paths.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Adds the map or changes its parameters; returns the previous parameters if it existed.
    pub fn upsert_map(&mut self, name: MapName, params: Option<Params>) -> Option<Option<Params>> {
        self.touched.insert(name.clone());
        match self.maps.get_mut(&name) {
            Some(entry) => Some(std::mem::replace(&mut entry.params, params)),
            None => {
                let entry = MapEntry {
                    params,
                    paths: BTreeSet::new(),
                    active: 0,
                };
                self.maps.insert(name, entry);
                None
            }
        }
    }

    /// Removes the map and all its paths, returning them.
    pub fn remove_map(&mut self, name: &MapName) -> Vec<(PathKey, PathEntry)> {
        let Some(entry) = self.maps.remove(name) else {
            return Vec::new();
        };
        entry
            .paths
            .into_iter()
            .filter_map(|p| self.paths.remove(&p).map(|e| (p, e)))
            .collect()
    }

    /// Adds a path to an existing map. The caller removes it from any other map first.
    pub fn insert_path(&mut self, map: &MapName, path: PathKey, record: PathRecord) -> bool {
        let Some(entry) = self.maps.get_mut(map) else {
            return false;
        };
        if entry.paths.insert(path.clone()) && record.is_active() {
            entry.active += 1;
        }
        let map = map.clone();
        self.touched.insert(map.clone());
        let replaced = self.paths.insert(path, PathEntry { map, record });
        debug_assert!(
            replaced.is_none(),
            "the caller removes a path before adding it again"
        );
        #[cfg(test)]
        self.check_active_counts();
        true
    }

    pub fn remove_path(&mut self, path: &PathKey) -> Option<PathEntry> {
        let entry = self.paths.remove(path)?;
        if let Some(map) = self.maps.get_mut(&entry.map) {
            if map.paths.remove(path) && entry.record.is_active() {
                map.active -= 1;
            }
            self.touched.insert(entry.map.clone());
        }
        Some(entry)
    }

    /// Paths of the map that carry I/O in the engine's view (dm-active and not held out).
    pub fn active_paths(&self, map: &MapName) -> usize {
        self.count_active(map, None)
    }

    fn count_active(&self, map: &MapName, except: Option<&PathKey>) -> usize {
        let Some(entry) = self.maps.get(map) else {
            return 0;
        };
        let except_active = except
            .filter(|p| entry.paths.contains(*p))
            .and_then(|p| self.paths.get(p))
            .is_some_and(|e| e.record.is_active());
        entry.active - usize::from(except_active)
    }

    /// What the path's rules need from its map; None if the path is unknown or checking is off.
    pub fn map_view(&self, path: &PathKey) -> Option<MapView> {
        let entry = self.paths.get(path)?;
        let params = self.maps.get(&entry.map)?.params?;
        Some(MapView {
            params,
            other_active: self.count_active(&entry.map, Some(path)),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::engine::clock::Timestamp;

    fn params() -> Params {
        Params {
            double_failed_time: Duration::from_secs(60),
            sample_time: Duration::from_secs(120),
            err_rate_threshold: 10,
            recheck_gap_time: Duration::from_secs(300),
            slow: None,
            action: Default::default(),
        }
    }

    fn registry() -> Registry {
        let mut r = Registry::default();
        r.upsert_map("mpatha".into(), Some(params()));
        r.upsert_map("mpathb".into(), None);
        let t = Timestamp::from_secs(0);
        assert!(r.insert_path(&"mpatha".into(), "sda".into(), PathRecord::new(true, t)));
        assert!(r.insert_path(&"mpatha".into(), "sdb".into(), PathRecord::new(true, t)));
        assert!(r.insert_path(&"mpatha".into(), "sdc".into(), PathRecord::new(false, t)));
        assert!(r.insert_path(&"mpathb".into(), "sdd".into(), PathRecord::new(true, t)));
        r
    }

    #[test]
    fn counts_active_paths_per_map() {
        let r = registry();
        assert_eq!(r.active_paths(&"mpatha".into()), 2);
        assert_eq!(r.active_paths(&"mpathb".into()), 1);
        assert_eq!(r.active_paths(&"nope".into()), 0);
    }

    #[test]
    fn map_view_counts_other_active_paths_only() {
        let r = registry();
        assert_eq!(r.map_view(&"sda".into()).unwrap().other_active, 1);
        assert_eq!(r.map_view(&"sdc".into()).unwrap().other_active, 2);
        assert_eq!(r.map_view(&"sda".into()).unwrap().params, params());
    }

    #[test]
    fn map_view_is_none_when_checking_is_off_or_path_unknown() {
        let r = registry();
        assert!(r.map_view(&"sdd".into()).is_none());
        assert!(r.map_view(&"sdz".into()).is_none());
    }

    #[test]
    fn cannot_add_a_path_to_an_unknown_map() {
        let mut r = registry();
        let record = PathRecord::new(true, Timestamp::from_secs(0));
        assert!(!r.insert_path(&"nope".into(), "sdx".into(), record));
        assert!(r.path(&"sdx".into()).is_none());
    }

    #[test]
    fn removing_a_path_unlists_it_from_its_map() {
        let mut r = registry();
        assert!(r.remove_path(&"sda".into()).is_some());
        assert_eq!(
            r.paths_of(&"mpatha".into()),
            vec![PathKey::from("sdb"), "sdc".into()]
        );
        assert!(r.remove_path(&"sda".into()).is_none());
    }

    #[test]
    fn removing_a_map_removes_its_paths() {
        let mut r = registry();
        let removed: Vec<_> = r
            .remove_map(&"mpatha".into())
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        assert_eq!(
            removed,
            vec![PathKey::from("sda"), "sdb".into(), "sdc".into()]
        );
        assert!(r.path(&"sdd".into()).is_some());
        assert!(r.path(&"sda".into()).is_none());
        assert!(r.map(&"mpatha".into()).is_none());
    }

    #[test]
    fn upsert_changes_params_and_reports_the_old_ones() {
        let mut r = registry();
        assert_eq!(r.upsert_map("mpatha".into(), None), Some(Some(params())));
        assert_eq!(r.upsert_map("mpathc".into(), None), None);
        assert_eq!(r.map(&"mpatha".into()).unwrap().params, None);
        assert_eq!(r.paths_of(&"mpatha".into()).len(), 3);
    }
}
