//! The marginal-path decision engine: the rules of the spec as a pure state machine.
//!
//! No I/O, no threads, no clock: the daemon feeds [`Event`]s with the current [`Timestamp`]
//! (`CLOCK_MONOTONIC`, the clock kernel events carry), calls [`Engine::poll`] at
//! [`Engine::next_deadline`], and carries out the [`Decision`]s it gets back, in order. The same
//! engine runs in observe mode; only the daemon's actuator differs.
//!
//! # Registry
//! Discovery tells the engine the maps ([`Engine::upsert_map`], each with its own [`Params`], or
//! None when checking is off for it) and their paths ([`Engine::add_path`]), with each path's dm
//! state. A path is *active* for the rules when dm reports it active and the engine does not hold
//! it out; the latter makes observe mode, where nothing is really failed, reason the same way.
//!
//! # Per-path states
//!
//! ```text
//!               (a)               (b): back to suspect, new t0
//!   healthy ----------> suspect ---+
//!                          |  ^----+
//!                          | (c)
//!             +------------+------------+
//!             | (d)                     | (e)
//!             v                         v
//!   +---> sampling               sampling_in_service
//!   |      |     |                  |          |
//!   |  (f) |     | (g)          (i) |          | (j)
//!   |      v     v                  v          v
//!   |  healthy  marginal         healthy    marginal
//!   |              |
//!   +---- (h) -----+       (k) sampling / marginal --> healthy
//! ```
//!
//! (a) first failure: t0 = its time. (b) a failure after the window restarts it. (c) a failure
//! with `now - t0 <= double_failed_time`. (d) another path of the map is active: `FailPath`,
//! `StartSampling`. (e) the map's last active path: `KeepInService`, `StartSampling`.
//! (f) passed: `ReinstatePath`. (g) marginal, another active path: stays out until
//! `now + recheck_gap_time`. (h) recheck due (`poll`): `StartSampling`, still out.
//! (i) passed, or marginal but still the last active path (`KeepInService`). (j) marginal and
//! another path active by now: `FailPath`. (k) the map has no active path left: `RecoverPath`
//! at once, whatever event caused it.
//!
//! Details the diagram leaves out:
//! * **window**: the bound is inclusive. A kernel [`Event::DoubleFailure`] is re-checked against
//!   the map's own `double_failed_time`, so a stale kernel window cannot start a check.
//! * **sampling in service**: the last active path is never failed, but sampling it is harmless
//!   and gives the admin a rate; (j) fails it only once the map can spare it.
//! * **rate** ([`verdict`]): `errors * 1000 / reads`, 0 without reads, never above 1000.
//! * **while checked**: failures of a sampling or marginal path are counted, restart nothing.
//!   A held-out path reinstated by someone else is failed again if the map can spare it.
//! * **active**: dm reports the path active and the engine does not hold it out. (k) recovers
//!   every held-out path of the map; a recovered path counts as active once dm reinstates it.
//! * **no verdict** (`SamplingFailed`, or no report by `sample_time + `[`SAMPLING_GRACE`]): a
//!   held-out path stays out and is sampled again after the recheck gap (nothing proved it
//!   healthy; it may be a path dm itself failed, an offline device); a path sampled in service
//!   just ends its check.
//! * **removal**: a removed path's run is stopped and its state dropped ([`Decision::Released`]
//!   records a held-out one). Turning checking off for a map reinstates its held-out paths.
//! * **restart**: [`Engine::adopt_failed_path`] takes back a path a previous run failed and
//!   resamples it at once; [`Engine::shutdown_plan`] lists the held-out paths to reinstate.
//!
//! The 120 s floor of `sample_time` is applied by the configuration layer, not here, so tests
//! can run short samples.
pub mod params;
pub use params::{Params, PathAction};

mod clock;
mod decisions;
mod events;
mod ids;
mod machine;
mod path;
mod registry;
pub mod slow;
mod snapshot;
pub mod verdict;
mod window;

#[cfg(test)]
mod tests;

pub use clock::Timestamp;
pub use decisions::{Decision, Reason, StateName};
pub use events::Event;
pub use ids::{MapName, PathKey};
pub use machine::{Engine, EngineError};
pub use path::SAMPLING_GRACE;
pub use slow::{Comparison, LatencyCounts, LatencyWindows, SlowParams};
pub use snapshot::{MapSnapshot, PathSnapshot};
pub use verdict::{Measurement, Verdict};
