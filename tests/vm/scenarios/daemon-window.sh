#!/bin/sh
# The daemon leaves alone a path that fails twice further apart than
# marginal_path_double_failed_time (4 s here): after a broken path fails, is reinstated and fails
# again 5 s later, it is only suspect, active once reinstated, and nothing was failed. Two more
# failures in quick succession are a double failure: the daemon was watching all along. (The
# window leaves the quick pair 4 s: a loaded emulated CPU once took 2.07 s over it.)
# vm-timeout: 60
. "$VM_LIB"
vm_show_daemon_on_failure

vm_two_path_map

vm_marginal_conf 4 100 4
# A short episode gap: the quick third and fourth failures below are two, not one outage.
vm_marginal_start --episode-gap-ms 300
check "daemon acts with device-mapper messages" vm_marginal_logged "actuator: device-mapper messages"

log "path_b breaks (error target)"
vm_break_path path_b
check "first failure" vm_fail_by_io mp0 "$b" 10
vm_reinstate mp0 "$b"
check "daemon counts it: $nb suspect" vm_wait_for 10 vm_path_is "$nb" state suspect
log "waiting 5 s: longer than the 4 s window"
sleep 5
check "second failure, 5 s after the first" vm_fail_by_io mp0 "$b" 10
vm_reinstate mp0 "$b"
check "daemon counted two failures" vm_wait_for 10 vm_path_is "$nb" kernel_failures 2
# Time for the daemon to act if it were going to.
sleep 2
check "path_b active" [ "$(vm_path_state mp0 "$b")" = A ]
check "no double failure in the kernel" vm_path_is "$nb" kernel_double_failures 0
check "$nb only suspect (the second failure opened a new window)" vm_path_is "$nb" state suspect
check "nothing sampled" vm_path_is "$nb" sampling_runs 0
check "nothing failed by the daemon" vm_path_is "$nb" failed_by_marginal false
check "daemon logged no 'failing'" [ "$(vm_marginal_logged_count "failing ")" = 0 ]
check "state file lists nothing" sh -c "[ ! -s $SCRATCH/held.json ] || ! grep -q '$nb' $SCRATCH/held.json"

log "two more failures in quick succession"
check "third failure" vm_fail_by_io mp0 "$b" 10
vm_reinstate mp0 "$b"
# Past the episode gap (0.3 s here), inside the 4 s window.
sleep 0.5
check "fourth failure" vm_fail_by_io mp0 "$b" 10
check "daemon fails $nb now" vm_wait_for 10 vm_marginal_logged "failing $nb of mp0: failed twice within"
check "$nb held out" vm_wait_for 5 vm_path_is "$nb" failed_by_marginal true
check "path_a still active" [ "$(vm_path_state mp0 "$a")" = A ]
check "the daemon logged no error" vm_marginal_no_errors
