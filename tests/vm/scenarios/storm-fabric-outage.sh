#!/bin/sh
# A fabric outage (issue 15): every path behind SCSI host B (one "fabric") goes offline at once,
# stays down for 20 s while I/O and multipathd's checker keep hitting it, and comes back. Each
# path failed once: marginal starts no check anywhere, no map is ever left without an active
# path, and every path is back in service when the fabric is.
# vm-debs: multipath-tools libaio1 liburcu8 libjson-c5 libedit2 udev libkmod2 libacl1 libcap2 libblkid1
# vm-kernels: 6.12 sid
# vm-timeout: 300
. "$VM_LIB"
vm_private_system "$0" "$@"
vm_show_san_on_failure

LUNS=8
vm_san_conf
vm_san_up "$LUNS"
vm_marginal_conf 60 100 6
vm_marginal_start $VM_OUTAGE_GAP
maps=$(vm_sd_maps "$LUNS" | tr '\n' ' ')
log "maps: $maps"

# every_map_has_a_path: no map without an active path, now.
every_map_has_a_path() {
	for _m in $maps; do [ "$(vm_active_count "$_m")" -ge 1 ] || return 1; done
}

log "fabric B goes down: every host B path offline at once"
vm_sd_each B "$LUNS" vm_sd_state offline
down=$(vm_now)
while [ "$(vm_now)" -lt $((down + 20)) ]; do
	for m in $maps; do vm_read "/dev/mapper/$m" 2 || fail "a read through $m failed"; done
	every_map_has_a_path || fail "a map lost its last active path"
done
for m in $maps; do
	check "$m: only path A active during the outage" [ "$(vm_active_count "$m")" = 1 ]
done
check "no check started during the outage" [ "$(vm_marginal_logged_count "failing ")" = 0 ]

log "fabric B comes back"
vm_sd_each B "$LUNS" vm_sd_state running
for m in $maps; do
	check "$m: both paths back" vm_wait_for 60 vm_map_has "$m" 2
done
check "still no check started" [ "$(vm_marginal_logged_count "failing ")" = 0 ]
check "nothing sampled" [ "$(vm_marginal_logged_count "actions] sampling ")" = 0 ]
echo "multipathd's operator commands:"
grep -a "(operator)" "$VM_MPD_LOG" || echo "(none)"
check "nothing returned either" [ "$(vm_marginal_logged_count "returning ")" = 0 ]
check "no fail path sent through multipathd" sh -c "! grep -aq ': fail path [0-9]*:[0-9]* (operator)' $VM_MPD_LOG"
check "no event lost" sh -c "marginal status --address $VM_MARGINAL_ADDR --json | grep -q '\"kernel_events_lost_total\": 0'"
check "the daemon logged no error" vm_marginal_no_errors
