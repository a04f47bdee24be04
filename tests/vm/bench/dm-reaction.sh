#!/bin/sh
# Benchmark (`cargo xtask bench`, part 2 in the VM): from the completion of a path's second failed
# read to dm-mpath having failed the path, with the daemon acting through dm messages (no
# multipathd). Both ends are the kernel's own timestamps on one clock (trace_clock mono): the
# block:block_rq_error event of the second failed read, and the dm_path_uevent PATH_FAILED that
# dm-mpath raises inside the daemon's fail_path message. The reads go to the path device itself,
# not through the map, so dm-mpath learns of them only from the daemon.
# Prints one "BENCH dm-reaction trial=N second_error=T path_failed=T daemon=S" line a trial
# (T: seconds on CLOCK_MONOTONIC; daemon: the reaction the daemon measured itself, from /status).
# vm-debs: mount libmount1 libsmartcols1 libblkid1
# vm-timeout: 300
. "$VM_LIB"
vm_show_daemon_on_failure

TRIALS=${VM_BENCH_TRIALS:-30}
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

vm_trace_block_event block_rq_error "$b"
vm_trace_dm_path_events

# Double failure within 1 s (the smallest window), so that trials a few seconds apart never pair
# up; every failed read its own failure (episode gap 0). The path heals as soon as it is seen
# failed, so its sampling run (3 s, reads for the first 2 s) passes but for the reads that met the
# broken path first: a threshold of 900 permille lets it back.
vm_marginal_conf 1 900 600
vm_marginal_start --episode-gap-ms 0
check "daemon acts through dm messages" vm_marginal_logged "actuator: device-mapper messages"

trial=1
while [ "$trial" -le "$TRIALS" ]; do
	vm_break_path pdev_b
	echo "bench trial=$trial" >"$T/trace_marker"
	dd if="$lb" of=/dev/null bs=4096 count=1 iflag=direct 2>/dev/null && fail "read of broken $lb passed"
	dd if="$lb" of=/dev/null bs=4096 count=1 skip=7 iflag=direct 2>/dev/null && fail "read of broken $lb passed"
	check "trial $trial: the daemon fails $nb in dm" vm_wait_for 10 vm_dm_path_is mp0 "$b" F
	vm_heal_path pdev_b
	check "trial $trial: the recheck returns $nb" vm_wait_for 20 vm_dm_path_is mp0 "$b" A
	daemon=$(vm_path_field "$nb" last_reaction_seconds)
	echo "bench daemon=$daemon" >"$T/trace_marker"
	# The next trial's first failure must fall outside this trial's 1 s window.
	sleep 1.2
	trial=$((trial + 1))
done
echo 0 >"$T/events/kprobes/dmpu/enable"
echo 0 >"$T/events/block/block_rq_error/enable"

# Per trial: the last block error before the PATH_FAILED of the path, and that PATH_FAILED.
awk -v path="\"$b\"" '
	'"$VM_TRACE_TS_AWK"'
	/tracing_mark_write: bench trial=/ { sub(/.*trial=/, ""); trial = $1; err = ""; failed = ""; next }
	/block_rq_error:/ && failed == "" { err = ts($0); next }
	/dmpu:/ && index($0, "type=0 ") && index($0, "path=" path) && failed == "" { failed = ts($0); next }
	/tracing_mark_write: bench daemon=/ {
		sub(/.*daemon=/, "")
		printf "BENCH dm-reaction trial=%s second_error=%s path_failed=%s daemon=%s\n", trial, err, failed, $1
	}' "$T/trace" | tee "$SCRATCH/bench"
check "a line for every trial, with the daemon's own figure" [ "$(grep -c 'path_failed=[0-9.]* daemon=[0-9]' "$SCRATCH/bench")" = "$TRIALS" ]
check "the daemon logged no error" vm_marginal_no_errors
