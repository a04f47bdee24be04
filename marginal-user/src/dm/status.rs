//! Parsers for the two lines device-mapper gives for a `multipath` target: its table (what
//! multipathd loaded) and its status (what the kernel thinks of each path right now).
//!
//! Both formats come from the kernel's `multipath_status()` (drivers/md/dm-mpath.c). Every
//! variable-length part is preceded by its word count, so the parsers skip what they do not
//! understand (hardware handler arguments, path selector arguments) by count instead of guessing.
//!
//! Table (identical to the constructor line):
//! ```text
//! <#features> <feature>* <#hw_handler_args> [<hw_handler> <arg>*]
//! <#groups> <next_group>
//!   ( <selector> <#selector_args> <arg>* <#paths> <#path_args> ( <MAJ:MIN> <arg>* )+ )+
//! ```
//! Status:
//! ```text
//! <#features> <feature>* <#hw_handler_status> <status>*
//! <#groups> <next_group>
//!   ( <A|E|D> <#selector_status> <status>* <#paths> <#path_status>
//!     ( <MAJ:MIN> <A|F> <fail_count> <status>* )+ )+
//! ```
//! The kernel's status features are `2 <queue_io> <pg_init_count>`; the group state is
//! A (the group I/O goes to), E (enabled) or D (disabled, bypassed).
use anyhow::{Context, Result, bail};

use crate::device::parse_major_minor;

/// A device number as device-mapper prints it: `(major, minor)`.
pub type DevNum = (u32, u32);

/// The parsed table of a multipath map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MultipathTable {
    /// Feature words without their count, e.g. `["queue_if_no_path", "queue_mode", "bio"]`.
    pub features: Vec<String>,
    /// The hardware handler and its arguments, e.g. `["alua"]`; empty without one.
    pub hw_handler: Vec<String>,
    /// The group (1-based) the kernel tries first; 0 when the map has no groups.
    pub next_group: u32,
    pub groups: Vec<TableGroup>,
}

/// One priority group of a table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableGroup {
    /// Path selector, e.g. `service-time`, `round-robin`.
    pub selector: String,
    pub selector_args: Vec<String>,
    pub paths: Vec<TablePath>,
}

/// One path of a table group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TablePath {
    pub dev: DevNum,
    /// Per-path selector arguments, e.g. the repeat count.
    pub args: Vec<String>,
}

/// The parsed status of a multipath map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MultipathStatus {
    /// Status feature words without their count: the kernel prints `queue_io pg_init_count`.
    pub features: Vec<String>,
    pub hw_handler: Vec<String>,
    pub next_group: u32,
    pub groups: Vec<StatusGroup>,
}

/// The state of a priority group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GroupState {
    /// `A`: the group I/O currently goes to.
    Active,
    /// `E`: usable, not the current one.
    Enabled,
    /// `D`: bypassed (disabled) until its paths come back or it is enabled again.
    Disabled,
}

impl GroupState {
    fn parse(word: &str) -> Result<Self> {
        Ok(match word {
            "A" => Self::Active,
            "E" => Self::Enabled,
            "D" => Self::Disabled,
            other => bail!("group state {other:?} is none of A, E, D"),
        })
    }
}

/// One priority group of a status line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusGroup {
    pub state: GroupState,
    pub paths: Vec<StatusPath>,
}

/// One path of a status line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusPath {
    pub dev: DevNum,
    /// `A` (usable) rather than `F` (failed, by the kernel or by a `fail_path` message).
    pub active: bool,
    /// How often the kernel failed this path since the table was loaded.
    pub fail_count: u32,
    /// Path selector status words (e.g. in-flight size for service-time).
    pub selector_status: Vec<String>,
}

impl MultipathStatus {
    /// Every path of every group, in table order.
    pub fn paths(&self) -> impl Iterator<Item = &StatusPath> {
        self.groups.iter().flat_map(|g| g.paths.iter())
    }

    /// How many paths the kernel can use (`A`), counted over all groups: a disabled group's
    /// active paths count too, as in the kernel's `nr_valid_paths`.
    pub fn active_count(&self) -> usize {
        self.paths().filter(|p| p.active).count()
    }

    pub fn path(&self, dev: DevNum) -> Option<&StatusPath> {
        self.paths().find(|p| p.dev == dev)
    }
}

/// Parses the table parameters of a `multipath` target (without start, length and type).
pub fn parse_table(params: &str) -> Result<MultipathTable> {
    let mut w = Words::new(params);
    let features = w.counted("feature")?;
    let hw_handler = w.counted("hardware handler argument")?;
    let group_count: usize = w.number("number of path groups")?;
    let next_group = w.number("next path group")?;
    let mut groups = Vec::with_capacity(group_count);
    for g in 1..=group_count {
        let group = parse_table_group(&mut w).with_context(|| format!("path group {g}"))?;
        groups.push(group);
    }
    w.finish()?;
    Ok(MultipathTable {
        features,
        hw_handler,
        next_group,
        groups,
    })
}

fn parse_table_group(w: &mut Words) -> Result<TableGroup> {
    let selector = w.word("path selector")?.to_string();
    let selector_args = w.counted("path selector argument")?;
    let path_count: usize = w.number("number of paths")?;
    let arg_count: usize = w.number("number of path arguments")?;
    let mut paths = Vec::with_capacity(path_count);
    for _ in 0..path_count {
        let dev = w.dev()?;
        let args = w.take(arg_count, "path argument")?;
        paths.push(TablePath { dev, args });
    }
    Ok(TableGroup {
        selector,
        selector_args,
        paths,
    })
}

/// Parses the status parameters of a `multipath` target (without start, length and type).
pub fn parse_status(params: &str) -> Result<MultipathStatus> {
    let mut w = Words::new(params);
    let features = w.counted("status feature")?;
    let hw_handler = w.counted("hardware handler status word")?;
    let group_count: usize = w.number("number of path groups")?;
    let next_group = w.number("next path group")?;
    let mut groups = Vec::with_capacity(group_count);
    for g in 1..=group_count {
        let group = parse_status_group(&mut w).with_context(|| format!("path group {g}"))?;
        groups.push(group);
    }
    w.finish()?;
    Ok(MultipathStatus {
        features,
        hw_handler,
        next_group,
        groups,
    })
}

fn parse_status_group(w: &mut Words) -> Result<StatusGroup> {
    let state = GroupState::parse(w.word("group state")?)?;
    // The selector's group-wide status (e.g. "0" for round-robin) says nothing we use.
    w.counted("path selector status word")?;
    let path_count: usize = w.number("number of paths")?;
    let status_count: usize = w.number("number of path status words")?;
    let mut paths = Vec::with_capacity(path_count);
    for _ in 0..path_count {
        let dev = w.dev()?;
        let active = match w.word("path state")? {
            "A" => true,
            "F" => false,
            other => bail!(
                "path {}:{}: state {other:?} is neither A nor F",
                dev.0,
                dev.1
            ),
        };
        let fail_count = w.number("fail count")?;
        let selector_status = w.take(status_count, "path selector status word")?;
        paths.push(StatusPath {
            dev,
            active,
            fail_count,
            selector_status,
        });
    }
    Ok(StatusGroup { state, paths })
}

/// A cursor over whitespace-separated words whose errors say what was expected where.
struct Words<'a> {
    words: std::str::SplitAsciiWhitespace<'a>,
    position: usize,
}

impl<'a> Words<'a> {
    fn new(text: &'a str) -> Self {
        Self {
            words: text.split_ascii_whitespace(),
            position: 0,
        }
    }

    fn word(&mut self, what: &str) -> Result<&'a str> {
        self.position += 1;
        self.words
            .next()
            .with_context(|| format!("line ends where word {} ({what}) should be", self.position))
    }

    fn number<T: std::str::FromStr>(&mut self, what: &str) -> Result<T> {
        let word = self.word(what)?;
        word.parse()
            .ok()
            .with_context(|| format!("word {} ({what}) is {word:?}, not a number", self.position))
    }

    fn dev(&mut self) -> Result<DevNum> {
        let word = self.word("path device")?;
        parse_major_minor(word).with_context(|| {
            format!(
                "word {} (path device) is {word:?}, not MAJ:MIN",
                self.position
            )
        })
    }

    fn take(&mut self, count: usize, what: &str) -> Result<Vec<String>> {
        (0..count)
            .map(|_| self.word(what).map(str::to_string))
            .collect()
    }

    /// A count followed by that many words.
    fn counted(&mut self, what: &str) -> Result<Vec<String>> {
        let count: usize = self.number(&format!("number of {what}s"))?;
        self.take(count, what)
    }

    /// Leftover words mean the line was misread; better an error than wrong fail counts.
    fn finish(mut self) -> Result<()> {
        match self.words.next() {
            None => Ok(()),
            Some(extra) => bail!("unexpected word {} {extra:?} after the last path group", {
                self.position + 1
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Two ALUA groups with service-time, as multipathd sets up a typical array
    // (`dmsetup table` / `dmsetup status` of such a map, start/length/type removed).
    const ALUA_TABLE: &str = "1 queue_if_no_path 1 alua 2 1 service-time 0 1 2 8:16 1 1 \
                              service-time 0 1 2 8:48 1 1";
    const ALUA_STATUS: &str = "2 0 0 0 2 1 A 0 1 2 8:16 A 0 0 1 E 0 1 2 8:48 A 0 0 1";

    #[test]
    fn alua_service_time_table() {
        let t = parse_table(ALUA_TABLE).unwrap();
        assert_eq!(t.features, ["queue_if_no_path"]);
        assert_eq!(t.hw_handler, ["alua"]);
        assert_eq!(t.next_group, 1);
        assert_eq!(t.groups.len(), 2);
        assert_eq!(t.groups[0].selector, "service-time");
        assert!(t.groups[0].selector_args.is_empty());
        assert_eq!(
            t.groups[1].paths,
            [TablePath {
                dev: (8, 48),
                args: vec!["1".into(), "1".into()]
            }]
        );
    }

    #[test]
    fn alua_service_time_status() {
        let s = parse_status(ALUA_STATUS).unwrap();
        assert_eq!(s.features, ["0", "0"]);
        assert_eq!(s.groups[0].state, GroupState::Active);
        assert_eq!(s.groups[1].state, GroupState::Enabled);
        assert_eq!(
            s.groups[0].paths[0],
            StatusPath {
                dev: (8, 16),
                active: true,
                fail_count: 0,
                selector_status: vec!["0".into(), "1".into()],
            }
        );
        assert_eq!(s.active_count(), 2);
    }

    #[test]
    fn round_robin_one_group_with_a_failed_path() {
        let t = parse_table("0 0 1 1 round-robin 0 2 1 8:16 1000 8:32 1000").unwrap();
        assert_eq!(t.groups[0].paths.len(), 2);
        assert_eq!(t.groups[0].paths[1].args, ["1000"]);

        // round-robin has no per-path status words.
        let s = parse_status("2 0 0 0 1 1 A 0 2 0 8:16 A 0 8:32 F 3").unwrap();
        let failed = s.path((8, 32)).unwrap();
        assert!(!failed.active);
        assert_eq!(failed.fail_count, 3);
        assert_eq!(s.active_count(), 1);
    }

    #[test]
    fn bio_based_map_over_dm_devices_as_in_the_vm() {
        let t = parse_table(
            "3 queue_if_no_path queue_mode bio 0 1 1 round-robin 0 2 1 254:0 1 254:1 1",
        )
        .unwrap();
        assert_eq!(t.features, ["queue_if_no_path", "queue_mode", "bio"]);
        assert!(t.hw_handler.is_empty());
        assert_eq!(t.groups[0].paths[1].dev, (254, 1));
    }

    #[test]
    fn queue_length_status_and_disabled_group_with_pg_init_count() {
        let s = parse_status(
            // The kernel prints no hardware handler in status lines ("0"), even with one loaded.
            "2 0 1 0 2 2 D 0 1 1 8:16 F 2 0 A 0 2 1 8:48 A 0 1 8:64 A 5 0",
        )
        .unwrap();
        assert_eq!(s.features, ["0", "1"]);
        assert!(s.hw_handler.is_empty());
        assert_eq!(s.next_group, 2);
        assert_eq!(s.groups[0].state, GroupState::Disabled);
        assert_eq!(s.path((8, 64)).unwrap().fail_count, 5);
        assert_eq!(s.active_count(), 2);
    }

    #[test]
    fn map_without_groups() {
        let t = parse_table("0 0 0 0").unwrap();
        assert!(t.groups.is_empty());
        let s = parse_status("2 0 0 0 0 0").unwrap();
        assert_eq!(s.active_count(), 0);
    }

    #[test]
    fn hw_handler_with_parameters_is_skipped_by_count() {
        let t = parse_table("0 2 emc 1 1 1 round-robin 0 1 1 8:16 1000").unwrap();
        assert_eq!(t.hw_handler, ["emc", "1"]);
        assert_eq!(t.groups[0].paths[0].dev, (8, 16));
    }

    #[test]
    fn truncated_line_says_where() {
        let err = parse_status("2 0 0 0 1 1 A 0 2 0 8:16 A 0 8:32").unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("path group 1"), "{msg}");
        assert!(msg.contains("path state"), "{msg}");
    }

    #[test]
    fn odd_words_are_errors_not_guesses() {
        assert!(parse_status("2 0 0 0 1 1 A 0 1 0 8:16 X 0").is_err());
        assert!(parse_status("2 0 0 0 1 1 Q 0 1 0 8:16 A 0").is_err());
        assert!(parse_table("0 0 1 1 round-robin 0 1 1 sdb 1000").is_err());
        // A leftover word means the counts were misread.
        assert!(parse_status("2 0 0 0 1 1 A 0 1 0 8:16 A 0 7").is_err());
    }
}
