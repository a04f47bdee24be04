//! `marginal sample DEVICE`: sample one block device now, for an admin checking a suspicious
//! path by hand. Prints the counts, the rate and the verdict; the exit status is the verdict
//! (0 healthy, 1 marginal; 2, from main, when the device could not be sampled).
use std::{io::Write, path::PathBuf, process::ExitCode, time::Duration};

use anyhow::{Result, bail};

use crate::device::BlockDevice;
use crate::sampler::{SampleOutcome, SampleReport, SamplerOptions, sample_once};

/// The daemon's read timeout (spec); a manual run uses less if it is shorter than twice that.
const PRODUCTION_READ_TIMEOUT_SECS: u64 = 60;

/// Arguments of `marginal sample`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Exit status: 0 healthy (rate <= threshold), 1 marginal, 2 the device could not be sampled.\n\
    Reads are O_DIRECT at random non-adjacent blocks; the device is only read, never written."
)]
pub struct SampleArgs {
    /// The block device to sample (name, /dev path or MAJ:MIN).
    pub device: String,
    /// How long to sample. Shorter than the daemon's runs (at least 120 s) so a manual check
    /// stays quick; no new read starts once elapsed + read timeout reaches it.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub seconds: u64,
    /// Error rate in permille above which the path is marginal. 0: any failed read is
    /// marginal (a healthy path should not fail any); pass the map's
    /// marginal_path_err_rate_threshold to get the daemon's verdict.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=1000))]
    pub threshold: u32,
    /// Seconds before a pending read counts as one error [default: 60, or half of --seconds
    /// if that is less, so reads can start at all].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub read_timeout: Option<u64>,
}

impl SampleArgs {
    fn read_timeout(&self) -> Result<Duration> {
        let secs = match self.read_timeout {
            Some(secs) if secs >= self.seconds => {
                bail!(
                    "--read-timeout ({secs} s) must be below --seconds ({} s): no read could start",
                    self.seconds
                )
            }
            Some(secs) => secs,
            None => PRODUCTION_READ_TIMEOUT_SECS.min(self.seconds / 2),
        };
        if secs == 0 {
            bail!(
                "--seconds {} leaves no room for a read timeout; use at least 2",
                self.seconds
            );
        }
        Ok(Duration::from_secs(secs))
    }
}

pub fn run(args: SampleArgs) -> Result<ExitCode> {
    let read_timeout = args.read_timeout()?;
    let device = BlockDevice::resolve(&args.device)?;
    // Keep the path the admin gave (it may be a by-id link); names and numbers go via /dev.
    let node = if args.device.contains('/') {
        PathBuf::from(&args.device)
    } else {
        device.node()
    };
    let options = SamplerOptions {
        read_timeout,
        ..SamplerOptions::default()
    };
    eprintln!(
        "sampling {device} for {} s (read timeout {} s, threshold {} permille)...",
        args.seconds,
        read_timeout.as_secs(),
        args.threshold
    );
    let report = sample_once(&node, Duration::from_secs(args.seconds), options)?;
    if let SampleOutcome::Failed(why) = &report.outcome {
        bail!("{why}");
    }
    let marginal = report.exceeds(args.threshold);
    print!("{}", render(&device, &report, args.threshold));
    std::io::stdout().flush()?;
    Ok(if marginal {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// The text `marginal sample` prints.
fn render(device: &BlockDevice, report: &SampleReport, threshold: u32) -> String {
    let verdict = if report.exceeds(threshold) {
        format!(
            "marginal (rate {} > threshold {threshold} permille)",
            report.rate_permille
        )
    } else {
        format!(
            "healthy (rate {} <= threshold {threshold} permille)",
            report.rate_permille
        )
    };
    format!(
        "device:     {device}\n\
         block size: {} bytes\n\
         sampled:    {:.1} s\n\
         reads:      {}\n\
         errors:     {}\n\
         timeouts:   {}\n\
         rate:       {} permille\n\
         verdict:    {verdict}\n",
        report.block_size,
        report.elapsed.as_secs_f64(),
        report.reads,
        report.errors,
        report.timeouts,
        report.rate_permille,
    )
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: SampleArgs,
    }

    fn parse(argv: &[&str]) -> Result<SampleArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("sample").chain(argv.iter().copied()))
            .map(|cli| cli.args)
    }

    #[test]
    fn defaults_are_a_quick_strict_check() {
        let args = parse(&["sdb"]).unwrap();
        assert_eq!((args.seconds, args.threshold), (30, 0));
        assert_eq!(args.read_timeout().unwrap(), Duration::from_secs(15));
        let args = parse(&["sdb", "--seconds", "300"]).unwrap();
        assert_eq!(
            args.read_timeout().unwrap(),
            Duration::from_secs(60),
            "the production timeout"
        );
    }

    #[test]
    fn bad_arguments_are_refused() {
        assert!(parse(&["sdb", "--threshold", "1001"]).is_err());
        assert!(parse(&["sdb", "--seconds", "0"]).is_err());
        assert!(
            parse(&["sdb", "--seconds", "5", "--read-timeout", "5"])
                .unwrap()
                .read_timeout()
                .is_err()
        );
        assert!(
            parse(&["sdb", "--seconds", "1"])
                .unwrap()
                .read_timeout()
                .is_err()
        );
        assert_eq!(
            parse(&["sdb", "--seconds", "5", "--read-timeout", "1"])
                .unwrap()
                .read_timeout()
                .unwrap(),
            Duration::from_secs(1)
        );
    }

    #[test]
    fn prints_counts_rate_and_verdict() {
        let device = BlockDevice {
            name: "loop3".into(),
            major: 7,
            minor: 3,
        };
        let report = SampleReport {
            path_key: "/dev/loop3".into(),
            device: "/dev/loop3".into(),
            block_size: 4096,
            reads: 640,
            errors: 64,
            timeouts: 1,
            rate_permille: 100,
            elapsed: Duration::from_millis(2_500),
            outcome: SampleOutcome::Completed,
        };
        let text = render(&device, &report, 50);
        for line in [
            "device:     loop3 (7:3)",
            "reads:      640",
            "errors:     64",
            "timeouts:   1",
            "rate:       100 permille",
            "verdict:    marginal (rate 100 > threshold 50 permille)",
        ] {
            assert!(text.contains(line), "{line:?} missing from\n{text}");
        }
        assert!(render(&device, &report, 100).contains("verdict:    healthy"));
    }
}
