//! marginal and multipathd on one host, through the binary as an admin runs it: `config check`
//! failing with the multipath.conf lines to delete for each kind of multipathd checking,
//! `config import` from the real `multipath -t` dump and from crafted files, and the default
//! file's absence.
use std::path::{Path, PathBuf};

use marginal_tests::{run_marginal as run, stderr_text as stderr, stdout_text as stdout};

fn fixture(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(path)
}

/// A fresh directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("marginal-mpd-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(path.join("conf.d")).unwrap();
        TempDir(path)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn s(&self, name: &str) -> String {
        self.0.join(name).display().to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const MARGINAL_CONF: &str = "defaults {
    marginal_path_double_failed_time 60
    marginal_path_err_sample_time 120
    marginal_path_err_rate_threshold 10
    marginal_path_err_recheck_gap_time 300
}
";

/// `config check` with marginal.conf = [`MARGINAL_CONF`] and multipath.conf = `multipath_conf`.
fn check(dir: &TempDir, multipath_conf: &str) -> (Option<i32>, String) {
    dir.write("marginal.conf", MARGINAL_CONF);
    dir.write("multipath.conf", multipath_conf);
    let output = run(&[
        "config",
        "check",
        "--config",
        &dir.s("marginal.conf"),
        "--config-dir",
        &dir.s("conf.d"),
        "--multipath-conf",
        &dir.s("multipath.conf"),
        "--multipath-conf-dir",
        &dir.s("conf.d"),
    ]);
    (output.status.code(), stdout(&output) + &stderr(&output))
}

#[test]
fn check_passes_when_multipathd_checks_nothing() {
    let dir = TempDir::new("none");
    let (code, out) = check(
        &dir,
        "defaults {\n    polling_interval 5\n    marginal_path_err_sample_time no\n}\n",
    );
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("OK: 1 file read"), "{out}");
    assert!(out.contains("checking on for 1 of 1 map"), "{out}");
}

#[test]
fn check_fails_with_file_and_line_for_each_kind_of_multipathd_checking() {
    let dir = TempDir::new("kinds");
    let mp = dir.0.join("multipath.conf").display().to_string();

    // marginal_path_* in defaults, split between the main file and conf.d.
    dir.write(
        "conf.d/50-site.conf",
        "defaults {\n    marginal_path_err_recheck_gap_time 600\n}\n",
    );
    let (code, out) = check(
        &dir,
        "defaults {\n    polling_interval 5\n    marginal_path_double_failed_time 30\n    marginal_path_err_sample_time 150\n    marginal_path_err_rate_threshold 5\n}\n",
    );
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("conflict: every map (defaults/overrides): multipathd checks it itself (marginal_path_* checking is on)"),
        "{out}"
    );
    for line in [
        format!("  {mp}:3 (defaults): marginal_path_double_failed_time 30"),
        format!("  {mp}:4 (defaults): marginal_path_err_sample_time 150"),
        format!("  {mp}:5 (defaults): marginal_path_err_rate_threshold 5"),
        format!(
            "  {}:2 (defaults): marginal_path_err_recheck_gap_time 600",
            dir.s("conf.d/50-site.conf")
        ),
    ] {
        assert!(out.lines().any(|l| l == line), "{line:?} not in:\n{out}");
    }
    assert!(
        out.contains("1 conflict with multipathd's own checking"),
        "{out}"
    );
    std::fs::remove_file(dir.0.join("conf.d/50-site.conf")).unwrap();

    // san_path_err_* in a devices entry.
    let (code, out) = check(
        &dir,
        "devices {\n    device {\n        vendor \"HITACHI\"\n        product \"^OPEN-\"\n        san_path_err_threshold 5\n        san_path_err_forget_rate 100\n        san_path_err_recovery_time 60\n    }\n}\n",
    );
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains(&format!("conflict: maps of devices entry \"HITACHI\" \"^OPEN-\" ({mp}:2): multipathd checks it itself (san_path_err_* checking is on)")),
        "{out}"
    );
    let entry = "(devices entry \"HITACHI\" \"^OPEN-\")";
    for (line, keyword, value) in [
        (5, "san_path_err_threshold", 5),
        (6, "san_path_err_forget_rate", 100),
        (7, "san_path_err_recovery_time", 60),
    ] {
        let expected = format!("  {mp}:{line} {entry}: {keyword} {value}");
        assert!(
            out.lines().any(|l| l == expected),
            "{expected:?} not in:\n{out}"
        );
    }

    // marginal_pathgroups fpin, and marginal_path_* in a multipaths entry: two conflicts.
    let (code, out) = check(
        &dir,
        "defaults {\n    marginal_pathgroups fpin\n}\nmultipaths {\n    multipath {\n        wwid 3600a098038303053453f463045535a4b\n        alias db\n    }\n}\n",
    );
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("conflict: map db: multipathd checks it itself (marginal_pathgroups is fpin)"),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l == format!("  {mp}:2 (defaults): marginal_pathgroups fpin")),
        "{out}"
    );
    // The same line for every map is reported once.
    assert!(out.contains("1 conflict with"), "{out}");
}

#[test]
fn show_says_which_maps_are_left_to_multipathd_and_why() {
    let dir = TempDir::new("show");
    dir.write("marginal.conf", MARGINAL_CONF);
    dir.write(
        "multipath.conf",
        "multipaths {\n    multipath {\n        wwid 36001405aaaa\n        alias left\n        marginal_path_double_failed_time 60\n        marginal_path_err_sample_time 120\n        marginal_path_err_rate_threshold 10\n        marginal_path_err_recheck_gap_time 300\n    }\n    multipath {\n        wwid 36001405bbbb\n        alias mine\n    }\n}\n",
    );
    let output = run(&[
        "config",
        "show",
        "--config",
        &dir.s("marginal.conf"),
        "--config-dir",
        &dir.s("conf.d"),
        "--multipath-conf",
        &dir.s("multipath.conf"),
        "--multipath-conf-dir",
        &dir.s("conf.d"),
    ]);
    let out = stdout(&output);
    assert!(output.status.success(), "{out}{}", stderr(&output));
    let section = |alias: &str| {
        out.split("\nmap ")
            .find(|s| s.starts_with(alias))
            .unwrap_or_else(|| panic!("no map {alias} in:\n{out}"))
            .to_string()
    };
    assert!(
        section("left").contains(&format!(
            "  checking: off: left to multipathd: multipathd checks this map itself (marginal_path_* checking is on; set by marginal_path_double_failed_time 60 at {}:5 (multipaths entry left)",
            dir.s("multipath.conf")
        )),
        "{out}"
    );
    assert!(section("mine").contains("  checking: on ("), "{out}");
}

#[test]
fn without_marginal_conf_checking_is_off_for_every_map() {
    // The default file, as on a host where marginal was never configured.
    assert!(
        !Path::new("/etc/marginal/marginal.conf").exists(),
        "this test needs a host without /etc/marginal/marginal.conf"
    );
    let dir = TempDir::new("nofile");
    dir.write("multipath.conf", "defaults {\n    polling_interval 5\n}\n");
    let output = run(&[
        "config",
        "show",
        "--config-dir",
        &dir.s("conf.d"),
        "--multipath-conf",
        &dir.s("multipath.conf"),
    ]);
    let out = stdout(&output);
    assert!(output.status.success(), "{out}{}", stderr(&output));
    assert!(
        out.starts_with(
            "Configuration: no /etc/marginal/marginal.conf: checking is off for every map\n"
        ),
        "{out}"
    );
    assert!(
        out.contains(
            "  checking: off: no /etc/marginal/marginal.conf: checking is off for every map"
        ),
        "{out}"
    );
    let output = run(&[
        "config",
        "check",
        "--config-dir",
        &dir.s("conf.d"),
        "--multipath-conf",
        &dir.s("multipath.conf"),
    ]);
    assert!(output.status.success(), "{}", stdout(&output));
    assert!(
        stdout(&output).starts_with(
            "no /etc/marginal/marginal.conf: checking is off for every map\nOK: 0 files read"
        ),
        "{}",
        stdout(&output)
    );
    // A file named with --config must exist.
    let output = run(&["config", "check", "--config", &dir.s("absent.conf")]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stdout(&output).contains(&format!("cannot read {}", dir.s("absent.conf"))));
}

/// Import from the real `multipath -t` dump with its conf.d: every marginal_path_* line
/// moves, and the written file means the same to marginal.
#[test]
fn import_from_the_real_multipath_dump() {
    let dir = TempDir::new("import-dump");
    let main = fixture("multipath/multipath.conf");
    let conf_d = fixture("multipath/conf.d");
    let output_path = dir.s("etc/marginal/marginal.conf");
    let import = |extra: &[&str]| {
        let mut args = vec![
            "config",
            "import",
            "--multipath-conf",
            main.to_str().unwrap(),
            "--multipath-conf-dir",
            conf_d.to_str().unwrap(),
            "--output",
            &output_path,
        ];
        args.extend_from_slice(extra);
        run(&args)
    };
    let output = import(&[]);
    let out = stdout(&output);
    assert!(output.status.success(), "{out}{}", stderr(&output));
    let text = std::fs::read_to_string(&output_path).unwrap();
    let main_text = std::fs::read_to_string(&main).unwrap();

    // Every marginal_path_* line of the sources is printed for deletion, with file:line, and
    // written with its source.
    let mut sources = Vec::new();
    for file in [
        main.clone(),
        conf_d.join("10-marginal.conf"),
        conf_d.join("20-pure.conf"),
    ] {
        let content = std::fs::read_to_string(&file).unwrap();
        // The fixture ends with another tool's section, which multipathd skips: not imported.
        let known = content.split("\nsite_inventory {").next().unwrap();
        for (index, line) in known.lines().enumerate() {
            if line.trim_start().starts_with("marginal_path_") {
                sources.push((file.clone(), index + 1, line.trim().to_string()));
            }
        }
    }
    assert!(sources.len() > 20, "{}", sources.len());
    for (file, line, content) in &sources {
        let keyword = content.split_whitespace().next().unwrap();
        let printed = format!("  {}:{line}: {keyword} ", file.display());
        assert!(out.contains(&printed), "{printed:?} not in:\n{out}");
        assert!(
            text.contains(&format!("# {}:{line}", file.display())),
            "{}:{line} not in:\n{text}",
            file.display()
        );
    }
    assert!(
        out.contains(&format!("wrote {output_path} ({} settings)", sources.len())),
        "{out}"
    );
    // san_path_err_* lines that turn multipathd's checking on are named but not imported.
    let san = main_text
        .lines()
        .position(|l| l.trim() == "san_path_err_threshold 10")
        .unwrap()
        + 1;
    assert!(
        out.contains(&format!(
            "  {}:{san}: san_path_err_threshold 10",
            main.display()
        )),
        "{out}"
    );
    assert!(!text.contains("san_path_err"), "{text}");
    let inventory = main_text
        .lines()
        .position(|l| l.trim() == "marginal_path_err_sample_time 1")
        .unwrap()
        + 1;
    assert!(!text.contains(&format!(":{inventory}\n")), "{text}");
    assert!(!text.contains("polling_interval"), "{text}");

    // The result loads and gives the maps of the fixture their values from the new file.
    let show = |config: &str, config_dir: &str, option: &str, map: &str| {
        let output = run(&[
            "config",
            "show",
            "--config",
            config,
            "--config-dir",
            config_dir,
            "--multipath-conf",
            fixture("multipathd/no-checking.conf").to_str().unwrap(),
            option,
            map,
        ]);
        assert!(output.status.success(), "{}", stderr(&output));
        stdout(&output)
    };
    // On with the same parameters, or off for the same reason (its origin is the new file).
    let checking = |out: &str| {
        let line = out
            .lines()
            .find(|l| l.trim_start().starts_with("checking:"))
            .unwrap();
        line.split(" (at ").next().unwrap().to_string()
    };
    for map in ["oradata1", "backup", "vmstore", "scratch", "pure-vol1"] {
        let before = show(
            main.to_str().unwrap(),
            conf_d.to_str().unwrap(),
            "--map",
            map,
        );
        // A multipaths entry without marginal_path_* settings is not imported: ask by wwid.
        let wwid = before
            .split(" (wwid ")
            .nth(1)
            .and_then(|rest| rest.split(')').next())
            .unwrap();
        let after = show(&output_path, &dir.s("conf.d"), "--wwid", wwid);
        assert_eq!(
            checking(&before),
            checking(&after),
            "{map}:\n{before}\n{after}"
        );
    }

    // An existing file is not overwritten without --force.
    let output = import(&[]);
    assert_eq!(output.status.code(), Some(2), "{}", stdout(&output));
    assert!(
        stderr(&output).contains(&format!(
            "{output_path} exists; not overwriting it (use --force, or --output PATH)"
        )),
        "{}",
        stderr(&output)
    );
    std::fs::write(&output_path, "# mine\n").unwrap();
    let output = import(&["--force"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(std::fs::read_to_string(&output_path).unwrap(), text);
}

#[test]
fn import_of_a_file_without_marginal_settings_writes_nothing() {
    let dir = TempDir::new("import-none");
    dir.write("multipath.conf", "defaults {\n    polling_interval 5\n}\n");
    let output = run(&[
        "config",
        "import",
        "--multipath-conf",
        &dir.s("multipath.conf"),
        "--multipath-conf-dir",
        &dir.s("conf.d"),
        "--output",
        &dir.s("marginal.conf"),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("nothing to import"),
        "{}",
        stdout(&output)
    );
    assert!(!dir.0.join("marginal.conf").exists());

    // A broken multipath.conf is refused with file:line.
    dir.write(
        "multipath.conf",
        "defaults {\n    marginal_path_err_sample_time soon\n}\n",
    );
    let output = run(&[
        "config",
        "import",
        "--multipath-conf",
        &dir.s("multipath.conf"),
        "--multipath-conf-dir",
        &dir.s("conf.d"),
        "--output",
        &dir.s("marginal.conf"),
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains(&format!(
            "{}:2: error: marginal_path_err_sample_time",
            dir.s("multipath.conf")
        )),
        "{}",
        stderr(&output)
    );
}
