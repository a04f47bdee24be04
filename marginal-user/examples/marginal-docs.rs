//! Writes what the Debian package ships besides the binary, generated from the code so they
//! cannot drift from it: man pages marginal(8) (one page per subcommand, git-style:
//! marginal-run(8), ...) from the clap definition, marginal.conf(5) from the keyword list
//! (`marginal::config::manual`), and bash, zsh and fish completions.
//!
//! `cargo run -p marginal-user --example marginal-docs -- OUT_DIR` (`cargo xtask package` does).
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap_complete::Shell;
use marginal::config::manual;
use roff::{Roff, bold, italic, roman};

const MANUAL: &str = "System Administration";

fn main() -> Result<()> {
    let mut args = std::env::args_os().skip(1);
    let (Some(out), None) = (args.next(), args.next()) else {
        bail!("usage: marginal-docs OUT_DIR");
    };
    let out = PathBuf::from(out);
    let source = format!("marginal {}", env!("CARGO_PKG_VERSION"));
    for dir in ["man8", "man5", "completions"] {
        fs::create_dir_all(out.join(dir)).with_context(|| format!("creating {dir} in {out:?}"))?;
    }
    command_pages(&out.join("man8"), &source)?;
    let conf = out.join("man5/marginal.conf.5");
    fs::write(&conf, config_page(&source)).with_context(|| format!("writing {conf:?}"))?;
    for (shell, name) in [
        (Shell::Bash, "marginal"),
        (Shell::Zsh, "_marginal"),
        (Shell::Fish, "marginal.fish"),
    ] {
        let path = out.join("completions").join(name);
        let mut file = fs::File::create(&path).with_context(|| format!("writing {path:?}"))?;
        clap_complete::generate(shell, &mut marginal::cli::command(), "marginal", &mut file);
    }
    println!("man pages and completions written to {}", out.display());
    Ok(())
}

/// marginal(8) and one page per subcommand, each naming the others.
fn command_pages(dir: &Path, source: &str) -> Result<()> {
    let mut top = marginal::cli::command().disable_help_subcommand(true);
    top.build();
    let mut pages = Vec::new();
    collect(&top, &mut pages);
    for (i, cmd) in pages.iter().enumerate() {
        let man = clap_mangen::Man::new(cmd.clone())
            .section("8")
            .manual(MANUAL)
            .source(source);
        let path = dir.join(man.get_filename());
        let mut page = Vec::new();
        man.render(&mut page)?;
        let mut extra = Roff::default();
        if i == 0 {
            extra.control("SH", ["FILES"]);
            for (file, what) in [
                (
                    "/etc/marginal/marginal.conf",
                    "settings, see marginal.conf(5)",
                ),
                (
                    "/etc/marginal/conf.d/*.conf",
                    "more settings, read in name order",
                ),
                (
                    "/run/marginal/held-out.json",
                    "the paths marginal holds out of service",
                ),
                (
                    "/usr/share/marginal/",
                    "Grafana dashboard and Prometheus alert rules",
                ),
            ] {
                extra.control("TP", [] as [&str; 0]);
                extra.text([bold(file)]);
                extra.text([roman(what)]);
            }
        }
        extra.control("SH", ["SEE ALSO"]);
        let mut see: Vec<String> = pages
            .iter()
            .filter(|other| page_name(other) != page_name(cmd))
            .map(|other| format!("{}(8)", page_name(other)))
            .collect();
        see.extend(["marginal.conf(5)", "multipath.conf(5)", "multipathd(8)"].map(String::from));
        extra.text([roman(see.join(", "))]);
        page.extend_from_slice(extra.render().as_bytes());
        fs::write(&path, page).with_context(|| format!("writing {path:?}"))?;
    }
    Ok(())
}

fn collect(cmd: &clap::Command, pages: &mut Vec<clap::Command>) {
    pages.push(cmd.clone());
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        collect(sub, pages);
    }
}

fn page_name(cmd: &clap::Command) -> String {
    cmd.get_display_name()
        .unwrap_or_else(|| cmd.get_name())
        .to_string()
}

/// marginal.conf(5): syntax, sections and keywords.
fn config_page(source: &str) -> String {
    let mut r = Roff::default();
    r.control("TH", ["MARGINAL.CONF", "5", "", source, MANUAL]);
    r.control("SH", ["NAME"]);
    r.text([roman("marginal.conf - settings of the marginal daemon")]);
    r.control("SH", ["SYNOPSIS"]);
    r.text([
        bold("/etc/marginal/marginal.conf"),
        roman(" "),
        bold("/etc/marginal/conf.d/*.conf"),
    ]);
    r.control("SH", ["DESCRIPTION"]);
    r.text([roman(
        "marginal reads its settings from these files, in the syntax of multipath.conf(5): \
         sections in braces, one keyword and its value a line, values optionally in double \
         quotes, comments from # or ! to the end of the line. The files in conf.d are read \
         after the main file, in name order. Keywords and sections marginal does not use are \
         read past, so a copy of multipath.conf is a valid marginal.conf.",
    )]);
    r.control("PP", [] as [&str; 0]);
    r.text([
        roman(
            "Checking is on for a map only when its marginal_path_double_failed_time, \
         marginal_path_err_sample_time and marginal_path_err_recheck_gap_time are above 0 and \
         its marginal_path_err_rate_threshold is set. Without the file no map is checked. \
         Each value is a whole number or ",
        ),
        bold("no"),
        roman(", which turns the setting off at its level of precedence."),
    ]);
    r.control("PP", [] as [&str; 0]);
    r.text([
        roman(
            "These keywords must not be in multipath.conf: there they turn on multipathd's own \
         marginal path checking, and two checkers on one path fight. marginal reads \
         multipathd's configuration only to learn which maps multipathd checks itself, and \
         acts on nothing in those; ",
        ),
        bold("marginal config import"),
        roman(" moves the keywords here."),
    ]);
    r.control("SH", ["SECTIONS"]);
    r.text([roman("In order of precedence, lowest first:")]);
    for (name, text) in manual::SECTIONS {
        r.control("TP", [] as [&str; 0]);
        r.text([bold(*name)]);
        r.text([roman(*text)]);
    }
    r.control("SH", ["KEYWORDS"]);
    let docs = manual::keywords();
    for doc in docs.iter().filter(|d| d.in_marginal_conf) {
        r.control("TP", [] as [&str; 0]);
        r.text([bold(doc.keyword), roman(" "), italic(doc.unit)]);
        r.text([roman(doc.text.as_str())]);
    }
    r.control("SH", ["KEYWORDS READ IN MULTIPATH.CONF ONLY"]);
    for doc in docs.iter().filter(|d| !d.in_marginal_conf) {
        r.control("TP", [] as [&str; 0]);
        r.text([bold(doc.keyword)]);
        r.text([roman(doc.text.as_str())]);
    }
    r.control("SH", ["EXAMPLE"]);
    r.control("nf", [] as [&str; 0]);
    r.text([roman(
        "defaults {\n    marginal_path_double_failed_time    60\n    \
         marginal_path_err_sample_time       120\n    marginal_path_err_rate_threshold    10\n    \
         marginal_path_err_recheck_gap_time  300\n}",
    )]);
    r.control("fi", [] as [&str; 0]);
    r.control("SH", ["SEE ALSO"]);
    r.text([roman(
        "marginal(8), marginal-config-check(8), marginal-config-show(8), multipath.conf(5)",
    )]);
    let mut out = r.render();
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out
}
