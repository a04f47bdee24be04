//! One sampling run's bookkeeping: its slots, counts and clock. No I/O happens here: the ring
//! (`ring.rs`) asks a run what to submit or cancel and tells it what completed, so every rule
//! of the spec's "Sampling" paragraph is testable with made-up completions and instants.
use std::time::{Duration, Instant};

use super::{
    buffer::{AlignedBuf, page_size},
    offsets::OffsetPicker,
    tally::Tally,
};

/// How often a run checks that its device still exists (and at once after a failed read).
const PRESENCE_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// The timing and concurrency of a run.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RunConfig {
    pub(crate) slots: usize,
    pub(crate) refill_interval: Duration,
    pub(crate) read_timeout: Duration,
    pub(crate) sample_time: Duration,
}

/// A read the ring must submit: `len` bytes at `offset` into `buf`.
#[derive(Debug)]
pub(crate) struct ReadRequest {
    pub(crate) read_id: u64,
    pub(crate) slot: usize,
    pub(crate) offset: u64,
    pub(crate) buf: *mut u8,
    pub(crate) len: u32,
}

// The pointer is into a slot's buffer, which may be used from any thread (`buffer.rs`); the
// ring keeps its (emptied) vector of requests across wake-ups, and moves it to its thread.
unsafe impl Send for ReadRequest {}

/// What a completion meant for the run.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Completion {
    /// Counted (as a good read or an error).
    Counted,
    /// Not counted: the read already counted as timed out, or it was cancelled.
    Ignored,
    /// The device is gone (ENXIO, ENODEV): the run must fail.
    DeviceGone(i32),
    /// The kernel refused the read itself (EINVAL, EBADF, ...): a rate would be meaningless.
    Refused(i32),
}

/// Why a run is winding down.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Ending {
    Stopped,
    Failed(String),
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum End {
    Completed,
    Stopped,
    Failed(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cancel {
    NotAsked,
    /// Asked; the kernel has not answered, or answered that the read will end as cancelled.
    Asked,
    /// The kernel cannot cancel it (already running in the device): only its completion will
    /// free the buffer.
    Refused,
}

#[derive(Clone, Copy, Debug)]
enum SlotState {
    Idle,
    Reading {
        read_id: u64,
        block: u64,
        deadline: Instant,
        timed_out: bool,
        cancel: Cancel,
    },
}

/// A slot's buffer is its stride of the run's read area (see [`Run::read_area`]).
struct Slot {
    state: SlotState,
}

impl Slot {
    /// Nothing more to wait for before the run may end: idle, or a read that was given up on
    /// (timed out and already counted, or not cancellable); those go to the orphan list.
    fn settled(&self) -> bool {
        match self.state {
            SlotState::Idle => true,
            SlotState::Reading {
                timed_out, cancel, ..
            } => timed_out || cancel == Cancel::Refused,
        }
    }
}

/// One path's sampling run.
pub(crate) struct Run {
    config: RunConfig,
    block_size: u32,
    slots: Vec<Slot>,
    /// Every slot's buffer, one after the other, each `stride` bytes from the previous: one
    /// allocation, so the ring can register it with the kernel once for the whole run. Slot
    /// buffers are handed to the kernel while `Reading`, so the area is only freed once every
    /// read has completed (see `buffer.rs` and [`Run::into_orphans`]).
    area: AlignedBuf,
    /// The block size rounded up to the page size: every slot's buffer is page-aligned.
    stride: usize,
    picker: OffsetPicker,
    /// Blocks being read, gathered at each refill for the picker (kept to reuse its memory).
    reading_blocks: Vec<u64>,
    tally: Tally,
    started: Instant,
    next_refill: Instant,
    next_presence_check: Instant,
    error_since_check: bool,
    ending: Option<Ending>,
}

impl Run {
    /// A run over a device of `blocks` blocks of `block_size` bytes, starting at `now`.
    pub(crate) fn new(
        config: RunConfig,
        block_size: u32,
        blocks: u64,
        seed: u64,
        now: Instant,
    ) -> Self {
        let picker = OffsetPicker::new(blocks, seed);
        // Tiny devices cannot hold 32 non-adjacent reads at once.
        let slots = config.slots.min(picker.max_in_flight()).max(1);
        let len = usize::try_from(block_size).expect("u32 fits usize");
        let stride = len.next_multiple_of(page_size());
        Self {
            config,
            block_size,
            slots: (0..slots)
                .map(|_| Slot {
                    state: SlotState::Idle,
                })
                .collect(),
            area: AlignedBuf::new(slots * stride),
            stride,
            picker,
            reading_blocks: Vec::with_capacity(slots),
            tally: Tally::default(),
            started: now,
            next_refill: now,
            next_presence_check: now + PRESENCE_CHECK_INTERVAL,
            error_since_check: false,
            ending: None,
        }
    }

    /// No new read may start at or after this instant: elapsed + read timeout >= sample time,
    /// so every read ends (completes or times out) inside the window.
    pub(crate) fn cutoff(&self) -> Instant {
        self.started
            + self
                .config
                .sample_time
                .saturating_sub(self.config.read_timeout)
    }

    fn end(&self) -> Instant {
        self.started + self.config.sample_time
    }

    pub(crate) fn tally(&self) -> Tally {
        self.tally
    }

    pub(crate) fn elapsed(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.started)
    }

    pub(crate) fn is_ending(&self) -> bool {
        self.ending.is_some()
    }

    /// Reads to submit now, appended to `requests`: every idle slot, if a refill is due (at the
    /// start, then every refill interval) and the cutoff has not passed. `next_id` hands out
    /// read ids. The caller's vector is reused from wake-up to wake-up, so refilling allocates
    /// nothing.
    pub(crate) fn refill(
        &mut self,
        now: Instant,
        next_id: &mut impl FnMut() -> u64,
        requests: &mut Vec<ReadRequest>,
    ) {
        if self.ending.is_some() || now < self.next_refill || now >= self.cutoff() {
            return;
        }
        // Keep the 100 ms rhythm; after a late wake-up, restart it from now instead of
        // refilling several times in a row.
        self.next_refill += self.config.refill_interval;
        if self.next_refill <= now {
            self.next_refill = now + self.config.refill_interval;
        }
        let in_flight = &mut self.reading_blocks;
        in_flight.clear();
        in_flight.extend(self.slots.iter().filter_map(|slot| match slot.state {
            SlotState::Reading { block, .. } => Some(block),
            SlotState::Idle => None,
        }));
        let deadline = now + self.config.read_timeout;
        let area = self.area.as_mut_ptr();
        for (index, slot) in self.slots.iter_mut().enumerate() {
            if !matches!(slot.state, SlotState::Idle) {
                continue;
            }
            let Some(block) = self.picker.pick(in_flight) else {
                break;
            };
            in_flight.push(block);
            let read_id = next_id();
            slot.state = SlotState::Reading {
                read_id,
                block,
                deadline,
                timed_out: false,
                cancel: Cancel::NotAsked,
            };
            requests.push(ReadRequest {
                read_id,
                slot: index,
                offset: block * u64::from(self.block_size),
                // Inside the area: index < slots, and the area is slots * stride long.
                buf: area.wrapping_add(index * self.stride),
                len: self.block_size,
            });
        }
    }

    /// Count reads that reached their deadline as timed out (once: the flag keeps a later
    /// completion or a later pass from counting them again) and return the ids to cancel.
    pub(crate) fn expire(&mut self, now: Instant) -> Vec<u64> {
        let mut cancel = Vec::new();
        for slot in &mut self.slots {
            if let SlotState::Reading {
                read_id,
                deadline,
                timed_out: timed_out @ false,
                cancel: state,
                ..
            } = &mut slot.state
                && *deadline <= now
            {
                *timed_out = true;
                self.tally.timeout();
                if *state == Cancel::NotAsked {
                    *state = Cancel::Asked;
                    cancel.push(*read_id);
                }
            }
        }
        cancel
    }

    /// The kernel finished read `read_id` in `slot` with result `res` (bytes or -errno).
    pub(crate) fn complete(&mut self, slot: usize, read_id: u64, res: i32) -> Completion {
        let Some(entry) = self.slots.get_mut(slot) else {
            return Completion::Ignored;
        };
        let SlotState::Reading {
            read_id: current,
            timed_out,
            cancel,
            ..
        } = entry.state
        else {
            return Completion::Ignored;
        };
        if current != read_id {
            return Completion::Ignored;
        }
        entry.state = SlotState::Idle;
        if timed_out {
            // Already counted as one error when it timed out; a late completion adds nothing.
            return Completion::Ignored;
        }
        if cancel != Cancel::NotAsked && (res == -libc::ECANCELED || res == -libc::EINTR) {
            // We cancelled it (stop or device gone): not the path's fault.
            return Completion::Ignored;
        }
        match res {
            r if r == self.block_size as i32 => self.tally.ok(),
            r if r == -libc::ENXIO || r == -libc::ENODEV => return Completion::DeviceGone(-r),
            r if [libc::EINVAL, libc::EBADF, libc::EFAULT, libc::EOPNOTSUPP].contains(&-r) => {
                return Completion::Refused(-r);
            }
            _ => {
                // An I/O error, or a short read (which a whole block inside the device is not
                // supposed to give).
                self.tally.error();
                self.error_since_check = true;
            }
        }
        Completion::Counted
    }

    /// The kernel answered our cancel request for `read_id` with `res`.
    pub(crate) fn cancel_answered(&mut self, slot: usize, read_id: u64, res: i32) {
        if let Some(Slot {
            state:
                SlotState::Reading {
                    read_id: current,
                    cancel,
                    ..
                },
            ..
        }) = self.slots.get_mut(slot)
            && *current == read_id
            && res < 0
        {
            // ENOENT / EALREADY: already in the device; its completion will come when it comes.
            *cancel = Cancel::Refused;
        }
    }

    /// Stop the run: no new reads; returns the in-flight reads to cancel.
    pub(crate) fn stop(&mut self) -> Vec<u64> {
        self.wind_down(Ending::Stopped)
    }

    /// End the run with an error (`why` names the device); returns the reads to cancel.
    pub(crate) fn fail(&mut self, why: String) -> Vec<u64> {
        self.wind_down(Ending::Failed(why))
    }

    fn wind_down(&mut self, why: Ending) -> Vec<u64> {
        if self.ending.is_none() {
            self.ending = Some(why);
        }
        let mut cancel = Vec::new();
        for slot in &mut self.slots {
            if let SlotState::Reading {
                read_id,
                cancel: state @ Cancel::NotAsked,
                ..
            } = &mut slot.state
            {
                *state = Cancel::Asked;
                cancel.push(*read_id);
            }
        }
        cancel
    }

    /// Whether the run needs the ring now rather than at its next timer ([`Run::next_wake`]),
    /// after a completion or a cancel answer: a failed read asks for a presence check at once,
    /// and a run winding down or past its cutoff may be able to end. Otherwise a completion
    /// only frees a slot, which waits for the next refill tick anyway. Constant time: the ring
    /// asks this for every completion.
    pub(crate) fn due_after_completion(&self, now: Instant) -> bool {
        self.ending.is_some() || self.error_since_check || now >= self.cutoff()
    }

    /// Whether the ring should check that the device still exists now.
    pub(crate) fn presence_check_due(&self, now: Instant) -> bool {
        self.ending.is_none() && (self.error_since_check || now >= self.next_presence_check)
    }

    pub(crate) fn presence_checked(&mut self, now: Instant) {
        self.error_since_check = false;
        self.next_presence_check = now + PRESENCE_CHECK_INTERVAL;
    }

    /// `Some(end)` once the run is over: sample time reached, or past the cutoff with nothing
    /// left to wait for, or winding down with every read completed or given up on.
    pub(crate) fn finished(&self, now: Instant) -> Option<End> {
        // Only looked at (a walk over the slots) when it can matter.
        let settled = || self.slots.iter().all(Slot::settled);
        match &self.ending {
            None if now >= self.end() || (now >= self.cutoff() && settled()) => {
                Some(End::Completed)
            }
            None => None,
            Some(_) if !settled() => None,
            Some(Ending::Stopped) => Some(End::Stopped),
            Some(Ending::Failed(why)) => Some(End::Failed(why.clone())),
        }
    }

    /// When the run next needs the ring's attention without a completion: its next refill,
    /// read deadline, presence check, cutoff (after which it may end early) or end.
    pub(crate) fn next_wake(&self, now: Instant) -> Option<Instant> {
        let deadlines = self.slots.iter().filter_map(|slot| match slot.state {
            SlotState::Reading {
                deadline,
                timed_out: false,
                ..
            } => Some(deadline),
            _ => None,
        });
        let mut wake = deadlines.min();
        if self.ending.is_none() {
            let refill = Some(self.next_refill).filter(|&at| at < self.cutoff());
            let cutoff = Some(self.cutoff()).filter(|&at| at > now);
            let timers = [
                refill,
                cutoff,
                Some(self.next_presence_check),
                Some(self.end()),
            ];
            for at in timers.into_iter().flatten() {
                wake = Some(wake.map_or(at, |w| w.min(at)));
            }
        }
        wake
    }

    /// The memory all of this run's reads go into, and its length (for the ring to register
    /// with the kernel).
    pub(crate) fn read_area(&self) -> (*mut u8, usize) {
        (self.area.as_mut_ptr(), self.area.len())
    }

    /// The run is over: the ids of the reads the kernel still holds, and the read area, which
    /// must outlive them (the ring's orphan list keeps it until the last one completes; with
    /// none pending it can go at once).
    pub(crate) fn into_orphans(self) -> (Vec<u64>, AlignedBuf) {
        let pending = self
            .slots
            .iter()
            .filter_map(|slot| match slot.state {
                SlotState::Reading { read_id, .. } => Some(read_id),
                SlotState::Idle => None,
            })
            .collect();
        (pending, self.area)
    }
}

#[cfg(test)]
#[path = "run_tests.rs"]
mod tests;
