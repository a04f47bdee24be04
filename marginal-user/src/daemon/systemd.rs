//! What systemd learns from the daemon (`Type=notify`, sd_notify(3) through the `sd-notify`
//! crate): READY=1 once the probes are attached and the maps discovered, a one-line STATUS=
//! kept current, WATCHDOG=1 from the event loop, STOPPING=1 on the way out.
//!
//! Without `NOTIFY_SOCKET` (run by hand, in tests) every call is a no-op. A failed send is
//! logged once and never stops the daemon: supervision is a help, not a reason to quit.
use std::time::Duration;

use sd_notify::NotifyState;

use super::core::Daemon;

/// The longest a STATUS= line lags behind the daemon when no watchdog asks for more often.
const STATUS_INTERVAL: Duration = Duration::from_secs(2);

#[derive(Debug, Default)]
pub struct Supervisor {
    watchdog: Option<Duration>,
    status: String,
    send_failed: bool,
}

impl Supervisor {
    /// Reads `WATCHDOG_USEC` (systemd sets it from the unit's `WatchdogSec=`).
    pub fn from_env() -> Supervisor {
        let watchdog = sd_notify::watchdog_enabled();
        if let Some(timeout) = watchdog {
            log::info!("systemd watchdog: fed every {:?}", feed_interval(timeout));
        }
        Supervisor {
            watchdog,
            ..Default::default()
        }
    }

    /// How often the event loop must call [`Supervisor::tick`]: half the watchdog timeout (as
    /// sd_watchdog_enabled(3) advises), and often enough to keep STATUS= current.
    pub fn tick_interval(&self) -> Duration {
        self.watchdog
            .map_or(STATUS_INTERVAL, |t| feed_interval(t).min(STATUS_INTERVAL))
    }

    /// Start-up is done: the probes are attached, the maps discovered.
    pub fn ready(&mut self, daemon: &Daemon) {
        self.status = status_line(daemon);
        send(
            &mut self.send_failed,
            &[NotifyState::Ready, NotifyState::Status(&self.status)],
        );
    }

    /// From the event loop: proves it turns (WATCHDOG=1) and sends STATUS= when it changed.
    /// A loop stuck in a handler never gets here, and systemd restarts the daemon.
    pub fn tick(&mut self, daemon: &Daemon) {
        let status = status_line(daemon);
        let changed = status != self.status;
        self.status = status;
        match (self.watchdog.is_some(), changed) {
            (true, true) => send(
                &mut self.send_failed,
                &[NotifyState::Watchdog, NotifyState::Status(&self.status)],
            ),
            (true, false) => send(&mut self.send_failed, &[NotifyState::Watchdog]),
            (false, true) => send(&mut self.send_failed, &[NotifyState::Status(&self.status)]),
            (false, false) => {}
        }
    }

    /// Shutdown has begun (returning held paths may take a while).
    pub fn stopping(&mut self) {
        send(
            &mut self.send_failed,
            &[
                NotifyState::Stopping,
                NotifyState::Status("stopping: returning held-out paths"),
            ],
        );
    }
}

/// Sends `states`; says so once if systemd cannot be reached (`failed` remembers it).
fn send(failed: &mut bool, states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        if !*failed {
            log::warn!("cannot notify systemd ($NOTIFY_SOCKET): {e}");
        }
        *failed = true;
    }
}

fn feed_interval(timeout: Duration) -> Duration {
    (timeout / 2).max(Duration::from_millis(10))
}

/// One line for `systemctl status`: what is watched, what marginal holds out, how it acts.
pub fn status_line(daemon: &Daemon) -> String {
    let maps = daemon.topology.maps.len();
    let paths: usize = daemon.topology.maps.iter().map(|m| m.paths.len()).sum();
    let held = daemon.held_out.held_out().len();
    let watched = if daemon.topology.device_mapper {
        format!(
            "watching {} ({})",
            plural(maps, "map"),
            plural(paths, "path")
        )
    } else {
        format!("watching {}", plural(paths, "device"))
    };
    if daemon.observe {
        format!("{watched}, observe mode (acting on nothing)")
    } else {
        format!(
            "{watched}, {} held out, acting through {}",
            plural(held, "path"),
            daemon.actuators.current().name()
        )
    }
}

fn plural(n: usize, what: &str) -> String {
    match n {
        1 => format!("1 {what}"),
        n => format!("{n} {what}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watchdog_is_fed_at_half_its_timeout_and_status_every_two_seconds() {
        let mut s = Supervisor::default();
        assert_eq!(s.tick_interval(), STATUS_INTERVAL);
        s.watchdog = Some(Duration::from_secs(30));
        assert_eq!(s.tick_interval(), STATUS_INTERVAL);
        s.watchdog = Some(Duration::from_secs(1));
        assert_eq!(s.tick_interval(), Duration::from_millis(500));
        assert_eq!(feed_interval(Duration::ZERO), Duration::from_millis(10));
        assert_eq!(plural(1, "map"), "1 map");
        assert_eq!(plural(0, "path"), "0 paths");
    }
}
