#!/bin/sh
# The daemon never fails a map's last active path. path_a is failed by hand (maintenance), so
# path_b carries the map alone; path_b then fails twice within the window (dm-mpath fails it, a
# checker reinstates it, twice). The daemon keeps path_b in service ("last active path"), samples
# it in service, finds it bad (1000 permille) and still keeps it: dm-mpath shows path_b active
# all along and no fail_path ever comes from the daemon.
# vm-kernels: 6.12 sid
# vm-timeout: 60
. "$VM_LIB"
vm_show_daemon_on_failure

vm_two_path_map

vm_marginal_conf 30 100 60
vm_marginal_start
check "daemon acts with device-mapper messages" vm_marginal_logged "actuator: device-mapper messages"

log "failing path_a by hand: path_b is the last active path"
dmsetup message mp0 0 fail_path "$a"
check "path_a failed" [ "$(vm_path_state mp0 "$a")" = F ]
log "path_b breaks (error target); I/O fails it twice, a checker reinstates it each time"
# With no path left the map's reads fail: that is dm-mpath's doing, not the daemon's.
vm_fail_path_b_twice
vm_reinstate mp0 "$b"
check "path_b active again" [ "$(vm_path_state mp0 "$b")" = A ]
check "daemon keeps $nb in service" \
	vm_wait_for 10 vm_marginal_logged "keeping $nb of mp0 in service: last active path of its map"
check "and samples it in service" vm_wait_for 5 vm_marginal_logged "sampling $nb for 3s"

# Until the verdict is in, path_b must stay active at every look.
end=$(($(vm_now) + 20))
looks=0
until vm_marginal_logged "keeping $nb of mp0 in service: marginal but the map has no other active path"; do
	[ "$(vm_now)" -lt "$end" ] || fail "no verdict within 20 s"
	[ "$(vm_path_state mp0 "$b")" = A ] || fail "path_b is not active during its sampling run"
	[ "$(vm_active_count mp0)" -ge 1 ] || fail "mp0 has no active path"
	looks=$((looks + 1))
	sleep 0.2
done
log "ok: path_b active at each of $looks looks during sampling"
log "$nb: $(vm_path_field "$nb" reason)"
check "verdict: marginal" vm_path_is "$nb" last_verdict marginal
check "rate 1000 permille" vm_path_is "$nb" last_rate_permille 1000
check "$nb back to healthy, in service" vm_wait_for 5 vm_path_is "$nb" state healthy
check "never held out" vm_path_is "$nb" failed_by_marginal false
sleep 1
check "path_b still active" [ "$(vm_path_state mp0 "$b")" = A ]
check "mp0 has one active path" [ "$(vm_active_count mp0)" = 1 ]
check "daemon never failed $nb" [ "$(vm_marginal_logged_count "failing $nb")" = 0 ]
check "daemon sent no fail_path at all" [ "$(vm_marginal_logged_count "failing ")" = 0 ]
check "the daemon logged no error" vm_marginal_no_errors
