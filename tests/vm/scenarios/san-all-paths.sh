#!/bin/sh
# Fault matrix, all paths of a map fail: path B is held out (it flapped, then healed; the recheck
# gap is long, so it stays held), then path A goes down for good. marginal must give B back at
# once (never leave a map without a path). Then A's device goes away, B is the map's last path,
# and B flaps again: marginal must keep it in service.
# vm-debs: multipath-tools libaio1 liburcu8 libjson-c5 libedit2 udev libkmod2 libacl1 libcap2 libblkid1
# vm-kernels: 6.12 sid
# vm-timeout: 150
. "$VM_LIB"
vm_private_system "$0" "$@"
vm_show_san_on_failure

vm_san_conf
vm_san_up 1
vm_marginal_conf 60 100 300
VM_MARGINAL_STATE=$VM_MARGINAL_DEFAULT_STATE
vm_marginal_start

vm_sd_flap "$hb"
check "path B flaps: the daemon fails it" \
	vm_io_until 60 "$map" vm_marginal_logged "failing $nb of $map: failed twice within"
check "verdict: marginal" vm_wait_for 20 vm_path_is "$nb" last_verdict marginal
vm_sd_heal "$hb"
check "$nb held out" vm_path_is "$nb" failed_by_marginal true

log "path A goes down for good (TUR too): the map would have no path"
vm_sd_down "$ha"
check "dm-mpath fails $na under I/O" vm_io_until 30 "$map" vm_dm_path_is "$map" "$a" F
t0=$(vm_now)
check "the daemon gives $nb back" vm_wait_for 10 vm_marginal_logged "returning $nb to $map"
check "$nb active in dm" vm_wait_for 10 vm_dm_path_is "$map" "$b" A
log "$nb was back $(($(vm_now) - t0)) s after $na failed"
check "reads through the map work again (over $nb)" vm_read "/dev/mapper/$map" 16
check "$nb no longer held" vm_path_is "$nb" failed_by_marginal false
# A (dead) may now fail twice in dm's account and be checked itself: that is allowed while B is
# active. What must hold is that the map keeps an active path.
check "the map keeps an active path" [ "$(vm_active_count "$map")" -ge 1 ]

log "path A's device goes away: B is the map's last path"
vm_sd_delete "$ha"
check "multipathd drops $na from $map" vm_wait_for 30 sh -c "! dmsetup table $map | grep -q ' $a '"
a_gone() { ! marginal status --json | grep -q "\"name\": \"$na\""; }
check "the daemon sees one path left" vm_wait_for 20 a_gone
log "path B, now the map's last path, flaps again"
vm_sd_flap "$hb"
vm_io "$map" 15
check "the daemon keeps the last path in service" vm_wait_for 20 vm_marginal_logged "keeping $nb of $map in service"
check "it failed $nb only the first time" [ "$(vm_marginal_logged_count "failing $nb")" = 1 ]
check "$nb not held" vm_path_is "$nb" failed_by_marginal false
vm_sd_heal "$hb"
check "$nb active in dm again (multipathd's checker)" vm_wait_for 20 vm_dm_path_is "$map" "$b" A
check "reads through the map work" vm_read "/dev/mapper/$map" 16
