//! Each kind of error, with its line.
use super::*;
use crate::config::*;

#[test]
fn unbalanced_braces() {
    assert_eq!(
        parse_err("defaults {\n verbosity 2\n}\n}\n"),
        vec![(4, "'}' closes no open section".into())]
    );
    assert_eq!(
        parse_err("defaults {\n}\ndevices {\n device {\n  vendor X\n }\n"),
        vec![(3, "section 'devices' is never closed (missing '}')".into())]
    );
}

#[test]
fn bad_numbers() {
    let errors = parse_err("defaults {\n marginal_path_err_sample_time 5m\n}\n");
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].0, 2);
    assert!(
        errors[0]
            .1
            .starts_with("marginal_path_err_sample_time: \"5m\" is not a whole number"),
        "{errors:?}"
    );

    let errors = parse_err("overrides {\n\n marginal_path_err_rate_threshold 99999999999\n}\n");
    assert_eq!(errors[0].0, 3);
    assert!(errors[0].1.contains("too large"));
}

#[test]
fn negative_values() {
    let errors = parse_err(
        "devices {\n device {\n  vendor A\n  product B\n  marginal_path_double_failed_time -1\n }\n}\n",
    );
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].0, 5);
    assert!(
        errors[0].1.contains("negative value -1 is not allowed"),
        "{errors:?}"
    );
}

#[test]
fn invalid_regular_expressions() {
    let errors =
        parse_err("devices {\n device {\n  vendor \"(NETAPP\"\n  product \"[LUN\"\n }\n}\n");
    assert_eq!(errors.len(), 2);
    assert_eq!(errors[0].0, 3);
    assert_eq!(errors[1].0, 4);
    assert!(
        errors[0]
            .1
            .starts_with("vendor \"(NETAPP\" is not a valid POSIX extended regular expression: "),
        "{errors:?}"
    );
}

#[test]
fn malformed_lines_of_used_keywords_are_errors_of_others_warnings() {
    let text = "defaults {\n marginal_path_err_sample_time\n path_selector service-time 0\n marginal_path_err_rate_threshold 5 permille\n marginal_pathgroups maybe\n}\n";
    let error = Config::parse_str("t.conf", text).unwrap_err();
    let errors: Vec<_> = error.errors().map(|d| d.line).collect();
    assert_eq!(errors, vec![2, 4, 5]);
    let warnings: Vec<_> = error
        .diagnostics()
        .iter()
        .filter(|d| !d.is_error())
        .map(|d| d.line)
        .collect();
    assert_eq!(warnings, vec![3]);
}

#[test]
fn all_errors_are_reported_with_file_and_line() {
    let error = Config::parse_str(
        "/etc/multipath.conf",
        "defaults {\n marginal_path_err_sample_time -5\n}\n}\n",
    )
    .unwrap_err();
    let text = error.to_string();
    assert!(
        text.starts_with("invalid configuration (2 errors)"),
        "{text}"
    );
    assert!(
        text.contains(
            "/etc/multipath.conf:2: error: marginal_path_err_sample_time: negative value -5"
        ),
        "{text}"
    );
    assert!(
        text.contains("/etc/multipath.conf:4: error: '}' closes no open section"),
        "{text}"
    );
}
