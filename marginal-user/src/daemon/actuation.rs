//! Actuator calls off the event loop.
//!
//! A `fail path` through multipathd's socket is a round trip to another daemon, bounded only by
//! the socket's 5 s timeout; during a fabric storm there are dozens of them. Made on the event
//! loop, each would hold up the kernel's events, the sampler's reports and every deadline
//! behind it. So [`super::actions`] decides on the loop (the engine's word, dm's fresh view, the
//! state file first) and hands the call itself to an [`ActionRunner`]: in the daemon a
//! [`WorkerThread`] that makes the calls one after another, in order, and posts each [`Done`]
//! back to the loop ([`super::in_flight`] finishes it there). One thread, not a pool: multipathd
//! serves its socket's commands one at a time anyway, and calls for the same map must not
//! overtake each other. Tests and shutdown use [`Inline`], which calls at once.
use std::{fmt, sync::Arc, thread};

use anyhow::Result;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use super::actions::ReturnKind;
use crate::{
    actuator::{Actuator, PathRef},
    engine::{MapName, PathKey},
};

/// One call on an actuator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    Fail,
    Reinstate,
    SetMarginal,
    UnsetMarginal,
}

/// A call of a [`Job`], and whether the job goes on if it fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Step {
    pub call: Call,
    /// An error is logged and the next step made anyway.
    pub best_effort: bool,
}

impl Step {
    pub fn required(call: Call) -> Self {
        Self {
            call,
            best_effort: false,
        }
    }

    pub fn best_effort(call: Call) -> Self {
        Self {
            call,
            best_effort: true,
        }
    }
}

/// What a job is for: how the loop finishes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// Take the path out with a fail (`dev`: its kernel device number).
    Fail { dev: u32 },
    /// Hold the path with `setmarginal`.
    SetMarginal,
    /// Put the path back.
    Return(ReturnKind),
}

/// Calls to make on one path, in order; the first required one that fails ends the job.
pub struct Job {
    pub key: PathKey,
    pub map: MapName,
    pub path: PathRef,
    pub actuator: Arc<dyn Actuator>,
    pub steps: Vec<Step>,
    pub purpose: Purpose,
}

impl fmt::Debug for Job {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Job")
            .field("key", &self.key)
            .field("map", &self.map)
            .field("actuator", &self.actuator.name())
            .field("steps", &self.steps)
            .field("purpose", &self.purpose)
            .finish()
    }
}

/// A job's outcome.
#[derive(Debug)]
pub struct Done {
    pub key: PathKey,
    pub map: MapName,
    pub purpose: Purpose,
    /// Required steps that succeeded, in order (a failed one ends the list).
    pub succeeded: Vec<Call>,
    /// The error of the required step that failed, if one did.
    pub result: Result<()>,
}

impl Job {
    /// Makes the calls (blocking).
    pub fn run(self) -> Done {
        let mut succeeded = Vec::new();
        let mut result = Ok(());
        for step in &self.steps {
            let map = self.map.as_str();
            let outcome = match step.call {
                Call::Fail => self.actuator.fail_path(map, &self.path),
                Call::Reinstate => self.actuator.reinstate_path(map, &self.path),
                Call::SetMarginal => self.actuator.set_marginal(map, &self.path),
                Call::UnsetMarginal => self.actuator.unset_marginal(map, &self.path),
            };
            match outcome {
                Ok(()) => succeeded.push(step.call),
                Err(e) if step.best_effort => log::warn!("{e:#}"),
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        Done {
            key: self.key,
            map: self.map,
            purpose: self.purpose,
            succeeded,
            result,
        }
    }
}

/// Carries out jobs: at once ([`Inline`]) or later, off the loop ([`WorkerThread`]).
pub trait ActionRunner: Send {
    /// Runs `job` now and returns its outcome, or queues it and returns None (its [`Done`]
    /// comes back through the runner's channel).
    fn submit(&mut self, job: Job) -> Option<Done>;
}

/// Calls at once, on the caller's thread.
pub struct Inline;

impl ActionRunner for Inline {
    fn submit(&mut self, job: Job) -> Option<Done> {
        Some(job.run())
    }
}

/// One thread that makes the calls in the order they were submitted.
pub struct WorkerThread {
    jobs: std::sync::mpsc::Sender<Job>,
}

impl WorkerThread {
    /// The worker, and the channel its outcomes arrive on. The thread ends when the worker is
    /// dropped and its queue is done.
    pub fn spawn() -> Result<(Self, UnboundedReceiver<Done>)> {
        let (jobs, queue) = std::sync::mpsc::channel::<Job>();
        let (outcomes, done): (UnboundedSender<Done>, _) = unbounded_channel();
        thread::Builder::new()
            .name("marginal-actuator".into())
            .spawn(move || {
                for job in queue {
                    if outcomes.send(job.run()).is_err() {
                        break; // the loop is gone
                    }
                }
            })?;
        Ok((Self { jobs }, done))
    }
}

impl ActionRunner for WorkerThread {
    fn submit(&mut self, job: Job) -> Option<Done> {
        match self.jobs.send(job) {
            Ok(()) => None,
            // The thread died (a panic in an actuator): call here rather than lose the job.
            Err(std::sync::mpsc::SendError(job)) => Some(job.run()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use anyhow::bail;

    use super::*;

    /// Records the calls; fails the ones listed.
    #[derive(Default)]
    struct Recorder {
        calls: Mutex<Vec<Call>>,
        failing: Vec<Call>,
    }

    impl Recorder {
        fn call(&self, call: Call) -> Result<()> {
            self.calls.lock().unwrap().push(call);
            if self.failing.contains(&call) {
                bail!("{call:?} refused");
            }
            Ok(())
        }
    }

    impl Actuator for Recorder {
        fn name(&self) -> &str {
            "recorder"
        }
        fn fail_path(&self, _: &str, _: &PathRef) -> Result<()> {
            self.call(Call::Fail)
        }
        fn reinstate_path(&self, _: &str, _: &PathRef) -> Result<()> {
            self.call(Call::Reinstate)
        }
        fn set_marginal(&self, _: &str, _: &PathRef) -> Result<()> {
            self.call(Call::SetMarginal)
        }
        fn unset_marginal(&self, _: &str, _: &PathRef) -> Result<()> {
            self.call(Call::UnsetMarginal)
        }
    }

    fn job(actuator: Arc<Recorder>, steps: Vec<Step>) -> Job {
        Job {
            key: PathKey::new("sdb"),
            map: MapName::new("mpatha"),
            path: PathRef::new("sdb", (8, 16)),
            actuator,
            steps,
            purpose: Purpose::SetMarginal,
        }
    }

    #[test]
    fn a_failed_required_step_ends_the_job_a_best_effort_one_does_not() {
        let actuator = Arc::new(Recorder {
            failing: vec![Call::UnsetMarginal, Call::Reinstate],
            ..Default::default()
        });
        let done = job(
            actuator.clone(),
            vec![
                Step::best_effort(Call::UnsetMarginal),
                Step::required(Call::Fail),
            ],
        )
        .run();
        assert!(done.result.is_ok());
        assert_eq!(done.succeeded, vec![Call::Fail]);

        let done = job(
            actuator.clone(),
            vec![
                Step::required(Call::Reinstate),
                Step::required(Call::SetMarginal),
            ],
        )
        .run();
        assert!(done.result.unwrap_err().to_string().contains("Reinstate"));
        assert!(done.succeeded.is_empty());
        assert_eq!(
            *actuator.calls.lock().unwrap(),
            vec![Call::UnsetMarginal, Call::Fail, Call::Reinstate],
            "SetMarginal is not tried after the reinstate it needs failed"
        );
    }

    #[test]
    fn the_worker_thread_makes_the_calls_in_order_and_reports_each() {
        let actuator = Arc::new(Recorder::default());
        let (mut worker, mut done) = WorkerThread::spawn().unwrap();
        for call in [Call::Fail, Call::Reinstate, Call::SetMarginal] {
            assert!(
                worker
                    .submit(job(actuator.clone(), vec![Step::required(call)]))
                    .is_none(),
                "queued, not run on the caller's thread"
            );
        }
        let mut seen = Vec::new();
        for _ in 0..3 {
            let outcome = done.blocking_recv().expect("every job reports");
            assert!(outcome.result.is_ok());
            seen.extend(outcome.succeeded);
        }
        assert_eq!(seen, vec![Call::Fail, Call::Reinstate, Call::SetMarginal]);
        assert_eq!(*actuator.calls.lock().unwrap(), seen);
    }
}
