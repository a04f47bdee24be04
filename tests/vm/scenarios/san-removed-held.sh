#!/bin/sh
# Fault matrix, device removed while held: path B is held out (it flapped), then its SCSI device
# is deleted, as when a target goes away. marginal must let it go as removed (its state file no
# longer lists it) and not loop on errors about a device that is gone.
# vm-debs: multipath-tools libaio1 liburcu8 libjson-c5 libedit2 udev libkmod2 libacl1 libcap2 libblkid1
# vm-kernels: 6.12 sid
# vm-timeout: 150
. "$VM_LIB"
vm_private_system "$0" "$@"
vm_show_san_on_failure

vm_san_conf
vm_san_up 1
vm_marginal_conf 60 100 4
VM_MARGINAL_STATE=$VM_MARGINAL_DEFAULT_STATE
vm_marginal_start

vm_sd_flap "$hb"
check "path B flaps: the daemon fails it" \
	vm_io_until 60 "$map" vm_marginal_logged "failing $nb of $map: failed twice within"
check "verdict: marginal" vm_wait_for 20 vm_path_is "$nb" last_verdict marginal
check "state file lists $nb" vm_wait_for 5 grep -q "\"$nb\"" "$VM_MARGINAL_STATE"

log "the SCSI device of path B is deleted"
vm_sd_delete "$hb"
check "$nb is gone" vm_wait_for 10 sh -c "[ ! -e /sys/block/$nb ]"
check "multipathd drops it from $map" vm_wait_for 20 sh -c "! multipathd show paths format '%d' | grep -qx '$nb *'"
check "the daemon lets it go as removed" vm_wait_for 20 vm_marginal_logged "$nb ($b) was removed: released"
check "its state file no longer lists $nb" vm_wait_for 10 sh -c "! grep -q '\"$nb\"' $VM_MARGINAL_STATE"
check "/status no longer holds $nb" sh -c "! marginal status --json | grep -q '\"name\": \"$nb\"'"
# Long enough for several recheck gaps (4 s) and discovery rounds: a loop on the missing device
# would show as a growing log.
lines=$(wc -l <"$VM_MARGINAL_LOG")
sleep 12
grown=$(($(wc -l <"$VM_MARGINAL_LOG") - lines))
log "the daemon logged $grown lines in 12 s after the removal"
tail -n "$grown" "$VM_MARGINAL_LOG"
check "no error loop: at most a few lines" [ "$grown" -le 5 ]
check "no ERROR line about $nb" sh -c "! grep ' ERROR ' $VM_MARGINAL_LOG | grep -q $nb"
check "reads through the map work on path A" vm_read "/dev/mapper/$map" 16
