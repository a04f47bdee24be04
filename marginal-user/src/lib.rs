//! marginal: finds shaky storage paths on dm-multipath hosts and keeps them out of service.
//!
//! Data flows one way:
//!
//! ```text
//! kernel signal ──> detector ──> engine ──> actuator
//! (eBPF maps,       (double-     (pure state  (multipathd socket,
//!  ring buffer)      failure      machine,     dm messages, or
//!                    events)      verdicts)    observe only)
//!                                   │  ▲
//!                                   ▼  │ reads/errors
//!                                  sampler (io_uring O_DIRECT)
//! ```
//!
//! * [`kernel`]: the kernel's signals. Loads the eBPF programs, fills the watch map, turns
//!   ring-buffer records into [`kernel::KernelEvent`]s and reads the kernel's counters; listens
//!   for dm-mpath's and block devices' uevents ([`kernel::uevent`]).
//! * [`engine`]: the marginal-path rules of the spec, pure and clock-injected.
//! * [`sampler`]: the io_uring O_DIRECT reader that measures a path's error rate.
//! * [`daemon`]: `marginal run`, wiring kernel events, engine, sampler and actuator.
//! * [`config`]: marginal.conf (multipath.conf syntax) and per-map resolution of the
//!   marginal_path_* settings; which maps multipathd checks itself.
//! * [`device`]: block device names, numbers and sysfs facts.
//! * [`dm`]: multipath maps and their paths from device-mapper and sysfs.
//! * [`actuator`]: failing and reinstating paths (multipathd socket, dm messages, observe).
//! * [`status`]: the daemon's state as users see it (metrics, `/status`, `marginal status`).
//! * [`metrics`]: the status snapshot as Prometheus metrics (OpenMetrics or classic text).
//! * [`http`]: the `/metrics` and `/status` endpoint, and the client `marginal status` uses.
//! * [`cli`]: the `marginal` command line and its subcommands' front ends (`status`, `sample`,
//!   `config`); also the source of the man pages and completions.
//! * [`logging`]: env_logger set-up that writes syslog priorities when stderr is journald.
pub mod actuator;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod device;
pub mod dm;
pub mod engine;
pub mod http;
pub mod kernel;
pub mod logging;
mod memory;
pub mod metrics;
pub mod sampler;
pub mod status;
