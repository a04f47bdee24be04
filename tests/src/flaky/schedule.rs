//! Which reads fail: the schedule and its pure decision function.
//!
//! Decisions depend only on the schedule and on the read's 1-based index since the schedule
//! was set, never on wall-clock time or thread timing, so a test that issues reads one at a
//! time knows exactly which of them fail.

/// What the flaky file does with reads, counted from the moment the schedule was set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Schedule {
    /// Every read succeeds.
    #[default]
    Healthy,
    /// Reads number n, 2n, 3n, ... fail with EIO; `EveryNth(1)` fails every read and
    /// `EveryNth(0)` none.
    EveryNth(u64),
    /// Each read fails with probability `permille`/1000, decided by a hash of `seed` and the
    /// read's index: the same seed gives the same failures for the same sequence of reads.
    FractionPermille { permille: u32, seed: u64 },
    /// The first `after` reads succeed, the next `fail` reads fail, the rest succeed.
    Burst { after: u64, fail: u64 },
    /// Every read fails (a dead path).
    FailAll,
    /// Every read stays unanswered until [`crate::FlakyDevice::release_hung`] or
    /// [`crate::FlakyDevice::fail_hung`] (a path that stopped responding).
    Hang,
}

/// What happens to one read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Answered with data.
    Serve,
    /// Answered with EIO.
    Fail,
    /// Left pending until the test releases it.
    Hang,
}

impl Schedule {
    /// The outcome of the `index`-th read (1-based) since this schedule was set.
    pub fn outcome(&self, index: u64) -> Outcome {
        let fail = match *self {
            Schedule::Healthy => false,
            // 0 would divide by zero; treating it as "never" matches "every 0th read" best.
            Schedule::EveryNth(0) => false,
            Schedule::EveryNth(n) => index.is_multiple_of(n),
            Schedule::FractionPermille { permille, seed } => {
                splitmix64(seed ^ splitmix64(index)) % 1000 < u64::from(permille)
            }
            Schedule::Burst { after, fail } => index > after && index - after <= fail,
            Schedule::FailAll => true,
            Schedule::Hang => return Outcome::Hang,
        };
        if fail { Outcome::Fail } else { Outcome::Serve }
    }
}

/// The words form used by the `flaky-device` binary: `healthy`, `every-nth N`,
/// `fraction-permille P [SEED]`, `burst K [AFTER]`, `fail-all`, `hang`.
impl std::fmt::Display for Schedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Schedule::Healthy => write!(f, "healthy"),
            Schedule::EveryNth(n) => write!(f, "every-nth {n}"),
            Schedule::FractionPermille { permille, seed } => {
                write!(f, "fraction-permille {permille} {seed}")
            }
            Schedule::Burst { after, fail } => write!(f, "burst {fail} {after}"),
            Schedule::FailAll => write!(f, "fail-all"),
            Schedule::Hang => write!(f, "hang"),
        }
    }
}

impl std::str::FromStr for Schedule {
    type Err = String;

    /// Parses the form [`Display`](std::fmt::Display) writes; omitted SEED and AFTER are 0.
    fn from_str(s: &str) -> Result<Self, String> {
        let words: Vec<&str> = s.split_whitespace().collect();
        let num = |i: usize, default: Option<u64>| -> Result<u64, String> {
            match (words.get(i), default) {
                (Some(w), _) => w.parse().map_err(|_| format!("not a number: {w:?}")),
                (None, Some(d)) => Ok(d),
                (None, None) => Err(format!("{s:?} needs a number")),
            }
        };
        let (max_words, schedule) = match words.first().copied() {
            Some("healthy") => (1, Schedule::Healthy),
            Some("every-nth") => (2, Schedule::EveryNth(num(1, None)?)),
            Some("fraction-permille") => {
                let permille = num(1, None)?;
                if permille > 1000 {
                    return Err(format!("permille must be at most 1000, got {permille}"));
                }
                let schedule = Schedule::FractionPermille {
                    permille: permille as u32,
                    seed: num(2, Some(0))?,
                };
                (3, schedule)
            }
            Some("burst") => (
                3,
                Schedule::Burst {
                    fail: num(1, None)?,
                    after: num(2, Some(0))?,
                },
            ),
            Some("fail-all") => (1, Schedule::FailAll),
            Some("hang") => (1, Schedule::Hang),
            _ => return Err(format!("unknown schedule {s:?}")),
        };
        if words.len() > max_words {
            return Err(format!("too many words in {s:?}"));
        }
        Ok(schedule)
    }
}

/// SplitMix64's finaliser: a well-mixed, dependency-free hash, so failures for a seed are
/// reproducible across versions of any random-number crate.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Counters of what the flaky file did, since creation or the last reset.
///
/// `reads == reads_ok + reads_failed + hung_now` always holds: a hung read counts as ok or
/// failed once it is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    /// Read requests that reached the FUSE daemon.
    pub reads: u64,
    /// Reads answered with data.
    pub reads_ok: u64,
    /// Reads answered with EIO.
    pub reads_failed: u64,
    /// Reads that were held back by [`Schedule::Hang`], answered or not.
    pub reads_hung: u64,
    /// Reads held back right now.
    pub hung_now: u64,
    /// Write requests (all accepted and discarded).
    pub writes: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failures(s: Schedule, n: u64) -> Vec<u64> {
        (1..=n).filter(|&i| s.outcome(i) == Outcome::Fail).collect()
    }

    #[test]
    fn every_nth_fails_multiples() {
        assert_eq!(failures(Schedule::EveryNth(3), 10), vec![3, 6, 9]);
        assert!(failures(Schedule::EveryNth(0), 10).is_empty());
        assert_eq!(failures(Schedule::EveryNth(1), 3), vec![1, 2, 3]);
    }

    #[test]
    fn burst_fails_a_window() {
        assert_eq!(
            failures(Schedule::Burst { after: 2, fail: 3 }, 10),
            vec![3, 4, 5]
        );
        assert_eq!(
            failures(Schedule::Burst { after: 0, fail: 2 }, 10),
            vec![1, 2]
        );
    }

    #[test]
    fn fraction_is_seeded_and_close() {
        let s = Schedule::FractionPermille {
            permille: 100,
            seed: 1,
        };
        let a = failures(s, 10_000);
        assert_eq!(a, failures(s, 10_000));
        assert!((900..1100).contains(&a.len()), "{}", a.len());
        let other = Schedule::FractionPermille {
            permille: 100,
            seed: 2,
        };
        assert_ne!(a, failures(other, 10_000));
        let none = Schedule::FractionPermille {
            permille: 0,
            seed: 1,
        };
        assert!(failures(none, 1000).is_empty());
        let all = Schedule::FractionPermille {
            permille: 1000,
            seed: 1,
        };
        assert_eq!(failures(all, 1000).len(), 1000);
    }

    #[test]
    fn words_round_trip() {
        for s in [
            Schedule::Healthy,
            Schedule::EveryNth(10),
            Schedule::FractionPermille {
                permille: 100,
                seed: 7,
            },
            Schedule::Burst { after: 3, fail: 5 },
            Schedule::FailAll,
            Schedule::Hang,
        ] {
            assert_eq!(s.to_string().parse::<Schedule>(), Ok(s));
        }
        assert_eq!(
            "burst 4".parse::<Schedule>(),
            Ok(Schedule::Burst { after: 0, fail: 4 })
        );
        assert!("every-nth".parse::<Schedule>().is_err());
        assert!("every-nth x".parse::<Schedule>().is_err());
        assert!("fraction-permille 1001".parse::<Schedule>().is_err());
        assert!("healthy now".parse::<Schedule>().is_err());
        assert!("sometimes".parse::<Schedule>().is_err());
    }

    #[test]
    fn hang_and_fail_all() {
        assert_eq!(Schedule::Hang.outcome(1), Outcome::Hang);
        assert_eq!(Schedule::FailAll.outcome(7), Outcome::Fail);
        assert_eq!(Schedule::Healthy.outcome(7), Outcome::Serve);
    }
}
