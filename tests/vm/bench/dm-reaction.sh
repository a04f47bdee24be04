#!/bin/sh
# Benchmark (`cargo xtask bench`, part 2 in the VM): from dm-mpath's second failure of a path to
# the daemon's first sampling read of it, with the daemon acting through dm messages (no
# multipathd). A failure is dm-mpath's own transition (SPEC: not a block-layer error): reads go
# through the map, dm-mpath fails the broken path and retries on the other; the path is then
# reinstated by hand, as a checker with stale state would, and the next reads fail it again.
# Both ends are the kernel's own timestamps on one clock (trace_clock mono): the dm_path_uevent
# PATH_FAILED of the second failure (a kprobe) and the first bio queued on the path after it
# (the daemon's sampling read: dm-mpath sends nothing to a failed path, and request-based dm
# inserts its clones without queueing bios).
# Prints one "BENCH dm-reaction trial=N failure2=T sampling=T daemon=S" line a trial
# (T: seconds on CLOCK_MONOTONIC; daemon: the reaction the daemon measured itself, from /status:
# second failure to its dm message done).
# vm-debs: mount libmount1 libsmartcols1 libblkid1
# vm-timeout: 300
. "$VM_LIB"
vm_show_daemon_on_failure

TRIALS=${VM_BENCH_TRIALS:-20}
T=$VM_TRACE

lun=$(vm_loop 64)
pdev_a=$(vm_linear pdev_a "$lun")
pdev_b=$(vm_linear pdev_b "$lun")
la=$(vm_loop_direct "$pdev_a")
lb=$(vm_loop_direct "$pdev_b")
mp=$(vm_multipath mp0 "$la" "$lb")
b=$(vm_majmin "$lb")
nb=$(vm_kname "$b")
log "map $mp over $la and $lb ($b), loop devices in direct-I/O mode over dm paths"

vm_trace_block_event block_bio_queue "$b"
vm_trace_dm_path_events

# Double failure within 5 s; every PATH_FAILED its own failure (episode gap 0). The path heals as
# soon as the daemon holds it, so its sampling run (3 s) passes: a threshold of 900 permille lets
# it back, and a path returned by marginal pairs no earlier failure with a later one (the fence).
vm_marginal_conf 5 900 600
vm_marginal_start --episode-gap-ms 0
check "daemon acts through dm messages" vm_marginal_logged "actuator: device-mapper messages"

trial=1
while [ "$trial" -le "$TRIALS" ]; do
	vm_break_path pdev_b
	echo "bench trial=$trial" >"$T/trace_marker"
	check "trial $trial: dm-mpath fails $nb (first failure)" vm_io_until 10 mp0 vm_dm_path_is mp0 "$b" F
	dmsetup message mp0 0 reinstate_path "$b"
	echo "bench second" >"$T/trace_marker"
	check "trial $trial: dm-mpath fails $nb again (second failure)" vm_io_until 10 mp0 vm_dm_path_is mp0 "$b" F
	check "trial $trial: the daemon holds $nb" vm_wait_for 10 vm_path_is "$nb" failed_by_marginal true
	vm_heal_path pdev_b
	check "trial $trial: the recheck returns $nb" vm_wait_for 20 vm_dm_path_is mp0 "$b" A
	daemon=$(vm_path_field "$nb" last_reaction_seconds)
	echo "bench daemon=$daemon" >"$T/trace_marker"
	trial=$((trial + 1))
done
echo 0 >"$T/events/kprobes/dmpu/enable"
echo 0 >"$T/events/block/block_bio_queue/enable"

# Per trial: the first PATH_FAILED of the path after the "second" mark, and the first bio queued
# on the path after that.
awk -v path="\"$b\"" '
	'"$VM_TRACE_TS_AWK"'
	/tracing_mark_write: bench trial=/ { sub(/.*trial=/, ""); trial = $1; second = 0; failed = ""; read = ""; next }
	/tracing_mark_write: bench second/ { second = 1; next }
	/dmpu:/ && second && index($0, "type=0 ") && index($0, "path=" path) && failed == "" { failed = ts($0); next }
	/block_bio_queue:/ && failed != "" && read == "" { read = ts($0); next }
	/tracing_mark_write: bench daemon=/ {
		sub(/.*daemon=/, "")
		printf "BENCH dm-reaction trial=%s failure2=%s sampling=%s daemon=%s\n", trial, failed, read, $1
	}' "$T/trace" | tee "$SCRATCH/bench"
check "a line for every trial, with both kernel times and the daemon's own figure" [ "$(grep -c 'failure2=[0-9.]* sampling=[0-9.]* daemon=[0-9]' "$SCRATCH/bench")" = "$TRIALS" ]
check "the daemon logged no error" vm_marginal_no_errors
