#!/bin/sh
# One ordinary outage of a path is one failure, not a double failure (issue 11). Debian's
# multipathd manages mpvm with its directio checker reading every path every second; path b
# breaks, dm-mpath fails it once (one PATH_FAILED), and it stays down for 16 s while the checker
# keeps reading it (every read an I/O error). Then it heals and multipathd reinstates it by itself.
# marginal counts one failure and the checker's errors as I/O errors only: it starts no check,
# sends no `fail path`, samples nothing. A second failure within the window after that (a flap)
# does start a check, and marginal's own `fail path` is not counted as a failure.
# vm-debs: multipath-tools libaio1 liburcu8 libjson-c5 libedit2 udev libkmod2 libacl1 libcap2 libblkid1
# vm-timeout: 200
. "$VM_LIB"
vm_private_system "$0" "$@"
vm_mpvm_up
vm_show_multipathd_on_failure "$MPD_LOG"

vm_marginal_conf 30 100 8
vm_marginal_start $VM_OUTAGE_GAP
check "daemon acts through multipathd" vm_marginal_logged "actuator: multipathd (multipathd answers"
check "failures are dm-mpath's transitions" vm_marginal_logged "path failures from: dm-mpath's PATH_FAILED via the dm_path_uevent kprobe"

log "pdev_b breaks; I/O through the map fails $nb once"
vm_break_mpvm_b_by_io || fail "dm-mpath did not fail $nb"
down=$(vm_now)
check "daemon counts one failure" vm_wait_for 10 vm_path_is "$nb" kernel_failures 1
check "$nb suspect" vm_path_is "$nb" state suspect
log "the outage lasts 16 s; multipathd's checker reads $nb every second meanwhile"
# multipathd may put the path back for a moment right after dm failed it (its checker's result
# from before the failure, still "up" while the new check is pending under emulation), and the
# next read fails it again: dm's state may flicker, marginal's count may not.
while [ "$(vm_now)" -lt $((down + 16)) ]; do
	vm_path_is "$nb" kernel_failures 1 || fail "a second failure was counted: $(vm_path_field "$nb" kernel_failures)"
	sleep 1
done
check "dm has $nb failed at the end of the outage" vm_wait_for 10 vm_dm_path_is mpvm "$b" F
errors=$(vm_path_field "$nb" kernel_io_errors)
log "$nb: $errors I/O errors counted during the outage, 1 failure"
check "the checker's failed reads were counted as I/O errors" [ "$errors" -gt 3 ]
check "still one failure" vm_path_is "$nb" kernel_failures 1
check "failure signal: the kprobe" vm_path_is "$nb" failure_signal dm_kprobe

log "pdev_b heals; multipathd reinstates $nb by itself"
vm_heal_path pdev_b
check "multipathd's checker reinstates $nb" vm_wait_for 20 sh -c "dmsetup status mpvm | grep -q ' $b A '"
check "no check started" [ "$(vm_marginal_logged_count "failing $nb")" = 0 ]
check "nothing sampled" [ "$(vm_marginal_logged_count "sampling $nb")" = 0 ]
check "no fail path through multipathd" sh -c "! grep -q 'fail path $b (operator)' $MPD_LOG"
check "$nb never held" vm_path_is "$nb" failed_by_marginal false
check "state file lists nothing" sh -c "[ ! -s $SCRATCH/held.json ] || ! grep -q '\"$nb\"' $SCRATCH/held.json"
check "reads through the map work" vm_read "$mp" 16
check "data intact" [ "$(vm_md5 "$mp" 262144)" = "$want" ]

log "a flap: $nb fails again within the 30 s window after its reinstatement (fail, reinstate, fail)"
vm_break_mpvm_b_by_io || fail "dm-mpath did not fail $nb again"
check "two dm transitions inside the window start a check" vm_wait_for 10 vm_marginal_logged "failing $nb of mpvm: failed twice within"
check "through multipathd's socket" vm_wait_for 5 grep -q "mpvm: fail path $b (operator)" "$MPD_LOG"
sleep 2
check "two failures in all (marginal's own fail, and its sampling reads, are none)" vm_path_is "$nb" kernel_failures 2
check "the daemon logged no error" vm_marginal_no_errors
