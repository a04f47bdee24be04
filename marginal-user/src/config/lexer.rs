//! One line of multipath.conf into tokens, split the way multipathd splits it.
//!
//! multipathd (libmpathutil/parser.c, `alloc_strvec`) reads a file line by line and never lets a
//! token span lines. This module reproduces its rules so that a file means the same thing to
//! marginal as to multipathd:
//!
//! * Leading blanks are skipped; a line whose first character is `#` or `!` is a comment.
//!   Outside quotes, `#` or `!` also ends the line anywhere, even glued to a word (`10#x`).
//! * Outside quotes, blanks and non-ASCII bytes separate words, and `{` and `}` are tokens of
//!   their own even without blanks around them (`device{`).
//! * A `"` opens a quoted string, in which everything up to the next lone `"` is one word:
//!   blanks, braces and comment characters included. Inside a string `""` stands for one literal
//!   `"`. The quotes themselves are [`Token::Quote`] tokens, so `""` outside a string is an empty
//!   value: `Quote, Quote`.
//! * A line ends at the first `\n` or `\r` (the caller splits lines; a stray `\r` cuts the rest).
//!
//! What the tokens mean (keyword, value, section) is [`super::syntax`]'s job.

/// One token of a line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Token {
    /// A bare word, or the text between two quotes (with `""` already turned into `"`).
    Word(String),
    /// A double quote opening or closing a string.
    Quote,
    /// `{`
    Open,
    /// `}`
    Close,
}

/// C's `isspace`; multipathd also treats non-ASCII bytes outside strings as blanks.
fn is_blank(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r') || !b.is_ascii()
}

fn is_comment(b: u8) -> bool {
    b == b'#' || b == b'!'
}

/// Splits one line (without its line ending) into tokens. A blank or comment line gives none.
pub(crate) fn tokenize(line: &[u8]) -> Vec<Token> {
    // multipathd reads with fgets and cuts at the first '\r' or '\n'.
    let end = line
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .unwrap_or(line.len());
    let line = &line[..end];
    let at = |i: usize| line.get(i).copied();

    let mut tokens = Vec::new();
    let mut i = 0;
    while at(i).is_some_and(is_blank) {
        i += 1;
    }
    if at(i).is_none_or(is_comment) {
        return tokens;
    }

    let mut in_string = false;
    loop {
        let c = at(i);
        if c == Some(b'"') && !(in_string && at(i + 1) == Some(b'"')) {
            // A quote that is not the first half of a `""` pair opens or closes a string.
            tokens.push(Token::Quote);
            in_string = !in_string;
            i += 1;
        } else if !in_string && c == Some(b'{') {
            tokens.push(Token::Open);
            i += 1;
        } else if !in_string && c == Some(b'}') {
            tokens.push(Token::Close);
            i += 1;
        } else {
            let mut word = Vec::new();
            loop {
                while let Some(b) = at(i) {
                    let ends_word = b == b'"'
                        || (!in_string && (is_blank(b) || is_comment(b) || b == b'{' || b == b'}'));
                    if ends_word {
                        break;
                    }
                    word.push(b);
                    i += 1;
                }
                if in_string && at(i) == Some(b'"') && at(i + 1) == Some(b'"') {
                    word.push(b'"');
                    i += 2;
                    continue;
                }
                break;
            }
            tokens.push(Token::Word(String::from_utf8_lossy(&word).into_owned()));
        }

        if !in_string {
            while at(i).is_some_and(is_blank) {
                i += 1;
            }
        }
        match at(i) {
            None => return tokens,
            Some(b) if !in_string && is_comment(b) => return tokens,
            Some(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Token, Token::*, tokenize};

    fn w(s: &str) -> Token {
        Word(s.to_string())
    }

    fn lex(s: &str) -> Vec<Token> {
        tokenize(s.as_bytes())
    }

    #[test]
    fn blank_and_comment_lines_have_no_tokens() {
        assert!(lex("").is_empty());
        assert!(lex("   \t ").is_empty());
        assert!(lex("# a comment").is_empty());
        assert!(lex("   ! another one").is_empty());
    }

    #[test]
    fn bare_words_and_trailing_comments() {
        assert_eq!(
            lex("\tpolling_interval 10"),
            vec![w("polling_interval"), w("10")]
        );
        assert_eq!(
            lex("polling_interval 10 # seconds"),
            vec![w("polling_interval"), w("10")]
        );
        // A comment character ends a bare word too.
        assert_eq!(
            lex("polling_interval 10#seconds"),
            vec![w("polling_interval"), w("10")]
        );
        assert_eq!(
            lex("polling_interval 10!x"),
            vec![w("polling_interval"), w("10")]
        );
    }

    #[test]
    fn braces_are_tokens_even_when_glued() {
        assert_eq!(lex("devices {"), vec![w("devices"), Open]);
        assert_eq!(lex("device{"), vec![w("device"), Open]);
        assert_eq!(lex("  }"), vec![Close]);
        assert_eq!(lex("}}"), vec![Close, Close]);
    }

    #[test]
    fn quoted_strings_keep_blanks_braces_and_comment_characters() {
        assert_eq!(
            lex(r#"path_selector "service-time 0""#),
            vec![w("path_selector"), Quote, w("service-time 0"), Quote]
        );
        assert_eq!(
            lex(r#"product " A {#!} ""#),
            vec![w("product"), Quote, w(" A {#!} "), Quote]
        );
        assert_eq!(
            lex(r#"product "x" # comment"#),
            vec![w("product"), Quote, w("x"), Quote]
        );
    }

    #[test]
    fn empty_string_is_two_quotes() {
        assert_eq!(lex(r#"prio_args """#), vec![w("prio_args"), Quote, Quote]);
        assert_eq!(
            lex(r#"prio_args "" # none"#),
            vec![w("prio_args"), Quote, Quote]
        );
    }

    #[test]
    fn doubled_quote_inside_a_string_is_a_literal_quote() {
        assert_eq!(
            lex(r#"alias "a""b""#),
            vec![w("alias"), Quote, w("a\"b"), Quote]
        );
        assert_eq!(
            lex(r#"alias "a""""b""#),
            vec![w("alias"), Quote, w("a\"\"b"), Quote]
        );
        // Strings holding only quote characters: four quotes are one, six are two.
        assert_eq!(
            lex("alias \"\"\"\""),
            vec![w("alias"), Quote, w("\""), Quote]
        );
        assert_eq!(
            lex("alias \"\"\"\"\"\""),
            vec![w("alias"), Quote, w("\"\""), Quote]
        );
        // Five: the fifth quote starts a pair that never closes the string.
        assert_eq!(lex("alias \"\"\"\"\""), vec![w("alias"), Quote, w("\"\"")]);
    }

    #[test]
    fn unterminated_string_runs_to_the_end_of_the_line() {
        assert_eq!(
            lex(r#"vendor "NETAPP  "#),
            vec![w("vendor"), Quote, w("NETAPP  ")]
        );
    }

    #[test]
    fn line_ends_at_carriage_return_and_non_ascii_outside_strings_is_blank() {
        assert_eq!(lex("verbosity 2\r\n"), vec![w("verbosity"), w("2")]);
        assert_eq!(
            tokenize(b"verbosity\xc2\xa02"),
            vec![w("verbosity"), w("2")]
        );
        assert_eq!(
            tokenize("alias \"caf\u{e9}\"".as_bytes()),
            vec![w("alias"), Quote, w("caf\u{e9}"), Quote]
        );
    }

    #[test]
    fn extra_words_are_kept_for_the_caller_to_judge() {
        assert_eq!(
            lex("path_selector service-time 0"),
            vec![w("path_selector"), w("service-time"), w("0")]
        );
    }
}
