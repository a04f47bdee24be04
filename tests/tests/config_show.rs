//! `marginal config show` and `marginal config check` as an admin runs them, on the large
//! realistic fixture (tests/fixtures/multipath/) and on broken copies of it.
//!
//! The binary is built once per run by [`marginal_tests::marginal_binary`].
use std::{path::PathBuf, process::Output};

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/multipath")
}

use marginal_tests::{run_marginal as run, stderr_text as stderr, stdout_text as stdout};

/// multipathd's configuration in which it checks no map itself.
fn no_multipathd_checking() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/multipathd/no-checking.conf")
}

/// `--config <fixture> --config-dir <fixture conf.d> --multipath-conf <no checking>`: the
/// fixture (multipath.conf syntax, every section) as marginal's own configuration.
fn fixture_args() -> Vec<String> {
    let dir = fixture_dir();
    vec![
        "--config".into(),
        dir.join("multipath.conf").display().to_string(),
        "--config-dir".into(),
        dir.join("conf.d").display().to_string(),
        "--multipath-conf".into(),
        no_multipathd_checking().display().to_string(),
    ]
}

fn config(command: &str, extra: &[&str]) -> Output {
    let mut args = vec!["config", command];
    let fixture = fixture_args();
    args.extend(fixture.iter().map(String::as_str));
    args.extend_from_slice(extra);
    run(&args)
}

/// 1-based line of the first line containing `needle` after the first containing `after`.
fn line_of(text: &str, after: &str, needle: &str) -> usize {
    let start = text.lines().position(|l| l.contains(after)).expect(after);
    start
        + text
            .lines()
            .skip(start)
            .position(|l| l.contains(needle))
            .expect(needle)
        + 1
}

/// The output line about `keyword`, squeezed to single spaces, in the section of `map`.
fn value_line(out: &str, map: &str, keyword: &str) -> String {
    let section = out
        .split("\nmap ")
        .find(|s| s.starts_with(map))
        .unwrap_or_else(|| panic!("no map {map} in:\n{out}"));
    let line = section
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{keyword} ")))
        .unwrap_or_else(|| panic!("no {keyword} for {map} in:\n{section}"));
    line.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn show_every_map_of_the_fixture() {
    let output = config("show", &[]);
    let out = stdout(&output);
    assert!(output.status.success(), "{out}\n{}", stderr(&output));
    let main = fixture_dir().join("multipath.conf");
    let main_text = std::fs::read_to_string(&main).unwrap();

    for alias in ["oradata1", "backup", "vmstore", "scratch", "pure-vol1"] {
        assert!(
            out.contains(&format!("\nmap {alias} (wwid ")),
            "{alias} missing:\n{out}"
        );
    }
    let line = line_of(
        &main_text,
        "alias \"oradata1\"",
        "marginal_path_err_rate_threshold 2",
    );
    assert_eq!(
        value_line(&out, "oradata1", "marginal_path_err_rate_threshold"),
        format!(
            "marginal_path_err_rate_threshold 2 {}:{line} (multipaths entry oradata1)",
            main.display()
        )
    );
    let conf_d = fixture_dir().join("conf.d/10-marginal.conf");
    assert_eq!(
        value_line(&out, "oradata1", "marginal_path_double_failed_time"),
        format!(
            "marginal_path_double_failed_time 60 {}:3 (defaults)",
            conf_d.display()
        )
    );
    let section = out
        .split("\nmap ")
        .find(|s| s.starts_with("oradata1"))
        .unwrap();
    assert!(section.contains(
        "checking: on (double_failed_time 60 s, sample_time 300 s, err_rate_threshold 2 permille, recheck_gap_time 1800 s)"
    ));
    let backup = out
        .split("\nmap ")
        .find(|s| s.starts_with("backup"))
        .unwrap();
    assert!(
        backup.contains("checking: off: marginal_path_err_recheck_gap_time is 0"),
        "{backup}"
    );
}

#[test]
fn show_one_map_with_its_device() {
    let output = config(
        "show",
        &[
            "--map",
            "oradata1",
            "--vendor",
            "NETAPP",
            "--product",
            "LUN C-Mode",
        ],
    );
    let out = stdout(&output);
    assert!(output.status.success(), "{out}\n{}", stderr(&output));
    assert_eq!(out.matches("\nmap ").count(), 1);
    let main = fixture_dir().join("multipath.conf");
    let main_text = std::fs::read_to_string(&main).unwrap();
    let line = line_of(
        &main_text,
        "Flaky FC links",
        "marginal_path_err_sample_time 600",
    );
    assert_eq!(
        value_line(&out, "oradata1", "marginal_path_err_sample_time"),
        format!(
            "marginal_path_err_sample_time 600 {}:{line} (devices entry \"NETAPP\" \"LUN\")",
            main.display()
        )
    );
    assert!(
        out.contains("device: vendor \"NETAPP\", product \"LUN C-Mode\""),
        "{out}"
    );
    assert!(out.contains("matching devices entries:"), "{out}");
}

#[test]
fn show_a_described_device_with_the_sample_time_floor() {
    let output = config(
        "show",
        &[
            "--wwid",
            "36006016000000000000000000000abcd",
            "--vendor",
            "DGC",
            "--product",
            "RAID 5",
            "--revision",
            "0531",
        ],
    );
    let out = stdout(&output);
    assert!(output.status.success(), "{out}\n{}", stderr(&output));
    assert!(
        out.contains("\nmap 36006016000000000000000000000abcd\n"),
        "{out}"
    );
    assert!(out.contains("sample_time 120 s"), "{out}");
    assert!(
        out.contains("warning: marginal_path_err_sample_time 60"),
        "{out}"
    );
    assert!(
        out.contains("below the minimum of 120 s; using 120"),
        "{out}"
    );
}

#[test]
fn command_line_overrides_show_as_such() {
    let output = config(
        "show",
        &[
            "--map",
            "scratch",
            "--err-sample-time",
            "900",
            "--double-failed-time",
            "no",
        ],
    );
    let out = stdout(&output);
    assert!(output.status.success(), "{out}\n{}", stderr(&output));
    assert!(
        out.contains("Command-line overrides: --double-failed-time no --err-sample-time 900"),
        "{out}"
    );
    assert_eq!(
        value_line(&out, "scratch", "marginal_path_err_sample_time"),
        "marginal_path_err_sample_time 900 command line (--err-sample-time)"
    );
    assert!(out.contains("checking: off: marginal_path_double_failed_time is \"no\" (at command line (--double-failed-time))"), "{out}");
}

#[test]
fn check_accepts_the_fixture() {
    let output = config("check", &[]);
    let out = stdout(&output);
    assert!(output.status.success(), "{out}\n{}", stderr(&output));
    // The dump's built-in entries that site entries redefine are merged, with multipathd's
    // warning; nothing else is wrong.
    assert_eq!(
        out.lines()
            .filter(|l| l.contains(": warning: duplicate device section for "))
            .count(),
        3,
        "{out}"
    );
    assert!(out.contains("\nOK: 3 files read,"), "{out}");
    assert!(
        out.contains("5 multipaths entries; checking on for 4 of 5 maps"),
        "{out}"
    );
}

/// A copy of the fixture (with its conf.d) in a fresh directory, `edit` applied to the main
/// file. Returns the directory; the caller removes it.
fn broken_copy(name: &str, edit: impl Fn(&str) -> String) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "marginal-config-show-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("conf.d")).unwrap();
    for entry in std::fs::read_dir(fixture_dir().join("conf.d")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.join("conf.d").join(entry.file_name())).unwrap();
    }
    let text = std::fs::read_to_string(fixture_dir().join("multipath.conf")).unwrap();
    std::fs::write(dir.join("multipath.conf"), edit(&text)).unwrap();
    dir
}

#[test]
fn errors_are_reported_with_file_and_line_and_refuse_the_file() {
    let dir = broken_copy("errors", |text| {
        text.replace(
            "marginal_path_err_rate_threshold 2\n",
            "marginal_path_err_rate_threshold -2\n",
        )
        .replace(
            "vendor \"3PARdata\"\n\t\tproduct \"VV\"\n\t\t#",
            "vendor \"3PAR(data\"\n\t\tproduct \"VV\"\n\t\t#",
        )
        .replace(
            "overrides {",
            "overrides {\n\tmarginal_path_err_sample_time 5min",
        ) + "}\n"
    });
    let main = dir.join("multipath.conf");
    let text = std::fs::read_to_string(&main).unwrap();
    let args = |command: &'static str| {
        vec![
            "config".to_string(),
            command.to_string(),
            "--config".into(),
            main.display().to_string(),
            "--config-dir".into(),
            dir.join("conf.d").display().to_string(),
            "--multipath-conf".into(),
            no_multipathd_checking().display().to_string(),
        ]
    };
    let check_args = args("check");
    let output = run(&check_args.iter().map(String::as_str).collect::<Vec<_>>());
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{out}");
    let at = |needle: &str| {
        format!(
            "{}:{}: error: ",
            main.display(),
            line_of(&text, needle, needle)
        )
    };
    let expected = [
        format!(
            "{}vendor \"3PAR(data\" is not a valid POSIX extended regular expression",
            at("3PAR(data")
        ),
        format!(
            "{}marginal_path_err_sample_time: \"5min\" is not a whole number or \"no\"",
            at("5min")
        ),
        format!(
            "{}marginal_path_err_rate_threshold: negative value -2 is not allowed",
            at("threshold -2")
        ),
        format!(
            "{}:{}: error: '}}' closes no open section",
            main.display(),
            text.lines().count()
        ),
    ];
    let mut last = 0;
    for line in &expected {
        let found = out
            .find(line.as_str())
            .unwrap_or_else(|| panic!("{line:?} not in:\n{out}"));
        assert!(found >= last, "diagnostics out of order:\n{out}");
        last = found;
    }
    assert!(
        out.contains("4 errors: the configuration is refused"),
        "{out}"
    );

    // show refuses to work from a broken file too.
    let show_args = args("show");
    let output = run(&show_args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(output.status.code(), Some(2));
    assert!(stdout(&output).is_empty());
    assert!(
        stderr(&output).contains(&expected[2]),
        "{}",
        stderr(&output)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn unbalanced_braces_name_the_opening_line() {
    let dir = broken_copy("braces", |text| {
        text.replacen(
            "\t}\n}\nblacklist_exceptions {",
            "\t}\nblacklist_exceptions {",
            1,
        )
    });
    let main = dir.join("multipath.conf");
    let text = std::fs::read_to_string(&main).unwrap();
    let conf_d = dir.join("conf.d");
    let no_checking = no_multipathd_checking();
    let args = [
        "config",
        "check",
        "--config",
        main.to_str().unwrap(),
        "--config-dir",
        conf_d.to_str().unwrap(),
        "--multipath-conf",
        no_checking.to_str().unwrap(),
    ];
    let output = run(&args);
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{out}");
    let blacklist = line_of(&text, "blacklist {", "blacklist {");
    assert!(
        out.contains(&format!(
            "{}:{blacklist}: error: section 'blacklist' is never closed",
            main.display()
        )),
        "{out}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn missing_files_and_maps() {
    let output = run(&["config", "check", "--config", "/nonexistent/multipath.conf"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stdout(&output).contains("cannot read /nonexistent/multipath.conf"),
        "{}",
        stdout(&output)
    );

    let output = config("show", &["--map", "no-such-map"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("no map with alias or wwid \"no-such-map\""),
        "{}",
        stderr(&output)
    );
}

/// Issue 19: without --revision a revision-specific entry is not applied, and show says so.
#[test]
fn show_without_revision_skips_revision_specific_entries_and_says_so() {
    let main = fixture_dir().join("multipath.conf");
    let text = std::fs::read_to_string(&main).unwrap();
    let entry = line_of(&text, "revision \"^0[5-9]\"", "revision \"^0[5-9]\"") - 3;
    let sample = |extra: &[&str]| {
        let mut args = vec!["--vendor", "DGC", "--product", "VRAID"];
        args.extend_from_slice(extra);
        let output = config("show", &args);
        let out = stdout(&output);
        assert!(output.status.success(), "{out}{}", stderr(&output));
        out
    };
    let out = sample(&[]);
    assert!(
        out.contains(&format!(
            "  note: no --revision given: devices entries with a revision pattern not applied ({}:{entry})",
            main.display()
        )),
        "{out}"
    );
    assert!(
        !value_line(&out, "(unnamed map)", "marginal_path_err_sample_time").contains(" 60 "),
        "{out}"
    );
    let out = sample(&["--revision", "0533"]);
    assert!(!out.contains("note: no --revision"), "{out}");
    assert!(
        value_line(&out, "(unnamed map)", "marginal_path_err_sample_time")
            .starts_with("marginal_path_err_sample_time 60 "),
        "{out}"
    );
}

/// `--json` gives scripts (and the VM's comparison with multipathd) each value with its section,
/// file and line, the same resolution as the text output.
#[test]
fn show_json_gives_each_value_with_its_section_file_and_line() {
    let output = config(
        "show",
        &["--vendor", "NETAPP", "--product", "LUN", "--json"],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let shown: serde_json::Value = serde_json::from_str(&stdout(&output)).expect("JSON");
    let maps = shown.as_array().expect("one object a map");
    assert_eq!(maps.len(), 1);
    let map = &maps[0];
    assert_eq!(map["vendor"], "NETAPP");
    let settings = map["settings"].as_object().expect("settings");
    assert!(!settings.is_empty());
    for (keyword, setting) in settings {
        assert!(
            keyword.starts_with("marginal_path_")
                || keyword.starts_with("san_path_")
                || keyword.starts_with("delay_"),
            "{keyword}"
        );
        let section = setting["section"].as_str().unwrap();
        assert!(
            [
                "defaults",
                "overrides",
                "devices",
                "multipaths",
                "command line"
            ]
            .contains(&section),
            "{keyword}: {section}"
        );
        if section != "command line" {
            let file = setting["file"].as_str().unwrap();
            let line = setting["line"].as_u64().unwrap() as usize;
            let text = std::fs::read_to_string(file).unwrap();
            let named = text.lines().nth(line - 1).unwrap();
            assert!(
                named.contains(keyword.as_str()),
                "{file}:{line} is {named:?}, not {keyword}"
            );
        }
    }
}
