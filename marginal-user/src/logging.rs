//! Logging set-up: env_logger, in a format that suits where stderr goes.
//!
//! Under systemd, stderr is a stream to journald, which stamps every line with the time and
//! the unit itself and reads a `<N>` prefix as the line's syslog priority (sd-daemon(3)). So
//! when stderr is the journal, lines carry that prefix and no timestamp, and `journalctl -p
//! warning -u marginal` shows just the warnings. Anywhere else, env_logger's usual format.
//! `RUST_LOG` filters as usual; the default level is `info`.
use std::io::Write;
use std::os::fd::AsFd;

/// Initialises the global logger once; later calls do nothing.
pub fn init_logging() {
    let mut builder =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    if stderr_is_journal() {
        builder.format(|buf, record| {
            buf.write_all(journal_lines(record.level(), &record.args().to_string()).as_bytes())
        });
    }
    let _ = builder.try_init();
}

/// A message as journald lines: each line prefixed with the level's priority, since journald
/// splits on newlines and would log continuation lines at the default priority.
pub fn journal_lines(level: log::Level, message: &str) -> String {
    let priority = syslog_priority(level);
    let mut out = String::new();
    for line in message.lines() {
        out.push_str(&format!("<{priority}>{line}\n"));
    }
    if out.is_empty() {
        out.push_str(&format!("<{priority}>\n"));
    }
    out
}

/// The sd-daemon(3) priority of a log level.
pub fn syslog_priority(level: log::Level) -> u8 {
    match level {
        log::Level::Error => 3,
        log::Level::Warn => 4,
        log::Level::Info => 6,
        log::Level::Debug | log::Level::Trace => 7,
    }
}

/// Whether stderr is the stream systemd connected to journald: `JOURNAL_STREAM` is set to its
/// `device:inode` (checked, so that a child whose stderr was redirected elsewhere does not
/// inherit the journal format from the environment).
pub fn stderr_is_journal() -> bool {
    let Some(expected) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Ok(stat) = nix::sys::stat::fstat(std::io::stderr().as_fd()) else {
        return false;
    };
    expected.to_str() == Some(&format!("{}:{}", stat.st_dev, stat.st_ino))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_lines_carry_the_priority_on_every_line() {
        assert_eq!(journal_lines(log::Level::Error, "boom"), "<3>boom\n");
        assert_eq!(journal_lines(log::Level::Warn, "a\nb"), "<4>a\n<4>b\n");
        assert_eq!(journal_lines(log::Level::Info, ""), "<6>\n");
        assert_eq!(syslog_priority(log::Level::Debug), 7);
        assert_eq!(syslog_priority(log::Level::Trace), 7);
    }
}
