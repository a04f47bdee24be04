#!/bin/sh
# With Debian's multipathd (multipath-tools 0.9.4, with systemd-udevd) managing a real map, the
# daemon acts through multipathd's socket and multipathd's path checker does not undo it.
# The paths are two loop devices over dm devices of one LUN: multipathd takes loop devices as
# paths once udev gives them a WWID and the blacklist excepts them, and they are request-based, as
# the maps multipathd makes need (the guest has no SCSI). multipathd's directio checker runs every
# second. First, as a control, a path failed with a plain dm message is reinstated by
# the checker within seconds (that is a path's first failure); then the path breaks and dm-mpath
# fails it again: the daemon fails it with `fail path` through multipathd, samples it (marginal),
# and although the path is healed the checker leaves it failed until the daemon's recheck passes
# and the daemon returns it with `reinstate path`.
# vm-debs: multipath-tools libaio1 liburcu8 libjson-c5 libedit2 udev libkmod2 libacl1 libcap2 libblkid1
# vm-kernels: 5.10 6.12 sid
# vm-timeout: 90
. "$VM_LIB"
vm_private_system "$0" "$@"

MPD_LOG=$SCRATCH/multipathd.log
vm_show_multipathd_on_failure "$MPD_LOG"

vm_mpvm_paths

vm_mpvm_conf
multipathd -d -s -v2 >"$MPD_LOG" 2>&1 &
check "multipathd made map mpvm over both paths" \
	vm_wait_for 30 sh -c "[ \"\$(dmsetup status mpvm 2>/dev/null | grep -o ' A ' | wc -l)\" -ge 2 ]"
multipathd show maps
multipathd show paths
dmsetup table mpvm
mp=/dev/mapper/mpvm
check "data reads back through the map" [ "$(vm_md5 "$mp" 262144)" = "$want" ]

# The daemon's own settings (multipathd's file leaves multipathd's marginal checking off).
vm_marginal_conf 30 100 8
vm_marginal_start
check "daemon acts through multipathd" vm_marginal_logged "actuator: multipathd (multipathd answers"
check "daemon watches mpvm" vm_marginal_logged "watching map mpvm"

log "control: fail $nb with a plain dm message; multipathd's checker must reinstate it"
t0=$(cut -d' ' -f1 /proc/uptime)
dmsetup message mpvm 0 fail_path "$b"
# Not "is it failed now": the checker (every second) may already have reinstated it. dm-mpath's
# own account of the transition is the daemon's failure count.
check "dm-mpath failed $nb" vm_wait_for 10 vm_path_is "$nb" kernel_failures 1
check "the checker reinstates it" vm_wait_for 15 sh -c "dmsetup status mpvm | grep -q ' $b A '"
log "the checker reinstated $nb $(awk -v t0="$t0" '{ printf "%.1f", $1 - t0 }' /proc/uptime) s after a dm fail_path"
check "daemon counted that failure" vm_wait_for 10 vm_path_is "$nb" state suspect
# Past the episode gap (1 s) since that failure, whatever the checker's speed.
sleep 1.2

log "pdev_b breaks (error target): I/O through the map fails $nb again"
vm_break_path pdev_b
# The loop device reads pdev_b through its page cache: drop what is cached so reads fail.
blockdev --flushbufs "$db"
check "second failure" vm_fail_by_io mpvm "$b" 20
check "daemon fails $nb" vm_wait_for 10 vm_marginal_logged "failing $nb of mpvm: failed twice within"
check "through multipathd's socket" vm_wait_for 5 grep -q "mpvm: fail path $b (operator)" "$MPD_LOG"
check "multipathd said ok (no actuator error)" [ "$(vm_marginal_logged_count "through multipathd")" = 0 ]
check "verdict: marginal" vm_wait_for 20 vm_path_is "$nb" state marginal
log "$nb: $(vm_path_field "$nb" reason)"
check "$nb failed in dm" [ "$(vm_path_state mpvm "$b")" = F ]

reinstated=$(grep -c "$b: reinstated" "$MPD_LOG" || true)
log "healing pdev_b: the checker would now find $nb up, but must leave it to the daemon"
vm_heal_path pdev_b
healed=$(vm_now)
looks=0
until vm_marginal_logged "sampling $nb for 3s: recheck gap elapsed"; do
	[ "$(vm_now)" -lt $((healed + 20)) ] || fail "no recheck within 20 s"
	[ "$(vm_path_state mpvm "$b")" = F ] || fail "$nb was reinstated behind the daemon's back"
	# Here, not after the loop: once the recheck passes the daemon's own reinstatement adds a
	# line (on a slow guest before a later look).
	[ "$(grep -c "$b: reinstated" "$MPD_LOG")" = "$reinstated" ] ||
		fail "multipathd's checker reinstated $nb while the daemon held it"
	looks=$((looks + 1))
	sleep 0.25
done
log "ok: $nb stayed failed, and multipathd reinstated nothing, at each of $looks looks over $(($(vm_now) - healed)) s with the checker running"
multipathd show paths
check "multipathd says its checker is disabled for $nb" grep -q "$nb - directio checker is disabled" "$MPD_LOG"

check "the recheck passes and the daemon returns $nb" \
	vm_wait_for 20 vm_marginal_logged "returning $nb to mpvm: passed"
# multipathd's checker, turned back on by the reinstatement, may fail the path once more on a
# result from while it was disabled and put it back on the next check (seen in CI): a failure
# after the return makes the path suspect at most; it is not held again.
check "$nb is no longer held" vm_wait_for 5 vm_path_is "$nb" failed_by_marginal false
check "through multipathd's socket" vm_wait_for 5 grep -q "mpvm: reinstate path $b (operator)" "$MPD_LOG"
check "$nb active in dm" vm_wait_for 15 sh -c "dmsetup status mpvm | grep -q ' $b A '"
check "state file no longer lists $nb" sh -c "! grep -q '\"$nb\"' $SCRATCH/held.json"
check "reads through the map work" vm_read "$mp" 16
check "data intact" [ "$(vm_md5 "$mp" 262144)" = "$want" ]
sleep 3
check "$nb stays active with multipathd's checker back on" [ "$(vm_path_state mpvm "$b")" = A ]
multipathd show paths
echo "multipathd's own account of $nb:"
grep -E "\(operator\)|$b: reinstated|$nb: mark as failed" "$MPD_LOG"
check "the daemon logged no error" vm_marginal_no_errors
