//! Actuator calls made off the event loop: what holds while one is under way.
use super::*;

const SDA: (u32, u32) = (8, 0);

fn deferred_bed() -> (Bed, Deferred) {
    let deferred = Deferred::default();
    let bed = bed(Options {
        runner: Some(Box::new(deferred.clone())),
        ..Default::default()
    });
    (bed, deferred)
}

#[test]
fn sampling_starts_while_the_fail_is_under_way_and_its_outcome_settles_it() {
    let (mut bed, deferred) = deferred_bed();
    bed.double_failure(SDA);
    assert_eq!(
        deferred.waiting(),
        1,
        "the fail is handed off, not made in place"
    );
    assert_eq!(bed.fails("sda"), 0);
    assert_eq!(
        *bed.sampler.started.lock().unwrap(),
        vec!["sda".to_string()],
        "the path is sampled without waiting for multipathd's answer"
    );
    assert!(
        bed.state_file_lists("sda"),
        "the state file has the path before the call is made"
    );
    assert!(bed.kernel.control_of(dev(SDA)).own_fail_until_ns > 0);

    let now = bed.at();
    deferred.finish(&mut bed.daemon, now);
    assert_eq!(bed.fails("sda"), 1);
    assert!(bed.daemon.in_flight.is_empty());
    assert_eq!(
        bed.kernel.control_of(dev(SDA)).own_fail_until_ns,
        0,
        "the announcement is withdrawn once the fail is done"
    );
    let totals = &bed.daemon.totals[&PathKey::from("sda")];
    assert_eq!(totals.failed_by_daemon, 1);
    assert!(
        totals.last_reaction.is_some(),
        "the reaction is measured to the fail's outcome, not lost with the batch"
    );
}

#[test]
fn a_return_decided_while_the_fail_is_under_way_follows_it() {
    let (mut bed, deferred) = deferred_bed();
    bed.double_failure(SDA);
    bed.report("sda", 100, 0); // healthy before multipathd answered the fail
    assert_eq!(bed.state("sda"), StateName::Healthy);
    assert_eq!(
        bed.reinstates("sda"),
        0,
        "nothing overtakes the fail under way"
    );
    assert_eq!(deferred.waiting(), 1);

    let now = bed.at();
    deferred.finish(&mut bed.daemon, now);
    assert_eq!(
        bed.actuator.calls(),
        vec![Call::Fail("sda".into()), Call::Reinstate("sda".into())],
        "the return waited for the fail and then put the path back"
    );
    assert!(bed.dm.is_active(SDA));
    assert!(!bed.state_file_lists("sda"));
    assert!(bed.daemon.in_flight.is_empty());
}

#[test]
fn a_refused_fail_under_way_is_retried() {
    let (mut bed, deferred) = deferred_bed();
    bed.actuator.refuse(1);
    bed.double_failure(SDA);
    let now = bed.at();
    deferred.finish(&mut bed.daemon, now);
    assert!(bed.daemon.retries.contains_key(&PathKey::from("sda")));
    assert_eq!(bed.daemon.actuator_errors, 1);

    bed.later(2);
    assert_eq!(deferred.waiting(), 1, "the retry is handed off too");
    let now = bed.at();
    deferred.finish(&mut bed.daemon, now);
    assert_eq!(bed.fails("sda"), 2);
    assert!(bed.daemon.retries.is_empty());
    assert!(!bed.dm.is_active(SDA));
    assert!(bed.state_file_lists("sda"));
}

#[test]
fn asking_again_for_the_fail_under_way_adds_nothing() {
    let (mut bed, deferred) = deferred_bed();
    bed.double_failure(SDA);
    // multipathd's checker puts the path back from a stale result: the resync sees a held
    // path active in dm and would fail it again, but that fail is under way already.
    bed.dm.set_active(SDA, true);
    bed.rediscover();
    assert_eq!(deferred.waiting(), 1);
    let now = bed.at();
    deferred.finish(&mut bed.daemon, now);
    assert_eq!(bed.fails("sda"), 1);
    assert!(!bed.dm.is_active(SDA));
    bed.rediscover();
    assert_eq!(
        deferred.waiting(),
        0,
        "dm shows it out now: nothing more to do"
    );
}
