#!/bin/sh
# Fault matrix, link down then up: an iSCSI LUN (LIO over loopback) over two portals, the map made
# by multipathd. The second portal's link loses every packet (netem loss 100%) until dm-mpath has
# failed its path (the session's replacement timeout), then the link is whole again: iscsid logs
# back in and multipathd's checker reinstates the path. One transition down and up: marginal must
# count one failure and start nothing.
# vm-debs: multipath-tools libaio1 liburcu8 libjson-c5 libedit2 udev libkmod2 libacl1 libcap2 libblkid1
# vm-debs: open-iscsi libisns0 libopeniscsiusr libssl3 libmount1 iproute2 libbpf1 libbsd0 libdb5.3
# vm-debs: libelf1 libmnl0 libtirpc3 libxtables12 libmd0
# vm-timeout: 180
. "$VM_LIB"
vm_private_system "$0" "$@"
vm_show_san_on_failure

vm_iscsi_san_up
a=$(cat "/sys/block/$na/dev")
b=$(cat "/sys/block/$nb/dev")
log "map $map over $na ($a, 127.0.0.1) and $nb ($b, 127.0.0.2)"

vm_marginal_conf 120 100 6
VM_MARGINAL_STATE=$VM_MARGINAL_DEFAULT_STATE
vm_marginal_start $VM_OUTAGE_GAP
check "daemon watches $map" vm_marginal_logged "watching map $map"
# The fleet view (issue 18): each path says which portal and target it reaches.
check "$nb's transport: iscsi" vm_path_is "$nb" kind iscsi
check "marginal_path_info carries the portal and the target name" sh -c "wget -qO- http://$VM_MARGINAL_ADDR/metrics | grep '^marginal_path_info{' | grep 'path=\"$nb\"' | grep 'transport=\"iscsi\"' | grep 'target_port=\"127.0.0.2:3260\"' | grep -q 'target_node=\"iqn'"

log "the link of portal 127.0.0.2 goes down (netem loss 100%)"
vm_iscsi_netem loss 100%
check "dm-mpath fails $nb (session recovery times out)" vm_io_until 60 "$map" vm_dm_path_is "$map" "$b" F
check "daemon counts one failure" vm_wait_for 15 vm_path_is "$nb" kernel_failures 1
vm_io "$map" 5
log "the link comes back"
vm_iscsi_netem_off
check "iscsid logs back in and multipathd reinstates $nb" vm_wait_for 60 vm_dm_path_is "$map" "$b" A
vm_io "$map" 5
log "$nb by the daemon's account: failures $(vm_path_field "$nb" kernel_failures), I/O errors $(vm_path_field "$nb" kernel_io_errors), state $(vm_path_field "$nb" state)"
check "one transition is one failure" vm_path_is "$nb" kernel_failures 1
check "no double failure" vm_path_is "$nb" kernel_double_failures 0
check "no sampling run" vm_path_is "$nb" sampling_runs 0
check "the daemon failed nothing" [ "$(vm_marginal_logged_count "failing $nb")" = 0 ]
check "$nb active in dm" vm_dm_path_is "$map" "$b" A
check "reads through the map work" vm_read "/dev/mapper/$map" 16
check "the daemon logged no error" vm_marginal_no_errors
