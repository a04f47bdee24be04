#!/bin/sh
# Fault matrix, one sustained outage: every command on path B, TUR included, fails for 20 s, then
# the path is back. dm-mpath fails B once and multipathd's checker keeps it failed while TUR fails:
# that is one failure, however many reads and checks fail meanwhile. marginal must start nothing;
# multipathd reinstates B once it answers again.
# vm-debs: multipath-tools libaio1 liburcu8 libjson-c5 libedit2 udev libkmod2 libacl1 libcap2 libblkid1
# vm-kernels: 6.12 sid
# vm-timeout: 150
. "$VM_LIB"
vm_private_system "$0" "$@"
vm_show_san_on_failure

vm_san_conf
vm_san_up 1
# A window far longer than the outage: one outage must not look like two failures in it.
vm_marginal_conf 120 100 6
VM_MARGINAL_STATE=$VM_MARGINAL_DEFAULT_STATE
vm_marginal_start $VM_OUTAGE_GAP
check "daemon watches $map" vm_marginal_logged "watching map $map"

log "path B goes down: every command fails, TUR too"
vm_sd_down "$hb"
check "dm-mpath fails $nb under I/O" vm_io_until 30 "$map" vm_dm_path_is "$map" "$b" F
down=$(vm_now)
check "daemon counts one failure" vm_wait_for 15 vm_path_is "$nb" kernel_failures 1
log "20 s of outage with I/O through the map and the checker failing its TURs"
while [ "$(vm_now)" -lt $((down + 20)) ]; do
	vm_read "/dev/mapper/$map" 4 || fail "a read through the map failed (path A is up)"
	# dm's state of the path may flicker (multipathd putting it back on a checker result from
	# before the outage, the next read failing it again); marginal's count may not.
	vm_path_is "$nb" kernel_failures 1 || fail "a second failure was counted: $(vm_path_field "$nb" kernel_failures)"
	sleep 0.5
done
check "dm has $nb failed at the end of the outage" vm_wait_for 10 vm_dm_path_is "$map" "$b" F
check "multipathd's checker sees $nb down" sh -c "multipathd show paths format '%d %t %T' | grep -E '$nb +(failed|active) +(faulty|shaky)'"
log "path B comes back"
vm_sd_heal "$hb"
check "multipathd reinstates $nb" vm_wait_for 30 vm_dm_path_is "$map" "$b" A
vm_io "$map" 3
log "$nb by the daemon's account: failures $(vm_path_field "$nb" kernel_failures), I/O errors $(vm_path_field "$nb" kernel_io_errors), state $(vm_path_field "$nb" state)"
check "one outage is one failure" vm_path_is "$nb" kernel_failures 1
check "no double failure" vm_path_is "$nb" kernel_double_failures 0
check "no sampling run" vm_path_is "$nb" sampling_runs 0
check "the daemon failed nothing" [ "$(vm_marginal_logged_count "failing $nb")" = 0 ]
check "$nb not held" vm_path_is "$nb" failed_by_marginal false
check "$nb active in dm" vm_dm_path_is "$map" "$b" A
check "the daemon logged no error" vm_marginal_no_errors
