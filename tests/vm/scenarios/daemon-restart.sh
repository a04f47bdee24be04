#!/bin/sh
# No path the daemon failed is forgotten: the daemon fails a broken path_b (its state file lists
# it) and is killed with SIGKILL right after, while it samples the path; path_b stays failed.
# Restarted with the same state file, it takes path_b up again, samples it, keeps it out while it
# is still broken, and returns it once healed and a recheck passes.
# vm-kernels: 5.10 6.12 sid
# vm-timeout: 90
. "$VM_LIB"
vm_show_daemon_on_failure

vm_two_path_map

vm_marginal_conf 30 100 4
vm_marginal_start

vm_fail_path_b_twice
check "daemon fails $nb" vm_wait_for 10 vm_marginal_logged "failing $nb of mp0: failed twice within"
check "state file lists $nb" vm_wait_for 5 grep -q "\"$nb\"" "$SCRATCH/held.json"
echo "state file: $(tr -d " \n" <"$SCRATCH/held.json")"
log "SIGKILL to the daemon (pid $VM_MARGINAL_PID) right after it failed $nb (state: $(vm_path_field "$nb" state))"
kill -9 "$VM_MARGINAL_PID"
check "daemon is gone" vm_wait_for 5 sh -c "! kill -0 $VM_MARGINAL_PID 2>/dev/null"
sleep 2
check "path_b stays failed" [ "$(vm_path_state mp0 "$b")" = F ]
check "path_a active" [ "$(vm_path_state mp0 "$a")" = A ]
check "state file still lists $nb of mp0 ($b)" \
	sh -c "grep -q '\"$nb\"' $SCRATCH/held.json && grep -q '\"mp0\"' $SCRATCH/held.json && grep -q '\"$b\"' $SCRATCH/held.json"

log "restarting the daemon with the same state file; path_b is still broken"
vm_marginal_start
check "daemon takes $nb up" vm_marginal_logged "taking up $nb of map mp0"
check "and samples it" vm_wait_for 10 vm_marginal_logged_times 2 "sampling $nb for 3s"
check "still broken: marginal" vm_wait_for 20 vm_path_is "$nb" state marginal
check "path_b kept out" [ "$(vm_path_state mp0 "$b")" = F ]
check "$nb held out" vm_path_is "$nb" failed_by_marginal true
check "nothing returned by the restarted daemon yet" [ "$(vm_marginal_logged_count "returning $nb")" = 0 ]

log "healing path_b"
vm_heal_path path_b
check "a recheck passes and $nb is returned" vm_wait_for 20 vm_path_is "$nb" state healthy
check "daemon logged the return" vm_marginal_logged "returning $nb to mp0: passed"
check "path_b active in dm" [ "$(vm_path_state mp0 "$b")" = A ]
check "state file no longer lists $nb" sh -c "! grep -q '\"$nb\"' $SCRATCH/held.json"
check "reads through the map work" vm_read "$mp" 16
check "the daemon logged no error" vm_marginal_no_errors
