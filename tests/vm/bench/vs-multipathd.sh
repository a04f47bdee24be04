#!/bin/sh
# Benchmark (`cargo xtask bench`, part 5): marginal against multipathd's own marginal-path checking
# (Debian's multipath-tools 0.9.4, the io_err_stat code of the seed), on one map, one flaky path,
# one run each, with the same parameters: two failures within 60 s start the check, a sampling
# run lasts 120 s (multipathd's floor), a rate above 100 permille is marginal, a marginal path is
# rechecked after 10 s. The recheck gap is short because multipathd 0.9.4 starts the first
# sampling of a path only once the monotonic clock has passed the gap (need_io_err_check compares
# it with a "disabled since" time of 0): with 600 s it did not sample at all in the first 300 s
# after this guest's boot.
#
# The map is mpvm over two loop devices (direct I/O) over dm devices of one LUN, managed by
# multipathd (directio checker every second) with udevd, as in daemon-multipathd.sh. A round:
#   1. pdev_b breaks, reads through the map make dm-mpath fail the path (failure 1), pdev_b heals
#      and the checker reinstates the path;
#   2. pdev_b breaks again, reads make dm-mpath fail the path (failure 2, the double failure);
#      then pdev_b turns flaky: dm-flakey, up 3 s, down 1 s (a quarter of the time every read
#      fails), what the checking samples;
#   3. the tool's hold is awaited (multipathd: it logs that it queued the path for sampling;
#      marginal: /status says "sampling"), then its verdict.
# Round one is multipathd with marginal_path_* set; round two is marginal with the same settings,
# acting through multipathd's socket (multipathd restarted without them).
#
# Times are the kernel's (trace_clock mono): the failure is dm-mpath's PATH_FAILED (a kprobe on
# dm_path_uevent); the tool's reaction is its first sampling read of the path (a block_bio_queue
# event on the path, from the tool's sampler: for marginal any task but multipathd's and the
# scenario's dd; for multipathd a thread of it that had not read the path before the double
# failure, i.e. its io_err_stat thread, not its checker). The log poll stays as a cross-check: hold
# and verdict are trace_marker lines written when the scenario first sees the tool log them (a grep
# of its log every 0.05 s for the hold, started before the failure; every 0.5 s for the verdict).
# Printed lines, parsed by xtask:
#   BENCH vs-multipathd tool=T failure2=S sampling=S held=S verdict=S reinstated=N reads=N cpu_ticks=N
#         clk_tck=N rate=R verdict_says=V poll=S daemon_reaction=S
# (reads: bios queued on the path from the second failure to the verdict: the tool's sampling
# reads, and its checker's if it still checks the path; cpu_ticks: the daemon's user + system
# time over the same span.)
# vm-debs: multipath-tools libaio1 liburcu8 libjson-c5 libedit2 udev libkmod2 libacl1 libcap2 libblkid1 mount libmount1 libsmartcols1
# vm-timeout: 900
. "$VM_LIB"
vm_private_system "$0" "$@"

T=$VM_TRACE
MPD_LOG=$SCRATCH/multipathd.log
vm_show_multipathd_on_failure "$MPD_LOG"

vm_udevd
lun=$(vm_loop 64)
da=$(vm_linear pdev_a "$lun")
db=$(vm_linear pdev_b "$lun")
la=$(vm_loop_direct "$da")
lb=$(vm_loop_direct "$db")
na=${la#/dev/}
nb=${lb#/dev/}
b=$(vm_majmin "$lb")
vm_udev_wwid marginal-vm-lun0 "$na" "$nb"
log "paths: $na over pdev_a, $nb ($b) over pdev_b, both over $lun"

vm_trace_dm_path_events
# Every bio queued on the path (the sampling reads, a checker's reads): 320 reads a second for
# minutes need a bigger buffer than the default.
echo 16384 >"$T/buffer_size_kb"
vm_trace_block_event block_bio_queue "$b"

# multipathd 0.9.4 samples a path only once the monotonic clock is past the recheck gap (see
# above): in a guest booted seconds ago, it would wait for that, not for its checker.
while [ "$(vm_now)" -le 15 ]; do sleep 1; done

# multipathd's own marginal-path checking, for round one.
MARGINAL_SETTINGS="marginal_path_double_failed_time 60
	marginal_path_err_sample_time 120
	marginal_path_err_rate_threshold 100
	marginal_path_err_recheck_gap_time 10"

start_multipathd() {
	multipathd -d -s -v3 >>"$MPD_LOG" 2>&1 &
	MPD_PID=$!
	check "multipathd has mpvm with both paths active" \
		vm_wait_for 60 sh -c "[ \"\$(dmsetup status mpvm 2>/dev/null | grep -o ' A ' | wc -l)\" -ge 2 ]"
}

# cpu_ticks PID: user + system time of a process so far, in clock ticks.
cpu_ticks() {
	awk '{ print $14 + $15 }' "/proc/$1/stat"
}

mark() { echo "bench $*" >"$T/trace_marker"; }

# break_and_fail: pdev_b breaks and reads through the map until dm-mpath fails the path.
break_and_fail() {
	vm_break_path pdev_b
	check "dm-mpath fails $nb" vm_fail_by_io mpvm "$b" 30
}

# What each tool logs when it has the path held and starts sampling it, and when it has a
# verdict: both are watched the same way, by grepping the tool's log.
multipathd_holds() { grep -q "io error statistic: mpvm: enqueue path $nb to check" "$MPD_LOG"; }
multipathd_verdict() { grep -q "io error statistic: $nb: IO error rate" "$MPD_LOG"; }
marginal_holds() { grep -q "sampling $nb for " "$VM_MARGINAL_LOG"; }
marginal_verdict() { grep -q "$nb: sampling Completed" "$VM_MARGINAL_LOG"; }

# watch_for TOOL CONDITION: in the background, polls CONDITION every 0.05 s for up to 60 s and
# marks "held TOOL" in the trace when it holds; the number of polls goes to $SCRATCH/polls.
watch_for() {
	(
		n=0
		until "$2"; do
			n=$((n + 1))
			[ "$n" -lt 1200 ] || exit 1
			sleep 0.05
		done
		mark "held $1"
		echo "$n" >"$SCRATCH/polls"
	) &
	WATCHER=$!
}

# round TOOL PID HOLDS VERDICT: one round, as in the header; prints its BENCH line.
round() {
	tool=$1 pid=$2 holds=$3 verdict=$4
	log "== round: $tool =="
	mark "round=$tool"
	break_and_fail
	vm_heal_path pdev_b
	# multipathd 0.9.4 can take this one outage for two failures: its checker puts the path
	# back on a result from before the break and the next read fails it again, tens of ms
	# later (it has no episode gap). Its checking then starts here, before the round's second
	# failure: start it afresh (it forgets its failures) and break the path again.
	tries=1
	while [ "$tool" = multipathd ] && [ "$tries" -lt 4 ] &&
		vm_wait_for 5 grep -q "enqueue path $nb to check" "$MPD_LOG"; do
		log "multipathd took the first outage for a double failure (try $tries): restarting it"
		echo "BENCH vs-multipathd-note tool=multipathd outage_taken_for_double_failure=$tries"
		kill "$MPD_PID"
		wait "$MPD_PID" 2>/dev/null || true
		: >"$MPD_LOG"
		start_multipathd
		pid=$MPD_PID
		tries=$((tries + 1))
		break_and_fail
		vm_heal_path pdev_b
	done
	check "the checker reinstates $nb" vm_wait_for 20 vm_dm_path_is mpvm "$b" A
	sleep 2
	ticks0=$(cpu_ticks "$pid")
	start=$(cut -d' ' -f1 /proc/uptime)
	watch_for "$tool" "$holds"
	mark "second $tool"
	break_and_fail
	vm_flaky_path pdev_b 3 1
	wait "$WATCHER" || fail "$tool did not take hold of $nb within 60 s"
	polls=$(cat "$SCRATCH/polls")
	poll=$(awk -v s="$start" -v n="$polls" '{ if (n > 0) printf "%.3f", ($1 - s) / n; else print 0 }' /proc/uptime)
	log "$tool holds $nb (after $polls polls)"
	until "$verdict"; do
		sleep 0.5
		[ "$(cut -d. -f1 /proc/uptime)" -lt "$((${start%.*} + 300))" ] || fail "$tool gave no verdict within 300 s"
	done
	mark "verdict $tool"
	ticks1=$(cpu_ticks "$pid")
	if [ "$tool" = multipathd ]; then
		rate=$(grep "io error statistic: $nb: IO error rate" "$MPD_LOG" | tail -n 1 | sed 's/.*rate (\([0-9.]*\)\/1000).*/\1/')
		if grep -q "keep failing the dm path $nb" "$MPD_LOG"; then says=marginal; else says=healthy; fi
		reaction=-
	else
		rate=$(vm_path_field "$nb" last_rate_permille)
		says=$(vm_path_field "$nb" last_verdict)
		reaction=$(vm_path_field "$nb" last_reaction_seconds)
	fi
	log "$tool: verdict $says at $rate permille"
	# The kernel's times: the PATH_FAILED of $b after the "second" mark (the double failure),
	# the hold and verdict marks, and any reinstatement of $b in between.
	awk -v tool="$tool" -v path="\"$b\"" -v ticks=$((ticks1 - ticks0)) -v rate="$rate" \
		-v says="$says" -v poll="$poll" -v reaction="$reaction" -v tck="$(getconf CLK_TCK 2>/dev/null || echo 100)" '
		'"$VM_TRACE_TS_AWK"'
		# task(line): "comm-tid" of a trace line, split into tcomm and ttid.
		function task(line) {
			sub(/^ */, "", line); sub(/ .*/, "", line)
			match(line, /-[0-9]+$/); tcomm = substr(line, 1, RSTART - 1); ttid = substr(line, RSTART + 1)
		}
		index($0, "bench round=" tool) { round = 1; next }
		round && !on && /block_bio_queue:/ { task($0); before[ttid] = 1; next }
		index($0, "bench second " tool) { on = 1; next }
		!on { next }
		/dmpu:/ && index($0, "type=0 ") && index($0, "path=" path) && failed == "" { failed = ts($0); next }
		/dmpu:/ && index($0, "type=1 ") && index($0, "path=" path) && failed != "" && verdict == "" { reinstated++; next }
		/block_bio_queue:/ && failed != "" && verdict == "" {
			reads++
			# The first sampling read: not the scenario dd, and for multipathd not a thread that
			# read the path before the double failure (its checker) but its io_err_stat thread.
			if (sampling == "") {
				task($0)
				if (tool == "multipathd" ? (tcomm == "multipathd" && !(ttid in before)) : (tcomm != "multipathd" && tcomm != "dd"))
					sampling = ts($0)
			}
			next
		}
		index($0, "bench held " tool) { held = ts($0); next }
		index($0, "bench verdict " tool) { verdict = ts($0); next }
		END {
			printf "BENCH vs-multipathd tool=%s failure2=%s sampling=%s held=%s verdict=%s reinstated=%d reads=%d cpu_ticks=%d clk_tck=%s rate=%s verdict_says=%s poll=%s daemon_reaction=%s\n",
				tool, failed, sampling, held, verdict, reinstated, reads, ticks, tck, rate, says, poll, reaction
		}' "$T/trace" | tee -a "$SCRATCH/bench"
}

# Round one: multipathd checks the path itself.
vm_mpvm_conf "$MARGINAL_SETTINGS"
start_multipathd
multipathd show config 2>/dev/null | grep marginal_path || true
round multipathd "$MPD_PID" multipathd_holds multipathd_verdict

# Between the rounds: pdev_b whole, multipathd restarted without its checking, so the path is
# reinstated and multipathd forgets its failures.
vm_heal_path pdev_b
kill "$MPD_PID"
wait "$MPD_PID" 2>/dev/null || true
vm_mpvm_conf
start_multipathd

# Round two: marginal, same settings, production run lengths, through multipathd's socket.
vm_marginal_conf 60 100 10
VM_MARGINAL_TESTING_FLAGS=""
vm_marginal_start
check "daemon acts through multipathd" vm_marginal_logged "actuator: multipathd (multipathd answers"
# multipathd was restarted just before the daemon: let its start-up (path checks, map reload)
# settle before the round, as round one had.
sleep 3
round marginal "$VM_MARGINAL_PID" marginal_holds marginal_verdict
echo "--- the daemon's account of the round ---"
grep -v "marginal::sampler" "$VM_MARGINAL_LOG" | tail -n 25

check "a line for each tool" [ "$(grep -c '^BENCH vs-multipathd tool=.* failure2=[0-9]' "$SCRATCH/bench")" = 2 ]
check "the daemon logged no error" vm_marginal_no_errors
