//! `devices` entries as multipathd matches and merges them: POSIX patterns
//! ([`super::posix_regex`]), `hwe_regmatch` and `factorize_hwtable` (libmultipath/config.c).
use std::path::PathBuf;

use super::{diag::Diagnostic, model::Block, posix_regex::PosixRegex, resolve::MapIdentity};

/// A vendor, product or revision pattern of a `devices` entry: a POSIX extended regular
/// expression, as multipathd compiles it.
#[derive(Clone, Debug)]
pub struct Pattern {
    /// As written in the file.
    pub text: String,
    regex: PosixRegex,
}

impl Pattern {
    /// Compiles `text` with the C library's regcomp, as multipathd does.
    pub fn new(text: &str) -> Result<Pattern, String> {
        Ok(Pattern {
            text: text.to_string(),
            regex: PosixRegex::new(text)?,
        })
    }

    /// multipathd matches with `regexec`: anywhere in the string, unless the pattern anchors.
    pub fn is_match(&self, s: &str) -> bool {
        self.regex.is_match(s)
    }
}

/// One `device` subsection of `devices`.
#[derive(Clone, Debug)]
pub struct DeviceEntry {
    pub vendor: Pattern,
    pub product: Pattern,
    pub revision: Option<Pattern>,
    pub file: PathBuf,
    pub line: u32,
    pub(crate) settings: Block,
}

impl DeviceEntry {
    /// multipathd's `hwe_regmatch`: a map with none of vendor, product and revision matches no
    /// entry, and a vendor or product pattern is only tested against an attribute the map has.
    ///
    /// One deliberate difference: an entry with a revision pattern never matches a map whose
    /// revision is unknown. multipathd always knows a path's revision (sysfs `rev`, empty
    /// at worst, which such a pattern rarely matches); marginal lacks it only when an admin
    /// describes a device without `--revision`, and must not then claim the revision-specific
    /// value.
    pub fn matches(&self, map: &MapIdentity) -> bool {
        let test = |pattern: Option<&Pattern>, value: &Option<String>| match (pattern, value) {
            (Some(p), Some(v)) => p.is_match(v),
            _ => true,
        };
        (map.vendor.is_some() || map.product.is_some() || map.revision.is_some())
            && test(Some(&self.vendor), &map.vendor)
            && test(Some(&self.product), &map.product)
            && (self.revision.is_none() || map.revision.is_some())
            && test(self.revision.as_ref(), &map.revision)
    }

    /// The same vendor, product and revision texts (multipathd's `hwe_strmatch`).
    fn same_strings(&self, other: &DeviceEntry) -> bool {
        let text = |p: &Option<Pattern>| p.as_ref().map(|p| p.text.clone());
        self.vendor.text == other.vendor.text
            && self.product.text == other.product.text
            && text(&self.revision) == text(&other.revision)
    }
}

/// multipathd's `factorize_hwtable`: `devices` entries with the same vendor, product and
/// revision texts are one entry, in the place of the last of them, each value taken from the
/// last entry that sets it. This is not the same as keeping both: the merged values take the
/// later place, above any entry written between the two.
pub(crate) fn factorize(
    devices: Vec<DeviceEntry>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Vec<DeviceEntry> {
    let mut kept: Vec<DeviceEntry> = Vec::with_capacity(devices.len());
    for entry in devices.into_iter().rev() {
        match kept.iter_mut().find(|later| later.same_strings(&entry)) {
            Some(later) => {
                let revision = entry
                    .revision
                    .as_ref()
                    .map_or("(null)", |r| r.text.as_str());
                diagnostics.push(Diagnostic::warning(
                    &entry.file,
                    entry.line,
                    format!(
                        "duplicate device section for {}:{}:{}; merged into the one at {}:{}, \
                         whose values win (as multipathd merges them)",
                        entry.vendor.text,
                        entry.product.text,
                        revision,
                        later.file.display(),
                        later.line
                    ),
                ));
                later.settings.merge_from(entry.settings);
            }
            None => kept.push(entry),
        }
    }
    kept.reverse();
    kept
}
