#!/bin/sh
# Issue 13 (b): the same marginal_path_* settings in marginal's /etc/marginal/marginal.conf and
# in multipathd's /etc/multipath.conf (both default locations; Debian's multipathd 0.9.4 with
# udevd managing map mpvm over two loop-device paths). multipathd checks mpvm itself, so
# marginal acts on nothing there and says why (start-up log, status, metric, config check with
# the multipath.conf lines); a path that flaps by real dm transitions is taken up by
# multipathd's own io_err_stat checking, and marginal fails nothing.
# vm-debs: multipath-tools libaio1 liburcu8 libjson-c5 libedit2 udev libkmod2 libacl1 libcap2 libblkid1
# vm-kernels: 6.12 sid
# vm-timeout: 150
. "$VM_LIB"
vm_private_system "$0" "$@"

MPD_LOG=$SCRATCH/multipathd.log
vm_show_multipathd_on_failure "$MPD_LOG"

vm_mpvm_paths
# multipathd's io_err_stat waits for the monotonic clock to pass the recheck gap before it
# samples (need_io_err_check): in a guest booted seconds ago it would wait for that instead.
while [ "$(vm_now)" -le 15 ]; do sleep 1; done
vm_mpvm_conf "marginal_path_double_failed_time 30
	marginal_path_err_sample_time 120
	marginal_path_err_rate_threshold 100
	marginal_path_err_recheck_gap_time 8"
vm_mpvm_start "$MPD_LOG"
check "multipathd runs with its marginal-path settings" \
	sh -c "multipathd show config | grep -q 'marginal_path_double_failed_time 30'"

vm_marginal_conf 30 100 8
config_check=$(marginal config check 2>&1) && fail "config check passed with two checkers: $config_check"
echo "$config_check"
line=$(grep -n marginal_path_double_failed_time /etc/multipath.conf | cut -d: -f1)
check "config check names the multipath.conf line to delete" \
	vm_contains "$config_check" "/etc/multipath.conf:$line (defaults): marginal_path_double_failed_time 30"

vm_marginal_start
check "daemon read multipathd's running configuration" \
	vm_marginal_logged "multipathd's configuration read to leave it the maps it checks itself: [/etc/multipath.conf] and its running configuration"
check "start-up log: mpvm left to multipathd, with the line" \
	vm_marginal_logged "map mpvm: acting on nothing, left to multipathd: multipathd checks this map itself (marginal_path_* checking is on; set by marginal_path_double_failed_time 30 at /etc/multipath.conf:$line (defaults)"
json=$(marginal status --address "$VM_MARGINAL_ADDR" --json)
check "status JSON: left to multipathd (marginal_path)" vm_contains "$json" '"left_to_multipathd": "marginal_path"'
check "status JSON: checking off" vm_contains "$json" '"checking": false'
table=$(marginal status --address "$VM_MARGINAL_ADDR")
echo "$table" | head -n 3
check "status table says why" vm_contains "$table" "checking off (left to multipathd: multipathd checks this map itself"
metrics=$(wget -q -O - "http://$VM_MARGINAL_ADDR/metrics")
check "metric: mpvm left to multipathd" \
	vm_contains "$metrics" 'marginal_map_left_to_multipathd{map="mpvm",reason="marginal_path"} 1'

log "path $nb flaps: two real dm failures with a checker reinstatement between them"
vm_mpvm_flap
vm_flaky_path pdev_b 3 1
check "multipathd checks $nb itself (io_err_stat)" \
	vm_wait_for 60 grep -aq "io error statistic: mpvm: enqueue path $nb to check" "$MPD_LOG"
grep -a "io error statistic" "$MPD_LOG" | head -n 5
check "marginal failed nothing" sh -c "! grep -q 'failing ' '$VM_MARGINAL_LOG'"
check "marginal sampled nothing" sh -c "! grep -q 'sampling $nb for' '$VM_MARGINAL_LOG'"
# (multipathd logs every socket command with "(operator)": marginal's own `show config` too.)
check "no fail/reinstate through multipathd's socket" sh -c "! grep -aE ': (fail|reinstate) path ' '$MPD_LOG'"
check "multipathd holds $nb as marginal itself" vm_wait_for 20 grep -aq "$nb: path is now marginal" "$MPD_LOG"
check "marginal's status: $nb never held out by marginal" vm_path_is "$nb" failed_by_marginal false
check "the daemon logged no error" vm_marginal_no_errors
