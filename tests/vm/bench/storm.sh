#!/bin/sh
# Benchmark (`cargo xtask bench`, part 6): fabric storms (issue 15), marginal against multipathd's
# own marginal-path checking (Debian's multipath-tools 0.9.4, io_err_stat), in one boot on the
# same test bed: scsi_debug with LUNS LUNs over two SCSI hosts, each host a fabric, multipathd
# making the maps (tur checker every second, multibus), reads through every map all along.
# Four rounds, each tool started afresh for each (no failure left over from the round before):
#   multipathd outage, multipathd flap (multipathd with marginal_path_* set, marginal not running),
#   marginal outage, marginal flap (marginal with the same settings, multipathd without them).
# outage: every host B path offline at once; held down until the tool has settled, then back.
#   Right: no check started, no path failed by the tool, every path back once the fabric is.
# flap: every host B path fails its READs (DID_NO_CONNECT) while TUR passes, so dm-mpath fails
#   them, the checker reinstates them, I/O fails them again. Right: every one taken out of service
#   and kept out, never a host A path (a map's last) failed.
#
# Times are the kernel's (trace_clock mono): the storm's start and end of injection, and the
# tool's settled state, are trace_marker lines; dm-mpath's PATH_FAILED / PATH_REINSTATED are a
# kprobe on dm_path_uevent. "settled" in an outage is when the tool's own state first shows every
# host B path down (marginal: /status kernel_failures >= 1 on each; multipathd: `show paths`
# dm state failed, checker not ready), polled back to back (the poll period is printed); in a
# flap it is when dm has every host B path failed and keeps them failed 5 s (no reinstatement),
# whose kernel time is the last PATH_FAILED of a host B path. Printed lines, parsed by xtask:
#   BENCH storm tool=T kind=outage paths=N storm=S injected=S last_failed=S failed=N settled=S
#         polls=N back=S last_reinstated=S reinstated=N a_failed=N cpu_settle=TICKS
#         cpu_round=TICKS clk_tck=N lost=N wrong=N
#   BENCH storm tool=T kind=flap paths=N storm=S injected=S all_out=S out=N failures=N
#         reinstatements=N a_failed=N held=N cpu_settle=TICKS clk_tck=N lost=N wrong=N
# vm-debs: multipath-tools libaio1 liburcu8 libjson-c5 libedit2 udev libkmod2 libacl1 libcap2 libblkid1
# vm-kernels: 6.12 sid
# vm-timeout: 900
. "$VM_LIB"
vm_private_system "$0" "$@"
vm_show_san_on_failure

LUNS=${VM_BENCH_STORM_LUNS:-16}
T=$VM_TRACE
TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)
MPD_SETTINGS="marginal_path_double_failed_time 30
	marginal_path_err_sample_time 120
	marginal_path_err_rate_threshold 100
	marginal_path_err_recheck_gap_time 20"

# The emulated CPU against the host's: xtask times the same loop with the same busybox on the host.
c0=$(cut -d' ' -f1 /proc/uptime)
busybox awk 'BEGIN { for (i = 0; i < 100000; i++) s += i % 7; print s }' >/dev/null
echo "BENCH storm-calibration seconds=$(awk -v a="$c0" -v b="$(cut -d' ' -f1 /proc/uptime)" 'BEGIN { print b - a }')"

vm_san_conf "$MPD_SETTINGS"
vm_san_up "$LUNS"
maps=$(vm_sd_maps "$LUNS" | tr '\n' ' ')
bnames=$(vm_sd_names B "$LUNS" | tr '\n' ' ')
bdevs=$(vm_sd_each B "$LUNS" vm_sd_majmin | tr '\n' ' ')
adevs=$(vm_sd_each A "$LUNS" vm_sd_majmin | tr '\n' ' ')
log "maps: $maps; host B paths: $bnames ($bdevs)"
# The buffer sized before any event is on (resizing it under enabled events is best avoided).
echo 16384 >"$T/buffer_size_kb"
vm_trace_dm_path_events
# multipathd 0.9.4 samples only once the monotonic clock is past the recheck gap (20 s).
while [ "$(vm_now)" -le 25 ]; do sleep 1; done

mark() { echo "bench $*" >"$T/trace_marker"; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# Reads through every map, one 4 KiB direct read each in turn, until stopped: what makes dm-mpath
# notice a failing path (errors ignored: dm retries a read on the other path).
start_io() {
	(while :; do for _m in $maps; do vm_read "/dev/mapper/$_m" 1 >/dev/null 2>&1 || true; done; done) &
	IO_PID=$!
}
stop_io() { kill "$IO_PID" 2>/dev/null || true; wait "$IO_PID" 2>/dev/null || true; }

# b_failed_in_dm: how many host B paths dm-mpath has failed now (one dmsetup call for all maps).
b_failed_in_dm() {
	dmsetup status --target multipath 2>/dev/null | awk -v devs="$bdevs" '
		BEGIN { n = split(devs, d, " "); for (i = 1; i <= n; i++) want[d[i]] = 1 }
		{ for (i = 1; i < NF; i++) if (($i in want) && $(i + 1) == "F") c++ }
		END { print c + 0 }'
}
all_maps_whole() {
	for _m in $maps; do vm_map_has "$_m" 2 || return 1; done
}

# marginal_status: the daemon's /status (pretty JSON), by busybox wget: starting the marginal
# binary for `marginal status` takes seconds under emulation, which would be the poll's period.
marginal_status() { wget -q -O - "http://$VM_MARGINAL_ADDR/status" 2>/dev/null; }
# marginal_paths FIELD sum|count: over the host B paths, the sum of a numeric (true = 1) /status
# field, or how many paths have it above 0.
marginal_paths() {
	marginal_status | awk -v names="$bnames" -v f="\"$1\":" -v how="$2" '
		BEGIN { n = split(names, d, " "); for (i = 1; i <= n; i++) want["\"" d[i] "\","] = 1 }
		$1 == "\"name\":" { cur = ($2 in want) }
		cur && $1 == f { v = $2; sub(/,$/, "", v); v = (v == "true") ? 1 : (v == "false") ? 0 : v + 0; s += (how == "sum") ? v : (v > 0) }
		END { print s + 0 }'
}
marginal_lost() {
	marginal_status | awk '/"kernel_events_lost_total":/ { v = $2; sub(/,$/, "", v); print v; exit }'
}
# The tool's own state shows every host B path down (after an outage).
marginal_sees_all_down() { [ "$(marginal_paths kernel_failures count)" -ge "$LUNS" ]; }
multipathd_sees_all_down() {
	[ "$(multipathd show paths raw format "%d %t %T" 2>/dev/null | awk -v names="$bnames" '
		BEGIN { n = split(names, d, " "); for (i = 1; i <= n; i++) want[d[i]] = 1 }
		($1 in want) && $2 == "failed" && $3 != "ready" { c++ } END { print c + 0 }')" -ge "$LUNS" ]
}
mpd_checks_started() { grep -ac "io error statistic: .*: enqueue path .* to check" "$VM_MPD_LOG" || true; }

# The kernel's account of a round (between its "round" and "end" marks), by awk over the trace.
round_awk() {
	awk -v tool="$1" -v kind="$2" -v bdevs="$bdevs" -v adevs="$adevs" "$VM_TRACE_TS_AWK"'
		BEGIN {
			nb = split(bdevs, b, " "); for (i = 1; i <= nb; i++) isb["\"" b[i] "\""] = 1
			na = split(adevs, a, " "); for (i = 1; i <= na; i++) isa["\"" a[i] "\""] = 1
		}
		index($0, "bench round " tool " " kind) { on = 1; next }
		!on { next }
		index($0, "bench end " tool " " kind) { exit }
		index($0, "bench storm ") { storm = ts($0); next }
		index($0, "bench injected ") { injected = ts($0); next }
		index($0, "bench settled ") { settled = ts($0); next }
		index($0, "bench back ") { back = ts($0); next }
		/dmpu:/ && storm != "" {
			p = $0; sub(/.*path=/, "", p); sub(/ .*/, "", p)
			type = index($0, "type=0 ") ? 0 : 1
			if (p in isa) { if (type == 0) afailed++; next }
			if (!(p in isb)) next
			if (type == 0) {
				failures++
				if (back == "" && !(p in first)) { first[p] = ts($0); if (ts($0) > lastfirst) lastfirst = ts($0) }
				lastfail[p] = ts($0)
			} else {
				if (back != "") { reinst[p] = ts($0) } else if (p in first) reinstatements++
			}
			last[p] = type
		}
		END {
			for (p in first) nfailed++
			if (kind == "outage") {
				for (p in reinst) { nre++; if (reinst[p] > lastre) lastre = reinst[p] }
				printf "storm=%s injected=%s last_failed=%s failed=%d settled=%s back=%s last_reinstated=%s reinstated=%d a_failed=%d",
					storm, injected, lastfirst, nfailed, settled, back, lastre, nre, afailed
			} else {
				for (p in last) if (last[p] == 0) { out++; if (lastfail[p] > allout) allout = lastfail[p] }
				printf "storm=%s injected=%s all_out=%s out=%d failures=%d reinstatements=%d a_failed=%d",
					storm, injected, allout, out, failures, reinstatements, afailed
			}
		}' "$T/trace"
}

# outage TOOL PID SEES_ALL_DOWN: one outage round; prints its BENCH line.
outage() {
	tool=$1 pid=$2 sees=$3
	log "== $tool: fabric B outage =="
	start_io
	sleep 2
	mark "round $tool outage"
	checks0=$(mpd_checks_started)
	t0=$(cpu_ticks "$pid")
	mark "storm $tool"
	vm_sd_each B "$LUNS" vm_sd_state offline
	mark "injected $tool"
	polls=0
	end=$(($(vm_now) + 60))
	until "$sees"; do
		polls=$((polls + 1))
		[ "$(vm_now)" -lt "$end" ] || fail "$tool did not see every host B path down within 60 s"
	done
	mark "settled $tool"
	t1=$(cpu_ticks "$pid")
	log "$tool settled after $polls polls"
	sleep 5
	mark "back $tool"
	vm_sd_each B "$LUNS" vm_sd_state running
	check "$tool: every map has both paths back" vm_wait_for 60 all_maps_whole
	t2=$(cpu_ticks "$pid")
	mark "end $tool outage"
	stop_io
	if [ "$tool" = marginal ]; then
		lost=$(marginal_lost)
		wrong=$(($(marginal_paths failed_by_daemon_total sum) + $(marginal_paths sampling_runs sum)))
	else
		lost=-
		wrong=$(($(mpd_checks_started) - checks0))
	fi
	line="BENCH storm tool=$tool kind=outage paths=$LUNS $(round_awk "$tool" outage) polls=$polls cpu_settle=$((t1 - t0)) cpu_round=$((t2 - t0)) clk_tck=$TCK lost=$lost wrong=$wrong"
	echo "$line" | tee -a "$SCRATCH/bench"
}

# flap TOOL PID: one flapping-fabric round; prints its BENCH line.
flap() {
	tool=$1 pid=$2
	log "== $tool: fabric B flaps =="
	start_io
	sleep 2
	mark "round $tool flap"
	checks0=$(mpd_checks_started)
	t0=$(cpu_ticks "$pid")
	mark "storm $tool"
	vm_sd_each B "$LUNS" vm_sd_flap
	mark "injected $tool"
	# Settled: every host B path failed in dm, and still every one 5 s later (a checker that may
	# reinstate a path does so within 1-2 s).
	end=$(($(vm_now) + 150))
	since=
	while :; do
		[ "$(vm_now)" -lt "$end" ] || break
		if [ "$(b_failed_in_dm)" -ge "$LUNS" ]; then
			since=${since:-$(vm_now)}
			[ "$(($(vm_now) - since))" -lt 5 ] || break
		else
			since=
		fi
		sleep 0.2
	done
	t1=$(cpu_ticks "$pid")
	mark "end $tool flap"
	stop_io
	if [ "$tool" = marginal ]; then
		lost=$(marginal_lost)
		held=$(marginal_paths failed_by_marginal count)
	else
		lost=-
		held=$(($(mpd_checks_started) - checks0))
	fi
	log "$tool holds $held of $LUNS host B paths"
	kernel=$(round_awk "$tool" flap)
	out=$(echo "$kernel" | sed 's/.* out=\([0-9]*\).*/\1/')
	afailed=$(echo "$kernel" | sed 's/.*a_failed=\([0-9]*\).*/\1/')
	wrong=$((LUNS - out + afailed))
	line="BENCH storm tool=$tool kind=flap paths=$LUNS $kernel held=$held cpu_settle=$((t1 - t0)) clk_tck=$TCK lost=$lost wrong=$wrong"
	echo "$line" | tee -a "$SCRATCH/bench"
	vm_sd_each B "$LUNS" vm_sd_heal
}

restart_multipathd() {
	vm_mpathd_stop
	vm_mpathd_start
	check "multipathd has both paths of every map" vm_wait_for 60 all_maps_whole
}

# multipathd, with its own marginal-path checking.
multipathd show config 2>/dev/null | grep marginal_path || true
outage multipathd "$VM_MPD_PID" multipathd_sees_all_down
restart_multipathd
flap multipathd "$VM_MPD_PID"

# marginal, with the same settings; multipathd without them (it only makes the maps, checks and
# reinstates, and carries marginal's fail/reinstate).
vm_san_conf
restart_multipathd
vm_marginal_conf 30 100 20
vm_marginal_start
check "daemon acts through multipathd" vm_marginal_logged "actuator: multipathd (multipathd answers"
sleep 3
outage marginal "$VM_MARGINAL_PID" marginal_sees_all_down
kill "$VM_MARGINAL_PID"
vm_wait_for 30 sh -c "! kill -0 $VM_MARGINAL_PID 2>/dev/null" || fail "marginal did not stop"
vm_marginal_start
sleep 3
flap marginal "$VM_MARGINAL_PID"

check "a line for each round" [ "$(grep -c '^BENCH storm tool=' "$SCRATCH/bench")" = 4 ]
check "the daemon logged no error" vm_marginal_no_errors
