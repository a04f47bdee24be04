//! multipathd's command socket: `fail path sdX` / `reinstate path sdX`.
//!
//! Going through multipathd matters when it runs: its `fail path` also suspends the path
//! checker for that path, which would otherwise see the path up and reinstate it within a
//! polling interval, undoing our action. `reinstate path` turns the checker back on.
//!
//! Wire format (multipath-tools' libmpathcmd/mpath_cmd.c): each message, both ways, is a
//! native-endian `size_t` length that counts a trailing NUL, then the bytes and the NUL.
//! multipathd answers `ok\n` when a command succeeded, `fail\n` when it did not, `timeout\n`
//! when it was too busy; anything else (e.g. a help text for an unknown command) is a failure
//! too. Sockets: the abstract `@/org/kernel/linux/storage/multipathd` that every version
//! listens on, then the `/run/multipathd.socket` file of newer versions (0.9.8+ try the file
//! first; either works).
use std::{
    ffi::OsStr,
    io::{self, Read, Write},
    os::unix::{ffi::OsStrExt, net::UnixStream},
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use socket2::{Domain, SockAddr, Socket, Type};

use super::{Actuator, PathRef};

/// multipathd's abstract socket name (without the leading NUL).
pub const ABSTRACT_SOCKET: &str = "/org/kernel/linux/storage/multipathd";
/// multipathd's socket file (multipath-tools 0.9.8 and later).
pub const PATHNAME_SOCKET: &str = "/run/multipathd.socket";
/// Bound on connecting and on waiting for a reply.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// libmpathcmd's limit on a reply; a larger length means the stream is not what we think.
pub const MAX_REPLY_LEN: usize = 32 * 1024 * 1024;

/// Where multipathd listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SocketAddress {
    /// A Linux abstract socket, named without its leading NUL.
    Abstract(String),
    Path(PathBuf),
}

impl SocketAddress {
    fn sockaddr(&self) -> io::Result<SockAddr> {
        match self {
            Self::Abstract(name) => {
                let mut bytes = vec![0u8];
                bytes.extend_from_slice(name.as_bytes());
                SockAddr::unix(OsStr::from_bytes(&bytes))
            }
            Self::Path(path) => SockAddr::unix(path),
        }
    }
}

impl std::fmt::Display for SocketAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Abstract(name) => write!(f, "@{name}"),
            Self::Path(path) => write!(f, "{}", path.display()),
        }
    }
}

/// A client of multipathd's socket: one connection per command, every step time-bounded.
#[derive(Clone, Debug)]
pub struct MultipathdSocket {
    addresses: Vec<SocketAddress>,
    timeout: Duration,
}

impl Default for MultipathdSocket {
    fn default() -> Self {
        Self::new()
    }
}

impl MultipathdSocket {
    /// multipathd's own sockets, abstract first.
    pub fn new() -> Self {
        Self::with_addresses(
            vec![
                SocketAddress::Abstract(ABSTRACT_SOCKET.to_string()),
                SocketAddress::Path(PATHNAME_SOCKET.into()),
            ],
            DEFAULT_TIMEOUT,
        )
    }

    /// Other addresses, tried in order (tests; or a multipathd built with other names).
    pub fn with_addresses(addresses: Vec<SocketAddress>, timeout: Duration) -> Self {
        Self { addresses, timeout }
    }

    /// Whether multipathd answers: its reply to `show daemon`, e.g. `pid 812 idle`.
    pub fn probe(&self) -> Result<String> {
        let reply = self.command("show daemon")?;
        Ok(reply.trim_end().to_string())
    }

    /// Sends `command` and returns multipathd's reply (without the trailing NUL).
    pub fn command(&self, command: &str) -> Result<String> {
        let deadline = Instant::now() + self.timeout;
        let (mut stream, address) = self.connect(deadline)?;
        let mut exchange = || -> io::Result<String> {
            stream.set_write_timeout(Some(remaining(deadline)?))?;
            stream.write_all(&encode_message(command))?;
            read_message(&mut stream, deadline)
        };
        exchange().with_context(|| format!("multipathd at {address}: command {command:?}"))
    }

    fn connect(&self, deadline: Instant) -> Result<(UnixStream, &SocketAddress)> {
        let mut errors = Vec::new();
        for address in &self.addresses {
            match connect(address, deadline) {
                Ok(stream) => return Ok((stream, address)),
                Err(e) => errors.push(format!("{address}: {e}")),
            }
        }
        bail!("multipathd does not answer ({})", errors.join("; "))
    }
}

/// Connects without blocking: a Unix socket whose listener's backlog is full (multipathd hung)
/// would block a plain connect forever; non-blocking it says EAGAIN, and we retry until the
/// deadline.
fn connect(address: &SocketAddress, deadline: Instant) -> io::Result<UnixStream> {
    let sockaddr = address.sockaddr()?;
    loop {
        let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
        socket.set_nonblocking(true)?;
        match socket.connect(&sockaddr) {
            Ok(()) => {
                socket.set_nonblocking(false)?;
                return Ok(socket.into());
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if Instant::now() >= deadline {
                    return Err(io::Error::new(io::ErrorKind::TimedOut, "connect timed out"));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(e),
        }
    }
}

fn remaining(deadline: Instant) -> io::Result<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(io::Error::new(io::ErrorKind::TimedOut, "no reply in time"));
    }
    Ok(left)
}

/// One message as libmpathcmd frames it: length (with the NUL) as a native-endian `size_t`,
/// the bytes, the NUL.
pub fn encode_message(text: &str) -> Vec<u8> {
    let len = text.len() + 1;
    let mut message = Vec::with_capacity(size_of::<usize>() + len);
    message.extend_from_slice(&len.to_ne_bytes());
    message.extend_from_slice(text.as_bytes());
    message.push(0);
    message
}

/// Reads one framed message from `stream` by `deadline`; returns its text without the NUL.
pub fn read_message(stream: &mut UnixStream, deadline: Instant) -> io::Result<String> {
    let mut len = [0u8; size_of::<usize>()];
    read_exact_by(stream, &mut len, deadline)?;
    let len = usize::from_ne_bytes(len);
    if len == 0 || len >= MAX_REPLY_LEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("reply length {len} is out of range"),
        ));
    }
    let mut body = vec![0u8; len];
    read_exact_by(stream, &mut body, deadline)?;
    // The length counts the NUL; drop it (and anything after a NUL, as C would).
    let text = body.split(|&b| b == 0).next().unwrap_or_default();
    Ok(String::from_utf8_lossy(text).into_owned())
}

fn read_exact_by(stream: &mut UnixStream, mut buf: &mut [u8], deadline: Instant) -> io::Result<()> {
    while !buf.is_empty() {
        stream.set_read_timeout(Some(remaining(deadline)?))?;
        match stream.read(buf) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "multipathd closed the connection mid-reply",
                ));
            }
            Ok(n) => buf = &mut buf[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "no reply in time"));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// `ok` is success; anything else (`fail`, `timeout`, a help text) is an error quoting it.
pub fn check_reply(command: &str, reply: &str) -> Result<()> {
    match reply.trim() {
        "ok" => Ok(()),
        other => bail!("multipathd answered {other:?} to {command:?}"),
    }
}

impl MultipathdSocket {
    fn path_command(&self, verb: &str, map: &str, path: &PathRef) -> Result<()> {
        // multipathd finds the path by kernel name, or by MAJ:MIN when that is all we have.
        let command = format!("{verb} path {}", path.name);
        let reply = self.command(&command);
        reply
            .and_then(|reply| check_reply(&command, &reply))
            .with_context(|| format!("map {map}, path {path}: {verb} through multipathd"))
    }
}

impl MultipathdSocket {
    /// The kernel names of the paths multipathd manages (`show paths raw format "%d"`).
    pub fn path_names(&self) -> Result<Vec<String>> {
        let reply = self.command("show paths raw format \"%d\"")?;
        Ok(reply
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect())
    }
}

/// multipathd, with device-mapper messages for the paths it does not manage.
pub fn with_dm_fallback(
    multipathd: MultipathdSocket,
    dm: std::sync::Arc<dyn Actuator>,
) -> std::sync::Arc<dyn Actuator> {
    std::sync::Arc::new(super::WithFallback {
        primary: std::sync::Arc::new(multipathd),
        fallback: dm,
    })
}

impl Actuator for MultipathdSocket {
    fn name(&self) -> &str {
        "multipathd"
    }

    fn manages(&self, path: &PathRef) -> Option<bool> {
        let names = self.path_names().ok()?;
        Some(
            names
                .iter()
                .any(|n| n == &path.name || n == &path.numbers()),
        )
    }

    fn fail_path(&self, map: &str, path: &PathRef) -> Result<()> {
        self.path_command("fail", map, path)
    }

    fn reinstate_path(&self, map: &str, path: &PathRef) -> Result<()> {
        self.path_command("reinstate", map, path)
    }

    fn set_marginal(&self, map: &str, path: &PathRef) -> Result<()> {
        self.path_command("setmarginal", map, path)
    }

    fn unset_marginal(&self, map: &str, path: &PathRef) -> Result<()> {
        self.path_command("unsetmarginal", map, path)
    }

    /// `show paths raw format "%d %M"`: the path's name, then `marginal` or `normal`.
    fn is_marginal(&self, path: &PathRef) -> Option<bool> {
        let reply = self.command("show paths raw format \"%d %M\"").ok()?;
        marginal_in_listing(&reply, path)
    }
}

/// Whether `path` is marginal in a `show paths raw format "%d %M"` listing; None if absent.
pub fn marginal_in_listing(listing: &str, path: &PathRef) -> Option<bool> {
    listing.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        let name = words.next()?;
        (name == path.name || name == path.numbers()).then(|| words.next() == Some("marginal"))
    })
}

#[cfg(test)]
#[path = "multipathd_tests.rs"]
mod tests;
