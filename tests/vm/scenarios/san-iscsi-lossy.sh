#!/bin/sh
# Fault matrix, lossy link: the second portal's link of an iSCSI LUN loses 20% of its packets
# (netem). TCP retransmits: no I/O fails and dm-mpath fails no path, but I/O over that path is
# slow, the first symptom of a degrading link (slow-path detection is a later issue). marginal must
# record what it sees (logged here per path) and the map must keep working.
# vm-debs: multipath-tools libaio1 liburcu8 libjson-c5 libedit2 udev libkmod2 libacl1 libcap2 libblkid1
# vm-debs: open-iscsi libisns0 libopeniscsiusr libssl3 libmount1 iproute2 libbpf1 libbsd0 libdb5.3
# vm-debs: libelf1 libmnl0 libtirpc3 libxtables12 libmd0
# vm-kernels: 6.12 sid
# vm-timeout: 180
. "$VM_LIB"
vm_private_system "$0" "$@"
vm_show_san_on_failure

vm_iscsi_san_up
b=$(cat "/sys/block/$nb/dev")

vm_marginal_conf 120 100 6
VM_MARGINAL_STATE=$VM_MARGINAL_DEFAULT_STATE
vm_marginal_start
check "daemon watches $map" vm_marginal_logged "watching map $map"

log "the link of portal 127.0.0.2 loses 20% of its packets"
vm_iscsi_netem loss 20%
t0=$(vm_now)
i=0
while [ "$i" -lt 40 ]; do
	vm_read "/dev/mapper/$map" 2 || fail "a read through the map failed on a lossy (not broken) link"
	i=$((i + 1))
done
log "80 reads of 4 KiB through the map took $(($(vm_now) - t0)) s"
vm_iscsi_netem_off
for p in "$na" "$nb"; do
	log "what the daemon saw on $p: state $(vm_path_field "$p" state), failures $(vm_path_field "$p" kernel_failures), I/O errors $(vm_path_field "$p" kernel_io_errors), sampling runs $(vm_path_field "$p" sampling_runs)"
done
check "the map keeps both paths" vm_map_has "$map" 2
check "the daemon failed nothing" [ "$(vm_marginal_logged_count "failing $nb")" = 0 ]
check "reads through the map work" vm_read "/dev/mapper/$map" 16
check "the daemon logged no error" vm_marginal_no_errors
