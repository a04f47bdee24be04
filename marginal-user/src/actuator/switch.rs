//! Following multipathd: which actuator acts right now.
//!
//! multipathd may start after marginal (boot order), stop, or restart (a package upgrade). Its
//! checker undoes any fail it did not see (a dm message), and a restarted multipathd has
//! forgotten every `fail path` it was sent (its checkers start enabled). So the daemon asks
//! [`Actuators::refresh`] on every resync: when multipathd appears or restarts, actions go
//! through it and every held path is failed again through it; when it goes away, device-mapper
//! messages take over. No daemon restart is needed for either.
use std::sync::Arc;

use anyhow::Result;

use super::{Actuator, MultipathdSocket, choose_from, multipathd::with_dm_fallback};

/// What changed in who acts on paths.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActuatorChange {
    /// For the log: what happened and what acts now.
    pub description: String,
    /// multipathd (re)started: the paths marginal holds must be failed again through it.
    pub refail_held: bool,
}

/// Who acts on paths, kept up to date with multipathd's comings and goings.
pub trait Actuators {
    fn current(&self) -> Arc<dyn Actuator>;
    /// Why this actuator, for the log and the status.
    fn reason(&self) -> &str;
    /// Look at multipathd again, in place (blocking).
    fn refresh(&mut self) -> Option<ActuatorChange> {
        let probe = self.probe()?;
        self.refresh_from(probe())
    }
    /// The question [`Actuators::refresh`] asks (`show daemon`), to be asked off the event
    /// loop: it blocks up to the socket's timeout. None: nothing to follow.
    fn probe(&self) -> Option<Box<dyn FnOnce() -> Result<String> + Send>> {
        None
    }
    /// Take the answer to [`Actuators::probe`].
    fn refresh_from(&mut self, _answer: Result<String>) -> Option<ActuatorChange> {
        None
    }
    /// Whether actions go through multipathd (whose `reinstate path` also gives its checker
    /// the path back).
    fn through_multipathd(&self) -> bool {
        self.current().name() == "multipathd"
    }
}

/// One fixed actuator (observe mode, `--watch` devices, tests).
pub struct Fixed {
    actuator: Arc<dyn Actuator>,
    reason: String,
}

impl Fixed {
    pub fn new(actuator: Arc<dyn Actuator>, reason: impl Into<String>) -> Self {
        Self {
            actuator,
            reason: reason.into(),
        }
    }
}

impl Actuators for Fixed {
    fn current(&self) -> Arc<dyn Actuator> {
        Arc::clone(&self.actuator)
    }

    fn reason(&self) -> &str {
        &self.reason
    }
}

/// multipathd while it answers, device-mapper messages otherwise.
pub struct FollowMultipathd {
    multipathd: MultipathdSocket,
    dm: Option<Arc<dyn Actuator>>,
    /// multipathd's pid the last time it answered; None while it does not.
    pid: Option<String>,
    current: Arc<dyn Actuator>,
    reason: String,
}

impl FollowMultipathd {
    /// The first choice ([`choose_from`]); an error if neither multipathd nor device-mapper is
    /// there.
    pub fn start(multipathd: MultipathdSocket, dm: Option<Arc<dyn Actuator>>) -> Result<Self> {
        let pid = multipathd.probe().ok().and_then(|reply| pid_of(&reply));
        let dm_for_choice = dm.clone();
        let chosen = choose_from(false, multipathd.clone(), move || {
            dm_for_choice.ok_or_else(|| anyhow::anyhow!("no device-mapper"))
        })?;
        Ok(Self {
            multipathd,
            dm,
            pid,
            current: chosen.actuator,
            reason: chosen.reason,
        })
    }
}

impl Actuators for FollowMultipathd {
    fn current(&self) -> Arc<dyn Actuator> {
        Arc::clone(&self.current)
    }

    fn reason(&self) -> &str {
        &self.reason
    }

    fn probe(&self) -> Option<Box<dyn FnOnce() -> Result<String> + Send>> {
        let multipathd = self.multipathd.clone();
        Some(Box::new(move || multipathd.probe()))
    }

    fn refresh_from(&mut self, answer: Result<String>) -> Option<ActuatorChange> {
        let pid = answer.as_ref().ok().and_then(|reply| pid_of(reply));
        let answering = answer.is_ok();
        let was = self.pid.clone();
        let was_answering = self.current.name() == "multipathd";
        if answering == was_answering && pid == was {
            return None;
        }
        self.pid = pid.clone();
        let change = if answering {
            self.current = match &self.dm {
                Some(dm) => with_dm_fallback(self.multipathd.clone(), Arc::clone(dm)),
                None => Arc::new(self.multipathd.clone()),
            };
            self.reason = format!(
                "multipathd answers (pid {}): paths are failed and reinstated through it",
                pid.as_deref().unwrap_or("?")
            );
            let what = if was_answering {
                "multipathd restarted"
            } else {
                "multipathd started"
            };
            ActuatorChange {
                description: format!("{what}: acting through it from now on"),
                refail_held: true,
            }
        } else {
            let Some(dm) = &self.dm else {
                return None; // nothing else to act with; keep trying multipathd
            };
            self.current = Arc::clone(dm);
            self.reason = "multipathd stopped answering: paths are failed and reinstated with \
                           device-mapper target messages"
                .into();
            ActuatorChange {
                description: "multipathd stopped: acting with device-mapper messages".into(),
                refail_held: false,
            }
        };
        Some(change)
    }
}

/// The pid in multipathd's answer to `show daemon` (`pid 812 idle`).
fn pid_of(reply: &str) -> Option<String> {
    let mut words = reply.split_whitespace();
    (words.next()? == "pid").then(|| words.next().map(str::to_string))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_multipathd_pid() {
        assert_eq!(pid_of("pid 812 idle"), Some("812".into()));
        assert_eq!(pid_of("pid 9 running\n"), Some("9".into()));
        assert_eq!(pid_of("fail"), None);
    }
}
