//! multipath.conf structure: lines of tokens (from [`super::lexer`]) into a tree of sections and
//! `keyword value` lines.
//!
//! This layer knows the shape of the file, not what any keyword means: a line `name {` opens a
//! section (any name, so unknown sections can be skipped whole later), `}` alone closes one, and
//! anything else is a keyword with one value. As in multipathd:
//!
//! * the value is the first word, or the text between quotes (`""` being an empty value);
//! * extra words after the value, or a missing closing quote, are tolerated by multipathd with a
//!   complaint. They are recorded on the [`Keyword`] as `problems`; [`super::model`] decides how
//!   serious they are, because that depends on whether marginal uses the keyword.
//!
//! One deliberate difference: multipathd does not know a section it has no keyword table for;
//! it complains about each line of it and its `}` ends the enclosing section early. Here any
//! `name {` opens a section whose braces are balanced like the others, so an unknown section is
//! skipped whole, as the spec asks.
//!
//! What multipathd accepts with a complaint (libmpathutil/parser.c), marginal accepts with the
//! same complaint as a warning: a section name without its `{` still opens the section
//! ("missing '{'"), and a line starting with `{` is skipped ("invalid keyword '{'"), so the
//! common
//!
//! ```text
//! defaults
//! {
//! ```
//!
//! means to both what `defaults {` means. Broken structure that would change what belongs to
//! which section is an error here: a `}` with no open section, a section never closed, a brace
//! inside a keyword line.
use std::path::Path;

use super::{
    diag::Diagnostic,
    lexer::{Token, tokenize},
};

/// Names that are only ever sections; one of these without `{` is an error, not a keyword.
/// (`protocol` is not here: it is a section in `overrides` but a keyword in `blacklist`.)
const SECTION_NAMES: &[&str] = &[
    "defaults",
    "blacklist",
    "blacklist_exceptions",
    "devices",
    "device",
    "overrides",
    "multipaths",
    "multipath",
];

/// A `keyword value` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Keyword {
    pub name: String,
    pub line: u32,
    /// None when the line has no value at all.
    pub value: Option<String>,
    /// What is odd about the line (extra words, missing closing quote, no value).
    pub problems: Vec<String>,
}

/// `name { ... }`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Section {
    pub name: String,
    /// The line of the section name.
    pub line: u32,
    pub items: Vec<Item>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Item {
    Keyword(Keyword),
    Section(Section),
}

/// Parses one file into its top-level items; structural errors go to `diagnostics`.
pub(crate) fn parse(file: &Path, text: &[u8], diagnostics: &mut Vec<Diagnostic>) -> Vec<Item> {
    let mut top = Vec::new();
    let mut open: Vec<Section> = Vec::new();

    for (index, raw) in text.split(|&b| b == b'\n').enumerate() {
        let line = u32::try_from(index + 1).unwrap_or(u32::MAX);
        let tokens = tokenize(raw);
        let Some(first) = tokens.first() else {
            continue;
        };
        match first {
            Token::Close => {
                if tokens.len() > 1 {
                    let extra = render(&tokens[1..]);
                    diagnostics.push(Diagnostic::warning(
                        file,
                        line,
                        format!("ignoring text after '}}': {extra}"),
                    ));
                }
                match open.pop() {
                    Some(section) => push(&mut open, &mut top, Item::Section(section)),
                    None => diagnostics.push(Diagnostic::error(
                        file,
                        line,
                        "'}' closes no open section",
                    )),
                }
            }
            Token::Open => {
                // multipathd's validate_config_strvec skips the line with this complaint.
                diagnostics.push(Diagnostic::warning(
                    file,
                    line,
                    "invalid keyword '{' (multipathd skips this line too)",
                ));
            }
            Token::Quote => {
                diagnostics.push(Diagnostic::error(
                    file,
                    line,
                    "expected a keyword, found a quoted string",
                ));
            }
            Token::Word(name) => {
                if tokens.get(1) == Some(&Token::Open) {
                    if tokens.len() > 2 {
                        let extra = render(&tokens[2..]);
                        diagnostics.push(Diagnostic::error(
                            file,
                            line,
                            format!(
                                "text after '{{' of section '{name}' (one keyword a line): {extra}"
                            ),
                        ));
                    }
                    open.push(Section {
                        name: name.clone(),
                        line,
                        items: Vec::new(),
                    });
                    // `device { vendor X }`: its content is lost (reported above), but closing
                    // it here keeps the rest of the file in the right sections.
                    if tokens.len() > 2 && tokens.last() == Some(&Token::Close) {
                        let section = open.pop().expect("just pushed");
                        push(&mut open, &mut top, Item::Section(section));
                    }
                } else if SECTION_NAMES.contains(&name.as_str()) {
                    let message = match tokens.get(1) {
                        None => "missing '{'".to_string(),
                        Some(other) => {
                            format!(
                                "expecting '{{'. found '{}'",
                                render(std::slice::from_ref(other))
                            )
                        }
                    };
                    diagnostics.push(Diagnostic::warning(
                        file,
                        line,
                        format!(
                            "{message}: section '{name}' opens here all the same, as in multipathd"
                        ),
                    ));
                    open.push(Section {
                        name: name.clone(),
                        line,
                        items: Vec::new(),
                    });
                } else {
                    let keyword = keyword_line(file, line, name, &tokens[1..], diagnostics);
                    push(&mut open, &mut top, Item::Keyword(keyword));
                }
            }
        }
    }

    while let Some(section) = open.pop() {
        diagnostics.push(Diagnostic::error(
            file,
            section.line,
            format!("section '{}' is never closed (missing '}}')", section.name),
        ));
        push(&mut open, &mut top, Item::Section(section));
    }
    top
}

fn push(open: &mut [Section], top: &mut Vec<Item>, item: Item) {
    match open.last_mut() {
        Some(parent) => parent.items.push(item),
        None => top.push(item),
    }
}

/// The value of `name` from the tokens after it, following multipathd's `set_value`.
fn keyword_line(
    file: &Path,
    line: u32,
    name: &str,
    rest: &[Token],
    diagnostics: &mut Vec<Diagnostic>,
) -> Keyword {
    let mut problems = Vec::new();
    let (value, extra) = match rest {
        [] => {
            problems.push("missing value".to_string());
            (None, rest)
        }
        [Token::Word(value), extra @ ..] => (Some(value.clone()), extra),
        [Token::Quote, Token::Quote, extra @ ..] => (Some(String::new()), extra),
        [Token::Quote, Token::Word(value), Token::Quote, extra @ ..] => {
            (Some(value.clone()), extra)
        }
        [Token::Quote, Token::Word(value)] => {
            problems.push("missing closing quote".to_string());
            (Some(value.clone()), &[][..])
        }
        [Token::Quote] => {
            problems.push("missing closing quote".to_string());
            (Some(String::new()), &[][..])
        }
        // The lexer never puts two words inside one pair of quotes; only braces are left.
        _ => (None, rest),
    };
    if extra
        .iter()
        .any(|t| matches!(t, Token::Open | Token::Close))
    {
        diagnostics.push(Diagnostic::error(
            file,
            line,
            format!("brace after keyword '{name}': '{{' only opens a section, '}}' must be alone on its line"),
        ));
        if value.is_none() {
            problems.push("missing value".to_string());
        }
    } else if !extra.is_empty() {
        problems.push(format!("extra text after the value: {}", render(extra)));
    }
    Keyword {
        name: name.to_string(),
        line,
        value,
        problems,
    }
}

/// Tokens back into text, for messages.
fn render(tokens: &[Token]) -> String {
    let mut out = String::new();
    for token in tokens {
        match token {
            Token::Word(w) => {
                if !out.is_empty() && !out.ends_with('"') {
                    out.push(' ');
                }
                out.push_str(w);
            }
            Token::Quote => out.push('"'),
            Token::Open => out.push_str(" {"),
            Token::Close => out.push_str(" }"),
        }
    }
    out.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::diag::Severity;

    fn parse_text(text: &str) -> (Vec<Item>, Vec<Diagnostic>) {
        let mut diagnostics = Vec::new();
        let items = parse(Path::new("t.conf"), text.as_bytes(), &mut diagnostics);
        (items, diagnostics)
    }

    fn kw(item: &Item) -> &Keyword {
        match item {
            Item::Keyword(k) => k,
            Item::Section(s) => panic!("expected a keyword, got section {}", s.name),
        }
    }

    fn sec(item: &Item) -> &Section {
        match item {
            Item::Section(s) => s,
            Item::Keyword(k) => panic!("expected a section, got keyword {}", k.name),
        }
    }

    fn errors(diagnostics: &[Diagnostic]) -> Vec<(u32, String)> {
        diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .map(|d| (d.line, d.message.clone()))
            .collect()
    }

    #[test]
    fn nested_sections_and_values() {
        let (items, diags) = parse_text(
            "# comment\ndefaults {\n  polling_interval 10\n}\ndevices {\n  device {\n    vendor \"NETAPP\"\n    product \"LUN.*\" # x\n  }\n}\n",
        );
        assert!(diags.is_empty(), "{diags:?}");
        assert_eq!(items.len(), 2);
        let defaults = sec(&items[0]);
        assert_eq!((defaults.name.as_str(), defaults.line), ("defaults", 2));
        let k = kw(&defaults.items[0]);
        assert_eq!(
            (k.name.as_str(), k.value.as_deref(), k.line),
            ("polling_interval", Some("10"), 3)
        );
        let device = sec(&sec(&items[1]).items[0]);
        assert_eq!(device.name, "device");
        assert_eq!(kw(&device.items[0]).value.as_deref(), Some("NETAPP"));
        assert_eq!(kw(&device.items[1]).value.as_deref(), Some("LUN.*"));
        assert_eq!(kw(&device.items[1]).line, 8);
    }

    #[test]
    fn unknown_sections_are_kept_whole_for_the_caller_to_skip() {
        let (items, diags) =
            parse_text("frobnicate {\n  inner {\n    x 1\n  }\n  y 2\n}\ndefaults {\n}\n");
        assert!(diags.is_empty());
        assert_eq!(items.len(), 2);
        let unknown = sec(&items[0]);
        assert_eq!(unknown.items.len(), 2);
        assert_eq!(sec(&items[1]).name, "defaults");
    }

    #[test]
    fn quoting_rules() {
        let (items, diags) = parse_text(
            "defaults {\n a \"\"\n b \"x y\"\n c \"say \"\"hi\"\"\"\n d \"open\n e bare extra\n f \"q\" extra\n g\n}\n",
        );
        assert!(errors(&diags).is_empty());
        let d = sec(&items[0]);
        let values: Vec<_> = d.items.iter().map(|i| kw(i).value.clone()).collect();
        assert_eq!(
            values,
            vec![
                Some(String::new()),
                Some("x y".into()),
                Some("say \"hi\"".into()),
                Some("open".into()),
                Some("bare".into()),
                Some("q".into()),
                None
            ]
        );
        assert!(kw(&d.items[0]).problems.is_empty());
        assert_eq!(kw(&d.items[3]).problems, vec!["missing closing quote"]);
        assert_eq!(
            kw(&d.items[4]).problems,
            vec!["extra text after the value: extra"]
        );
        assert_eq!(
            kw(&d.items[5]).problems,
            vec!["extra text after the value: extra"]
        );
        assert_eq!(kw(&d.items[6]).problems, vec!["missing value"]);
    }

    #[test]
    fn unmatched_close_is_an_error_with_its_line() {
        let (_, diags) = parse_text("defaults {\n}\n}\n");
        assert_eq!(
            errors(&diags),
            vec![(3, "'}' closes no open section".to_string())]
        );
    }

    #[test]
    fn unclosed_section_is_an_error_at_its_opening_line() {
        let (items, diags) =
            parse_text("defaults {\n}\ndevices {\n  device {\n    vendor X\n  }\n");
        assert_eq!(
            errors(&diags),
            vec![(
                3,
                "section 'devices' is never closed (missing '}')".to_string()
            )]
        );
        // The content is kept all the same.
        assert_eq!(sec(&sec(&items[1]).items[0]).items.len(), 1);
    }

    #[test]
    fn section_name_without_brace_is_accepted_with_multipathds_warnings() {
        let (items, diags) = parse_text("defaults\n{\n  verbosity 2\n}\n");
        assert!(errors(&diags).is_empty(), "{diags:?}");
        let warnings: Vec<_> = diags.iter().map(|d| (d.line, d.message.clone())).collect();
        assert_eq!(
            warnings,
            vec![
                (
                    1,
                    "missing '{': section 'defaults' opens here all the same, as in multipathd"
                        .to_string()
                ),
                (
                    2,
                    "invalid keyword '{' (multipathd skips this line too)".to_string()
                )
            ]
        );
        let defaults = sec(&items[0]);
        assert_eq!(defaults.name, "defaults");
        assert_eq!(kw(&defaults.items[0]).value.as_deref(), Some("2"));

        let (_, diags) = parse_text("defaults {\n}\n{\n");
        assert!(errors(&diags).is_empty());
        assert_eq!(diags[0].line, 3);
        let (items, diags) = parse_text("devices x\n device {\n vendor V\n }\n}\n");
        assert!(errors(&diags).is_empty());
        assert_eq!(
            diags[0].message.split(':').next(),
            Some("expecting '{'. found 'x'")
        );
        assert_eq!(sec(&sec(&items[0]).items[0]).name, "device");
    }

    #[test]
    fn braces_inside_keyword_lines() {
        let (_, diags) = parse_text("devices {\n  device { vendor X }\n}\n");
        assert_eq!(errors(&diags).len(), 1);
        assert_eq!(errors(&diags)[0].0, 2);
        let (_, diags) = parse_text("defaults {\n  verbosity 2 }\n}\n");
        assert_eq!(errors(&diags).len(), 1);
        assert_eq!(errors(&diags)[0].0, 2);
    }

    #[test]
    fn text_after_close_is_a_warning() {
        let (_, diags) = parse_text("defaults {\n} trailing\n");
        assert_eq!(diags.len(), 1);
        assert_eq!(diags[0].severity, Severity::Warning);
    }
}
