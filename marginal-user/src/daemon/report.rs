//! Builds the user-facing [`Snapshot`] from the engine, the kernel maps and the daemon's totals.
use std::collections::HashMap;

use super::core::{Daemon, monotonic_now};
use crate::{
    config::WhyOff,
    engine::{MapSnapshot, PathKey, PathSnapshot, Verdict},
    status::{MapStatus, PathStatus, ProgramStatus, SignalStatus, Snapshot, TransportStatus},
};

/// Room for a map's paths. A `--watch` group is one map of up to 16,384 paths, about 10 MB
/// of statuses written once per scrape: huge pages spare most of its page faults.
fn paths_vec(paths: usize) -> Vec<PathStatus> {
    let room: Vec<PathStatus> = Vec::with_capacity(paths);
    crate::memory::advise_huge_pages(
        room.as_ptr().cast(),
        room.capacity() * std::mem::size_of::<PathStatus>(),
    );
    room
}

impl Daemon {
    pub fn snapshot(&self, uptime_seconds: f64) -> Snapshot {
        let now = monotonic_now();
        let signals = &self.signals;
        let failure_signal = self.failure_signal();
        let mut signal_list = vec![SignalStatus {
            name: format!("block:{}", signals.block_tracepoint.name()),
            live: true,
            detail: format!(
                "block-layer errors counted{} ({})",
                if failure_signal == super::core::FailureSignal::BlockErrors {
                    " and grouped into failure episodes"
                } else {
                    "; dm-mpath's transitions are the failures"
                },
                signals.block_program.describe()
            ),
        }];
        signal_list.push(SignalStatus {
            name: "kprobe:dm_path_uevent".into(),
            live: signals.dm_path_kprobe.is_ok(),
            detail: signals.dm_path_kprobe.clone().err().unwrap_or_default(),
        });

        // Looked up by name: a search of the list for every map was quadratic in maps.
        // One read of the whole watch map rather than a syscall per path.
        let records = self.kernel.all_records();
        // One walk of the engine's paths rather than a search of them per path.
        let engine_paths = self.engine.snapshot();
        let engine_paths: HashMap<&PathKey, &PathSnapshot> =
            engine_paths.iter().map(|p| (&p.path, p)).collect();
        let engine_maps = self.engine.maps();
        let engine_maps: HashMap<&str, &MapSnapshot> =
            engine_maps.iter().map(|m| (m.map.as_str(), m)).collect();
        let maps = self
            .topology
            .maps
            .iter()
            .map(|map| {
                let engine_map = engine_maps.get(map.name.as_str());
                let params = engine_map.and_then(|m| m.params);
                let resolved = self.resolved(&map.identity);
                let mut status = MapStatus {
                    name: map.name.clone(),
                    active_paths: engine_map.map_or(0, |m| m.active_paths as u32),
                    checking: params.is_some(),
                    checking_detail: match &resolved.checking {
                        Ok(_) => "on".into(),
                        Err(why) => format!("off: {why}"),
                    },
                    left_to_multipathd: match &resolved.checking {
                        Err(WhyOff::Multipathd(reason)) => reason.kind.label().into(),
                        _ => String::new(),
                    },
                    action: resolved.action.effective.as_str().into(),
                    action_detail: resolved.action.to_string(),
                    action_fallback: resolved.action.fallback.clone().unwrap_or_default(),
                    double_failed_time_seconds: params
                        .map_or(0, |p| p.double_failed_time.as_secs()),
                    err_sample_time_seconds: params.map_or(0, |p| p.sample_time.as_secs()),
                    err_rate_threshold_permille: params.map_or(0, |p| p.err_rate_threshold),
                    err_recheck_gap_time_seconds: params
                        .map_or(0, |p| p.recheck_gap_time.as_secs()),
                    paths: paths_vec(map.paths.len()),
                };
                status.paths.extend(map.paths.iter().map(|path| {
                    let dev = path.device.kernel_dev();
                    let record = match &records {
                        Some(all) => all.get(&dev).copied(),
                        None => self.kernel.record(dev),
                    };
                    let engine_path = engine_paths.get(&path.key).copied();
                    let totals = self.totals.get(&path.key).cloned().unwrap_or_default();
                    let progress = self.sampler.progress(path.key.as_str());
                    let measurement = engine_path.as_ref().and_then(|p| p.last_measurement);
                    PathStatus {
                        name: path.device.name.clone(),
                        device: path.device.numbers(),
                        state: engine_path
                            .as_ref()
                            .map_or("healthy", |p| p.state.as_str())
                            .to_string(),
                        active: engine_path.as_ref().is_some_and(|p| p.dm_active),
                        failed_by_marginal: engine_path.as_ref().is_some_and(|p| p.held_out)
                            || (!self.observe && self.held_out.get(path.key.as_str()).is_some()),
                        held_as: match (
                            engine_path.as_ref().filter(|p| p.held_out),
                            self.held_out.get(path.key.as_str()),
                        ) {
                            (Some(p), _) => p.held_as.as_str().into(),
                            (None, Some(entry)) if !self.observe => entry.action.as_str().into(),
                            _ => String::new(),
                        },
                        kernel_failures: if failure_signal == super::core::FailureSignal::DmUevent {
                            // No kprobe: the daemon fed the uevents to the engine.
                            engine_path.as_ref().map_or(0, |p| p.failures)
                        } else {
                            record.map_or(0, |r| r.failures)
                        },
                        failure_signal: failure_signal.as_str().into(),
                        own_fails: record.map_or(0, |r| r.own_fails) + totals.own_fails_seen,
                        same_outage_refails: totals.same_outage_refails,
                        kernel_non_path_errors: record.map_or(0, |r| r.non_path_errors),
                        held_by_previous_run: self.observe
                            && self.held_out.get(path.key.as_str()).is_some(),
                        pending_action: self
                            .retries
                            .get(&path.key)
                            .map(|r| format!("{:?}", r.action).to_lowercase())
                            .unwrap_or_default(),
                        last_action_error: self
                            .retries
                            .get(&path.key)
                            .map(|r| r.last_error.clone())
                            .unwrap_or_default(),
                        kernel_io_errors: record.map_or(0, |r| r.io_errors),
                        kernel_double_failures: record.map_or(0, |r| r.double_failures),
                        sampling_runs: engine_path.as_ref().map_or(0, |p| p.sampling_runs),
                        sampling_reads: totals.sampling_reads,
                        sampling_errors: totals.sampling_errors,
                        sampling_timeouts: totals.sampling_timeouts,
                        current_run_reads: progress.map_or(0, |(reads, _)| reads),
                        current_run_errors: progress.map_or(0, |(_, errors)| errors),
                        last_rate_permille: measurement.map(|m| m.rate_permille),
                        last_verdict: match measurement.map(|m| m.verdict) {
                            None => "none",
                            Some(Verdict::Passed) => "healthy",
                            Some(Verdict::Marginal | Verdict::MarginalButLastPath)
                                if measurement.is_some_and(|m| m.slow_only()) =>
                            {
                                "slow"
                            }
                            Some(Verdict::Marginal | Verdict::MarginalButLastPath) => "marginal",
                        }
                        .into(),
                        next_recheck_seconds: engine_path
                            .as_ref()
                            .and_then(|p| p.next_recheck_at)
                            .map(|at| at.saturating_since(now).as_secs_f64()),
                        failed_by_daemon_total: totals.failed_by_daemon,
                        returned_by_daemon_total: totals.returned_by_daemon,
                        last_reaction_seconds: totals.last_reaction.map(|d| d.as_secs_f64()),
                        latency: self
                            .kernel
                            .latency(path.device.kernel_dev())
                            .map(|l| (&l).into()),
                        latency_ratio: self
                            .latency_comparison(&map.name, &path.key)
                            .and_then(|c| c.ratio()),
                        reason: engine_path
                            .and_then(|p| p.last_reason.as_ref())
                            .map(|r| r.to_string())
                            .unwrap_or_default(),
                        wwid: path.identity.wwid.clone().unwrap_or_default(),
                        vendor: path.identity.vendor.clone().unwrap_or_default(),
                        product: path.identity.product.clone().unwrap_or_default(),
                        transport: TransportStatus::from(&path.identity.transport),
                    }
                }));
                status
            })
            .collect();

        Snapshot {
            uptime_seconds,
            signals: signal_list,
            actuator: self.actuators.current().name().to_string(),
            actuator_reason: self.actuators.reason().to_string(),
            actuator_errors_total: self.actuator_errors,
            kernel_events_lost_total: self.events_lost,
            state_file_problem: self.held_out.problem().unwrap_or_default().to_string(),
            held_by_previous_run: if self.observe {
                self.held_out.held_out().keys().cloned().collect()
            } else {
                Vec::new()
            },
            maps,
            programs: self
                .kernel
                .program_stats()
                .into_iter()
                .map(|p| ProgramStatus {
                    name: p.name,
                    run_count: p.run_count,
                    run_time_ns: p.run_time.as_nanos() as u64,
                })
                .collect(),
            // Read off the event loop, by the scrape that asks (see daemon::run).
            fc_host_ports: Vec::new(),
            fc_remote_ports: Vec::new(),
        }
    }
}
