//! The sampler on real flaky block devices: the rates it measures against the failures the
//! device injected. Needs root (loop devices, FUSE): without it every test fails saying so.
//!
//! Tolerances, and why:
//! * Every sample read must reach the device as exactly one read (no merging, no retries),
//!   and every read must be counted once, so `reads` and `errors` are compared for equality
//!   with the fixture's own counters. That is the real accuracy check.
//! * `EveryNth(n)`: the device fails reads n, 2n, ..., so errors = floor(reads / n) exactly,
//!   and the rate is within 1000/reads + 1 permille of 1000/n (rounding down twice); with the
//!   ~600 reads of a 3 s run that is 2 permille.
//! * `FractionPermille(p)`: failures are pseudo-random, so the measured rate is a binomial
//!   sample: within 4 standard deviations (sqrt(p(1-p)/reads)), plus 1 for rounding, of p.
//!   4 sigma fails by chance about once in 16 000 runs; with a fixed seed it is deterministic
//!   for a given read count anyway.
use std::{process::ExitCode, time::Duration};

use anyhow::Result;
use marginal::cli::sample;
use marginal::sampler::{SampleOutcome, SampleReport, Sampler, SamplerOptions, sample_once};
use marginal_tests::{FlakyDevice, FlakyOptions, Schedule, Stats, require_root};

/// 3 s runs with a 1 s read timeout: reads start during the first 2 s, 20 refills of 32.
const SAMPLE_TIME: Duration = Duration::from_secs(3);

fn options() -> SamplerOptions {
    SamplerOptions {
        read_timeout: Duration::from_secs(1),
        ..SamplerOptions::default()
    }
}

fn device(schedule: Schedule, nomerges: u8) -> Result<FlakyDevice> {
    require_root()?;
    FlakyDevice::create(FlakyOptions {
        schedule,
        nomerges,
        ..FlakyOptions::default()
    })
}

/// The sampler counted exactly what the device did.
fn assert_counts_match(report: &SampleReport, stats: &Stats) {
    assert_eq!(report.outcome, SampleOutcome::Completed, "{report:?}");
    assert!(
        report.reads >= 300,
        "too few reads for a 3 s run: {report:?}"
    );
    assert_eq!(
        report.reads, stats.reads,
        "one device read per sample read (nothing merged or counted twice): {report:?} vs {stats:?}"
    );
    assert_eq!(report.errors, stats.reads_failed, "{report:?} vs {stats:?}");
    assert_eq!(report.timeouts, 0);
    assert!(report.rate_permille <= 1000);
}

fn sample_every_nth(n: u64, nomerges: u8) -> Result<()> {
    let dev = device(Schedule::EveryNth(n), nomerges)?;
    let report = sample_once(dev.loop_path(), SAMPLE_TIME, options())?;
    let stats = dev.stats();
    eprintln!("every {n}th read fails (nomerges={nomerges}): {report:?}");
    assert_counts_match(&report, &stats);
    assert_eq!(report.errors, report.reads / n);
    let truth = 1000 / n as u32;
    let tolerance = (1000 / report.reads) as u32 + 1;
    assert!(
        report.rate_permille.abs_diff(truth) <= tolerance,
        "rate {} vs {truth} +- {tolerance}",
        report.rate_permille
    );
    Ok(())
}

#[test]
fn every_10th_read_failing_reads_100_permille() -> Result<()> {
    sample_every_nth(10, 2)
}

#[test]
fn every_4th_read_failing_reads_250_permille() -> Result<()> {
    sample_every_nth(4, 2)
}

/// With merging allowed, only the sampler's non-adjacent offsets keep reads apart.
#[test]
fn reads_stay_separate_even_where_the_block_layer_may_merge() -> Result<()> {
    sample_every_nth(10, 0)
}

#[test]
fn a_random_5_percent_of_failures_reads_about_50_permille() -> Result<()> {
    let dev = device(
        Schedule::FractionPermille {
            permille: 50,
            seed: 0x5eed,
        },
        2,
    )?;
    let report = sample_once(dev.loop_path(), Duration::from_secs(4), options())?;
    let stats = dev.stats();
    eprintln!("5% random failures: {report:?}");
    assert_counts_match(&report, &stats);
    let p = 0.05_f64;
    let sigma = (p * (1.0 - p) / report.reads as f64).sqrt() * 1000.0;
    let tolerance = (4.0 * sigma).ceil() as u32 + 1;
    assert!(
        report.rate_permille.abs_diff(50) <= tolerance,
        "rate {} vs 50 +- {tolerance} (4 sigma over {} reads)",
        report.rate_permille,
        report.reads
    );
    Ok(())
}

#[test]
fn a_healthy_device_reads_0_and_a_dead_one_1000() -> Result<()> {
    let healthy = device(Schedule::Healthy, 2)?;
    let dead = device(Schedule::FailAll, 2)?;
    let report = sample_once(healthy.loop_path(), SAMPLE_TIME, options())?;
    assert_counts_match(&report, &healthy.stats());
    assert_eq!((report.errors, report.rate_permille), (0, 0));
    assert_eq!(
        report.block_size, 4096,
        "BLKBSZGET of a loop device over a 4 KiB-block file"
    );
    let report = sample_once(dead.loop_path(), SAMPLE_TIME, options())?;
    assert_counts_match(&report, &dead.stats());
    assert_eq!((report.errors, report.rate_permille), (report.reads, 1000));
    Ok(())
}

/// One ring, several paths at once, each with its own rate.
#[test]
fn one_sampler_serves_several_paths_at_once() -> Result<()> {
    let devs = [
        ("a", device(Schedule::EveryNth(5), 2)?),
        ("b", device(Schedule::Healthy, 2)?),
        ("c", device(Schedule::EveryNth(2), 2)?),
    ];
    let (sampler, mut reports) = Sampler::spawn(options())?;
    for (key, dev) in &devs {
        sampler.start(*key, dev.loop_path(), SAMPLE_TIME)?;
    }
    assert!(
        sampler
            .start("a", devs[0].1.loop_path(), SAMPLE_TIME)
            .is_err(),
        "a is running"
    );
    let mut got = Vec::new();
    for _ in 0..devs.len() {
        got.push(reports.blocking_recv().expect("a report per run"));
    }
    for (key, dev) in &devs {
        let report = got.iter().find(|r| r.path_key == *key).expect("reported");
        eprintln!("{key}: {report:?}");
        assert_counts_match(report, &dev.stats());
        assert!(!sampler.is_sampling(key));
    }
    let rate = |key: &str| {
        got.iter()
            .find(|r| r.path_key == key)
            .unwrap()
            .rate_permille
    };
    assert!(rate("a").abs_diff(200) <= 2, "a: {}", rate("a"));
    assert_eq!(rate("b"), 0);
    assert!(rate("c").abs_diff(500) <= 2, "c: {}", rate("c"));
    Ok(())
}

/// `marginal sample`: exit status 0 healthy, 1 marginal, error when it cannot sample.
#[test]
fn the_sample_command_exit_status_is_the_verdict() -> Result<()> {
    let flaky = device(Schedule::EveryNth(10), 2)?;
    let healthy = device(Schedule::Healthy, 2)?;
    let args = |dev: &FlakyDevice, threshold: u32| sample::SampleArgs {
        device: dev.loop_path().display().to_string(),
        seconds: 2,
        threshold,
        read_timeout: Some(1),
    };
    assert_eq!(
        sample::run(args(&flaky, 50))?,
        ExitCode::from(1),
        "100 permille > 50"
    );
    assert_eq!(
        sample::run(args(&flaky, 200))?,
        ExitCode::SUCCESS,
        "100 permille <= 200"
    );
    assert_eq!(sample::run(args(&healthy, 0))?, ExitCode::SUCCESS);
    // By kernel name too, as admins type it.
    let by_name = sample::SampleArgs {
        device: healthy.loop_name().to_string(),
        ..args(&healthy, 0)
    };
    assert_eq!(sample::run(by_name)?, ExitCode::SUCCESS);
    let missing = sample::SampleArgs {
        device: "/dev/marginal-no-such-disk".into(),
        ..args(&healthy, 0)
    };
    let err = sample::run(missing).unwrap_err();
    assert!(
        format!("{err:#}").contains("/dev/marginal-no-such-disk"),
        "{err:#}"
    );
    Ok(())
}
