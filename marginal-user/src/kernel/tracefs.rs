//! tracefs: where the block tracepoints live and where their record fields sit.
//!
//! Offsets are read from each tracepoint's `format` file at load time because they moved
//! between kernel versions; nothing here is compiled in.
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use marginal_common::TracepointLayout;

pub const TRACEFS: &str = "/sys/kernel/tracing";

/// The block tracepoint that reports failed requests on this kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockErrorTracepoint {
    /// `block:block_rq_error` (kernel >= 5.18): fires for failed requests only.
    RqError,
    /// `block:block_rq_complete`: fires for every request; the program filters on error != 0.
    RqComplete,
}

impl BlockErrorTracepoint {
    pub fn name(self) -> &'static str {
        match self {
            Self::RqError => "block_rq_error",
            Self::RqComplete => "block_rq_complete",
        }
    }

    /// The better of the two that this kernel has.
    pub fn choose(tracefs: &Path) -> Result<Self> {
        for candidate in [Self::RqError, Self::RqComplete] {
            if format_path(tracefs, candidate.name()).exists() {
                return Ok(candidate);
            }
        }
        bail!(
            "neither block:block_rq_error nor block:block_rq_complete exists under {}/events/block",
            tracefs.display()
        )
    }

    /// Read the record layout from the tracepoint's format file.
    pub fn layout(self, tracefs: &Path) -> Result<TracepointLayout> {
        let path = format_path(tracefs, self.name());
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        parse_layout(&text).with_context(|| format!("in {}", path.display()))
    }
}

fn format_path(tracefs: &Path, event: &str) -> PathBuf {
    tracefs.join("events/block").join(event).join("format")
}

/// Make sure tracefs is mounted at [`TRACEFS`]; mounts it if not (needs root).
pub fn ensure_mounted() -> Result<PathBuf> {
    let root = PathBuf::from(TRACEFS);
    if root.join("events").is_dir() {
        return Ok(root);
    }
    nix::mount::mount(
        Some("nodev"),
        &root,
        Some("tracefs"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    )
    .with_context(|| {
        format!(
            "tracefs is not mounted at {TRACEFS} and mounting it failed \
             (try: mount -t tracefs nodev {TRACEFS})"
        )
    })?;
    Ok(root)
}

/// Offsets of `dev` and `error` in a tracepoint `format` file.
pub fn parse_layout(format: &str) -> Result<TracepointLayout> {
    let dev = field(format, "dev")?;
    let error = field(format, "error")?;
    if dev.size != 4 {
        bail!("field dev has size {}, expected 4 (dev_t)", dev.size);
    }
    if error.size != 4 {
        bail!("field error has size {}, expected 4 (int)", error.size);
    }
    Ok(TracepointLayout {
        dev_offset: dev.offset,
        error_offset: error.offset,
    })
}

struct Field {
    offset: u32,
    size: u32,
}

/// Find `field:<type> <name>;\toffset:N;\tsize:M;` for `name`.
fn field(format: &str, name: &str) -> Result<Field> {
    for line in format.lines() {
        let mut parts = line.trim().split(';').map(str::trim);
        let Some(declaration) = parts.next().and_then(|d| d.strip_prefix("field:")) else {
            continue;
        };
        if declaration.rsplit(' ').next() != Some(name) {
            continue;
        }
        let mut offset = None;
        let mut size = None;
        for part in parts {
            if let Some(v) = part.strip_prefix("offset:") {
                offset = v.parse().ok();
            } else if let Some(v) = part.strip_prefix("size:") {
                size = v.parse().ok();
            }
        }
        return match (offset, size) {
            (Some(offset), Some(size)) => Ok(Field { offset, size }),
            _ => bail!("field {name} has no readable offset/size: {line:?}"),
        };
    }
    bail!("no field named {name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const RQ_ERROR_6_18: &str = "name: block_rq_error
ID: 2106
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:dev_t dev;\toffset:8;\tsize:4;\tsigned:0;
\tfield:sector_t sector;\toffset:16;\tsize:8;\tsigned:0;
\tfield:unsigned int nr_sector;\toffset:24;\tsize:4;\tsigned:0;
\tfield:int error;\toffset:28;\tsize:4;\tsigned:1;
\tfield:char rwbs[10];\toffset:34;\tsize:10;\tsigned:0;
";

    // An older layout (5.x block_rq_complete, before `error` moved): offsets differ.
    const RQ_COMPLETE_OLD: &str = "format:
\tfield:dev_t dev;\toffset:8;\tsize:4;\tsigned:0;
\tfield:sector_t sector;\toffset:16;\tsize:8;\tsigned:0;
\tfield:unsigned int nr_sector;\toffset:24;\tsize:4;\tsigned:0;
\tfield:int errors;\toffset:28;\tsize:4;\tsigned:1;
\tfield:int error;\toffset:32;\tsize:4;\tsigned:1;
";

    #[test]
    fn reads_offsets_of_current_kernel() {
        let layout = parse_layout(RQ_ERROR_6_18).unwrap();
        assert_eq!(layout.dev_offset, 8);
        assert_eq!(layout.error_offset, 28);
    }

    #[test]
    fn matches_whole_field_names_only() {
        let layout = parse_layout(RQ_COMPLETE_OLD).unwrap();
        assert_eq!(
            layout.error_offset, 32,
            "`errors` must not be taken for `error`"
        );
    }

    #[test]
    fn the_compiled_in_program_is_chosen_only_for_its_layout() {
        use crate::kernel::BlockErrorProgram;
        assert_eq!(
            BlockErrorProgram::for_layout(parse_layout(RQ_ERROR_6_18).unwrap()),
            BlockErrorProgram::CompiledInLayout
        );
        assert_eq!(
            BlockErrorProgram::for_layout(parse_layout(RQ_COMPLETE_OLD).unwrap()),
            BlockErrorProgram::TracefsLayout
        );
    }

    #[test]
    fn missing_field_is_named() {
        let err = parse_layout("format:\n\tfield:dev_t dev;\toffset:8;\tsize:4;\n").unwrap_err();
        assert!(err.to_string().contains("error"), "{err}");
    }

    #[test]
    fn wrong_size_is_rejected() {
        let text =
            "\tfield:dev_t dev;\toffset:8;\tsize:8;\n\tfield:int error;\toffset:28;\tsize:4;\n";
        assert!(parse_layout(text).is_err());
    }
}
