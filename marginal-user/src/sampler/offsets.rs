//! Where the sample reads go: random blocks that the block layer cannot merge.
//!
//! The block layer merges a request with a queued one that ends where it starts (or starts
//! where it ends); merged reads succeed or fail together, which would turn "every 10th read
//! fails" into "every 10th batch fails" (ENVIRONMENT.md). Upstream read block 0 over and over.
//! Here every new read is at a random block that is neither equal nor adjacent to any read of
//! the same run still in flight, nor to the run's previous read, so no two reads of a run can
//! ever be merged, whatever the queue settings.

/// Small, fast, seedable generator (SplitMix64). Statistical quality is plenty for picking
/// blocks, and a fixed seed makes unit tests deterministic; no need for a crate.
#[derive(Clone, Debug)]
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..bound` (bound > 0), by rejection so small ranges are not biased.
    pub(crate) fn below(&mut self, bound: u64) -> u64 {
        debug_assert!(bound > 0);
        let zone = u64::MAX - (u64::MAX % bound);
        loop {
            let x = self.next_u64();
            if x < zone {
                return x % bound;
            }
        }
    }
}

/// How many tries a pick gets before the slot waits for the next refill; only tiny devices
/// (a few blocks per slot) ever run out.
const PICK_TRIES: usize = 64;

/// Picks block numbers for one run.
#[derive(Clone, Debug)]
pub(crate) struct OffsetPicker {
    rng: SplitMix64,
    blocks: u64,
    last: Option<u64>,
}

impl OffsetPicker {
    /// `blocks`: how many whole blocks the device has (> 0).
    pub(crate) fn new(blocks: u64, seed: u64) -> Self {
        Self {
            rng: SplitMix64::new(seed),
            blocks,
            last: None,
        }
    }

    /// The most reads that can be in flight at once without two being adjacent: every other
    /// block. Runs use fewer slots than that on tiny devices.
    pub(crate) fn max_in_flight(&self) -> usize {
        usize::try_from(self.blocks.div_ceil(2)).unwrap_or(usize::MAX)
    }

    /// A block not equal or adjacent to any of `in_flight` nor to the previous pick, or `None`
    /// if none was found quickly (the slot then waits for the next refill).
    pub(crate) fn pick(&mut self, in_flight: &[u64]) -> Option<u64> {
        for _ in 0..PICK_TRIES {
            let block = self.rng.below(self.blocks);
            let clashes = |other: u64| block.abs_diff(other) <= 1;
            // On a device of a few blocks, avoiding the previous read too would leave nowhere
            // to read; merging needs both reads queued at once, which `in_flight` rules out.
            let after_last = self.blocks >= 4 && self.last.is_some_and(clashes);
            if after_last || in_flight.iter().copied().any(clashes) {
                continue;
            }
            self.last = Some(block);
            return Some(block);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_are_never_adjacent_to_in_flight_or_previous_reads() {
        for blocks in [3, 7, 100, 16_384, 1 << 40] {
            let mut picker = OffsetPicker::new(blocks, 42 + blocks);
            let slots = picker.max_in_flight().min(32);
            let mut in_flight: Vec<u64> = Vec::new();
            let mut previous: Option<u64> = None;
            for step in 0..5_000 {
                // Retire one read now and then, as completions would.
                if in_flight.len() == slots || (step % 3 == 0 && !in_flight.is_empty()) {
                    in_flight.remove(step % in_flight.len());
                }
                if let Some(block) = picker.pick(&in_flight) {
                    assert!(block < blocks);
                    for &other in &in_flight {
                        assert!(
                            block.abs_diff(other) > 1,
                            "{block} next to in-flight {other}"
                        );
                    }
                    if let Some(prev) = previous.filter(|_| blocks >= 4) {
                        assert!(block.abs_diff(prev) > 1, "{block} next to previous {prev}");
                    }
                    previous = Some(block);
                    in_flight.push(block);
                }
            }
        }
    }

    #[test]
    fn a_full_set_of_slots_fits_on_an_ordinary_device() {
        // 64 MiB of 4 KiB blocks: all 32 slots must find a place every time.
        let mut picker = OffsetPicker::new(16_384, 7);
        let mut in_flight = Vec::new();
        for _ in 0..32 {
            in_flight.push(picker.pick(&in_flight).expect("room for 32 reads"));
        }
    }

    #[test]
    fn tiny_devices_limit_concurrency() {
        assert_eq!(OffsetPicker::new(1, 0).max_in_flight(), 1);
        assert_eq!(OffsetPicker::new(5, 0).max_in_flight(), 3);
        // A single block: the one read, then nothing until it completes.
        let mut picker = OffsetPicker::new(1, 0);
        assert_eq!(picker.pick(&[]), Some(0));
        assert_eq!(picker.pick(&[0]), None);
        assert_eq!(picker.pick(&[]), Some(0));
    }

    #[test]
    fn picks_spread_over_the_device() {
        let mut picker = OffsetPicker::new(1000, 1);
        let mut seen = [false; 10];
        for _ in 0..1000 {
            seen[(picker.pick(&[]).unwrap() / 100) as usize] = true;
        }
        assert!(seen.iter().all(|&s| s), "every tenth of the device is read");
    }

    #[test]
    fn below_stays_in_range() {
        let mut rng = SplitMix64::new(3);
        for bound in [1, 2, 3, 10, u64::MAX] {
            for _ in 0..1000 {
                assert!(rng.below(bound) < bound);
            }
        }
    }
}
