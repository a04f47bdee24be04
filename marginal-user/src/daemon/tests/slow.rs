//! Slow paths through the daemon: latency measuring follows the configuration, a window that
//! finds a path slow takes it out, its run's latency keeps it out as "slow", a fast recheck
//! returns it.
use super::*;
use crate::engine::Timestamp;

const SLOW_CONFIG: &str = "defaults {
    marginal_path_double_failed_time 60
    marginal_path_err_sample_time 120
    marginal_path_err_rate_threshold 100
    marginal_path_err_recheck_gap_time 300
    marginal_path_slow_factor 3
    marginal_path_slow_window 30
}
";

fn slow_bed() -> Bed {
    let mut bed = bed(Options::default());
    bed.daemon
        .set_config(Config::parse_str("test.conf", SLOW_CONFIG).unwrap());
    let now = bed.at();
    bed.daemon.reapply_all(now).unwrap();
    bed
}

fn tick(bed: &mut Bed, secs: u64) {
    bed.now += secs;
    let now: Timestamp = bed.at();
    bed.daemon.on_latency_tick(now);
}

#[test]
fn latency_is_measured_only_where_slow_checking_is_on() {
    let plain = bed(Options::default());
    assert!(!plain.kernel.measures_latency(dev(SDA)));
    let bed = slow_bed();
    assert!(bed.kernel.measures_latency(dev(SDA)));
    assert!(bed.kernel.measures_latency(dev(SDB)));
}

#[test]
fn a_slow_path_is_taken_out_kept_out_while_slow_and_returned_when_fast() {
    let mut bed = slow_bed();
    tick(&mut bed, 1); // the first window starts
    bed.kernel.complete_reads(dev(SDA), 500, 2);
    bed.kernel.complete_reads(dev(SDB), 500, 100);
    tick(&mut bed, 10);
    assert_eq!(bed.fails("sdb"), 0, "judged before the window ended");
    tick(&mut bed, 20);
    assert_eq!(bed.fails("sdb"), 1);
    assert_eq!(bed.fails("sda"), 0);
    assert_eq!(bed.state("sdb"), StateName::Sampling);
    assert_eq!(
        *bed.sampler.one_at_a_time.lock().unwrap(),
        ["sdb"],
        "a slow path is read one block at a time"
    );
    assert!(
        matches!(
            bed.daemon
                .latency_comparison("mpatha", &PathKey::from("sdb")),
            Some(crate::engine::Comparison::Slow { .. })
        ),
        "status shows the comparison"
    );

    // Its sampling reads are still slow: out, as "slow".
    bed.kernel.complete_reads(dev(SDB), 200, 90);
    bed.later(10);
    bed.report("sdb", 200, 0);
    assert_eq!(bed.state("sdb"), StateName::Slow);
    assert_eq!(bed.reinstates("sdb"), 0);

    // The recheck after the gap reads fast: back in service.
    bed.later(300);
    assert_eq!(bed.state("sdb"), StateName::Sampling);
    bed.kernel.complete_reads(dev(SDB), 200, 2);
    bed.later(10);
    bed.report("sdb", 200, 0);
    assert_eq!(bed.state("sdb"), StateName::Healthy);
    assert_eq!(bed.reinstates("sdb"), 1);
}

#[test]
fn equally_slow_paths_and_an_idle_map_judge_nothing() {
    let mut bed = slow_bed();
    tick(&mut bed, 1);
    bed.kernel.complete_reads(dev(SDA), 500, 300);
    bed.kernel.complete_reads(dev(SDB), 500, 310);
    tick(&mut bed, 30);
    tick(&mut bed, 30); // an idle window
    assert_eq!(bed.fails("sda") + bed.fails("sdb"), 0);
    assert_eq!(bed.state("sda"), StateName::Healthy);
    assert_eq!(bed.state("sdb"), StateName::Healthy);
}
