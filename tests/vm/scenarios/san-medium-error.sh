#!/bin/sh
# Fault matrix, medium error on the LUN: READs through path B end in CHECK CONDITION / MEDIUM
# ERROR. That is the LUN's fault, not the path's: the kernel returns the error to the reader and
# dm-mpath fails no path (blk_path_error). marginal must count the I/O errors and start nothing.
# vm-debs: multipath-tools libaio1 liburcu8 libjson-c5 libedit2 udev libkmod2 libacl1 libcap2 libblkid1
# vm-kernels: 6.12 sid
# vm-timeout: 120
. "$VM_LIB"
vm_private_system "$0" "$@"
vm_show_san_on_failure

vm_san_conf
vm_san_up 1
vm_marginal_conf 60 100 6
VM_MARGINAL_STATE=$VM_MARGINAL_DEFAULT_STATE
vm_marginal_start
check "daemon watches $map" vm_marginal_logged "watching map $map"

log "READs on path B end in MEDIUM ERROR"
vm_sd_medium_error "$hb"
eios=0
i=0
while [ "$i" -lt 20 ]; do
	vm_read "/dev/mapper/$map" 2 || eios=$((eios + 1))
	i=$((i + 1))
done
log "$eios of 20 rounds of reads through the map saw the medium error"
check "the reader saw the LUN's error" [ "$eios" -gt 0 ]
check "daemon counts the I/O errors on $nb" vm_wait_for 10 vm_path_above "$nb" kernel_io_errors 0
log "$nb by the daemon's account: I/O errors $(vm_path_field "$nb" kernel_io_errors), failures $(vm_path_field "$nb" kernel_failures)"
check "dm-mpath failed no path: $nb active" vm_dm_path_is "$map" "$b" A
check "and $na active" vm_dm_path_is "$map" "$a" A
check "no path failure counted" vm_path_is "$nb" kernel_failures 0
check "$nb healthy" vm_path_is "$nb" state healthy
check "no sampling run" vm_path_is "$nb" sampling_runs 0
check "the daemon failed nothing" [ "$(vm_marginal_logged_count "failing $nb")" = 0 ]
vm_sd_heal "$hb"
check "reads through the map work again" vm_read "/dev/mapper/$map" 16
