#!/bin/sh
# Fault matrix, device offline while sampled: the B paths of two LUNs flap and are both being
# sampled (runs of 30 s: long enough that a loaded machine still acts mid-run) when LUN 0's path B
# goes offline mid-run (opens and reads fail with ENXIO). marginal must end that run cleanly, keep
# sampling LUN 1's path without a stall, and leave the offline path as dm has it (failed).
# vm-debs: multipath-tools libaio1 liburcu8 libjson-c5 libedit2 udev libkmod2 libacl1 libcap2 libblkid1
# vm-kernels: 6.12 sid
# vm-timeout: 240
. "$VM_LIB"
vm_private_system "$0" "$@"
vm_show_san_on_failure

vm_san_conf
vm_san_up 2
map0=$map
hb0=$hb
nb0=$nb
b0=$b
vm_sd_paths 1
map1=$map
hb1=$hb
nb1=$nb
vm_marginal_conf 60 100 300
VM_MARGINAL_STATE=$VM_MARGINAL_DEFAULT_STATE
VM_MARGINAL_TESTING_FLAGS="--sample-time-for-testing 30 --read-timeout-for-testing 1"
vm_marginal_start

vm_sd_flap "$hb0"
vm_sd_flap "$hb1"
both_failed() {
	vm_read "/dev/mapper/$map0" 2 || true
	vm_read "/dev/mapper/$map1" 2 || true
	vm_marginal_logged "failing $nb0 of $map0: failed twice" && vm_marginal_logged "failing $nb1 of $map1: failed twice"
}
check "both B paths flap: the daemon fails them" vm_wait_for 90 both_failed
check "$nb0 is being sampled" vm_wait_for 10 vm_path_is "$nb0" state sampling
check "$nb1 is being sampled" vm_wait_for 10 vm_path_is "$nb1" state sampling
check "$nb0's run has read" vm_wait_for 5 vm_path_above "$nb0" current_run_reads 0

log "mid-run, $nb0 goes offline"
vm_sd_state "$hb0" offline
t0=$(vm_now)
# Its run either reads on or (had it started much earlier) has ended with a verdict meanwhile.
r1=$(vm_path_field "$nb1" current_run_reads)
sleep 2
r2=$(vm_path_field "$nb1" current_run_reads)
v2=$(vm_path_field "$nb1" last_verdict)
log "$nb1's run: $r1 reads, 2 s later $r2 (verdict so far: $v2)"
progressed() { [ "$r2" -gt "$r1" ] || [ "$v2" != none ]; }
check "$nb1's sampling goes on" progressed
not_sampling() { [ "$(vm_path_field "$nb0" state)" != sampling ]; }
check "$nb0's run ends" vm_wait_for 45 not_sampling
log "$nb0's run ended $(($(vm_now) - t0)) s after it went offline: $(vm_path_field "$nb0" reason)"
check "$nb1's run completes with a verdict" vm_wait_for 60 vm_path_is "$nb1" last_verdict marginal
check "$nb0 stays as dm has it: failed" vm_dm_path_is "$map0" "$b0" F
check "the daemon still answers" vm_path_is "$nb1" failed_by_marginal true
sleep 3
check "$nb0 still failed in dm" vm_dm_path_is "$map0" "$b0" F
vm_read "/dev/mapper/$map0" 8 || fail "reads through $map0 failed"
vm_read "/dev/mapper/$map1" 8 || fail "reads through $map1 failed"
