#!/bin/sh
# A path the daemon holds out goes back at once when its map would otherwise have no active path:
# path_b fails twice, the daemon fails it and finds it marginal (recheck gap 60 s: it would stay
# out for a minute); then path_a is failed by hand and the daemon reinstates path_b right away,
# so the map keeps a path and reads through it work.
# vm-kernels: 6.12 sid
# vm-timeout: 60
. "$VM_LIB"
vm_show_daemon_on_failure

vm_two_path_map
vm_known_data "$mp"

vm_marginal_conf 30 100 60
vm_marginal_start

vm_fail_path_b_twice
check "daemon fails $nb" vm_wait_for 10 vm_marginal_logged "failing $nb of mp0: failed twice within"
check "verdict: marginal, held out" vm_wait_for 20 vm_path_is "$nb" state marginal
check "path_b failed in dm" [ "$(vm_path_state mp0 "$b")" = F ]
log "healing path_b's device: the daemon still holds it out (next recheck in about a minute)"
vm_heal_path path_b
sleep 2
check "path_b still out" [ "$(vm_path_state mp0 "$b")" = F ]
check "state file lists $nb" grep -q "\"$nb\"" "$SCRATCH/held.json"

log "failing path_a by hand: without path_b the map would have no path"
t0=$(cut -d' ' -f1 /proc/uptime)
dmsetup message mp0 0 fail_path "$a"
check "daemon returns $nb at once" vm_wait_for 5 sh -c "dmsetup status mp0 | grep -q ' $b A '"
log "path_b active again $(awk -v t0="$t0" '{ printf "%.2f", $1 - t0 }' /proc/uptime) s after path_a failed"
check "daemon logged why" vm_marginal_logged "returning $nb to mp0: map has no other active path"
check "$nb healthy, not held out" vm_wait_for 5 vm_path_is "$nb" failed_by_marginal false
check "state file no longer lists $nb" sh -c "! grep -q '\"$nb\"' $SCRATCH/held.json"
check "reads through the map work (over path_b)" vm_read "$mp" 16
check "data intact" [ "$(vm_md5 "$mp" 262144)" = "$want" ]
vm_reinstate mp0 "$a"
sleep 1
check "both paths active" [ "$(vm_active_count mp0)" = 2 ]
check "the daemon logged no error" vm_marginal_no_errors
