//! `marginal config show|check|import`: what the admin sees of the configuration.
//!
//! `show` prints, for each map, every value marginal uses with the file, line and section it
//! came from, and whether checking is on (with the engine's parameters) or why not, multipathd
//! checking the map itself included. Without live device-mapper maps to ask about, the maps are
//! the `multipaths` entries (marginal's and multipathd's), or a device described on the command
//! line. `check` lists every diagnostic and every map multipathd checks itself (with the
//! multipath.conf lines to delete) and exits 1 if there is either. `import` is
//! [`crate::config::import`].
use std::{fmt::Write as _, process::ExitCode};

use anyhow::{Context, bail};

use crate::config::{
    ConfigArgs, ConfigError, Key, MapIdentity, Resolved,
    import::{self, ImportArgs},
    model::Config,
    values::ACTION_KEYWORD,
};

/// `marginal config` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum ConfigCommand {
    /// Show the effective marginal_path_* settings of each map and where each came from.
    Show(ShowArgs),
    /// Validate the configuration files; exit status 1 if they have errors or if multipathd
    /// checks maps itself (with the multipath.conf lines to delete).
    Check(CheckArgs),
    /// Write marginal.conf from the marginal_path_* settings of multipath.conf, and print the
    /// lines to delete there.
    Import(ImportArgs),
}

/// Options of `marginal config show`.
#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Only this map of the multipaths section, by alias or wwid
    #[arg(long, value_name = "NAME", conflicts_with = "wwid")]
    pub map: Option<String>,
    /// Describe a map instead: its wwid
    #[arg(long, value_name = "WWID")]
    pub wwid: Option<String>,
    /// The SCSI vendor of the map's paths (matched against devices entries)
    #[arg(long, value_name = "VENDOR")]
    pub vendor: Option<String>,
    /// The SCSI product of the map's paths
    #[arg(long, value_name = "PRODUCT")]
    pub product: Option<String>,
    /// The SCSI revision of the map's paths
    #[arg(long, value_name = "REVISION")]
    pub revision: Option<String>,
    /// Print JSON (one object a map: each keyword's value and the section, file and line it
    /// came from) for scripts and for comparing with multipathd
    #[arg(long)]
    pub json: bool,
}

/// Options of `marginal config check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
}

pub fn run(command: ConfigCommand) -> anyhow::Result<ExitCode> {
    match command {
        ConfigCommand::Show(args) => show(&args),
        ConfigCommand::Check(args) => check(&args),
        ConfigCommand::Import(args) => import::run(&args),
    }
}

fn show(args: &ShowArgs) -> anyhow::Result<ExitCode> {
    let config = args.config.load().context("loading the configuration")?;
    for warning in config.warnings() {
        eprintln!("{warning}");
    }
    let describe = |mut map: MapIdentity| {
        map.vendor = args.vendor.clone().or(map.vendor);
        map.product = args.product.clone().or(map.product);
        map.revision = args.revision.clone().or(map.revision);
        map
    };
    let described = args.wwid.is_some()
        || args.vendor.is_some()
        || args.product.is_some()
        || args.revision.is_some();
    let maps = if let Some(name) = &args.map {
        let found = config.find_map(name).or_else(|| {
            config
                .multipathd()
                .and_then(|m| m.file_config().find_map(name))
        });
        match found {
            Some(map) => vec![describe(map)],
            None => bail!("no map with alias or wwid \"{name}\" in the multipaths section"),
        }
    } else if described {
        vec![describe(MapIdentity {
            wwid: args.wwid.clone().unwrap_or_default(),
            ..Default::default()
        })]
    } else {
        all_maps(&config)
    };

    if args.json {
        let maps = if maps.is_empty() {
            vec![MapIdentity::default()]
        } else {
            maps
        };
        let shown: Vec<_> = maps
            .iter()
            .map(|m| json_resolved(&config.resolve(m)))
            .collect();
        println!("{}", serde_json::to_string_pretty(&shown)?);
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = header(&config);
    if maps.is_empty() {
        out.push_str(
            "\nNo multipaths entries: the values below apply to any map that no devices entry matches\n\
             (describe a device with --wwid/--vendor/--product to see more).\n",
        );
        write_resolved(&mut out, &config.resolve(&MapIdentity::default()));
    }
    for map in &maps {
        write_resolved(&mut out, &config.resolve(map));
        if let Some(note) = revision_note(&config, map) {
            out.push_str(&note);
        }
    }
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}

/// Without a revision, the devices entries with a revision pattern that would otherwise match
/// are not applied: say which, so the admin knows to give --revision.
fn revision_note(config: &Config, map: &MapIdentity) -> Option<String> {
    if map.revision.is_some() || (map.vendor.is_none() && map.product.is_none()) {
        return None;
    }
    let skipped: Vec<_> = config
        .devices()
        .iter()
        .filter(|d| d.revision.is_some())
        .filter(|d| {
            let any = MapIdentity {
                revision: Some(String::new()),
                ..map.clone()
            };
            // Matches on vendor and product alone (the revision test left out).
            let mut entry = (*d).clone();
            entry.revision = None;
            entry.matches(&any)
        })
        .map(|d| format!("{}:{}", d.file.display(), d.line))
        .collect();
    (!skipped.is_empty()).then(|| {
        format!(
            "  note: no --revision given: devices entries with a revision pattern not applied ({})\n",
            skipped.join(", ")
        )
    })
}

/// The maps marginal's and multipathd's `multipaths` entries name, marginal's first.
fn all_maps(config: &Config) -> Vec<MapIdentity> {
    let mut maps = config.maps();
    if let Some(multipathd) = config.multipathd() {
        for map in multipathd.file_config().maps() {
            if !maps.iter().any(|m| m.wwid == map.wwid) {
                maps.push(map);
            }
        }
    }
    maps
}

fn file_list(files: &[std::path::PathBuf]) -> String {
    let files: Vec<_> = files.iter().map(|f| f.display().to_string()).collect();
    files.join(", ")
}

fn header(config: &Config) -> String {
    let mut out = String::new();
    match (config.files().is_empty(), config.missing_main_file()) {
        (true, Some(missing)) => {
            let _ = writeln!(
                out,
                "Configuration: no {}: checking is off for every map",
                missing.display()
            );
        }
        (true, None) => out.push_str("Configuration: no files found\n"),
        (false, missing) => {
            let _ = writeln!(out, "Configuration: {}", file_list(config.files()));
            if let Some(missing) = missing {
                let _ = writeln!(out, "  (no {}; only its conf.d)", missing.display());
            }
        }
    }
    if let Some(multipathd) = config.multipathd() {
        let files = if multipathd.files().is_empty() {
            "no files".to_string()
        } else {
            file_list(multipathd.files())
        };
        let running = if multipathd.has_running() {
            "and its running configuration (`show config` through its socket)".to_string()
        } else {
            match &multipathd.running_unavailable {
                Some(why) => format!("(running configuration not read: {why})"),
                None => "(its socket not asked: a file was named)".to_string(),
            }
        };
        let _ = writeln!(
            out,
            "multipathd's configuration, read to leave it the maps it checks itself: {files} {running}"
        );
    }
    let overrides: Vec<_> = Key::MARGINAL
        .iter()
        .filter_map(|&k| {
            config
                .overrides()
                .get(k)
                .map(|(value, option)| format!("{option} {value}"))
        })
        .collect();
    if !overrides.is_empty() {
        let _ = writeln!(out, "Command-line overrides: {}", overrides.join(" "));
    }
    out
}

/// One map's resolution as JSON: `settings` holds every keyword that is set, with `value`
/// ("no" or the number as written), `section` (defaults, overrides, devices, multipaths, or
/// command line), `file` and `line`.
fn json_resolved(resolved: &Resolved) -> serde_json::Value {
    let map = &resolved.map;
    let mut settings = serde_json::Map::new();
    for key in Key::ALL {
        let Some(sourced) = resolved.get(key) else {
            continue;
        };
        let (section, file, line) = match &sourced.origin {
            crate::config::Origin::File {
                file,
                line,
                section,
            } => {
                let section = match section {
                    crate::config::SectionRef::Defaults => "defaults",
                    crate::config::SectionRef::Overrides => "overrides",
                    crate::config::SectionRef::Device { .. } => "devices",
                    crate::config::SectionRef::Multipath { .. } => "multipaths",
                };
                (section, Some(file.display().to_string()), Some(*line))
            }
            crate::config::Origin::CommandLine { .. } => ("command line", None, None),
        };
        settings.insert(
            key.keyword().into(),
            serde_json::json!({
                "value": sourced.value.to_string(),
                "section": section,
                "file": file,
                "line": line,
            }),
        );
    }
    serde_json::json!({
        "map": map.name(),
        "wwid": map.wwid,
        "vendor": map.vendor,
        "product": map.product,
        "revision": map.revision,
        "checking": resolved.checking.is_ok(),
        "off_reason": resolved.checking.as_ref().err().map(|why| why.to_string()),
        "settings": settings,
    })
}

fn write_resolved(out: &mut String, resolved: &Resolved) {
    let map = &resolved.map;
    let _ = write!(out, "\nmap {}", map.name());
    if !map.wwid.is_empty() && map.name() != map.wwid {
        let _ = write!(out, " (wwid {})", map.wwid);
    }
    out.push('\n');
    let attributes: Vec<_> = [
        ("vendor", &map.vendor),
        ("product", &map.product),
        ("revision", &map.revision),
    ]
    .into_iter()
    .filter_map(|(name, value)| value.as_ref().map(|v| format!("{name} \"{v}\"")))
    .collect();
    if attributes.is_empty() {
        out.push_str("  device: vendor and product unknown, devices entries not consulted\n");
    } else {
        let _ = writeln!(out, "  device: {}", attributes.join(", "));
        if resolved.matching_devices.is_empty() {
            out.push_str("  matching devices entries: none\n");
        }
        for (i, origin) in resolved.matching_devices.iter().enumerate() {
            let label = if i == 0 {
                "matching devices entries:"
            } else {
                ""
            };
            let _ = writeln!(out, "  {label:<25} {origin}");
        }
    }
    for origin in &resolved.multipath_entries {
        let _ = writeln!(out, "  multipaths entry:         {origin}");
    }

    let width = Key::ALL
        .iter()
        .map(|k| k.keyword().len())
        .max()
        .unwrap_or(0);
    for key in Key::ALL {
        let (value, origin) = match resolved.get(key) {
            Some(s) => (s.value.to_string(), s.origin.to_string()),
            None => ("unset".to_string(), String::new()),
        };
        let mut line = format!("  {:<width$}  {value:<6} {origin}", key.keyword());
        if (Key::SAN_PATH.contains(&key) || Key::DELAY_CHECKS.contains(&key))
            && resolved.get(key).is_some()
            && resolved.san_path_displaced()
        {
            line.push_str(" [ignored: displaced by marginal_path checking]");
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
    let (value, origin) = match &resolved.marginal_pathgroups {
        Some(s) => (s.value.to_string(), s.origin.to_string()),
        None => ("unset".to_string(), String::new()),
    };
    let _ = writeln!(
        out,
        "{}",
        format!("  {:<width$}  {value:<6} {origin}", "marginal_pathgroups").trim_end()
    );
    let (value, origin) = match &resolved.action.requested {
        Some(s) => (s.value.to_string(), s.origin.to_string()),
        None => ("unset".to_string(), String::new()),
    };
    let _ = writeln!(
        out,
        "{}",
        format!("  {:<width$}  {value:<6} {origin}", ACTION_KEYWORD).trim_end()
    );

    match &resolved.checking {
        Ok(p) => {
            let _ = writeln!(out, "  marginal paths: {}", resolved.action);
            let _ = writeln!(
                out,
                "  checking: on (double_failed_time {} s, sample_time {} s, err_rate_threshold {} permille, recheck_gap_time {} s)",
                p.double_failed_time.as_secs(),
                p.sample_time.as_secs(),
                p.err_rate_threshold,
                p.recheck_gap_time.as_secs()
            );
        }
        Err(why) => {
            let _ = writeln!(out, "  checking: off: {why}");
        }
    }
    for warning in &resolved.warnings {
        let _ = writeln!(out, "  warning: {warning}");
    }
}

fn check(args: &CheckArgs) -> anyhow::Result<ExitCode> {
    let config = match args.config.load() {
        Ok(config) => config,
        Err(error @ ConfigError::Invalid { .. }) => {
            for diagnostic in error.diagnostics() {
                println!("{diagnostic}");
            }
            let count = error.errors().count();
            println!(
                "{count} error{}: the configuration is refused",
                if count == 1 { "" } else { "s" }
            );
            return Ok(ExitCode::FAILURE);
        }
        Err(error) => {
            println!("{error}");
            return Ok(ExitCode::FAILURE);
        }
    };
    for warning in config.warnings() {
        println!("{warning}");
    }
    if let Some(multipathd) = config.multipathd() {
        for warning in multipathd.file_config().warnings() {
            println!("multipathd's configuration: {warning}");
        }
    }
    let mut maps = all_maps(&config);
    if maps.is_empty() {
        maps.push(MapIdentity::default());
    }
    let mut on = 0;
    for map in &maps {
        let resolved = config.resolve(map);
        on += usize::from(resolved.checking.is_ok());
        for warning in &resolved.warnings {
            println!("map {}: warning: {warning}", map.name());
        }
        if resolved.action.fallback.is_some() {
            println!("map {}: warning: {}", map.name(), resolved.action);
        }
    }
    // A map no multipaths entry names gets defaults/overrides (and devices entries): ask
    // about it too.
    let mut asked = maps.clone();
    if !asked.contains(&MapIdentity::default()) {
        asked.push(MapIdentity::default());
    }
    let conflicts = config
        .multipathd()
        .map(|m| m.conflicts_for_check(&asked))
        .unwrap_or_default();
    for (what, reason) in &conflicts {
        let running = if reason.running_only {
            " (in its running configuration only: its files no longer say so)"
        } else {
            ""
        };
        println!(
            "conflict: {what}: multipathd checks it itself ({}){running}, so marginal acts on nothing there.\n  \
             For marginal to check it, delete from multipathd's configuration, then run `multipathd reconfigure`:",
            reason.kind.describe()
        );
        for line in &reason.lines {
            println!("  {}: {} {}", line.origin, line.keyword, line.value);
        }
    }
    if !conflicts.is_empty() {
        println!(
            "{} conflict{} with multipathd's own checking (`marginal config import` moves marginal_path_* settings over)",
            conflicts.len(),
            if conflicts.len() == 1 { "" } else { "s" }
        );
        return Ok(ExitCode::FAILURE);
    }
    if let (true, Some(missing)) = (config.files().is_empty(), config.missing_main_file()) {
        println!("no {}: checking is off for every map", missing.display());
    }
    println!(
        "OK: {} file{} read, {} devices entries, {} multipaths entries; checking on for {on} of {} map{} described",
        config.files().len(),
        if config.files().len() == 1 { "" } else { "s" },
        config.devices().len(),
        config.multipaths().len(),
        maps.len(),
        if maps.len() == 1 { "" } else { "s" },
    );
    Ok(ExitCode::SUCCESS)
}
