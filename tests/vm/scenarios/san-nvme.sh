#!/bin/sh
# NVMe/TCP paths: nvmet exports a namespace on two loopback ports, the host connects to both with
# NVMe's native multipath off, and multipathd makes a dm-multipath map over the two namespaces.
# The second port's link goes down (the target stops exporting there) until dm-mpath fails the
# path, then comes back: one transition, one failure, nothing started. Then it goes down twice
# within the window: marginal fails the path through multipathd, samples it, and returns it once
# the link is back and a run passes.
# vm-debs: multipath-tools libaio1 liburcu8 libjson-c5 libedit2 udev libkmod2 libacl1 libcap2 libblkid1
# vm-cmdline: nvme_core.multipath=N
# vm-kernels: 6.12 sid
# vm-timeout: 240
. "$VM_LIB"
vm_private_system "$0" "$@"
vm_show_san_on_failure

vm_udevd
vm_nvme_target 64
vm_nvme_connect
na=$VM_NVME_A
nb=$VM_NVME_B
a=$(cat "/sys/block/$na/dev")
b=$(cat "/sys/block/$nb/dev")
vm_san_conf
vm_mpathd_start
nvme_map_ready() {
	map=$(vm_holder "$na")
	[ -n "$map" ] && vm_map_has "$map" 2
}
check "multipathd makes one map over both namespaces" vm_wait_for 60 nvme_map_ready
log "map $map over $na ($a, 127.0.0.1) and $nb ($b, 127.0.0.2)"
multipathd show paths format '%d %c %t %T'

vm_marginal_conf 120 100 5
VM_MARGINAL_STATE=$VM_MARGINAL_DEFAULT_STATE
vm_marginal_start
check "daemon watches $map" vm_marginal_logged "watching map $map"
# The fleet view (issue 18): each path says which target port and subsystem it reaches.
check "$nb's transport: nvme-tcp" vm_path_is "$nb" kind nvme-tcp
check "marginal_path_info carries it" sh -c "wget -qO- http://$VM_MARGINAL_ADDR/metrics | grep '^marginal_path_info{' | grep 'path=\"$nb\"' | grep -q 'transport=\"nvme-tcp\".*target_port=\"127.0.0.2:'"

# link_flap: the second port goes down until dm-mpath fails its path, then comes back until the
# path is active again.
link_flap() {
	vm_nvme_port_down
	check "dm-mpath fails $nb" vm_io_until 60 "$map" vm_dm_path_is "$map" "$b" F
	vm_nvme_port_up
}

log "one transition: the link of port 127.0.0.2 goes down and comes back"
link_flap
check "the host reconnects and $nb is reinstated" vm_wait_for 60 vm_dm_path_is "$map" "$b" A
check "daemon counts one failure" vm_wait_for 10 vm_path_is "$nb" kernel_failures 1
vm_io "$map" 3
check "still one failure" vm_path_is "$nb" kernel_failures 1
check "no sampling run" vm_path_is "$nb" sampling_runs 0
check "the daemon failed nothing" [ "$(vm_marginal_logged_count "failing $nb")" = 0 ]

log "a second transition within the window"
link_flap
check "the daemon fails $nb" vm_wait_for 20 vm_marginal_logged "failing $nb of $map: failed twice within"
check "and samples it" vm_wait_for 20 vm_marginal_logged "sampling $nb for 3s"
check "with the link back a run passes and the daemon returns $nb" \
	vm_wait_for 90 vm_marginal_logged "returning $nb to $map: passed"
check "$nb active in dm" vm_wait_for 20 vm_dm_path_is "$map" "$b" A
check "reads through the map work" vm_read "/dev/mapper/$map" 16
check "the daemon logged no error" vm_marginal_no_errors
