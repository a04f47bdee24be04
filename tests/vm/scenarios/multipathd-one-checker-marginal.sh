#!/bin/sh
# Issue 13 (a): marginal's settings only in its own /etc/marginal/marginal.conf, multipathd's
# /etc/multipath.conf without any marginal_path_* keyword, both at their default locations
# (Debian's multipathd 0.9.4 with udevd managing map mpvm over two loop-device paths). A path
# that flaps by real dm transitions (failed by I/O, reinstated by multipathd's checker, failed
# again) is checked by marginal alone: marginal fails it through multipathd's socket and samples
# it, and multipathd's log shows none of its own marginal-path checking.
# vm-debs: multipath-tools libaio1 liburcu8 libjson-c5 libedit2 udev libkmod2 libacl1 libcap2 libblkid1
# vm-kernels: 6.12 sid
# vm-timeout: 120
. "$VM_LIB"
vm_private_system "$0" "$@"

MPD_LOG=$SCRATCH/multipathd.log
vm_show_multipathd_on_failure "$MPD_LOG"

vm_mpvm_paths
vm_mpvm_conf
check "multipath.conf has no marginal_path_* keyword" sh -c "! grep -q marginal_path /etc/multipath.conf"
vm_mpvm_start "$MPD_LOG"
check "multipathd runs without marginal-path settings" \
	sh -c "! multipathd show config | grep -E 'marginal_path_[a-z_]+ [0-9]'"

vm_marginal_conf 30 100 8
check "marginal's settings are at the default location" [ -f /etc/marginal/marginal.conf ]
check "config check: one checker per map" marginal config check
vm_marginal_start
check "daemon acts through multipathd" vm_marginal_logged "actuator: multipathd (multipathd answers"
check "daemon read multipathd's running configuration" \
	vm_marginal_logged "multipathd's configuration read to leave it the maps it checks itself: [/etc/multipath.conf] and its running configuration"
check "daemon watches mpvm" vm_marginal_logged "watching map mpvm"
check "nothing left to multipathd" sh -c "! grep -q 'left to multipathd' '$VM_MARGINAL_LOG'"
check "status: checking on for mpvm" sh -c \
	"marginal status --address $VM_MARGINAL_ADDR | grep -q 'map mpvm: .* checking on'"

log "path $nb flaps: two real dm failures with a checker reinstatement between them"
vm_mpvm_flap
check "marginal fails $nb on its double failure" \
	vm_wait_for 10 vm_marginal_logged "failing $nb of mpvm: failed twice within"
check "through multipathd's socket" vm_wait_for 5 grep -q "mpvm: fail path $b (operator)" "$MPD_LOG"
check "marginal's verdict: marginal" vm_wait_for 20 vm_path_is "$nb" state marginal
check "$nb failed in dm" [ "$(vm_path_state mpvm "$b")" = F ]
check "multipathd's log shows none of its own marginal-path checking" \
	sh -c "! grep -aq 'io error statistic' '$MPD_LOG'"
check "the daemon logged no error" vm_marginal_no_errors
