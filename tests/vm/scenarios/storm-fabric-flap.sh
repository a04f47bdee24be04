#!/bin/sh
# A flapping fabric (issue 15): every path behind SCSI host B fails its READs with DID_NO_CONNECT
# while TUR passes, so dm-mpath fails them, multipathd's checker reinstates them, and I/O fails
# them again, all at once. marginal checks every one of them, with all runs on its sampler at
# the same time, keeps them out while the fabric flaps, never takes a map's last active path,
# and returns every one once the fabric is healthy and a recheck passes.
# vm-debs: multipath-tools libaio1 liburcu8 libjson-c5 libedit2 udev libkmod2 libacl1 libcap2 libblkid1
# vm-kernels: 6.12 sid
# vm-timeout: 360
. "$VM_LIB"
vm_private_system "$0" "$@"
vm_show_san_on_failure

LUNS=8
vm_san_conf
vm_san_up "$LUNS"
# Recheck gap 20 s: the held paths are rechecked while the fabric still flaps, then after.
vm_marginal_conf 120 100 20
vm_marginal_start
maps=$(vm_sd_maps "$LUNS" | tr '\n' ' ')
bnames=$(vm_sd_names B "$LUNS" | tr '\n' ' ')
log "maps: $maps; host B paths: $bnames"

every_map_has_a_path() {
	for _m in $maps; do [ "$(vm_active_count "$_m")" -ge 1 ] || return 1; done
}
# all_b_held: marginal holds out every host B path.
all_b_held() {
	for _n in $bnames; do vm_path_is "$_n" failed_by_marginal true || return 1; done
}

log "fabric B flaps"
vm_sd_each B "$LUNS" vm_sd_flap
end=$(($(vm_now) + 120))
until all_b_held; do
	[ "$(vm_now)" -lt "$end" ] || fail "not every host B path was taken out within 120 s"
	for m in $maps; do vm_read "/dev/mapper/$m" 2 || fail "a read through $m failed"; done
	every_map_has_a_path || fail "a map lost its last active path"
done
log "every host B path held out $(($(vm_now) + 120 - end)) s after the fabric began to flap"
runs=$(marginal status --address "$VM_MARGINAL_ADDR" --json | grep -c '"state": "sampling"' || true)
log "$runs runs on the sampler at once when the last path was taken out"
for n in $bnames; do
	check "$n: marginal" vm_wait_for 30 vm_path_is "$n" last_verdict marginal
done
for m in $maps; do
	check "$m: path A carries the I/O" [ "$(vm_active_count "$m")" = 1 ]
done
check "every map kept a path throughout" every_map_has_a_path

log "fabric B heals"
vm_sd_each B "$LUNS" vm_sd_heal
for m in $maps; do
	check "$m: both paths back after a passed recheck" vm_wait_for 90 vm_map_has "$m" 2
done
for n in $bnames; do
	check "$n healthy" vm_wait_for 10 vm_path_is "$n" state healthy
done
check "no event lost" sh -c "marginal status --address $VM_MARGINAL_ADDR --json | grep -q '\"kernel_events_lost_total\": 0'"
check "the daemon logged no error" vm_marginal_no_errors
