//! The ring buffer, read with tokio: a record wakes the reader at once (no polling delay).
use anyhow::{Context, Result};
use aya::maps::{MapData, RingBuf};
use marginal_common::{EventKind, FailureSource, PathEvent};
use tokio::io::unix::AsyncFd;

/// A kernel signal, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelEvent {
    /// A watched path failed twice within its window.
    DoubleFailure {
        dev: u32,
        first_ns: u64,
        second_ns: u64,
        failures: u64,
        source: FailureSource,
    },
    /// dm-mpath failed a path.
    DmPathFailed {
        dev: u32,
        at_ns: u64,
        valid_paths: u32,
        /// Not a failure of the path: marginal's own `fail path` (announced before it was sent),
        /// or a re-fail within the episode gap of the last failure (the same outage).
        own: bool,
    },
    /// dm-mpath reinstated a path.
    DmPathReinstated {
        dev: u32,
        at_ns: u64,
        valid_paths: u32,
    },
}

impl KernelEvent {
    /// Decode one ring-buffer record; `None` for records this build does not know.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        if bytes.len() < std::mem::size_of::<PathEvent>() {
            return None;
        }
        // SAFETY: length checked; PathEvent is plain data; the ring buffer gives 8-byte
        // aligned records, but read_unaligned does not rely on that.
        let raw: PathEvent = unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) };
        Some(match EventKind::from_u32(raw.kind)? {
            EventKind::DoubleFailure => Self::DoubleFailure {
                dev: raw.dev,
                first_ns: raw.window_start_ns,
                second_ns: raw.time_ns,
                failures: raw.failures,
                source: FailureSource::from_u32(raw.source)?,
            },
            EventKind::DmPathFailed => Self::DmPathFailed {
                dev: raw.dev,
                at_ns: raw.time_ns,
                valid_paths: raw.valid_paths,
                own: raw.source == FailureSource::OwnAction as u32
                    || raw.source == FailureSource::SameOutage as u32,
            },
            EventKind::DmPathReinstated => Self::DmPathReinstated {
                dev: raw.dev,
                at_ns: raw.time_ns,
                valid_paths: raw.valid_paths,
            },
        })
    }

    pub fn dev(&self) -> u32 {
        match *self {
            Self::DoubleFailure { dev, .. }
            | Self::DmPathFailed { dev, .. }
            | Self::DmPathReinstated { dev, .. } => dev,
        }
    }
}

/// Async reader of the event ring buffer.
pub struct EventStream {
    ring: AsyncFd<RingBuf<MapData>>,
}

impl EventStream {
    /// Must be called inside a tokio runtime.
    pub fn new(ring: RingBuf<MapData>) -> Result<Self> {
        // SAFETY: the ring buffer owns its map fd, which stays open and unchanged for as long
        // as the AsyncFd owns the ring buffer.
        let ring = unsafe { AsyncFd::register(ring) }
            .map_err(|e| e.into_parts().1)
            .context("registering the event ring buffer with tokio")?;
        Ok(Self { ring })
    }

    /// Wait for the next batch of events (at least one).
    pub async fn next_batch(&mut self) -> Result<Vec<KernelEvent>> {
        loop {
            let mut guard = self.ring.readable_mut().await?;
            let ring = guard.get_inner_mut();
            let mut events = Vec::new();
            while let Some(item) = ring.next() {
                match KernelEvent::decode(&item) {
                    Some(event) => events.push(event),
                    None => log::warn!(
                        "ignoring an unknown ring-buffer record ({} bytes)",
                        item.len()
                    ),
                }
            }
            guard.clear_ready();
            if !events.is_empty() {
                return Ok(events);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(event: &PathEvent) -> Vec<u8> {
        // SAFETY: PathEvent is repr(C) plain data without padding.
        unsafe {
            std::slice::from_raw_parts(
                (event as *const PathEvent).cast::<u8>(),
                std::mem::size_of::<PathEvent>(),
            )
        }
        .to_vec()
    }

    #[test]
    fn decodes_double_failure() {
        let raw = PathEvent {
            kind: EventKind::DoubleFailure as u32,
            dev: 7 << 20 | 2,
            time_ns: 2_000,
            window_start_ns: 1_000,
            failures: 2,
            valid_paths: 0,
            source: FailureSource::BlockError as u32,
        };
        assert_eq!(
            KernelEvent::decode(&bytes(&raw)),
            Some(KernelEvent::DoubleFailure {
                dev: 7 << 20 | 2,
                first_ns: 1_000,
                second_ns: 2_000,
                failures: 2,
                source: FailureSource::BlockError
            })
        );
    }

    #[test]
    fn rejects_short_and_unknown_records() {
        assert_eq!(KernelEvent::decode(&[0u8; 8]), None);
        let raw = PathEvent {
            kind: 99,
            ..Default::default()
        };
        assert_eq!(KernelEvent::decode(&bytes(&raw)), None);
    }
}
