#!/bin/sh
# Fault matrix, multipathd reconfigure and restart while a path is held: path B is held out (it
# flapped, then healed; the recheck gap is long). `multipathd reconfigure`, a multipathd restart
# (which forgets that B was failed by an operator and lets its checker judge B again) and a plain
# table reload (every path of a new table starts active) may each put B back in service. B is
# healthy by now, so nothing but marginal fails it again: it must stay (or quickly be put back)
# out, and stay out under multipathd's checker.
# vm-debs: multipath-tools libaio1 liburcu8 libjson-c5 libedit2 udev libkmod2 libacl1 libcap2 libblkid1
# vm-kernels: 6.12 sid
# vm-timeout: 180
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

# stays_out WHAT: B must be failed in dm within 15 s of WHAT and then stay failed for 8 s with
# multipathd's checker running and I/O through the map. Logs who put it back and who failed it.
stays_out() {
	log "after $1: dm has $nb $(vm_path_state "$map" "$b"); marginal has failed it $(vm_marginal_logged_count "failing $nb") times, multipathd reinstated it $(grep -c "$b: reinstated" "$VM_MPD_LOG" || true) times"
	check "$nb out again after $1" vm_wait_for 15 vm_dm_path_is "$map" "$b" F
	_end=$(($(vm_now) + 8))
	while [ "$(vm_now)" -lt "$_end" ]; do
		vm_dm_path_is "$map" "$b" F || fail "$nb back in service after $1: $(dmsetup status "$map")"
		vm_read "/dev/mapper/$map" 2 || fail "a read through the map failed"
		sleep 0.5
	done
	log "ok: $nb stayed out for 8 s after $1 (marginal has failed it $(vm_marginal_logged_count "failing $nb") times)"
	check "$nb still held" vm_path_is "$nb" failed_by_marginal true
}

log "multipathd reconfigure"
multipathd reconfigure
stays_out "multipathd reconfigure"

log "multipathd restart"
vm_mpathd_stop
vm_mpathd_start
check "multipathd has $map again" vm_wait_for 30 sh -c "multipathd show maps format '%n' | grep -q '$map'"
stays_out "a multipathd restart"

log "a table reload: the same table again, every path active in it"
dmsetup table "$map" >"$SCRATCH/table"
dmsetup reload "$map" "$SCRATCH/table"
dmsetup resume "$map"
stays_out "a table reload"
check "the daemon logged no error" vm_marginal_no_errors
