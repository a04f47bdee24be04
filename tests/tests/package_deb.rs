//! The Debian package `cargo xtask package` builds (`cargo xtask test` builds it before the
//! tests run): lintian finds no error in it and every override says why; it holds what an admin
//! needs (binary, unit, conffile, man pages, completions, dashboard and rules); its binary and
//! man pages work; its unit passes `systemd-analyze verify` and `systemd-analyze security`
//! (neither needs systemd as PID 1) with only the capabilities it documents.
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

const VERSION: &str = env!("CARGO_PKG_VERSION");

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e} (cargo xtask setup installs it)"))
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr)
}

/// The package, at the path the VM test bed and the README use.
fn deb() -> PathBuf {
    let arch = text(&run(Command::new("dpkg").arg("--print-architecture")));
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"));
    let deb = target.join(format!("debian/marginal_{VERSION}_{}.deb", arch.trim()));
    assert!(
        deb.exists(),
        "{} is missing: run `cargo xtask package` (`cargo xtask test` does)",
        deb.display()
    );
    deb
}

/// The package unpacked once (dpkg-deb -x), shared by the tests of this file.
fn unpacked() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let root = std::env::temp_dir().join(format!("marginal-deb-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let out = run(Command::new("dpkg-deb").arg("-x").arg(deb()).arg(&root));
        assert!(out.status.success(), "{}", text(&out));
        root
    })
}

#[test]
fn lintian_finds_no_error_and_every_override_is_justified() {
    let out = run(Command::new("lintian")
        .args(["--fail-on", "error", "--no-tag-display-limit"])
        .arg(deb()));
    let said = text(&out);
    assert!(out.status.success(), "lintian:\n{said}");
    // Warnings too: the one that does not apply is overridden, with its reason.
    assert!(
        !said
            .lines()
            .any(|l| l.starts_with("E:") || l.starts_with("W:")),
        "{said}"
    );
    // Each override line is preceded by a comment that says why.
    let overrides =
        std::fs::read_to_string(repo_root().join("marginal-user/dist/debian/lintian-overrides"))
            .unwrap_or_default();
    let mut why = false;
    for line in overrides.lines() {
        match line.trim() {
            "" => why = false,
            l if l.starts_with('#') => why = true,
            l => assert!(why, "lintian override without a comment saying why: {l}"),
        }
    }
}

#[test]
fn the_package_holds_the_daemon_its_unit_settings_manuals_completions_and_dashboards() {
    let root = unpacked();
    for path in [
        "usr/bin/marginal",
        "usr/lib/systemd/system/marginal.service",
        "etc/marginal/marginal.conf",
        "usr/share/man/man8/marginal.8.gz",
        "usr/share/man/man8/marginal-run.8.gz",
        "usr/share/man/man8/marginal-config-check.8.gz",
        "usr/share/man/man5/marginal.conf.5.gz",
        "usr/share/bash-completion/completions/marginal",
        "usr/share/zsh/vendor-completions/_marginal",
        "usr/share/fish/vendor_completions.d/marginal.fish",
        "usr/share/marginal/marginal-grafana.json",
        "usr/share/marginal/marginal-rules.yml",
        "usr/share/doc/marginal/copyright",
        "usr/share/doc/marginal/changelog.Debian.gz",
        "usr/share/lintian/overrides/marginal",
    ] {
        assert!(root.join(path).exists(), "{path} is not in the package");
    }
    let control = text(&run(Command::new("dpkg-deb").arg("-f").arg(deb())));
    assert!(
        control.contains(&format!("Version: {VERSION}")),
        "{control}"
    );
    // dpkg-shlibdeps ran (device-mapper is reached through ioctls, not libdevmapper).
    assert!(
        control.contains("Depends: libc6"),
        "shared library dependencies: {control}"
    );
    let info = std::env::temp_dir().join(format!("marginal-deb-control-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&info);
    assert!(
        run(Command::new("dpkg-deb").arg("-e").arg(deb()).arg(&info))
            .status
            .success()
    );
    let conffiles = std::fs::read_to_string(info.join("conffiles")).unwrap();
    assert_eq!(conffiles.trim(), "/etc/marginal/marginal.conf");
    // Installed, not enabled or started: nothing is checked until marginal.conf says so.
    let postinst = std::fs::read_to_string(info.join("postinst")).unwrap_or_default();
    assert!(!postinst.contains("enable marginal"), "{postinst}");
    assert!(!postinst.contains("start marginal"), "{postinst}");
    let _ = std::fs::remove_dir_all(&info);
}

#[test]
fn the_packaged_binary_runs_and_its_default_configuration_checks_nothing() {
    let root = unpacked();
    let marginal = root.join("usr/bin/marginal");
    let version = run(Command::new(&marginal).arg("--version"));
    assert_eq!(text(&version).trim(), format!("marginal {VERSION}"));
    let conf = root.join("etc/marginal/marginal.conf");
    let empty = root.join("etc/marginal/conf.d");
    std::fs::create_dir_all(&empty).unwrap();
    let show = run(Command::new(&marginal)
        .args([
            "config",
            "show",
            "--multipath-conf",
            "/dev/null",
            "--config",
        ])
        .arg(&conf)
        .arg("--config-dir")
        .arg(&empty));
    let said = text(&show);
    assert!(show.status.success(), "{said}");
    assert!(said.contains("checking: off"), "{said}");
    for doc in marginal::config::manual::keywords()
        .iter()
        .filter(|d| d.in_marginal_conf)
    {
        assert!(
            said.lines()
                .any(|l| l.split_whitespace().eq([doc.keyword, "unset"])),
            "{said}"
        );
    }
    // Every keyword the manual lists for marginal.conf is in the commented default file.
    let shipped = std::fs::read_to_string(&conf).unwrap();
    for doc in marginal::config::manual::keywords()
        .iter()
        .filter(|d| d.in_marginal_conf)
    {
        assert!(
            shipped.contains(&format!("#\t{}", doc.keyword)),
            "{}",
            doc.keyword
        );
    }
}

#[test]
fn the_man_pages_render_without_warnings_and_completions_parse() {
    let root = unpacked();
    for page in [
        "usr/share/man/man8/marginal.8.gz",
        "usr/share/man/man8/marginal-run.8.gz",
        "usr/share/man/man5/marginal.conf.5.gz",
    ] {
        let out = run(Command::new("man")
            .args(["--warnings", "-l"])
            .arg(root.join(page))
            .env("MANWIDTH", "80"));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stderr.trim().is_empty(),
            "{page}: {stderr}"
        );
        let body = String::from_utf8_lossy(&out.stdout);
        assert!(body.contains("SEE ALSO"), "{page}:\n{body}");
    }
    let conf = text(&run(Command::new("man")
        .arg("-l")
        .arg(root.join("usr/share/man/man5/marginal.conf.5.gz"))
        .env("MANWIDTH", "200")));
    for doc in marginal::config::manual::keywords() {
        assert!(
            conf.contains(doc.keyword),
            "marginal.conf(5) lacks {}",
            doc.keyword
        );
    }
    let run_page = text(&run(Command::new("man")
        .arg("-l")
        .arg(root.join("usr/share/man/man8/marginal-run.8.gz"))
        .env("MANWIDTH", "200")));
    for option in [
        "--observe",
        "--listen",
        "--state-file",
        "--keep-failed-on-exit",
    ] {
        assert!(run_page.contains(option), "marginal-run(8) lacks {option}");
    }
    let bash = run(Command::new("bash")
        .arg("-n")
        .arg(root.join("usr/share/bash-completion/completions/marginal")));
    assert!(bash.status.success(), "{}", text(&bash));
}

/// The unit as packaged, with the packaged binary: `systemd-analyze verify` (syntax, the
/// executable, the documentation pages) and `systemd-analyze security` (the exposure score and
/// the settings that matter), offline, in the unpacked tree.
#[test]
fn the_packaged_unit_passes_systemd_analyze_verify_and_security() {
    let root = unpacked();
    let unit = "usr/lib/systemd/system/marginal.service";
    // verify resolves the unit's dependencies (multi-user.target, ...) in the same root.
    let units = root.join("usr/lib/systemd/system");
    for entry in std::fs::read_dir("/lib/systemd/system").unwrap().flatten() {
        let name = entry.file_name();
        let to = units.join(&name);
        if !to.exists() && name.to_string_lossy().ends_with(".target") {
            std::fs::copy(entry.path(), &to).unwrap();
        }
    }
    let verify = run(Command::new("systemd-analyze")
        .arg("verify")
        .arg(format!("--root={}", root.display()))
        .arg(format!("/{unit}"))
        // man(1) looks for Documentation=man:... pages here, in the package.
        .env("MANPATH", root.join("usr/share/man")));
    assert!(
        verify.status.success() && text(&verify).trim().is_empty(),
        "systemd-analyze verify:\n{}",
        text(&verify)
    );

    let security = run(Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(format!("--root={}", root.display()))
        .arg("marginal.service"));
    let said = text(&security);
    let exposure: f64 = said
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for marginal.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level:\n{said}"));
    assert!(exposure <= 4.0, "exposure {exposure}:\n{said}");
    for setting in [
        "NoNewPrivileges=",
        "ProtectSystem=",
        "ProtectHome=",
        "ProtectKernelModules=",
        "CapabilityBoundingSet=~CAP_SYS_MODULE",
        "CapabilityBoundingSet=~CAP_(DAC_*|FOWNER|IPC_OWNER)",
        "RestrictSUIDSGID=",
    ] {
        assert!(
            said.lines().any(|l| l
                .strip_prefix('✓')
                .is_some_and(|rest| rest.trim_start().starts_with(setting))),
            "{setting} not passed:\n{said}"
        );
    }
    let unit_text = std::fs::read_to_string(root.join(unit)).unwrap();
    let caps: Vec<&str> = unit_text
        .lines()
        .find_map(|l| l.strip_prefix("CapabilityBoundingSet="))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(caps, ["CAP_BPF", "CAP_PERFMON", "CAP_SYS_ADMIN"]);
    for cap in caps {
        assert!(
            unit_text
                .lines()
                .any(|l| l.starts_with("#   ") && l.contains(cap)),
            "the unit does not say what {cap} is for"
        );
    }
    for line in [
        "Type=notify",
        "WatchdogSec=",
        "ProtectSystem=strict",
        "RuntimeDirectory=marginal",
    ] {
        assert!(unit_text.lines().any(|l| l.starts_with(line)), "{line}");
    }
}
