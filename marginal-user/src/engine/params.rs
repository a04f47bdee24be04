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
    /// How a path is held out: the effective `marginal_path_action` (already fallen back to
    /// `fail` where multipathd cannot set paths marginal).
    pub action: PathAction,
}

/// How a map's marginal paths are held out of service (`marginal_path_action`).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum PathAction {
    /// Fail the path (multipathd `fail path`, or a dm `fail_path` message): no I/O reaches it.
    /// A map's last active path is never failed.
    #[default]
    Fail,
    /// multipathd's `setmarginal path`: with `marginal_pathgroups on` multipathd moves the path
    /// to a path group of its own with the lowest priority. It stays active in dm, carrying
    /// I/O only when every other path group has failed: a last resort, so the rule that never
    /// fails a map's last active path does not apply to it.
    SetMarginal,
}

impl PathAction {
    /// The keyword's value, as status and the state file show it.
    pub fn as_str(self) -> &'static str {
        match self {
            PathAction::Fail => "fail",
            PathAction::SetMarginal => "setmarginal",
        }
    }

    /// Parses `fail` or `setmarginal`.
    pub fn parse(text: &str) -> Result<PathAction, String> {
        match text {
            "fail" => Ok(PathAction::Fail),
            "setmarginal" => Ok(PathAction::SetMarginal),
            _ => Err(format!("\"{text}\" is not one of fail, setmarginal")),
        }
    }
}

impl std::fmt::Display for PathAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
