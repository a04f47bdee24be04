//! The four marginal_path_* settings of one map, as the engine uses them.
use std::time::Duration;

use super::slow::SlowParams;

/// Marginal-path checking parameters for one map. Only built when checking is on for the map
/// (see `config`): every field is already validated, and the 120 s floor of `sample_time` is the
/// configuration layer's job, so tests can use short runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Params {
    /// `marginal_path_double_failed_time`: two failures within this window start the check.
    pub double_failed_time: Duration,
    /// `marginal_path_err_sample_time`: how long one sampling run lasts.
    pub sample_time: Duration,
    /// `marginal_path_err_rate_threshold`: a rate above this many permille is marginal.
    pub err_rate_threshold: u32,
    /// `marginal_path_err_recheck_gap_time`: how long a marginal path stays out before a recheck.
    pub recheck_gap_time: Duration,
    /// The `marginal_path_slow_*` settings: slow-path checking is on for the map when set.
    pub slow: Option<SlowParams>,
}
