# The SAN smoke test's body, shared by the scenarios that run it with each multipathd version
# (san-smoke: bookworm's 0.9.4, san-smoke-mpd011: trixie's 0.11.1). Sourced by lib.sh.

# vm_san_smoke: multipathd makes the map of a scsi_debug LUN over two SCSI hosts; marginal, run as
# installed (default state file), watches it; path B flaps twice (its SCSI device offline under
# I/O, then back for the checker): marginal fails it through multipathd's socket, samples it and
# returns it. The run passes if the device is back when the sampler opens it, or fails to open it
# (ENXIO) if not; the daemon reacts within a fraction of a second, so either may happen, and
# either returns the path. Call it after vm_private_system and vm_show_san_on_failure.
vm_san_smoke() {
	vm_san_conf
	vm_san_up 1
	check "multipathd uses its default checker, tur" sh -c "multipathd show paths format '%d %c' | grep -q '$nb *tur'"

	# As the package installs it: the binary in /usr/bin, its conffile leaving checking off.
	check "marginal is the packaged /usr/bin/marginal" [ "$(command -v marginal)" = /usr/bin/marginal ]
	check "the packaged marginal.conf is valid" marginal config check
	check "the packaged marginal.conf leaves checking off" sh -c "marginal config show | grep -q '^  checking: off'"

	vm_marginal_conf 60 100 5
	VM_MARGINAL_STATE=$VM_MARGINAL_DEFAULT_STATE
	vm_marginal_start
	check "daemon acts through multipathd" vm_marginal_logged "actuator: multipathd (multipathd answers"
	check "daemon watches $map" vm_marginal_logged "watching map $map"
	check "daemon sees dm-mpath's path events" vm_marginal_logged "kprobe:dm_path_uevent (live)"
	grep -F "block:block_rq_" "$VM_MARGINAL_LOG" | head -n 3
	check "$nb starts healthy" vm_path_is "$nb" state healthy

	log "path B goes offline under I/O: dm-mpath fails it"
	vm_sd_state "$hb" offline
	check "first failure" vm_io_until 30 "$map" vm_dm_path_is "$map" "$b" F
	vm_sd_state "$hb" running
	check "daemon counts it: $nb suspect" vm_wait_for 15 vm_path_is "$nb" state suspect
	check "multipathd's checker reinstates $nb" vm_wait_for 30 vm_dm_path_is "$map" "$b" A
	check "one failure fails nothing" vm_path_is "$nb" failed_by_marginal false

	# Held past the episode gap (1 s) from the first failure: a re-fail sooner is the same
	# outage, not a second failure (with the packaged release build everything up to here can
	# take under a second).
	sleep 1.2
	log "path B goes offline again within the window"
	vm_sd_state "$hb" offline
	check "second failure" vm_io_until 30 "$map" vm_dm_path_is "$map" "$b" F
	vm_sd_state "$hb" running
	check "daemon fails $nb" vm_wait_for 15 vm_marginal_logged "failing $nb of $map: failed twice within"
	check "through multipathd's socket" vm_wait_for 10 grep -q "fail path $b (operator)" "$VM_MPD_LOG"
	check "daemon samples $nb" vm_wait_for 15 vm_marginal_logged "sampling $nb for 3s"
	check "the daemon judges the run and returns $nb" vm_wait_for 30 vm_marginal_logged "returning $nb to $map: "
	grep -F "returning $nb to $map: " "$VM_MARGINAL_LOG"
	check "$nb active in dm" vm_wait_for 15 vm_dm_path_is "$map" "$b" A
	check "$nb healthy" vm_wait_for 5 vm_path_is "$nb" state healthy
	check "state file no longer lists $nb" sh -c "! grep -q '\"$nb\"' $VM_MARGINAL_STATE"
	check "reads through the map work" vm_read "/dev/mapper/$map" 16
	check "the daemon logged no error" vm_marginal_no_errors
}
