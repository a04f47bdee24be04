#!/bin/sh
# A path marginal holds out stays out through everything that puts paths back in service
# (issue 12): a table reload, `multipathd reconfigure`, multipathd stopping (marginal then acts
# with dm messages), multipathd starting after marginal, and multipathd restarting. Throughout,
# path b is healed, so anything that reinstated it would leave it active: only marginal keeps
# it out, and `marginal status` keeps reporting it held.
# vm-debs: multipath-tools libaio1 liburcu8 libjson-c5 libedit2 udev libkmod2 libacl1 libcap2 libblkid1
# vm-timeout: 200
. "$VM_LIB"
vm_private_system "$0" "$@"
vm_mpvm_up
vm_show_multipathd_on_failure "$MPD_LOG"

# Recheck gap 600 s: once marginal, the path stays held for the whole scenario.
vm_marginal_conf 30 100 600
vm_marginal_start
check "daemon acts through multipathd" vm_marginal_logged "actuator: multipathd (multipathd answers"

log "$nb flaps: fails by I/O, the checker reinstates it, fails again"
vm_break_mpvm_b_by_io || fail "first failure"
vm_heal_path pdev_b
check "the checker reinstates it" vm_wait_for 20 sh -c "dmsetup status mpvm | grep -q ' $b A '"
# Past the episode gap (1 s) since the first failure: a re-fail sooner is the same outage (CI
# once saw the checker put the path back 0.9 s after it failed, and the re-fail counted as one).
sleep 1.2
vm_break_mpvm_b_by_io || fail "second failure"
check "marginal fails $nb" vm_wait_for 10 vm_marginal_logged "failing $nb of mpvm: failed twice within"
check "verdict: marginal" vm_wait_for 30 vm_path_is "$nb" state marginal
vm_heal_path pdev_b
log "pdev_b healed: from now on only marginal keeps $nb out"

# held_out_ok WHAT: b is failed in dm within 15 s and stays so for 5 s; marginal still holds it.
held_out_ok() {
	check "$1: $nb failed in dm" vm_wait_for 15 sh -c "dmsetup status mpvm | grep -q ' $b F '"
	check "$1: and it stays failed" vm_stays F 5 mpvm "$b"
	check "$1: marginal reports it held" vm_path_is "$nb" failed_by_marginal true
	check "$1: still marginal" vm_path_is "$nb" state marginal
}

log "a table reload (what a resize or a path add does): every path active again, no event"
dmsetup table mpvm >"$SCRATCH/mpvm.table"
dmsetup suspend mpvm
dmsetup load mpvm "$SCRATCH/mpvm.table"
dmsetup resume mpvm
held_out_ok "after a table reload"

log "multipathd reconfigure"
multipathd reconfigure
sleep 3
held_out_ok "after multipathd reconfigure"

log "multipathd stops: marginal must act with device-mapper messages"
vm_multipathd_stop
check "marginal notices" vm_wait_for 15 vm_marginal_logged "multipathd stopped: acting with device-mapper messages"
log "a table reload while multipathd is away"
dmsetup table mpvm >"$SCRATCH/mpvm.table"
dmsetup suspend mpvm
dmsetup load mpvm "$SCRATCH/mpvm.table"
dmsetup resume mpvm
held_out_ok "with multipathd away"
check "marginal failed it again itself" vm_marginal_logged "dm has it in service"

log "multipathd starts after marginal: its fresh checker would reinstate the healed $nb"
mark=$(wc -l <"$MPD_LOG")
vm_multipathd_start 1
check "marginal notices" vm_wait_for 15 vm_marginal_logged "multipathd started: acting through it"
check "and tells multipathd" vm_wait_for 10 sh -c "tail -n +$mark $MPD_LOG | grep -q 'mpvm: fail path $b (operator)'"
held_out_ok "after multipathd started"

log "multipathd restarts"
mark=$(wc -l <"$MPD_LOG")
kill "$VM_MPD_PID"
vm_wait_for 20 sh -c "! kill -0 $VM_MPD_PID 2>/dev/null" || fail "multipathd did not stop"
vm_multipathd_start 1
check "the new multipathd is told too" vm_wait_for 20 sh -c "tail -n +$mark $MPD_LOG | grep -q 'mpvm: fail path $b (operator)'"
held_out_ok "after a multipathd restart"
check "its checker is disabled for $nb" vm_wait_for 10 sh -c "tail -n +$mark $MPD_LOG | grep -q '$nb - directio checker is disabled'"

check "reads through the map work" vm_read "$mp" 16
check "data intact" [ "$(vm_md5 "$mp" 262144)" = "$want" ]
check "the daemon logged no error" vm_marginal_no_errors
