//! Actuators: how the daemon takes a path out of service and brings it back.
//!
//! The engine decides (`FailPath`, `ReinstatePath`, `RecoverPath`); an [`Actuator`] carries it
//! out. Which one, [`choose_actuator`] decides at start-up and [`switch::FollowMultipathd`]
//! keeps up to date as multipathd starts, stops and restarts:
//!
//! 1. [`Observe`] in observe mode: log, change nothing.
//! 2. [`MultipathdSocket`] when multipathd answers `show daemon` on its socket: `fail path sdX`
//!    there also stops multipathd's checker from reinstating the path behind our back. For a
//!    path multipathd does not manage (or when it stops answering), device-mapper messages;
//!    never for a path it manages and refused, which would leave its checker disabled.
//! 3. [`DmMessage`] otherwise: `fail_path MAJ:MIN` / `reinstate_path MAJ:MIN` target messages,
//!    refusing to fail a map's last active path.
//!
//! With `marginal_path_action setmarginal` the daemon holds a path with
//! [`Actuator::set_marginal`] instead (`setmarginal path sdX`, multipathd only): the path stays
//! active in dm, in a lowest-priority path group of its own, and `unsetmarginal` returns it.
//!
//! Actuators block (socket I/O bounded by a timeout, or an ioctl); from async code call them
//! through `tokio::task::spawn_blocking`. Their errors name the map and the path.
pub mod dm_message;
pub mod multipathd;
pub mod observe;
pub mod switch;

use std::{fmt, sync::Arc};

use anyhow::{Result, anyhow};

pub use dm_message::{DmMessage, MapControl};
pub use multipathd::{MultipathdSocket, SocketAddress};
pub use observe::{Observe, ObservedAction};
pub use switch::{ActuatorChange, Actuators, Fixed, FollowMultipathd};

use crate::dm::{DevNum, MapPath};

/// A path as actuators name it: multipathd by kernel name, device-mapper by number.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PathRef {
    /// Kernel name, `sdb` (or `MAJ:MIN` when sysfs had no name; multipathd accepts both).
    pub name: String,
    pub dev: DevNum,
}

impl PathRef {
    pub fn new(name: impl Into<String>, dev: DevNum) -> Self {
        Self {
            name: name.into(),
            dev,
        }
    }

    /// `MAJ:MIN`.
    pub fn numbers(&self) -> String {
        format!("{}:{}", self.dev.0, self.dev.1)
    }
}

impl From<&MapPath> for PathRef {
    fn from(path: &MapPath) -> Self {
        Self::new(path.name.clone(), path.dev)
    }
}

impl fmt::Display for PathRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name, self.numbers())
    }
}

/// Takes paths out of service and brings them back.
pub trait Actuator: Send + Sync {
    /// Short name for logs and status: `multipathd`, `device-mapper messages`, `observe`.
    fn name(&self) -> &str;
    /// Takes `path` of `map` out of service.
    fn fail_path(&self, map: &str, path: &PathRef) -> Result<()>;
    /// Puts `path` of `map` back into service.
    fn reinstate_path(&self, map: &str, path: &PathRef) -> Result<()>;
    /// Whether this actuator manages `path`, if it can tell (multipathd: it lists the path).
    fn manages(&self, _path: &PathRef) -> Option<bool> {
        None
    }
    /// Holds `path` as marginal without failing it (multipathd's `setmarginal path`): it
    /// moves to a lowest-priority path group, still active, a last resort. Only multipathd
    /// can; device-mapper messages have no such thing.
    fn set_marginal(&self, map: &str, path: &PathRef) -> Result<()> {
        Err(anyhow!(
            "map {map}, path {path}: {} cannot set a path marginal (only multipathd can)",
            self.name()
        ))
    }
    /// Undoes [`Actuator::set_marginal`] (`unsetmarginal path`).
    fn unset_marginal(&self, map: &str, path: &PathRef) -> Result<()> {
        Err(anyhow!(
            "map {map}, path {path}: {} cannot unset a marginal path (only multipathd can)",
            self.name()
        ))
    }
    /// Whether `path` is marginal for this actuator, if it can tell (a restarted multipathd
    /// has forgotten every `setmarginal`).
    fn is_marginal(&self, _path: &PathRef) -> Option<bool> {
        None
    }
}

/// The actuator picked at start-up and why, for the log and the status output.
pub struct ChosenActuator {
    pub actuator: Arc<dyn Actuator>,
    pub reason: String,
}

impl fmt::Debug for ChosenActuator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChosenActuator")
            .field("actuator", &self.actuator.name())
            .field("reason", &self.reason)
            .finish()
    }
}

/// Observe mode, else multipathd if its socket answers, else device-mapper messages; an error
/// if neither multipathd nor device-mapper is there.
pub fn choose_actuator(observe: bool) -> Result<ChosenActuator> {
    choose_from(observe, MultipathdSocket::new(), || {
        Ok(Arc::new(DmMessage::open()?) as Arc<dyn Actuator>)
    })
}

/// [`choose_actuator`] with the multipathd client and the device-mapper opener given.
pub fn choose_from(
    observe: bool,
    multipathd: MultipathdSocket,
    open_dm: impl FnOnce() -> Result<Arc<dyn Actuator>>,
) -> Result<ChosenActuator> {
    if observe {
        return Ok(ChosenActuator {
            actuator: Arc::new(Observe::new()),
            reason: "observe mode: decisions are logged, no path is failed or reinstated".into(),
        });
    }
    let not_answering = match multipathd.probe() {
        Ok(reply) => {
            let mut reason = format!(
                "multipathd answers ({reply}): paths are failed and reinstated through it, \
                 so its path checker does not undo our actions"
            );
            let actuator: Arc<dyn Actuator> = match open_dm() {
                Ok(dm) => {
                    reason.push_str("; device-mapper messages for maps multipathd does not manage");
                    Arc::new(WithFallback {
                        primary: Arc::new(multipathd),
                        fallback: dm,
                    })
                }
                Err(_) => Arc::new(multipathd),
            };
            return Ok(ChosenActuator { actuator, reason });
        }
        Err(e) => e,
    };
    match open_dm() {
        Ok(actuator) => Ok(ChosenActuator {
            actuator,
            reason: format!(
                "{not_answering:#}: paths are failed and reinstated with device-mapper target \
                 messages"
            ),
        }),
        Err(dm_error) => Err(anyhow!(
            "no way to act on paths: {not_answering:#}; and {dm_error:#} (observe mode needs \
             neither)"
        )),
    }
}

/// multipathd first; device-mapper messages for a path multipathd does not manage (or when it
/// does not answer), so such maps are still protected. A path multipathd manages but refused
/// stays an error (the daemon retries): a dm message behind multipathd's back would fail a
/// path its checker then reinstates, or reinstate one while its checker stays disabled.
pub(crate) struct WithFallback {
    pub primary: Arc<dyn Actuator>,
    pub fallback: Arc<dyn Actuator>,
}

impl WithFallback {
    fn act(
        &self,
        what: &str,
        path: &PathRef,
        act: impl Fn(&dyn Actuator) -> Result<()>,
    ) -> Result<()> {
        act(self.primary.as_ref()).or_else(|refused| {
            if self.primary.manages(path) == Some(true) {
                return Err(refused.context(format!(
                    "{} manages {path}: not going around it",
                    self.primary.name()
                )));
            }
            log::warn!("{refused:#}; trying {} to {what}", self.fallback.name());
            act(self.fallback.as_ref()).map_err(|e| anyhow!("{refused:#}; and {e:#}"))
        })
    }
}

impl Actuator for WithFallback {
    fn name(&self) -> &str {
        self.primary.name()
    }

    fn fail_path(&self, map: &str, path: &PathRef) -> Result<()> {
        self.act("fail it", path, |a| a.fail_path(map, path))
    }

    fn reinstate_path(&self, map: &str, path: &PathRef) -> Result<()> {
        self.act("reinstate it", path, |a| a.reinstate_path(map, path))
    }

    fn manages(&self, path: &PathRef) -> Option<bool> {
        self.primary.manages(path)
    }

    // No fallback: only multipathd can set a path marginal. The daemon fails the path
    // instead when multipathd does not act (see `daemon::actions`).
    fn set_marginal(&self, map: &str, path: &PathRef) -> Result<()> {
        self.primary.set_marginal(map, path)
    }

    fn unset_marginal(&self, map: &str, path: &PathRef) -> Result<()> {
        self.primary.unset_marginal(map, path)
    }

    fn is_marginal(&self, path: &PathRef) -> Option<bool> {
        self.primary.is_marginal(path)
    }
}

#[cfg(test)]
mod tests {
    use std::{
        io::Write,
        os::unix::net::UnixListener,
        time::{Duration, Instant},
    };

    use super::{multipathd::*, *};

    fn nobody() -> MultipathdSocket {
        let missing =
            std::env::temp_dir().join(format!("marginal-choose-none-{}", std::process::id()));
        MultipathdSocket::with_addresses(
            vec![SocketAddress::Path(missing)],
            Duration::from_millis(300),
        )
    }

    fn unused_dm() -> Result<Arc<dyn Actuator>> {
        panic!("device-mapper must not be opened")
    }

    #[test]
    fn observe_mode_wins() {
        let chosen = choose_from(true, nobody(), unused_dm).unwrap();
        assert_eq!(chosen.actuator.name(), "observe");
        assert!(chosen.reason.contains("observe mode"));
    }

    #[test]
    fn multipathd_when_it_answers() {
        let path =
            std::env::temp_dir().join(format!("marginal-choose-{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            read_message(&mut stream, Instant::now() + Duration::from_secs(5)).unwrap();
            stream.write_all(&encode_message("pid 99 idle\n")).unwrap();
        });
        let mpd = MultipathdSocket::with_addresses(
            vec![SocketAddress::Path(path.clone())],
            Duration::from_secs(2),
        );
        // Device-mapper opens too: it serves maps multipathd does not manage.
        let chosen = choose_from(false, mpd, || {
            Ok(Arc::new(Observe::new()) as Arc<dyn Actuator>)
        })
        .unwrap();
        server.join().unwrap();
        assert_eq!(chosen.actuator.name(), "multipathd");
        assert!(chosen.reason.contains("pid 99 idle"), "{}", chosen.reason);
        assert!(
            chosen.reason.contains("does not manage"),
            "{}",
            chosen.reason
        );
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn device_mapper_otherwise_and_says_why() {
        let chosen = choose_from(false, nobody(), || Ok(Arc::new(Observe::new()) as _)).unwrap();
        assert!(
            chosen.reason.contains("multipathd does not answer"),
            "{}",
            chosen.reason
        );
        assert!(chosen.reason.contains("device-mapper target messages"));
    }

    #[test]
    fn neither_is_an_error_naming_both() {
        let err = choose_from(false, nobody(), || {
            Err(anyhow!("cannot open /dev/mapper/control"))
        })
        .unwrap_err();
        let text = format!("{err:#}");
        assert!(text.contains("multipathd does not answer"), "{text}");
        assert!(text.contains("/dev/mapper/control"), "{text}");
    }

    /// An actuator that refuses everything, as multipathd does for a map it does not manage.
    struct Refusing;

    impl Actuator for Refusing {
        fn name(&self) -> &str {
            "refusing"
        }
        fn fail_path(&self, map: &str, path: &PathRef) -> Result<()> {
            Err(anyhow!("fail path {path} of {map}: refused"))
        }
        fn reinstate_path(&self, map: &str, path: &PathRef) -> Result<()> {
            Err(anyhow!("reinstate path {path} of {map}: refused"))
        }
    }

    #[test]
    fn a_refused_action_falls_back_to_the_second_actuator() {
        let observe = Arc::new(Observe::new());
        let both = WithFallback {
            primary: Arc::new(Refusing),
            fallback: observe.clone(),
        };
        let path = PathRef::new("sdb", (8, 16));
        both.fail_path("mpatha", &path).unwrap();
        both.reinstate_path("mpatha", &path).unwrap();
        assert_eq!(observe.recent().len(), 2);
        assert_eq!(both.name(), "refusing", "named after the primary");

        let neither = WithFallback {
            primary: Arc::new(Refusing),
            fallback: Arc::new(Refusing),
        };
        let err = format!("{:#}", neither.fail_path("mpatha", &path).unwrap_err());
        assert_eq!(err.matches("refused").count(), 2, "both reasons: {err}");
    }

    /// Refuses, and says it manages the path (multipathd answering `fail` for its own path).
    struct RefusingOwner;

    impl Actuator for RefusingOwner {
        fn name(&self) -> &str {
            "multipathd"
        }
        fn fail_path(&self, map: &str, path: &PathRef) -> Result<()> {
            Err(anyhow!(
                "fail path {path} of {map}: multipathd answered \"fail\""
            ))
        }
        fn reinstate_path(&self, map: &str, path: &PathRef) -> Result<()> {
            Err(anyhow!(
                "reinstate path {path} of {map}: multipathd answered \"fail\""
            ))
        }
        fn manages(&self, _path: &PathRef) -> Option<bool> {
            Some(true)
        }
    }

    #[test]
    fn a_path_multipathd_manages_and_refused_is_not_sent_around_it() {
        let observe = Arc::new(Observe::new());
        let both = WithFallback {
            primary: Arc::new(RefusingOwner),
            fallback: observe.clone(),
        };
        let path = PathRef::new("sdb", (8, 16));
        let err = format!("{:#}", both.reinstate_path("mpatha", &path).unwrap_err());
        assert!(err.contains("not going around it"), "{err}");
        assert!(both.fail_path("mpatha", &path).is_err());
        assert!(
            observe.recent().is_empty(),
            "no dm message behind multipathd's back"
        );
    }

    #[test]
    fn path_refs() {
        let p = PathRef::new("sdb", (8, 16));
        assert_eq!(p.numbers(), "8:16");
        assert_eq!(p.to_string(), "sdb (8:16)");
    }
}
