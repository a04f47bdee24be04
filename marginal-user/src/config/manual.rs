//! What marginal.conf(5) says about each keyword and section, next to the keyword list
//! ([`Key`]) so that a new keyword cannot be added without its text (the match below is
//! exhaustive). The man page is rendered from this by `examples/marginal-docs.rs`; the
//! packaged default file, `dist/marginal.conf`, is checked against it by the tests.
use super::resolve::MIN_SAMPLE_TIME;
use super::values::{ACTION_KEYWORD, Key};

/// One keyword as the manual describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeywordDoc {
    pub keyword: &'static str,
    /// What the number counts (`s`, `permille`, ...).
    pub unit: &'static str,
    /// Whether marginal.conf sets it (true) or marginal only reads it in multipathd's
    /// configuration, to leave multipathd the maps it checks itself (false).
    pub in_marginal_conf: bool,
    pub text: String,
}

/// Every keyword, marginal.conf's own first.
pub fn keywords() -> Vec<KeywordDoc> {
    let mut docs: Vec<KeywordDoc> = Key::ALL
        .into_iter()
        .map(|key| KeywordDoc {
            keyword: key.keyword(),
            unit: key.unit(),
            in_marginal_conf: key.in_marginal_conf(),
            text: describe(key),
        })
        .collect();
    // After the four marginal_path_* keywords: marginal.conf's own come first.
    docs.insert(
        Key::MARGINAL.len(),
        KeywordDoc {
            keyword: ACTION_KEYWORD,
            unit: "fail|setmarginal",
            in_marginal_conf: true,
            text: "How a marginal path is held out of service. fail (the default): the path \
                   is failed, no I/O reaches it, and a map's last active path is never \
                   failed. setmarginal: multipathd's setmarginal path command; with \
                   marginal_pathgroups on multipathd moves the path into a path group of its \
                   own with the lowest priority: it stays active in device-mapper and carries \
                   I/O only when every other path has failed (a last resort, so the \
                   last-active-path rule does not apply), and unsetmarginal path returns it. \
                   Rechecks and returns follow the same rules. It needs multipathd answering \
                   on its socket, running with marginal_pathgroups on, and multipath-tools \
                   0.8.3 or later; where it is not so, marginal says why (log, status, config \
                   check) and fails the path instead."
                .into(),
        },
    );
    docs
}

fn describe(key: Key) -> String {
    match key {
        Key::DoubleFailedTime => "Two failures of a path (dm-mpath failing it) within this many \
            seconds start the check: the path is taken out of service (never a map's last \
            active path) and sampled."
            .into(),
        Key::ErrSampleTime => format!(
            "How long one sampling run lasts, in seconds: 32 direct reads in flight on the \
             path, refilled every 100 ms. Below {MIN_SAMPLE_TIME} it is raised to \
             {MIN_SAMPLE_TIME} with a warning."
        ),
        Key::ErrRateThreshold => "A run whose error rate (errors per thousand reads) is above \
            this is marginal: the path stays out of service. 0 accepts no error at all."
            .into(),
        Key::ErrRecheckGapTime => "How long a marginal path stays out of service before it is \
            sampled again, in seconds; it returns only when a run passes."
            .into(),
        Key::SlowFactor => "Slow-path checking, off unless set (and only where marginal path \
            checking is on): a path whose mean latency over a window is above this many times \
            its active siblings' (the median of theirs) is slow, and is checked as a double \
            failure is: taken out of service (never a map's last active path) and sampled, one \
            read at a time; a run whose reads are still this much slower than the siblings were keeps it out, as \
            a marginal rate does. The latency is measured in the kernel on every read and \
            write of the map's paths (status and metrics show it per path). \"no\" or 0 turns \
            it off."
            .into(),
        Key::SlowMinIos => "Fewest completed reads and writes of a path in one window for its \
            latency to be judged, or to be a yardstick for its siblings: an idle map judges \
            nothing. Default 100."
            .into(),
        Key::SlowFloor => "Milliseconds: a path whose mean latency is at or below this is never \
            slow, however much slower than its siblings. Default 20."
            .into(),
        Key::SlowWindow => "Seconds of each latency comparison's window. Default 30.".into(),
        Key::SanPathErrThreshold | Key::SanPathErrForgetRate | Key::SanPathErrRecoveryTime => {
            "multipathd's older flaky-path checking. Read only in multipath.conf: where \
             multipathd runs it for a map, marginal leaves that map alone."
                .into()
        }
        Key::DelayWatchChecks | Key::DelayWaitChecks => "Deprecated; multipathd turns them into \
            san_path_err_* settings. Read only in multipath.conf, as those are."
            .into(),
    }
}

/// The sections marginal.conf reads, in multipath.conf's precedence, lowest first.
pub const SECTIONS: &[(&str, &str)] = &[
    (
        "defaults",
        "Values for every map. Also takes marginal_pathgroups (off, on or fpin, as in \
         multipath.conf; fpin turns marginal path checking off).",
    ),
    (
        "devices",
        "device subsections: vendor, product and revision POSIX extended regular expressions, \
         matched against the map's paths as multipathd matches them, with values for the maps \
         they match.",
    ),
    (
        "overrides",
        "Values for every map, above the devices entries.",
    ),
    (
        "multipaths",
        "multipath subsections: wwid (and alias) of one map, with its values; the highest \
         precedence.",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_keyword_is_described_and_the_four_marginal_ones_come_first() {
        let docs = keywords();
        assert_eq!(docs.len(), Key::ALL.len() + 1);
        let own: Vec<_> = docs.iter().filter(|d| d.in_marginal_conf).collect();
        // The four, marginal_path_action, then the slow-path keywords.
        let mut expected: Vec<&str> = Key::MARGINAL.map(Key::keyword).to_vec();
        expected.push(ACTION_KEYWORD);
        expected.extend(Key::SLOW.map(Key::keyword));
        assert_eq!(own.iter().map(|d| d.keyword).collect::<Vec<_>>(), expected);
        assert!(docs.iter().all(|d| d.text.len() > 40));
    }
}
