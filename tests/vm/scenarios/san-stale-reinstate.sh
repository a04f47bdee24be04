#!/bin/sh
# Fault matrix, an outage with a stale reinstatement: path B is down (every command fails, TUR
# too) and is put back in dm without having worked, as multipathd does on a checker result taken
# before the outage; the next I/O fails it again, well past the episode gap. The SCSI midlayer
# counted no command succeeding on B in between: marginal must take that for the one outage it
# is, start nothing and hold nothing. Then a genuine second failure: B comes back (the checker's
# TUR passes, multipathd reinstates it) and goes down again within the window: that one is a
# double failure, and marginal must check B, keep it out while it is down and return it after.
# vm-debs: multipath-tools libaio1 liburcu8 libjson-c5 libedit2 udev libkmod2 libacl1 libcap2 libblkid1
# vm-kernels: 6.12 sid
# vm-timeout: 180
. "$VM_LIB"
vm_private_system "$0" "$@"
vm_show_san_on_failure

vm_san_conf
vm_san_up 1
vm_marginal_conf 120 100 6
VM_MARGINAL_STATE=$VM_MARGINAL_DEFAULT_STATE
vm_marginal_start
check "daemon watches $map" vm_marginal_logged "watching map $map"

log "path B goes down: every command fails, TUR too"
vm_sd_down "$hb"
check "dm-mpath fails $nb under I/O" vm_io_until 30 "$map" vm_dm_path_is "$map" "$b" F
check "daemon counts one failure" vm_wait_for 15 vm_path_is "$nb" kernel_failures 1
sleep 2 # past the episode gap: the re-fail below is not caught by timing
log "$nb is put back without having worked (a stale check), and fails again"
dmsetup message "$map" 0 reinstate_path "$b"
check "dm fails $nb again" vm_io_until 30 "$map" vm_dm_path_is "$map" "$b" F
check "the kernel paired the two failures" vm_wait_for 15 vm_path_is "$nb" kernel_double_failures 1
check "the daemon takes them for one outage" \
	vm_wait_for 15 vm_marginal_logged "$nb: failed again with no command succeeding on it"
check "status counts one re-fail of the same outage" vm_path_is "$nb" same_outage_refails 1
check "no sampling run" vm_path_is "$nb" sampling_runs 0
check "the daemon failed nothing" [ "$(vm_marginal_logged_count "failing $nb")" = 0 ]
check "$nb not held" vm_path_is "$nb" failed_by_marginal false

log "path B comes back: the checker's TUR passes and multipathd reinstates it"
vm_sd_heal "$hb"
check "multipathd reinstates $nb" vm_wait_for 30 vm_dm_path_is "$map" "$b" A
log "path B goes down again, within the window: it worked in between, so this is a second failure"
vm_sd_down "$hb"
check "the daemon fails $nb on its double failure" \
	vm_io_until 40 "$map" vm_marginal_logged "failing $nb of $map: failed twice within"
check "$nb held out" vm_wait_for 10 vm_path_is "$nb" failed_by_marginal true
check "verdict: marginal while it is down" vm_wait_for 30 vm_path_is "$nb" last_verdict marginal
vm_sd_heal "$hb"
check "a recheck passes and the daemon returns $nb" vm_wait_for 40 vm_marginal_logged "returning $nb to $map: passed"
check "$nb active in dm" vm_wait_for 10 vm_dm_path_is "$map" "$b" A
check "the daemon logged no error" vm_marginal_no_errors
