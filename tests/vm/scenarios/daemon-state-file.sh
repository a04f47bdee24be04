#!/bin/sh
# The held-out state is marginal's promise (issue 12), on a map without multipathd (dm messages):
# a run holds path_b out and is killed; an observe run in between reports the path as held by a
# previous run and leaves the state file and the path exactly as they were; the next normal run
# takes it up (path_b is still broken: its recheck keeps it out); a table reload that puts it
# back in service is undone, and the PATH_FAILED of marginal's own fail is not counted as a
# failure; a corrupt state file is moved aside and reported, and the daemon runs all the same.
# vm-kernels: 5.10 6.12 sid
# vm-timeout: 240
. "$VM_LIB"
vm_show_daemon_on_failure

vm_two_path_map
vm_known_data "$mp"
vm_marginal_conf 30 100 600
vm_marginal_start
vm_fail_path_b_twice
check "run 1 fails $nb" vm_wait_for 10 vm_marginal_logged "failing $nb of mp0: failed twice within"
check "state file lists $nb" vm_wait_for 5 grep -q "\"$nb\"" "$SCRATCH/held.json"
check "marginal" vm_wait_for 20 vm_path_is "$nb" state marginal
kill -9 "$VM_MARGINAL_PID"
vm_wait_for 5 sh -c "! kill -0 $VM_MARGINAL_PID 2>/dev/null" || fail "run 1 did not die"
state_before=$(md5sum <"$SCRATCH/held.json")

log "an observe run in between"
vm_marginal_start --observe
check "it reports $nb held by a previous run" vm_wait_for 5 vm_path_is "$nb" held_by_previous_run true
check "and says so in its log" vm_marginal_logged "is held out by a previous run; observe mode leaves it so"
kill "$VM_MARGINAL_PID"
vm_wait_for 10 sh -c "! kill -0 $VM_MARGINAL_PID 2>/dev/null" || fail "observe run did not stop"
check "the state file is untouched" [ "$(md5sum <"$SCRATCH/held.json")" = "$state_before" ]
check "path_b still failed" [ "$(vm_path_state mp0 "$b")" = F ]

log "run 3 takes $nb up"
vm_marginal_start
check "it takes $nb up" vm_marginal_logged "taking up $nb of map mp0"
check "held" vm_wait_for 5 vm_path_is "$nb" failed_by_marginal true
check "path_b still failed" [ "$(vm_path_state mp0 "$b")" = F ]

check "still broken: marginal" vm_wait_for 20 vm_path_is "$nb" state marginal
failures=$(vm_path_field "$nb" kernel_failures)
log "a table reload puts every path of mp0 back in service"
dmsetup table mp0 >"$SCRATCH/mp0.table"
dmsetup suspend mp0
dmsetup load mp0 "$SCRATCH/mp0.table"
dmsetup resume mp0
check "marginal fails $nb again" vm_wait_for 10 vm_marginal_logged "dm has it in service"
check "path_b failed in dm" vm_wait_for 5 vm_dm_path_is mp0 "$b" F
check "and it stays so" vm_stays F 4 mp0 "$b"
check "still reported held" vm_path_is "$nb" failed_by_marginal true
check "marginal's own fail was seen as its own" vm_path_is "$nb" own_fails 1
check "and is no failure of the path" vm_path_is "$nb" kernel_failures "$failures"
check "the daemon logged no error" vm_marginal_no_errors

log "a corrupt state file"
kill -9 "$VM_MARGINAL_PID"
vm_wait_for 5 sh -c "! kill -0 $VM_MARGINAL_PID 2>/dev/null" || fail "run 3 did not die"
echo '{"dm-1": {"map": "mp0", "dev' >"$SCRATCH/held.json"
vm_marginal_start
check "the daemon runs and reports the problem" vm_wait_for 5 sh -c \
	"marginal status --address $VM_MARGINAL_ADDR --json | grep -q '\"state_file_problem\": \".*moved aside'"
check "the metric says so" sh -c "wget -qO- http://$VM_MARGINAL_ADDR/metrics | grep -q '^marginal_state_file_problem 1'"
check "the corrupt file was moved aside" sh -c "ls $SCRATCH/held.json.corrupt-*"
check "logged as an error" vm_marginal_logged "state file: $SCRATCH/held.json: unreadable state"
check "reads through the map work" vm_read "$mp" 16
