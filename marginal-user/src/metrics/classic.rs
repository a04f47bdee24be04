//! The classic Prometheus text format (0.0.4), converted from the OpenMetrics text that
//! prometheus-client writes (it writes no other text format).
//!
//! Converting one rendering instead of keeping a second encoder per family means the two
//! formats cannot drift apart: every family, label and value is written once, by the
//! collector. The differences are all in the metadata lines, so the conversion is line by line:
//!
//! * a counter family is named by its sample, `<name>_total`, in `# HELP` and `# TYPE` (the
//!   classic parsers read a sample whose name differs from the `# TYPE` line's as another,
//!   untyped family);
//! * an info family has no classic type: it becomes the gauge `<name>_info`, always 1, as the
//!   official clients write it;
//! * a histogram's samples (`_bucket`, `_sum`, `_count`) are the same in both;
//! * `# UNIT` and `# EOF` do not exist there (the unit stays in the name);
//! * `# HELP` text escapes only `\\` and `\n` (OpenMetrics also escapes `"`).
//!
//! Sample lines are the same in both formats (label values escape `\\`, `\"` and `\n` in
//! both) and are copied as they are. Anything the collector never writes (timestamps,
//! exemplars, `_created` samples) is refused with the line it is on, rather than
//! passed through in a form a classic parser would misread.
use std::fmt::Write;

use anyhow::{Context, Result, bail};

/// The classic text format for one OpenMetrics exposition (which must end with `# EOF`).
pub fn from_openmetrics(openmetrics: &str) -> Result<String> {
    let mut out = String::with_capacity(openmetrics.len());
    let mut family: Option<Family> = None;
    // OpenMetrics puts `# HELP` before `# TYPE`, but the classic name of a family depends on
    // its type: the help waits for the type.
    let mut help: Option<(&str, &str)> = None;
    let mut eof = false;
    for (number, line) in openmetrics.lines().enumerate() {
        let context = || format!("OpenMetrics line {}: {line:?}", number + 1);
        if eof {
            bail!("{}: text after # EOF", context());
        }
        if let Some(meta) = line.strip_prefix("# ") {
            let (keyword, rest) = meta.split_once(' ').unwrap_or((meta, ""));
            match keyword {
                "EOF" => eof = true,
                "HELP" => help = Some(rest.split_once(' ').unwrap_or((rest, ""))),
                "UNIT" => {}
                "TYPE" => {
                    let (name, kind) = rest.split_once(' ').with_context(context)?;
                    let next = Family::new(name, kind).with_context(context)?;
                    if let Some((help_name, text)) = help.take() {
                        if help_name != name {
                            bail!(
                                "{}: # HELP of {help_name} before # TYPE of {name}",
                                context()
                            );
                        }
                        let text = text.replace("\\\"", "\"");
                        writeln!(out, "# HELP {} {text}", next.classic_name).expect("String");
                    }
                    writeln!(out, "# TYPE {} {}", next.classic_name, next.classic_type)
                        .expect("String");
                    family = Some(next);
                }
                _ => bail!("{}: unknown metadata", context()),
            }
            continue;
        }
        let Some(family) = &family else {
            bail!("{}: a sample before any # TYPE", context());
        };
        family.check_sample(line).with_context(context)?;
        out.push_str(line);
        out.push('\n');
    }
    if !eof {
        bail!("the OpenMetrics text does not end with # EOF (cut short?)");
    }
    Ok(out)
}

/// One family's names in both formats.
struct Family {
    classic_name: String,
    classic_type: &'static str,
    /// The names its samples may have (a histogram's three; the classic name otherwise).
    sample_names: Vec<String>,
}

impl Family {
    fn new(name: &str, kind: &str) -> Result<Family> {
        let (suffix, classic_type) = match kind {
            "counter" => ("_total", "counter"),
            "info" => ("_info", "gauge"),
            "gauge" => ("", "gauge"),
            "unknown" => ("", "untyped"),
            // The same samples in both formats: `_bucket` (cumulative, `le`), `_sum`, `_count`.
            "histogram" => {
                return Ok(Family {
                    classic_name: name.to_string(),
                    classic_type: "histogram",
                    sample_names: ["_bucket", "_sum", "_count"]
                        .iter()
                        .map(|s| format!("{name}{s}"))
                        .collect(),
                });
            }
            other => bail!("type {other} has no conversion (the exporter writes none)"),
        };
        let classic_name = format!("{name}{suffix}");
        Ok(Family {
            sample_names: vec![classic_name.clone()],
            classic_name,
            classic_type,
        })
    }

    /// A sample of this family, named as the classic format names the family, with a value
    /// and nothing after it.
    fn check_sample(&self, line: &str) -> Result<()> {
        let name_end = line.find(['{', ' ']).context("a sample without a value")?;
        if !self.sample_names.iter().any(|n| line[..name_end] == *n) {
            bail!("a sample of another family than {}", self.classic_name);
        }
        let rest = match line[name_end..].strip_prefix('{') {
            Some(labels) => &labels[labels_end(labels)?..],
            None => &line[name_end..],
        };
        let mut fields = rest.split_ascii_whitespace();
        match (fields.next(), fields.next()) {
            (Some(_value), None) => Ok(()),
            (None, _) => bail!("a sample without a value"),
            (Some(_), Some(_)) => bail!("a timestamp or exemplar (the exporter writes none)"),
        }
    }
}

/// Where the label set that `labels` starts (just after `{`) ends, just after its `}`: label
/// values are quoted and may hold `}` and escaped quotes.
fn labels_end(labels: &str) -> Result<usize> {
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in labels.char_indices() {
        match (quoted, escaped, c) {
            (true, true, _) => escaped = false,
            (true, false, '\\') => escaped = true,
            (_, false, '"') => quoted = !quoted,
            (false, _, '}') => return Ok(i + 1),
            _ => {}
        }
    }
    bail!("a label set without its closing brace")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_is_renamed_and_samples_are_kept() {
        let om = concat!(
            "# HELP a_seconds How long, in \\\"seconds\\\".\\nSecond line.\n",
            "# TYPE a_seconds gauge\n",
            "# UNIT a_seconds seconds\n",
            "a_seconds 1.5\n",
            "# HELP b Counted.\n",
            "# TYPE b counter\n",
            "b_total{x=\"a}b\\\"c\"} 3\n",
            "# HELP c Built.\n",
            "# TYPE c info\n",
            "c_info{version=\"1\"} 1\n",
            "# TYPE d unknown\n",
            "d 2\n",
            "# EOF\n",
        );
        assert_eq!(
            from_openmetrics(om).unwrap(),
            concat!(
                "# HELP a_seconds How long, in \"seconds\".\\nSecond line.\n",
                "# TYPE a_seconds gauge\n",
                "a_seconds 1.5\n",
                "# HELP b_total Counted.\n",
                "# TYPE b_total counter\n",
                "b_total{x=\"a}b\\\"c\"} 3\n",
                "# HELP c_info Built.\n",
                "# TYPE c_info gauge\n",
                "c_info{version=\"1\"} 1\n",
                "# TYPE d untyped\n",
                "d 2\n",
            )
        );
        assert_eq!(from_openmetrics("# EOF\n").unwrap(), "");
    }

    #[test]
    fn what_has_no_faithful_conversion_is_refused_with_its_line() {
        for (om, expected) in [
            ("# TYPE a gauge\na 1\n", "does not end with # EOF"),
            ("# TYPE a gauge\na 1\n# EOF\na 2\n", "line 4"),
            ("# TYPE s summary\ns_count 1\n# EOF\n", "type summary"),
            ("# TYPE a counter\na_created 1\n# EOF\n", "another family"),
            ("# TYPE a counter\na_total 1 12\n# EOF\n", "timestamp"),
            ("# TYPE a counter\na_total 1 # {} 1\n# EOF\n", "exemplar"),
            ("# TYPE a gauge\na{x=\"1\" 1\n# EOF\n", "closing brace"),
            ("# TYPE a gauge\na\n# EOF\n", "without a value"),
            ("a 1\n# EOF\n", "before any # TYPE"),
            (
                "# HELP a x\n# TYPE b gauge\n# EOF\n",
                "HELP of a before # TYPE of b",
            ),
            ("# COMMENT x\n# EOF\n", "unknown metadata"),
        ] {
            let err = format!("{:#}", from_openmetrics(om).unwrap_err());
            assert!(err.contains(expected), "{om:?}: {err}");
        }
    }
}
