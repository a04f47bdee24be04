//! The sampler thread: one io_uring serving every run.
//!
//! Only this thread touches the ring, the runs and the buffers, so nothing is locked while
//! waiting for I/O. It sleeps in `io_uring_enter` until a completion, a command (an eventfd
//! the handle writes, polled on the ring) or the earliest timer of any run (refill, read
//! deadline, presence check, cutoff, end); it never opens devices (a sick device can block
//! `open`: helper threads do that, see `mod.rs`).
//!
//! Cost per read stays flat in the number of runs: a wake-up services only the runs whose
//! timer has come or that a completion, cancel answer or command made due (`timers.rs`), a
//! completion touches only its own run, progress is published per run as its counts change
//! (`progress.rs`), and the vectors a wake-up needs are kept and reused, not reallocated.
//!
//! Buffer ownership: a read's buffer is its slot's part of the run's read area, registered
//! with the kernel while the run lasts (`uring.rs`), and the area stays with the run until the
//! read's completion arrives. When a run ends while the kernel still holds reads (timed out,
//! or not cancellable), the area is unregistered and moves, with the device file, to the
//! orphan list, shared by those reads and freed when the last of their late completions
//! arrives, or leaked if the thread must exit before that.
use std::{
    collections::HashMap,
    io,
    os::fd::AsRawFd,
    path::PathBuf,
    sync::{
        Arc, Mutex,
        mpsc::{Receiver, TryRecvError},
    },
    time::{Duration, Instant},
};

use tokio::sync::mpsc::UnboundedSender;

use super::{
    ActiveRun, SampleOutcome, SampleReport, SamplerOptions,
    buffer::AlignedBuf,
    command::{Command, Waker},
    id_map::IdMap,
    progress::Progress,
    run::{Completion, End, ReadRequest, Run, RunConfig},
    target::Target,
    timers::TimerQueue,
    uring::{Answer, READ_ID_MASK, Uring},
};

/// How long a shutting-down thread waits for late completions before leaking their buffers.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);
/// Longest sleep when nothing is scheduled (commands and completions wake it anyway).
const IDLE_WAIT: Duration = Duration::from_secs(1);

enum Entry {
    Opening {
        key: String,
        node: PathBuf,
        sample_time: Duration,
        slots: Option<usize>,
        progress: Arc<Progress>,
        stop: bool,
    },
    Active {
        key: String,
        target: Arc<Target>,
        run: Box<Run>,
        progress: Arc<Progress>,
        /// The run's read area's index in the registered buffer table (None: plain reads).
        registered: Option<u16>,
    },
}

/// What the reads the kernel still holds after their run ended need: the area they read into
/// and the device file. Each such read's orphan entry shares it; the last completion frees it.
struct Leftover {
    area: AlignedBuf,
    _target: Arc<Target>,
}

pub(crate) struct Ring {
    uring: Uring,
    options: SamplerOptions,
    commands: Receiver<Command>,
    waker: Waker,
    reports: UnboundedSender<SampleReport>,
    /// Shared with handles: key -> id and progress of runs not yet reported.
    active: Arc<Mutex<HashMap<String, ActiveRun>>>,
    entries: IdMap<Entry>,
    /// When each active run next needs servicing.
    timers: TimerQueue,
    /// read id -> (run id, slot)
    in_flight: IdMap<(u64, usize)>,
    /// read id -> what it still needs, for reads of runs that ended
    orphans: IdMap<Arc<Leftover>>,
    next_read_id: u64,
    /// Kept between wake-ups so the steady state allocates nothing: the runs due now, the
    /// reads one run submits, the answers one wake-up handles.
    due: Vec<u64>,
    reads: Vec<ReadRequest>,
    answers: Vec<Answer>,
    shutdown_since: Option<Instant>,
}

impl Ring {
    pub(crate) fn new(
        uring: Uring,
        options: SamplerOptions,
        commands: Receiver<Command>,
        waker: Waker,
        reports: UnboundedSender<SampleReport>,
        active: Arc<Mutex<HashMap<String, ActiveRun>>>,
    ) -> Self {
        Self {
            uring,
            options,
            commands,
            waker,
            reports,
            active,
            entries: IdMap::default(),
            timers: TimerQueue::default(),
            in_flight: IdMap::default(),
            orphans: IdMap::default(),
            next_read_id: 1,
            due: Vec::new(),
            reads: Vec::new(),
            answers: Vec::new(),
            shutdown_since: None,
        }
    }

    /// The thread's body.
    pub(crate) fn serve(mut self) {
        if let Err(err) = self.serve_until_shutdown() {
            log::error!("sampler: io_uring failed: {err}; ending every run");
            let keys: Vec<u64> = self.entries.keys().copied().collect();
            for id in keys {
                self.finish(
                    id,
                    SampleOutcome::Failed(format!("sampler io_uring failed: {err}")),
                    Instant::now(),
                );
            }
        }
        // Whatever the kernel still holds may be written to later: never free it.
        let leaked = self.orphans.len();
        for (_, leftover) in self.orphans.drain() {
            // Shared by a run's pending reads: the last entry drained holds it alone.
            if let Ok(leftover) = Arc::try_unwrap(leftover) {
                leftover.area.leak();
            }
        }
        if leaked > 0 {
            log::warn!(
                "sampler: exiting with {leaked} reads still in the kernel; their buffers are leaked, not freed"
            );
        }
    }

    fn serve_until_shutdown(&mut self) -> io::Result<()> {
        self.uring.arm_wake(self.waker.as_raw_fd())?;
        loop {
            self.take_commands()?;
            let now = Instant::now();
            self.service_due(now)?;
            if let Some(since) = self.shutdown_since
                && self.entries.is_empty()
                && (self.orphans.is_empty() || now >= since + SHUTDOWN_GRACE)
            {
                return Ok(());
            }
            let wait = self.wait_time(now);
            self.uring.submit_and_wait(wait)?;
            self.reap(Instant::now())?;
        }
    }

    fn take_commands(&mut self) -> io::Result<()> {
        loop {
            match self.commands.try_recv() {
                Ok(command) => self.command(command)?,
                Err(TryRecvError::Empty) => return Ok(()),
                // Every sender gone without a Shutdown: treat as one.
                Err(TryRecvError::Disconnected) => return self.command(Command::Shutdown),
            }
        }
    }

    fn command(&mut self, command: Command) -> io::Result<()> {
        let now = Instant::now();
        match command {
            Command::Begin {
                id,
                key,
                node,
                sample_time,
                slots,
                progress,
            } => {
                self.entries.insert(
                    id,
                    Entry::Opening {
                        key,
                        node,
                        sample_time,
                        slots,
                        progress,
                        stop: false,
                    },
                );
            }
            Command::Opened { id, result } => self.opened(id, result, now),
            Command::Stop { id } => self.stop(id, now)?,
            Command::Shutdown => {
                if self.shutdown_since.is_none() {
                    self.shutdown_since = Some(now);
                    let ids: Vec<u64> = self.entries.keys().copied().collect();
                    for id in ids {
                        self.stop(id, now)?;
                    }
                }
            }
        }
        Ok(())
    }

    fn opened(&mut self, id: u64, result: Result<Target, String>, now: Instant) {
        let Some(Entry::Opening {
            key,
            node,
            sample_time,
            slots,
            progress,
            stop,
        }) = self.entries.remove(&id)
        else {
            return; // reported already (shutdown); dropping the target closes it
        };
        let target = match result {
            Err(why) => {
                self.entries.insert(
                    id,
                    Entry::Opening {
                        key,
                        node,
                        sample_time,
                        slots,
                        progress,
                        stop,
                    },
                );
                return self.finish(id, SampleOutcome::Failed(why), now);
            }
            Ok(target) => Arc::new(target),
        };
        let config = RunConfig {
            slots: slots.unwrap_or(self.options.slots_per_path),
            refill_interval: self.options.refill_interval,
            read_timeout: self.options.read_timeout,
            sample_time,
        };
        // Different offsets every run (so a recheck does not replay the same blocks).
        let clock = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let seed = id.rotate_left(32) ^ clock.as_nanos() as u64;
        let run = Box::new(Run::new(
            config,
            target.block_size,
            target.blocks,
            seed,
            now,
        ));
        log::info!(
            "sampler: {key}: sampling {} for {sample_time:?} ({}-byte reads, {} blocks)",
            target.describe(),
            target.block_size,
            target.blocks
        );
        let (area, len) = run.read_area();
        // SAFETY: the area lives in the run, then in the orphan list, until every read into it
        // has completed (or is leaked); `finish` unregisters it before either drops it.
        let registered = unsafe { self.uring.register(area, len) };
        let entry = Entry::Active {
            key,
            target,
            run,
            progress,
            registered,
        };
        self.entries.insert(id, entry);
        if stop {
            self.finish(id, SampleOutcome::Stopped, now);
        } else {
            // The first refill, at once.
            self.timers.schedule(id, Some(now));
        }
    }

    fn stop(&mut self, id: u64, now: Instant) -> io::Result<()> {
        match self.entries.get_mut(&id) {
            None => Ok(()), // already over
            Some(Entry::Opening { stop, .. }) => {
                if self.shutdown_since.is_some() {
                    // Do not wait for a blocked open at shutdown.
                    self.finish(id, SampleOutcome::Stopped, now);
                } else {
                    *stop = true;
                }
                Ok(())
            }
            Some(Entry::Active { run, .. }) => {
                let cancel = run.stop();
                // It may have nothing left to wait for: let the next pass end it.
                self.timers.due_by(id, now);
                self.cancel_reads(&cancel)
            }
        }
    }

    /// Service the runs whose timer has come, or that were made due since the last pass.
    fn service_due(&mut self, now: Instant) -> io::Result<()> {
        let mut due = std::mem::take(&mut self.due);
        due.clear();
        self.timers.take_due(now, &mut due);
        let serviced = due.iter().try_for_each(|&id| self.service(id, now));
        self.due = due;
        serviced
    }

    /// Expire, check presence, refill and maybe end run `id`, then set its next timer.
    fn service(&mut self, id: u64, now: Instant) -> io::Result<()> {
        let Some(Entry::Active {
            target,
            run,
            progress,
            registered,
            ..
        }) = self.entries.get_mut(&id)
        else {
            return Ok(());
        };
        let registered = *registered;
        let mut cancel = run.expire(now);
        if run.presence_check_due(now) {
            run.presence_checked(now);
            if let Err(why) = target.check_present() {
                log::warn!("sampler: {why}");
                cancel.extend(run.fail(why));
            }
        }
        let next_read_id = &mut self.next_read_id;
        self.reads.clear();
        let mut next_id = || {
            let read_id = *next_read_id;
            *next_read_id = (*next_read_id + 1) & READ_ID_MASK;
            read_id
        };
        run.refill(now, &mut next_id, &mut self.reads);
        // Timeouts counted by `expire` show at once; completions publish their own counts.
        progress.publish(&run.tally());
        let finished = run.finished(now);
        if finished.is_none() {
            self.timers.schedule(id, run.next_wake(now));
        }
        let fd = target.file.as_raw_fd();
        for read in &self.reads {
            self.in_flight.insert(read.read_id, (id, read.slot));
            // SAFETY: the buffer is in the run's area, which stays with the run (or, later, the
            // orphan list) until this read's completion is taken; the file stays open as long
            // (Arc in both).
            unsafe {
                self.uring.push_read(
                    fd,
                    registered,
                    read.buf,
                    read.len,
                    read.offset,
                    read.read_id,
                )?;
            }
        }
        self.cancel_reads(&cancel)?;
        if let Some(end) = finished {
            let outcome = match end {
                End::Completed => SampleOutcome::Completed,
                End::Stopped => SampleOutcome::Stopped,
                End::Failed(why) => SampleOutcome::Failed(why),
            };
            self.finish(id, outcome, now);
        }
        Ok(())
    }

    fn cancel_reads(&mut self, read_ids: &[u64]) -> io::Result<()> {
        for &read_id in read_ids {
            self.uring.push_cancel(read_id)?;
        }
        Ok(())
    }

    /// Report run `id` and forget it; reads still in the kernel become orphans.
    fn finish(&mut self, id: u64, outcome: SampleOutcome, now: Instant) {
        let Some(entry) = self.entries.remove(&id) else {
            return;
        };
        self.timers.remove(id);
        let report = match entry {
            Entry::Opening { key, node, .. } => SampleReport {
                path_key: key,
                device: node,
                block_size: 0,
                reads: 0,
                errors: 0,
                timeouts: 0,
                rate_permille: 0,
                elapsed: Duration::ZERO,
                outcome,
            },
            Entry::Active {
                key,
                target,
                run,
                registered,
                ..
            } => {
                if let Some(index) = registered {
                    self.uring.unregister(index);
                }
                let tally = run.tally();
                let elapsed = run.elapsed(now);
                let (pending, area) = run.into_orphans();
                if !pending.is_empty() {
                    let leftover = Arc::new(Leftover {
                        area,
                        _target: Arc::clone(&target),
                    });
                    for read_id in pending {
                        self.in_flight.remove(&read_id);
                        self.orphans.insert(read_id, Arc::clone(&leftover));
                    }
                }
                SampleReport {
                    path_key: key,
                    device: target.node.clone(),
                    block_size: target.block_size,
                    reads: tally.reads,
                    errors: tally.errors,
                    timeouts: tally.timeouts,
                    rate_permille: tally.rate_permille(),
                    elapsed,
                    outcome,
                }
            }
        };
        log::info!(
            "sampler: {}: {} reads, {} errors ({} timed out), {} permille, {:?}",
            report.path_key,
            report.reads,
            report.errors,
            report.timeouts,
            report.rate_permille,
            report.outcome
        );
        {
            let mut active = self
                .active
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if active.get(&report.path_key).map(|run| run.id) == Some(id) {
                active.remove(&report.path_key);
            }
        }
        // Nobody listening any more is not our problem.
        let _ = self.reports.send(report);
    }

    /// How long to sleep: until the earliest timer, at most `IDLE_WAIT` (and the end of the
    /// shutdown grace).
    fn wait_time(&self, now: Instant) -> Duration {
        let mut wait = self
            .timers
            .next()
            .map_or(IDLE_WAIT, |at| at.saturating_duration_since(now))
            .min(IDLE_WAIT);
        if let Some(since) = self.shutdown_since {
            wait = wait.min((since + SHUTDOWN_GRACE).saturating_duration_since(now));
        }
        // Never spin: timers are honoured to the millisecond.
        wait.max(Duration::from_millis(1))
    }

    /// Handle what the kernel answered: the completion queue once, then whatever handling it
    /// moved aside (cancels queued while the submission queue was full).
    fn reap(&mut self, now: Instant) -> io::Result<()> {
        let mut answers = std::mem::take(&mut self.answers);
        answers.clear();
        self.uring.take_answers(&mut answers);
        let mut handled = Ok(());
        while !answers.is_empty() && handled.is_ok() {
            handled = answers
                .iter()
                .try_for_each(|&answer| self.answer(answer, now));
            answers.clear();
            self.uring.take_backlog(&mut answers);
        }
        self.answers = answers;
        handled
    }

    fn answer(&mut self, answer: Answer, now: Instant) -> io::Result<()> {
        match answer {
            Answer::Wake => {
                self.waker.drain();
                self.uring.arm_wake(self.waker.as_raw_fd())
            }
            Answer::Cancel { read_id, res } => {
                if let Some(&(id, slot)) = self.in_flight.get(&read_id)
                    && let Some(Entry::Active { run, .. }) = self.entries.get_mut(&id)
                {
                    run.cancel_answered(slot, read_id, res);
                    if run.due_after_completion(now) {
                        self.timers.due_by(id, now);
                    }
                }
                Ok(())
            }
            Answer::Read { read_id, res } => self.read_done(read_id, res, now),
        }
    }

    fn read_done(&mut self, read_id: u64, res: i32, now: Instant) -> io::Result<()> {
        if self.orphans.remove(&read_id).is_some() {
            // The kernel is done with it at last: now the buffer may go.
            // (The area goes with the run's last such read.)
            log::debug!("sampler: late completion of read {read_id} ({res}); buffer released");
            return Ok(());
        }
        let Some((id, slot)) = self.in_flight.remove(&read_id) else {
            return Ok(());
        };
        let Some(Entry::Active {
            target,
            run,
            progress,
            ..
        }) = self.entries.get_mut(&id)
        else {
            return Ok(());
        };
        let why = match run.complete(slot, read_id, res) {
            Completion::Counted => {
                progress.publish(&run.tally());
                None
            }
            Completion::Ignored => None,
            Completion::DeviceGone(errno) => Some(format!(
                "device {} vanished: read failed with {}",
                target.describe(),
                io::Error::from_raw_os_error(errno)
            )),
            Completion::Refused(errno) => Some(format!(
                "device {}: the kernel refused the read: {}",
                target.describe(),
                io::Error::from_raw_os_error(errno)
            )),
        };
        let cancel = match why {
            None => Vec::new(),
            Some(why) => {
                if !run.is_ending() {
                    log::warn!("sampler: {why}");
                }
                run.fail(why)
            }
        };
        // Usually nothing to do until the next refill tick; an error (presence check) or a
        // run that may now end is serviced on this wake-up.
        if run.due_after_completion(now) {
            self.timers.due_by(id, now);
        }
        self.cancel_reads(&cancel)
    }
}
