//! Keeping the engine, the kernel's watch map and the state file in line with dm's truth.
//!
//! On every discovery (start-up, a uevent, the periodic resync):
//! * the topology is applied to the engine and the watch map ([`Daemon::apply_topology`]); a
//!   map missing from one round is kept for a few rounds unless its removal uevent came (a
//!   table reload can race a listing; a removal cannot be mistaken);
//! * paths the state file lists are taken up when they are (again) paths of their map, with
//!   the same WWID and device number ([`Daemon::adopt_held_out`]); entries whose device is
//!   gone are released;
//! * a path the engine holds out that dm shows active (a table reload, `multipathd
//!   reconfigure`, a multipathd restart, a missed event) is failed again
//!   ([`Daemon::reconcile`]), and a path marginal owes a return gets it.
use std::{collections::BTreeSet, time::Duration};

use anyhow::Result;
use marginal_common::{WATCH_DM_REPORTED, WatchSettings};

use super::{
    actions::{PendingAction, ReturnKind},
    core::Daemon,
    topology::Topology,
};
use crate::{
    actuator::ActuatorChange,
    engine::{Event, MapName, PathAction, PathKey, Timestamp},
};

/// Discovery rounds (and at least [`ABSENT_MIN_TIME`]) a map or a held path must be missing
/// before marginal lets it go.
pub const ABSENT_ROUNDS: u32 = 3;
pub const ABSENT_MIN_TIME: Duration = Duration::from_secs(10);

/// How long something has been missing.
#[derive(Clone, Copy, Debug)]
pub struct Absence {
    pub rounds: u32,
    pub since: Timestamp,
}

impl Absence {
    fn start(now: Timestamp) -> Self {
        Self {
            rounds: 1,
            since: now,
        }
    }

    fn long_enough(&self, now: Timestamp) -> bool {
        self.rounds >= ABSENT_ROUNDS && now.saturating_since(self.since) >= ABSENT_MIN_TIME
    }
}

impl Daemon {
    /// Read device-mapper's maps again and bring everything in line with them. `removed`:
    /// kernel names of block devices whose removal uevent came since the last round.
    pub fn rediscover(&mut self, removed: &BTreeSet<String>, now: Timestamp) {
        self.read_dm_again(removed, false, now);
    }

    /// The periodic resync: [`Daemon::rediscover`], with maps whose dm status is unchanged
    /// taken from the last read ([`crate::dm::MapSource::resync`]).
    pub fn resync(&mut self, now: Timestamp) {
        self.read_dm_again(&BTreeSet::new(), true, now);
    }

    fn read_dm_again(&mut self, removed: &BTreeSet<String>, resync: bool, now: Timestamp) {
        let Some(dm) = self.dm.clone() else {
            return;
        };
        let found = match resync {
            // Nothing changed in dm: the topology stands (unless it keeps absent maps, whose
            // rounds only the full path counts).
            true if self.absent_maps.is_empty() => Topology::resync(dm.as_ref()),
            _ => Topology::discover(dm.as_ref()).map(Some),
        };
        let result = found.and_then(|found| {
            let Some(found) = found else {
                return Ok(());
            };
            let topology = self.keep_absent_maps(found, removed, now);
            if topology != self.topology {
                self.apply_topology(topology, now)?;
            }
            Ok(())
        });
        if let Err(e) = result {
            log::warn!("re-discovering multipath maps: {e:#}");
            return;
        }
        self.adopt_held_out(removed, now);
        self.reconcile(now);
    }

    /// `found` plus the maps of the current topology missing from it for fewer than
    /// [`ABSENT_ROUNDS`] rounds (and not removed).
    fn keep_absent_maps(
        &mut self,
        mut found: Topology,
        removed: &BTreeSet<String>,
        now: Timestamp,
    ) -> Topology {
        let present: BTreeSet<String> = found.maps.iter().map(|m| m.name.clone()).collect();
        self.absent_maps.retain(|name, _| !present.contains(name));
        for map in &self.topology.maps {
            if present.contains(&map.name) {
                continue;
            }
            let gone = map.kernel_name().is_some_and(|k| removed.contains(&k));
            let absence = self
                .absent_maps
                .entry(map.name.clone())
                .and_modify(|a| a.rounds += 1)
                .or_insert_with(|| Absence::start(now));
            if gone || absence.long_enough(now) {
                log::warn!("map {} is gone", map.name);
                self.absent_maps.remove(&map.name);
                continue;
            }
            log::info!(
                "map {} missing from discovery (round {}); kept until it is really gone",
                map.name,
                absence.rounds
            );
            found.maps.push(map.clone());
        }
        found
    }

    /// Bring engine and kernel watch map in line with `topology` (start-up and re-discovery).
    pub fn apply_topology(&mut self, topology: Topology, now: Timestamp) -> Result<()> {
        self.cache_resolved(&topology);
        let mut decisions = Vec::new();
        let wanted: BTreeSet<PathKey> = topology.paths().map(|(_, p)| p.key.clone()).collect();
        for (_, path) in self.topology.paths() {
            if !wanted.contains(&path.key) {
                decisions.extend(self.engine.remove_path(&path.key, now));
                self.kernel.unwatch(path.device.kernel_dev())?;
            }
        }
        let wanted_maps: BTreeSet<&str> = topology.maps.iter().map(|m| m.name.as_str()).collect();
        for map in &self.topology.maps {
            if !wanted_maps.contains(map.name.as_str()) {
                decisions.extend(self.engine.remove_map(&MapName::new(map.name.clone()), now));
            }
        }
        // dm-mpath's transitions are a dm path's failures (the kprobe, or the uevents fed in);
        // only --watch devices group block errors into failures.
        let flags = if topology.device_mapper {
            WATCH_DM_REPORTED
        } else {
            0
        };
        for map in &topology.maps {
            // An unchanged map (paths and their states alike) has nothing new for the engine;
            // re-applying every map on every change would cost time quadratic in the paths.
            if self.topology.maps.contains(map) {
                continue;
            }
            let params = self.params_for(&map.identity);
            let name = MapName::new(map.name.clone());
            decisions.extend(self.engine.upsert_map(name.clone(), params, now));
            for path in &map.paths {
                decisions.extend(self.engine.add_path(
                    &name,
                    path.key.clone(),
                    path.active,
                    now,
                )?);
                // Unchecked maps are still counted: the counters are worth exporting.
                let window = params.map_or(Duration::ZERO, |p| p.double_failed_time);
                self.kernel.watch(
                    path.device.kernel_dev(),
                    WatchSettings {
                        window_ns: window.as_nanos() as u64,
                        episode_gap_ns: self.settings.episode_gap.as_nanos() as u64,
                        flags,
                    },
                )?;
                let slow = params.is_some_and(|p| p.slow.is_some());
                self.measure_latency(path.device.kernel_dev(), slow);
            }
            let active = map
                .paths
                .iter()
                .filter(|p| p.active)
                .map(|p| p.key.clone())
                .collect();
            decisions.extend(
                self.engine
                    .handle(now, Event::MapActivePaths { map: name, active }),
            );
        }
        self.topology = topology;
        self.apply(decisions, now);
        Ok(())
    }

    /// Apply every map again, changed or not (after the configuration changed).
    pub fn reapply_all(&mut self, now: Timestamp) -> Result<()> {
        let device_mapper = self.topology.device_mapper;
        let topology = std::mem::replace(
            &mut self.topology,
            Topology {
                maps: Vec::new(),
                device_mapper,
            },
        );
        self.apply_topology(topology, now)
    }

    /// Take up the paths the state file lists (a previous run, or this one before the path
    /// left its map) that are paths of their map now: same map, WWID and device number. An
    /// entry whose device is gone is released; one missing from every map for a few rounds
    /// too. Observe mode only reports them.
    pub fn adopt_held_out(&mut self, removed: &BTreeSet<String>, now: Timestamp) {
        if self.observe {
            return;
        }
        let entries: Vec<(String, super::held_out::HeldOutPath)> = self
            .held_out
            .held_out()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (name, entry) in entries {
            let key = PathKey::new(name.clone());
            let returning = self
                .retries
                .get(&key)
                .is_some_and(|r| matches!(r.action, PendingAction::Return(_)));
            let here = self.topology.path(&key).map(|(map, path)| {
                let same_wwid = entry
                    .wwid
                    .as_deref()
                    .is_none_or(|w| map.identity.wwid.is_empty() || w == map.identity.wwid);
                (
                    map.name == entry.map && same_wwid && path.device.numbers() == entry.device,
                    path.active,
                )
            });
            match here {
                Some((true, _)) => {
                    self.orphan_rounds.remove(&name);
                    let held = self.engine.path(&key).is_some_and(|p| p.held_out);
                    if held || returning {
                        continue;
                    }
                    log::warn!(
                        "taking up {name} of map {}: marginal failed it; it will be sampled again",
                        entry.map
                    );
                    let dm_failed = self.topology.path(&key).is_some_and(|(_, p)| !p.active);
                    match self.engine.adopt_failed_path(&key, now) {
                        Ok(decisions) => self.apply(decisions, now),
                        Err(e) => log::error!("cannot take up {name}: {e}"),
                    }
                    // Failed in dm already: tell the current actuator all the same, so a
                    // multipathd that started meanwhile keeps its checker off the path.
                    // (A setmarginal hold was sent by the adoption itself.)
                    if dm_failed
                        && self.engine.path(&key).is_some_and(|p| p.held_out)
                        && self.held_as(&key) == PathAction::Fail
                    {
                        let map = MapName::new(entry.map.clone());
                        self.take_out(&key, &map, now, true);
                    }
                    // Kept in service as its map's last path: nothing is owed any more.
                    let still_held = self.engine.path(&key).is_some_and(|p| p.held_out);
                    let active = self.topology.path(&key).is_some_and(|(_, p)| p.active);
                    if !still_held && active {
                        let _ = self.held_out.remove(&name);
                    }
                }
                Some((false, _)) => {
                    log::warn!(
                        "{name} is now another device than the {} of map {} marginal failed; \
                         releasing that one",
                        entry.device,
                        entry.map
                    );
                    self.release(&name);
                }
                None => self.orphan(&name, &entry, removed, now),
            }
        }
    }

    /// A state-file entry whose path is in no map now.
    fn orphan(
        &mut self,
        name: &str,
        entry: &super::held_out::HeldOutPath,
        removed: &BTreeSet<String>,
        now: Timestamp,
    ) {
        let device = entry
            .device
            .split_once(':')
            .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)));
        let exists = match (&self.dm, device) {
            (Some(dm), Some(dev)) => dm.device_exists(dev),
            _ => true,
        };
        if removed.contains(name) || !exists {
            log::warn!("{name} ({}) was removed: released", entry.device);
            self.release(name);
            return;
        }
        let absence = self
            .orphan_rounds
            .entry(name.to_string())
            .and_modify(|a| a.rounds += 1)
            .or_insert_with(|| Absence::start(now));
        if absence.long_enough(now) {
            log::warn!(
                "{name} ({}) has not been a path of {} for {} rounds: released",
                entry.device,
                entry.map,
                absence.rounds
            );
            self.release(name);
        } else if absence.rounds == 1 {
            log::warn!(
                "{name} ({}) of map {} was failed by marginal but is not a path of any map now; \
                 keeping it in the state file until it returns or is gone",
                entry.device,
                entry.map
            );
        }
    }

    fn release(&mut self, name: &str) {
        self.orphan_rounds.remove(name);
        self.retries.remove(&PathKey::new(name));
        if let Err(e) = self.held_out.remove(name) {
            log::error!("{name}: updating the state file: {e:#}");
        }
    }

    /// Held paths dm shows active are failed again; paths marginal owes a return get it.
    pub fn reconcile(&mut self, now: Timestamp) {
        if self.observe {
            return;
        }
        let mut refail = Vec::new();
        let mut reset_marginal = Vec::new();
        for (map, path) in self.topology.paths() {
            let held = self.engine.path(&path.key).is_some_and(|p| p.held_out);
            if !held || self.retries.contains_key(&path.key) {
                continue;
            }
            let recorded = self.held_out.get(path.key.as_str());
            let map_name = MapName::new(map.name.clone());
            if self.held_as(&path.key) == PathAction::SetMarginal {
                // Active in dm by design (multipathd's marginal group): not fought. Only a
                // multipathd that lost the flag (restart, reconfigure) is told again.
                let path_ref = crate::actuator::PathRef::new(
                    path.device.name.clone(),
                    (path.device.major, path.device.minor),
                );
                let lost = recorded.is_some_and(|e| e.action == PathAction::SetMarginal)
                    && self.actuators.current().is_marginal(&path_ref) == Some(false);
                if recorded.is_none() || lost {
                    reset_marginal.push((path.key.clone(), map_name));
                }
                continue;
            }
            if path.active || recorded.is_none() {
                refail.push((path.key.clone(), map_name));
            }
        }
        for (key, map) in reset_marginal {
            log::warn!(
                "{key} is held as marginal but multipathd does not have it so: setting it marginal again"
            );
            self.take_out(&key, &map, now, true);
        }
        for (key, map) in refail {
            log::warn!(
                "{key} is held out but dm has it in service (a table reload, a multipathd \
                 restart or a missed event): failing it again"
            );
            self.take_out(&key, &map, now, true);
        }
        let owed: Vec<(PathKey, MapName)> = self
            .held_out
            .held_out()
            .iter()
            .map(|(name, entry)| (PathKey::new(name.clone()), MapName::new(entry.map.clone())))
            .filter(|(key, _)| {
                self.engine.path(key).is_some_and(|p| !p.held_out)
                    && !self.retries.contains_key(key)
            })
            .collect();
        for (key, map) in owed {
            self.give_back(&key, &map, ReturnKind::Unproven, now, true);
        }
    }

    /// Look at multipathd again; when it (re)started, every held path is failed again
    /// through it (a new multipathd's checkers know nothing of marginal's fails).
    pub fn refresh_actuators(&mut self, now: Timestamp) {
        let change = self.actuators.refresh();
        self.on_actuator_change(change, now);
    }

    /// [`Daemon::refresh_actuators`] with multipathd's answer asked off the loop.
    pub fn refresh_actuators_from(&mut self, answer: anyhow::Result<String>, now: Timestamp) {
        let change = self.actuators.refresh_from(answer);
        self.on_actuator_change(change, now);
    }

    fn on_actuator_change(&mut self, change: Option<ActuatorChange>, now: Timestamp) {
        let Some(change) = change else {
            return;
        };
        log::warn!("{}", change.description);
        if !change.refail_held || self.observe {
            return;
        }
        let held: Vec<(PathKey, MapName)> = self
            .topology
            .paths()
            .filter(|(_, p)| self.engine.path(&p.key).is_some_and(|s| s.held_out))
            .map(|(m, p)| (p.key.clone(), MapName::new(m.name.clone())))
            .collect();
        for (key, map) in held {
            self.take_out(&key, &map, now, true);
        }
    }
}
