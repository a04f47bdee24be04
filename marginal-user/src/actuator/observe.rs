//! Observe mode: the daemon decides as usual, and this actuator only says what it would do.
use std::sync::Mutex;

use anyhow::Result;

use super::{Actuator, PathRef};

/// One action observe mode did not take.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObservedAction {
    /// `fail` or `reinstate`.
    pub action: &'static str,
    pub map: String,
    pub path: PathRef,
}

/// Logs each action and remembers the most recent ones (for status output); changes nothing.
#[derive(Debug, Default)]
pub struct Observe {
    recent: Mutex<Vec<ObservedAction>>,
}

/// How many actions [`Observe::recent`] keeps.
const KEEP: usize = 256;

impl Observe {
    pub fn new() -> Self {
        Self::default()
    }

    /// The actions not taken, oldest first (at most the last 256).
    pub fn recent(&self) -> Vec<ObservedAction> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<ObservedAction>> {
        // A panic elsewhere while holding the lock leaves a plain list intact.
        self.recent.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn record(&self, action: &'static str, map: &str, path: &PathRef) {
        log::info!("observe mode: would {action} path {path} of map {map}");
        let mut recent = self.lock();
        if recent.len() == KEEP {
            recent.remove(0);
        }
        recent.push(ObservedAction {
            action,
            map: map.to_string(),
            path: path.clone(),
        });
    }
}

impl Actuator for Observe {
    fn name(&self) -> &str {
        "observe"
    }

    fn fail_path(&self, map: &str, path: &PathRef) -> Result<()> {
        self.record("fail", map, path);
        Ok(())
    }

    fn reinstate_path(&self, map: &str, path: &PathRef) -> Result<()> {
        self.record("reinstate", map, path);
        Ok(())
    }

    fn set_marginal(&self, map: &str, path: &PathRef) -> Result<()> {
        self.record("setmarginal", map, path);
        Ok(())
    }

    fn unset_marginal(&self, map: &str, path: &PathRef) -> Result<()> {
        self.record("unsetmarginal", map, path);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_and_changes_nothing() {
        let observe = Observe::new();
        let sdb = PathRef::new("sdb", (8, 16));
        observe.fail_path("mpatha", &sdb).unwrap();
        observe.reinstate_path("mpatha", &sdb).unwrap();
        let recent = observe.recent();
        assert_eq!(recent.len(), 2);
        assert_eq!(
            (recent[0].action, recent[0].map.as_str()),
            ("fail", "mpatha")
        );
        assert_eq!(recent[1].action, "reinstate");
        for _ in 0..KEEP {
            observe.fail_path("mpatha", &sdb).unwrap();
        }
        assert_eq!(observe.recent().len(), KEEP);
        assert_eq!(observe.recent()[0].action, "fail");
    }
}
