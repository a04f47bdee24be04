#!/bin/sh
# Fault matrix, read timeouts: path B is held out (it flapped), then its fault changes: the next
# READ on it is never answered (SCSI error handling aborts and retries it after the device's 3 s
# timeout). The recheck's sampling runs meet that read: marginal must count the timed-out read
# once (one error, one timeout, however long it stays pending) and judge the run on it: one error
# among all the run's reads is far below the threshold, so the path passes and returns.
# vm-debs: multipath-tools libaio1 liburcu8 libjson-c5 libedit2 udev libkmod2 libacl1 libcap2 libblkid1
# vm-kernels: 6.12 sid
# vm-timeout: 150
. "$VM_LIB"
vm_private_system "$0" "$@"
vm_show_san_on_failure

vm_san_conf
vm_san_up 1
vm_marginal_conf 60 100 8
VM_MARGINAL_STATE=$VM_MARGINAL_DEFAULT_STATE
vm_marginal_start

vm_sd_flap "$hb"
check "path B flaps: the daemon fails it" \
	vm_io_until 60 "$map" vm_marginal_logged "failing $nb of $map: failed twice within"
check "verdict: marginal" vm_wait_for 20 vm_path_is "$nb" last_verdict marginal
errors0=$(vm_path_field "$nb" sampling_errors)
timeouts0=$(vm_path_field "$nb" sampling_timeouts)
reads0=$(vm_path_field "$nb" sampling_reads)
log "after the first run: $reads0 reads, $errors0 errors, $timeouts0 timeouts"
check "no timeout in a run of fast errors" [ "$timeouts0" = 0 ]

log "B's fault changes: no more errors, but the next READ is never answered"
vm_sd_heal "$hb"
vm_sd_read_timeouts "$hb" 1
check "the recheck runs" vm_wait_for 30 vm_marginal_logged "sampling $nb for 3s: recheck gap elapsed"
check "and passes: the daemon returns $nb" vm_wait_for 30 vm_marginal_logged "returning $nb to $map: passed"
# The aborted read may still be retried after the run: wait for the SCSI timeout to pass before
# reading the counters for good.
sleep 5
errors=$(($(vm_path_field "$nb" sampling_errors) - errors0))
timeouts=$(($(vm_path_field "$nb" sampling_timeouts) - timeouts0))
reads=$(($(vm_path_field "$nb" sampling_reads) - reads0))
log "the recheck: $reads reads, $errors errors, $timeouts timeouts, rate $(vm_path_field "$nb" last_rate_permille) permille"
check "the timed-out read counted as one timeout" [ "$timeouts" = 1 ]
check "and as one error" [ "$errors" = 1 ]
check "judged on it: rate $(vm_path_field "$nb" last_rate_permille) = errors * 1000 / reads" \
	[ "$(vm_path_field "$nb" last_rate_permille)" = $((errors * 1000 / reads)) ]
check "verdict: healthy" vm_path_is "$nb" last_verdict healthy
check "$nb active in dm" vm_wait_for 10 vm_dm_path_is "$map" "$b" A
check "the rule was used up: no READ left to time out" [ "$(vm_sd_rules_left "$hb" 0)" = 0 ]
check "the daemon logged no error" vm_marginal_no_errors
