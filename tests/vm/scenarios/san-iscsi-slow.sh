#!/bin/sh
# Slow path: an iSCSI LUN over two portals, read all the time through its map. With no fault the
# busy map's paths are compared window after window and nothing is judged. Then every packet of
# the second portal is delayed 50 ms (netem): no I/O fails, but its path is slow. marginal with
# slow-path checking takes it out, samples it, keeps it out as "slow" while its reads are slow,
# and returns it once the delay is gone. Last, both portals are delayed alike: a uniformly slow
# map judges nothing.
# vm-debs: multipath-tools libaio1 liburcu8 libjson-c5 libedit2 udev libkmod2 libacl1 libcap2 libblkid1
# vm-debs: open-iscsi libisns0 libopeniscsiusr libssl3 libmount1 iproute2 libbpf1 libbsd0 libdb5.3
# vm-debs: libelf1 libmnl0 libtirpc3 libxtables12 libmd0
# vm-kernels: 6.12 sid
# vm-timeout: 180
. "$VM_LIB"
vm_private_system "$0" "$@"
vm_show_san_on_failure

vm_iscsi_san_up

# Windows of 3 s with at least 20 I/Os; slow above 3 times the sibling and above 20 ms (the
# default floor: the sampler's 32 reads in flight take a few ms each even on a healthy path).
mkdir -p /etc/marginal
cat >/etc/marginal/marginal.conf <<CONF
defaults {
	marginal_path_double_failed_time   120
	marginal_path_err_sample_time      120
	marginal_path_err_rate_threshold   100
	marginal_path_err_recheck_gap_time 6
	marginal_path_slow_factor          3
	marginal_path_slow_min_ios         20
	marginal_path_slow_window          3
}
CONF
VM_MARGINAL_STATE=$VM_MARGINAL_DEFAULT_STATE
vm_marginal_start
check "daemon watches $map" vm_marginal_logged "watching map $map"

# The map is busy from here to the end: 4 KiB direct reads, one after the other.
(while :; do vm_read "/dev/mapper/$map" 20 || true; done) >/dev/null 2>&1 &
reader=$!
vm_teardown "kill $reader"

compared() {
	_r=$(vm_path_field "$1" latency_ratio)
	[ -n "$_r" ] && [ "$_r" != null ]
}
both_compared() { compared "$na" && compared "$nb"; }
check "a window compares both busy paths" vm_wait_for 60 both_compared
log "latency ratios: $na $(vm_path_field "$na" latency_ratio), $nb $(vm_path_field "$nb" latency_ratio)"
check "a busy map without a fault judges nothing" [ "$(vm_marginal_logged_count "failing")" = 0 ]
has_histogram() {
	marginal status --address "$VM_MARGINAL_ADDR" --json | grep -q '"latency": {'
}
check "status carries the paths' latency histograms" has_histogram

log "every packet of portal 127.0.0.2 is delayed 50 ms"
vm_iscsi_netem delay 50ms
check "marginal takes the slow path $nb out" vm_wait_for 60 vm_marginal_logged "failing $nb"
check "its reads are still slow: held out as slow" vm_wait_for 60 vm_path_is "$nb" state slow
check "its verdict says slow" vm_path_is "$nb" last_verdict slow
check "the map runs on the other path" vm_map_has "$map" 1
rechecked() { [ "$(vm_path_field "$nb" sampling_runs)" -ge 2 ] && vm_path_is "$nb" state slow; }
check "a recheck while slow keeps it out" vm_wait_for 60 rechecked

# Changed in place rather than removed: removing the qdisc would drop the packets it holds, and
# TCP's retransmission would stall the session (sampling reads timing out) for seconds.
log "the delay is gone"
$VM_TC qdisc change dev lo parent 1:4 handle 40: netem delay 0ms
back() { vm_path_is "$nb" state healthy && vm_map_has "$map" 2; }
verdicts() {
	grep -F "$nb" "$VM_MARGINAL_LOG" | grep -E "slow|marginal|passed" | tail -n 6 |
		while read -r line; do log "$line"; done
}
vm_wait_for 60 back || { verdicts; fail "the next recheck returns $nb"; }
log "ok: the next recheck returns $nb"
verdicts
check "it was taken out once" [ "$(vm_marginal_logged_count "failing $nb")" = 1 ]
check "reads through the map work" vm_read "/dev/mapper/$map" 16

# A uniformly slow array is not a slow path: the first portal's iSCSI traffic joins the delayed
# band (at 0 ms), then both are delayed 50 ms at once. Five windows pass with the reads going on
# and the delay kept on; nothing may be judged.
log "both portals delayed 50 ms: every path equally slow"
$VM_TC filter add dev lo parent 1:0 protocol ip prio 2 u32 match ip dst 127.0.0.1/32 match ip dport 3260 0xffff flowid 1:4
$VM_TC filter add dev lo parent 1:0 protocol ip prio 2 u32 match ip src 127.0.0.1/32 match ip sport 3260 0xffff flowid 1:4
$VM_TC qdisc change dev lo parent 1:4 handle 40: netem delay 50ms
# Four more readers, so that each window has its minimum of I/Os on both slow paths.
for _i in 1 2 3 4; do
	(while :; do vm_read "/dev/mapper/$map" 20 || true; done) >/dev/null 2>&1 &
	vm_teardown "kill $!"
done
sleep 3
slow_compared() {
	for _p in "$na" "$nb"; do
		_r=$(vm_path_field "$_p" latency_ratio)
		[ -n "$_r" ] && [ "$_r" != null ] || return 1
	done
}
check "windows compare both slow paths" vm_wait_for 30 slow_compared
sleep 12
log "latency ratios: $na $(vm_path_field "$na" latency_ratio), $nb $(vm_path_field "$nb" latency_ratio)"
check "still compared at the end" slow_compared
check "an equally slow map judges nothing" [ "$(vm_marginal_logged_count "failing")" = 1 ]
check "both paths stay in service" vm_map_has "$map" 2
both_healthy() { vm_path_is "$na" state healthy && vm_path_is "$nb" state healthy; }
check "neither path is held" both_healthy
$VM_TC qdisc change dev lo parent 1:4 handle 40: netem delay 0ms
check "the daemon logged no error" vm_marginal_no_errors
