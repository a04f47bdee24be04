#!/bin/sh
# Fault matrix, flapping path: every READ on path B fails with DID_NO_CONNECT while TUR passes, so
# dm-mpath fails B, multipathd's tur checker reinstates it, the next read fails it again. marginal
# must check it, find it marginal, keep it out although the checker finds it up, and return it
# once the fault is gone and a recheck passes.
# vm-debs: multipath-tools libaio1 liburcu8 libjson-c5 libedit2 udev libkmod2 libacl1 libcap2 libblkid1
# vm-kernels: 6.12 sid
# vm-timeout: 150
. "$VM_LIB"
vm_private_system "$0" "$@"
vm_show_san_on_failure

vm_san_conf
vm_san_up 1
vm_marginal_conf 60 100 6
VM_MARGINAL_STATE=$VM_MARGINAL_DEFAULT_STATE
vm_marginal_start
check "daemon watches $map" vm_marginal_logged "watching map $map"

log "path B flaps: READs fail with DID_NO_CONNECT, TUR passes"
vm_sd_flap "$hb"
check "dm fails $nb, the checker reinstates it, reads fail it again: the daemon fails it" \
	vm_io_until 60 "$map" vm_marginal_logged "failing $nb of $map: failed twice within"
check "through multipathd's socket" vm_wait_for 10 grep -q "fail path $b (operator)" "$VM_MPD_LOG"
check "verdict: marginal" vm_wait_for 20 vm_path_is "$nb" last_verdict marginal
rate=$(vm_path_field "$nb" last_rate_permille)
log "$nb: $(vm_path_field "$nb" reason)"
check "every sample read failed: rate $rate permille" [ "$rate" = 1000 ]
check "$nb held out" vm_path_is "$nb" failed_by_marginal true
check "$nb failed in dm" vm_dm_path_is "$map" "$b" F
check "reads through the map work meanwhile" vm_read "/dev/mapper/$map" 16

# The fault stays on for now, so every recheck meanwhile also says marginal: nothing here races
# the recheck gap.
reinstated=$(grep -c "$b: reinstated" "$VM_MPD_LOG" || true)
log "for 8 s with multipathd's checker (every 1-2 s) finding $nb up, it must stay out"
end=$(($(vm_now) + 8))
while [ "$(vm_now)" -lt "$end" ]; do
	vm_dm_path_is "$map" "$b" F || fail "$nb was reinstated behind the daemon's back"
	vm_read "/dev/mapper/$map" 2 || fail "a read through the map failed"
	sleep 0.5
done
check "multipathd's checker reinstated nothing" [ "$(grep -c "$b: reinstated" "$VM_MPD_LOG")" = "$reinstated" ]
check "state file lists $nb" grep -q "\"$nb\"" "$VM_MARGINAL_STATE"

log "the fault goes away"
vm_sd_heal "$hb"
check "a recheck passes and the daemon returns $nb" vm_wait_for 40 vm_marginal_logged "returning $nb to $map: passed"
check "$nb healthy" vm_wait_for 5 vm_path_is "$nb" state healthy
check "$nb active in dm" vm_wait_for 10 vm_dm_path_is "$map" "$b" A
check "state file no longer lists $nb" sh -c "! grep -q '\"$nb\"' $VM_MARGINAL_STATE"
vm_io "$map" 3
check "$nb stays active under I/O" vm_dm_path_is "$map" "$b" A
check "the daemon logged no error" vm_marginal_no_errors
