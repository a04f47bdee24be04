//! The sampler when things go wrong on real devices: reads that hang past their timeout,
//! runs stopped with reads in flight, devices that vanish mid-run. Needs root (loop devices,
//! FUSE): without it every test fails saying so.
//!
//! With `Schedule::Hang` only the first read reaches the FUSE file and hangs there: the loop
//! device serves its backing file one read at a time, so the sampler's other 31 reads wait
//! in the loop device's queue behind it. To the sampler all 32 hang (they are in the kernel
//! and do not complete); releasing the one hung read lets the queued ones through.
use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use marginal::sampler::{SampleOutcome, SampleReport, Sampler, SamplerOptions, sample_once};
use marginal_tests::{FlakyDevice, FlakyOptions, Schedule, require_root};
use tokio::sync::mpsc::{UnboundedReceiver, error::TryRecvError};

const READ_TIMEOUT: Duration = Duration::from_secs(1);

fn options() -> SamplerOptions {
    SamplerOptions {
        read_timeout: READ_TIMEOUT,
        ..SamplerOptions::default()
    }
}

fn device(schedule: Schedule) -> Result<FlakyDevice> {
    require_root()?;
    FlakyDevice::create(FlakyOptions {
        size_bytes: 16 << 20,
        schedule,
        ..FlakyOptions::default()
    })
}

/// The next report, or an error if none comes within `timeout`.
fn report_within(
    reports: &mut UnboundedReceiver<SampleReport>,
    timeout: Duration,
) -> Result<SampleReport> {
    let deadline = Instant::now() + timeout;
    loop {
        match reports.try_recv() {
            Ok(report) => return Ok(report),
            Err(TryRecvError::Disconnected) => bail!("the sampler thread is gone"),
            Err(TryRecvError::Empty) if Instant::now() >= deadline => {
                bail!("no report within {timeout:?}")
            }
            Err(TryRecvError::Empty) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

/// Reads hang past their timeout, then complete (late) while the run goes on: each counts
/// as one error when it times out, and its late completion adds nothing, neither a read nor
/// an error.
#[test]
fn a_read_hung_past_its_timeout_counts_once() -> Result<()> {
    let dev = device(Schedule::Hang)?;
    let (sampler, mut reports) = Sampler::spawn(options())?;
    let started = Instant::now();
    sampler.start("hung", dev.loop_path(), Duration::from_secs(4))?;
    assert!(
        dev.wait_for_hung(1, Duration::from_secs(5)),
        "the reads hang: {:?}",
        dev.stats()
    );
    // Let the 32 reads pass their 1 s timeout, then answer them (successfully) while the run
    // goes on.
    std::thread::sleep(
        (started + READ_TIMEOUT + Duration::from_millis(300))
            .saturating_duration_since(Instant::now()),
    );
    dev.set_schedule(Schedule::Healthy);
    assert_eq!(dev.release_hung(), 1);
    let report = report_within(&mut reports, Duration::from_secs(10))?;
    let stats = dev.stats();
    eprintln!("{report:?}\n{stats:?}");
    assert_eq!(report.outcome, SampleOutcome::Completed);
    assert_eq!(report.timeouts, 32, "each hung read timed out once");
    assert_eq!(
        report.errors, 32,
        "timeouts are the only errors; late successes are not errors"
    );
    // 32 hung reads (counted at their timeout) plus the later healthy ones, each exactly once.
    assert_eq!(
        report.reads, stats.reads,
        "late completions were not counted as reads again"
    );
    assert!(report.reads > 32, "the freed slots sampled on: {report:?}");
    assert!(report.rate_permille < 1000);
    assert_eq!(
        report.rate_permille as u64,
        report.errors * 1000 / report.reads
    );
    Ok(())
}

/// A path that never answers: every slot hangs for the whole run. 32 reads, 32 timeouts,
/// 1000 permille, never more. The reads are still in the kernel when the run ends; their late
/// completions afterwards must not disturb the sampler, which serves the next run.
#[test]
fn a_path_that_never_answers_reads_1000_permille_not_more() -> Result<()> {
    let dev = device(Schedule::Hang)?;
    let (sampler, mut reports) = Sampler::spawn(options())?;
    sampler.start("dead", dev.loop_path(), Duration::from_millis(2_500))?;
    let report = report_within(&mut reports, Duration::from_secs(10))?;
    eprintln!("{report:?}");
    assert_eq!(report.outcome, SampleOutcome::Completed);
    assert_eq!((report.reads, report.errors, report.timeouts), (32, 32, 32));
    assert_eq!(report.rate_permille, 1000);
    // The hung reads outlived their run; now the kernel completes them (into buffers the
    // sampler kept for them) and the same sampler samples on.
    dev.set_schedule(Schedule::Healthy);
    assert_eq!(dev.release_hung(), 1);
    sampler.start("dead", dev.loop_path(), Duration::from_secs(2))?;
    let report = report_within(&mut reports, Duration::from_secs(10))?;
    eprintln!("{report:?}");
    assert_eq!(report.outcome, SampleOutcome::Completed);
    assert!(report.reads >= 32);
    assert_eq!((report.errors, report.timeouts), (0, 0));
    Ok(())
}

/// Stopping a run cancels its reads, waits for the kernel, and reports Stopped promptly, even
/// with every read hung (well before the reads' own timeout); cancelled reads are not errors.
#[test]
fn stopping_a_run_with_hung_reads_reports_promptly() -> Result<()> {
    let dev = device(Schedule::Hang)?;
    let (sampler, mut reports) = Sampler::spawn(SamplerOptions {
        read_timeout: Duration::from_secs(20),
        ..SamplerOptions::default()
    })?;
    sampler.start("p", dev.loop_path(), Duration::from_secs(60))?;
    assert!(dev.wait_for_hung(1, Duration::from_secs(5)));
    let asked = Instant::now();
    assert!(sampler.stop("p")?);
    let report = report_within(&mut reports, Duration::from_secs(5))?;
    eprintln!("stopped after {:?}: {report:?}", asked.elapsed());
    assert_eq!(report.outcome, SampleOutcome::Stopped);
    assert_eq!((report.reads, report.errors, report.timeouts), (0, 0, 0));
    assert!(!sampler.is_sampling("p"));
    assert!(!sampler.stop("p")?, "nothing left to stop");
    // Release the hung reads; the sampler is fine and samples the device again.
    dev.set_schedule(Schedule::Healthy);
    dev.release_hung();
    sampler.start("p", dev.loop_path(), Duration::from_secs(60))?;
    std::thread::sleep(Duration::from_millis(500));
    assert!(sampler.stop("p")?);
    let report = report_within(&mut reports, Duration::from_secs(5))?;
    eprintln!("{report:?}");
    assert_eq!(report.outcome, SampleOutcome::Stopped);
    assert!(report.reads > 0 && report.errors == 0, "{report:?}");
    Ok(())
}

/// A device node of our own for the loop device, so the test can remove it the way
/// devtmpfs removes /dev/sdX when a disk is deleted (a loop device itself cannot disappear
/// while the sampler holds it open).
struct OwnNode {
    dir: PathBuf,
    node: PathBuf,
}

impl OwnNode {
    fn new(dev: &FlakyDevice) -> Result<Self> {
        let (major, minor) = dev.major_minor();
        let dir = std::env::temp_dir().join(format!(
            "marginal-sampler-node-{}-{minor}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir)?;
        let node = dir.join("victim");
        let _ = std::fs::remove_file(&node);
        nix::sys::stat::mknod(
            &node,
            nix::sys::stat::SFlag::S_IFBLK,
            nix::sys::stat::Mode::from_bits_truncate(0o600),
            libc::makedev(major, minor),
        )
        .with_context(|| format!("mknod {}", node.display()))?;
        Ok(Self { dir, node })
    }

    fn path(&self) -> &Path {
        &self.node
    }
}

impl Drop for OwnNode {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The device disappears mid-run (its node goes, its reads fail): the run ends Failed, naming
/// the device, and the sampler thread goes on serving other paths.
#[test]
fn a_device_removed_mid_run_fails_that_run_only() -> Result<()> {
    let doomed = device(Schedule::Healthy)?;
    let other = device(Schedule::EveryNth(10))?;
    let node = OwnNode::new(&doomed)?;
    let (sampler, mut reports) = Sampler::spawn(options())?;
    sampler.start("doomed", node.path(), Duration::from_secs(30))?;
    sampler.start("other", other.loop_path(), Duration::from_secs(3))?;
    std::thread::sleep(Duration::from_millis(500));
    let removed = Instant::now();
    std::fs::remove_file(node.path())?;
    doomed.set_schedule(Schedule::FailAll);
    let report = report_within(&mut reports, Duration::from_secs(5))?;
    eprintln!("failed {:?} after removal: {report:?}", removed.elapsed());
    assert_eq!(report.path_key, "doomed");
    let SampleOutcome::Failed(why) = &report.outcome else {
        panic!("not failed: {report:?}")
    };
    assert!(
        why.contains(&node.path().display().to_string()),
        "names the device: {why}"
    );
    assert!(why.contains("vanished"), "{why}");
    // The other path's run is untouched.
    let report = report_within(&mut reports, Duration::from_secs(10))?;
    eprintln!("{report:?}");
    assert_eq!(report.path_key, "other");
    assert_eq!(report.outcome, SampleOutcome::Completed);
    assert!(report.rate_permille.abs_diff(100) <= 2, "{report:?}");
    Ok(())
}

/// A device that cannot be opened ends its run Failed, naming it; no panic, no hang.
#[test]
fn a_device_that_cannot_be_opened_fails_naming_it() -> Result<()> {
    let report = sample_once(
        Path::new("/dev/marginal-no-such-disk"),
        Duration::from_secs(2),
        options(),
    )?;
    let SampleOutcome::Failed(why) = &report.outcome else {
        panic!("not failed: {report:?}")
    };
    assert!(why.contains("/dev/marginal-no-such-disk"), "{why}");
    assert_eq!((report.reads, report.rate_permille), (0, 0));
    Ok(())
}
