#!/bin/sh
# The daemon on a real map, acting with device-mapper messages (no multipathd here): a flaky path
# (dm-flakey) that dm-mpath fails twice within marginal_path_double_failed_time is failed by the
# daemon, sampled, found marginal and kept out (failed again when someone reinstates it),
# rechecked after the recheck gap while still flaky (still out), and returned once it is healed and
# a recheck passes. The map's data stays intact throughout.
# vm-timeout: 90
. "$VM_LIB"
vm_show_daemon_on_failure

vm_two_path_map
vm_known_data "$mp"

# Window 30 s, threshold 100 permille, recheck gap 4 s; sampling runs of 3 s.
vm_marginal_conf 30 100 4
vm_marginal_start
check "daemon acts with device-mapper messages" vm_marginal_logged "actuator: device-mapper messages"
check "daemon watches mp0" vm_marginal_logged "watching map mp0"
check "daemon sees dm-mpath's path events" vm_marginal_logged "kprobe:dm_path_uevent (live)"
if [ -d /sys/kernel/tracing/events/block/block_rq_error ]; then
	check "this kernel's block_rq_error record has the compiled-in layout" \
		vm_marginal_logged "block:block_rq_error (live, record offsets compiled in)"
else
	# 5.10: block_rq_error came in 5.18.
	check "no block_rq_error on this kernel: block_rq_complete is live instead" \
		vm_marginal_logged "block:block_rq_complete (live"
fi
check "$nb starts healthy" vm_path_is "$nb" state healthy

log "path_b turns flaky (dm-flakey: up 1 s, down 1 s)"
vm_flaky_path path_b 1 1
check "first failure: dm-mpath fails path_b under I/O" vm_fail_by_io mp0 "$b" 20
check "daemon counts it: $nb suspect" vm_wait_for 10 vm_path_is "$nb" state suspect
check "one failure fails nothing" vm_path_is "$nb" failed_by_marginal false
log "reinstating path_b, as a path checker would"
vm_reinstate mp0 "$b"
check "path_b active again" [ "$(vm_path_state mp0 "$b")" = A ]
# Held past the episode gap (1 s): a re-fail sooner is the same outage, not a second failure.
sleep 1.2

check "second failure within the window" vm_fail_by_io mp0 "$b" 20
check "daemon fails $nb" vm_wait_for 10 vm_marginal_logged "failing $nb of mp0: failed twice within"
check "daemon samples $nb" vm_wait_for 10 vm_marginal_logged "sampling $nb for 3s"
reaction=$(vm_path_field "$nb" last_reaction_seconds)
log "the daemon's reaction, by its own account: $reaction s"
check "it reports its reaction time, under a second" awk -v r="$reaction" 'BEGIN { exit !(r > 0 && r < 1) }'
check "verdict: marginal" vm_wait_for 20 vm_path_is "$nb" last_verdict marginal
check "$nb held out" vm_path_is "$nb" failed_by_marginal true
rate=$(vm_path_field "$nb" last_rate_permille)
log "$nb: $(vm_path_field "$nb" reason)"
check "rate $rate permille is above the threshold" [ "$rate" -gt 100 ]
check "path_b failed in dm" [ "$(vm_path_state mp0 "$b")" = F ]
check "path_a still active" [ "$(vm_path_state mp0 "$a")" = A ]
check "reads through the map work" vm_read "$mp" 16

log "reinstating the held-out path_b by hand: the daemon must take it out again"
vm_reinstate mp0 "$b"
check "daemon fails it again" vm_wait_for 10 vm_marginal_logged "failing $nb of mp0: reinstated by someone else"
check "path_b failed in dm again" vm_wait_for 5 sh -c "dmsetup status mp0 | grep -q ' $b F '"

check "recheck after the gap" vm_wait_for 20 vm_marginal_logged "sampling $nb for 3s: recheck gap elapsed"
check "still flaky: the recheck says marginal again" \
	vm_wait_for 10 vm_marginal_logged_times 2 "$nb: sampling -> marginal"
check "two runs so far" vm_path_is "$nb" sampling_runs 2
check "path_b still out" [ "$(vm_path_state mp0 "$b")" = F ]
check "not returned yet" [ "$(vm_marginal_logged_count "returning $nb")" = 0 ]

log "healing path_b"
vm_heal_path path_b
check "a recheck passes and the daemon returns $nb" vm_wait_for 20 vm_path_is "$nb" state healthy
check "daemon logged the return" vm_marginal_logged "returning $nb to mp0: passed"
check "path_b active in dm" [ "$(vm_path_state mp0 "$b")" = A ]
check "$nb no longer held out" vm_path_is "$nb" failed_by_marginal false
check "state file empty" sh -c "! grep -q '$nb' $SCRATCH/held.json"
check "reads through the map work over both paths" vm_read "$mp" 16
check "path_b stays active under I/O" [ "$(vm_path_state mp0 "$b")" = A ]
check "data intact" [ "$(vm_md5 "$mp" 262144)" = "$want" ]
vm_marginal_logged_count "failing $nb" | sed 's/^/daemon fail_path count: /'
check "the daemon logged no error" vm_marginal_no_errors
