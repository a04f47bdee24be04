//! `marginal config import`: marginal.conf from the `marginal_path_*` settings of multipathd's
//! configuration, and the lines to delete there.
//!
//! Migrating a host from multipathd's own marginal path checking to marginal is: import,
//! delete the printed lines from multipath.conf (and its conf.d), `multipathd reconfigure`.
//! Until the lines are gone multipathd keeps checking those maps and marginal leaves them
//! alone, so no map ever has two checkers.
//!
//! The settings keep their sections (`defaults`, `overrides`, `devices` entries with their
//! vendor/product/revision, `multipaths` entries with their wwid/alias), values and order, one
//! section a source file, so they resolve for every map as they did in multipathd. Each value
//! carries a comment naming the file and line it came from.
use std::{
    fmt::Write as _,
    fs,
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::{Context, bail};

use super::{
    file::{DEFAULT_CONFIG_FILE, LoadOptions},
    model::Config,
    syntax::{self, Item, Keyword, Section},
    values::Key,
};

/// Options of `marginal config import`.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// multipathd's configuration file to import from, instead of /etc/multipath.conf
    #[arg(long, value_name = "PATH")]
    pub multipath_conf: Option<PathBuf>,
    /// Directory of multipathd's extra *.conf files, instead of its config_dir or
    /// /etc/multipath/conf.d
    #[arg(long, value_name = "DIR")]
    pub multipath_conf_dir: Option<PathBuf>,
    /// Where to write marginal's configuration
    #[arg(long, value_name = "PATH", default_value = DEFAULT_CONFIG_FILE)]
    pub output: PathBuf,
    /// Overwrite the output file if it exists
    #[arg(long)]
    pub force: bool,
}

/// One line of multipathd's configuration that marginal takes over (or that must go).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceLine {
    pub file: PathBuf,
    pub line: u32,
    pub keyword: String,
    pub value: String,
}

impl std::fmt::Display for SourceLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}: {} {}",
            self.file.display(),
            self.line,
            self.keyword,
            quote(&self.value)
        )
    }
}

/// What an import found.
#[derive(Debug, Default)]
pub struct Import {
    /// The marginal.conf text (empty when nothing was found).
    pub text: String,
    /// The `marginal_path_*` lines taken over: delete them from multipathd's files.
    pub imported: Vec<SourceLine>,
    /// Other lines by which multipathd checks maps itself (`san_path_err_*`,
    /// `marginal_pathgroups fpin`): not imported (marginal has no such checking), but while
    /// they turn multipathd's checking on, marginal leaves those maps to it.
    pub also_checking: Vec<SourceLine>,
}

/// Builds the import from multipathd's files as `options` name them.
pub fn import(options: &LoadOptions) -> Result<Import, super::ConfigError> {
    // Loading first refuses a broken file with its diagnostics and gives the files in
    // multipathd's reading order.
    let config = Config::load_with(options)?;
    let mut import = Import::default();
    let mut body = String::new();
    for file in config.files() {
        let text = fs::read(file).map_err(|error| super::ConfigError::Io {
            path: file.clone(),
            error,
        })?;
        let mut ignored = Vec::new();
        let items = syntax::parse(file, &text, &mut ignored);
        body.push_str(&import_file(file, &items, &mut import));
    }
    if !import.imported.is_empty() {
        let sources: Vec<_> = config
            .files()
            .iter()
            .map(|f| f.display().to_string())
            .collect();
        let mut text = String::new();
        let _ = writeln!(
            text,
            "# marginal's configuration, imported by `marginal config import` from the\n\
             # marginal_path_* settings of multipathd's configuration ({}).\n\
             # multipathd never reads this file. Delete the imported lines from multipathd's\n\
             # files, then run `multipathd reconfigure`: until then multipathd checks those maps\n\
             # itself and marginal leaves them alone.",
            sources.join(", ")
        );
        text.push_str(&body);
        import.text = text;
    }
    Ok(import)
}

fn import_file(file: &Path, items: &[Item], import: &mut Import) -> String {
    let mut out = String::new();
    for item in items {
        let Item::Section(section) = item else {
            continue;
        };
        match section.name.as_str() {
            "defaults" | "overrides" => {
                let lines = settings(file, section, import);
                if !lines.is_empty() {
                    let _ = write!(out, "\n{} {{\n{lines}}}\n", section.name);
                }
            }
            "devices" | "multipaths" => {
                let entry = if section.name == "devices" {
                    "device"
                } else {
                    "multipath"
                };
                let identity: &[&str] = if entry == "device" {
                    &["vendor", "product", "revision"]
                } else {
                    &["wwid", "alias"]
                };
                let mut entries = String::new();
                for sub in sub_sections(section, entry) {
                    let lines = settings(file, sub, import);
                    if lines.is_empty() {
                        continue;
                    }
                    let _ = writeln!(entries, "\t{entry} {{\t# {}:{}", file.display(), sub.line);
                    for k in keywords(sub).filter(|k| identity.contains(&k.name.as_str())) {
                        if let Some(value) = &k.value {
                            let _ = writeln!(entries, "\t\t{} {}", k.name, quote(value));
                        }
                    }
                    entries.push_str(&indent(&lines));
                    entries.push_str("\t}\n");
                }
                if !entries.is_empty() {
                    let _ = write!(out, "\n{} {{\n{entries}}}\n", section.name);
                }
            }
            _ => {}
        }
    }
    out
}

fn sub_sections<'a>(section: &'a Section, name: &'a str) -> impl Iterator<Item = &'a Section> {
    section.items.iter().filter_map(move |item| match item {
        Item::Section(s) if s.name == name => Some(s),
        _ => None,
    })
}

fn keywords(section: &Section) -> impl Iterator<Item = &Keyword> {
    section.items.iter().filter_map(|item| match item {
        Item::Keyword(k) => Some(k),
        Item::Section(_) => None,
    })
}

/// The `marginal_path_*` lines of one section, as marginal.conf lines with their source, and
/// the other lines by which multipathd checks maps.
fn settings(file: &Path, section: &Section, import: &mut Import) -> String {
    let mut out = String::new();
    for k in keywords(section) {
        let Some(value) = &k.value else { continue };
        let source = SourceLine {
            file: file.to_path_buf(),
            line: k.line,
            keyword: k.name.clone(),
            value: value.clone(),
        };
        match Key::from_keyword(&k.name) {
            Some(key) if Key::MARGINAL.contains(&key) => {
                // multipathd reads a threshold of 0 as "no"; marginal reads it as 0 permille.
                let (value, note) = if key == Key::ErrRateThreshold && value.trim() == "0" {
                    ("no", " (0, which multipathd reads as \"no\")")
                } else {
                    (value.as_str(), "")
                };
                let _ = writeln!(
                    out,
                    "\t{} {}\t# {}:{}{note}",
                    k.name,
                    quote(value),
                    file.display(),
                    k.line
                );
                import.imported.push(source);
            }
            Some(_) if value != "no" && value != "0" => import.also_checking.push(source),
            None if k.name == "marginal_pathgroups" && value == "fpin" => {
                import.also_checking.push(source)
            }
            _ => {}
        }
    }
    out
}

fn indent(lines: &str) -> String {
    lines.lines().map(|l| format!("\t{l}\n")).collect()
}

/// A value as multipath.conf writes it: bare when it is one plain word, else quoted with
/// inner quotes doubled.
fn quote(value: &str) -> String {
    let plain = !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'"' | b'#' | b'!' | b'{' | b'}'));
    if plain {
        value.to_string()
    } else {
        format!("\"{}\"", value.replace('"', "\"\""))
    }
}

pub fn run(args: &ImportArgs) -> anyhow::Result<ExitCode> {
    let defaults = LoadOptions::multipathd();
    let options = LoadOptions {
        required: args.multipath_conf.is_some(),
        file: args.multipath_conf.clone().unwrap_or(defaults.file.clone()),
        config_dir: args.multipath_conf_dir.clone(),
        ..defaults
    };
    let import = import(&options)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("reading multipathd's configuration")?;
    if import.imported.is_empty() {
        println!(
            "no marginal_path_* settings in {} (or its conf.d): nothing to import, {} not written",
            options.file.display(),
            args.output.display()
        );
    } else {
        if args.output.exists() && !args.force {
            bail!(
                "{} exists; not overwriting it (use --force, or --output PATH)",
                args.output.display()
            );
        }
        // What is written must load: a file marginal would refuse is a bug here, not the
        // admin's to find at the next start.
        Config::parse_str(&args.output.display().to_string(), &import.text)
            .map_err(|e| anyhow::anyhow!("{e}"))
            .context("the imported configuration does not load (a bug in import)")?;
        if let Some(dir) = args.output.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        fs::write(&args.output, &import.text)
            .with_context(|| format!("writing {}", args.output.display()))?;
        println!(
            "wrote {} ({} settings)",
            args.output.display(),
            import.imported.len()
        );
        println!(
            "\nDelete these lines from multipathd's configuration, then run `multipathd reconfigure`:"
        );
        for line in &import.imported {
            println!("  {line}");
        }
    }
    if !import.also_checking.is_empty() {
        println!(
            "\nmultipathd also checks maps itself by these lines (not imported: marginal has no such checking; \
             delete them too for marginal to check those maps):"
        );
        for line in &import.also_checking {
            println!("  {line}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
