#!/bin/sh
# Benchmark (`cargo xtask bench`, part 4 in the VM): what one device-mapper re-discovery round
# costs marginal at MAPS multipath maps of two paths each (issue 15). Paths are dm-linear devices
# over one loop device (2 x MAPS of them), the maps dm-multipath (queue_mode bio) over them, made
# in a few `dmsetup create --concise` calls. marginal runs idle (no multipathd, no I/O): every
# 5 s its resync re-reads dm (every dm device listed, each multipath map's table and status, the
# paths' sysfs) and finds nothing changed. A round's time is the kernel's: from the first to the
# last return of dm's ioctl handler (a kprobe and kretprobe on dm_ctl_ioctl; nothing else issues
# dm ioctls meanwhile) in a burst; CPU is the daemon's user + system time over the whole watch,
# divided by the rounds seen (an upper bound: it includes the idle loop, measured at 0.01% on the
# host). Printed lines, parsed by xtask:
#   BENCH dm-rediscovery maps=N paths=N create_s=S startup_s=S
#   BENCH dm-rediscovery round=I start=S end=S ioctls=N
#   BENCH dm-rediscovery rounds=N watch_s=S cpu_ticks=N clk_tck=N rss_kib=N
# vm-debs: mount libmount1 libsmartcols1 libblkid1
# vm-timeout: 600
. "$VM_LIB"
vm_show_daemon_on_failure

MAPS=${VM_BENCH_MAPS:-1024}
WATCH=${VM_BENCH_WATCH_S:-32}
T=$VM_TRACE
SECTORS=2048

lun=$(vm_loop 16)
lunmm=$(vm_majmin "$lun")
# Path i gets dm minor 4096 + i, so the maps' tables can name them without asking.
created0=$(cut -d' ' -f1 /proc/uptime)
batch=128
i=0
while [ "$i" -lt $((MAPS * 2)) ]; do
	spec=$(awk -v from="$i" -v n="$batch" -v max=$((MAPS * 2)) -v dev="$lunmm" -v s="$SECTORS" 'BEGIN {
		for (j = from; j < from + n && j < max; j++) printf "%sbp%d,,%d,rw,0 %d linear %s 0", (j > from ? ";" : ""), j, 4096 + j, s, dev
	}')
	dmsetup create --concise "$spec"
	i=$((i + batch))
done
i=0
while [ "$i" -lt "$MAPS" ]; do
	spec=$(awk -v from="$i" -v n="$batch" -v max="$MAPS" -v s="$SECTORS" 'BEGIN {
		for (j = from; j < from + n && j < max; j++)
			printf "%sbm%d,mpath-bench-%d,,rw,0 %d multipath 2 queue_mode bio 0 1 1 round-robin 0 2 1 254:%d 1 254:%d 1",
				(j > from ? ";" : ""), j, j, s, 4096 + 2 * j, 4097 + 2 * j
	}')
	dmsetup create --concise "$spec"
	i=$((i + batch))
done
created1=$(cut -d' ' -f1 /proc/uptime)
check "$MAPS multipath maps" [ "$(dmsetup ls --target multipath | wc -l)" = "$MAPS" ]
log "made $((MAPS * 3)) dm devices in $(awk -v a="$created0" -v b="$created1" 'BEGIN { print b - a }') s"

vm_marginal_conf 60 100 600
start0=$(cut -d' ' -f1 /proc/uptime)
vm_marginal_start
start1=$(cut -d' ' -f1 /proc/uptime)
maps_seen=$(marginal status --address "$VM_MARGINAL_ADDR" --json | grep -c '"checking_detail"' || true)
check "the daemon watches all $MAPS maps" [ "$maps_seen" = "$MAPS" ]
echo "BENCH dm-rediscovery maps=$MAPS paths=$((MAPS * 2)) create_s=$(awk -v a="$created0" -v b="$created1" 'BEGIN { print b - a }') startup_s=$(awk -v a="$start0" -v b="$start1" 'BEGIN { print b - a }')" |
	tee "$SCRATCH/bench"

echo mono >"$T/trace_clock"
echo 'p:dmio dm_ctl_ioctl' >>"$T/kprobe_events"
echo 'r:dmior dm_ctl_ioctl' >>"$T/kprobe_events"
echo 1 >"$T/events/kprobes/dmio/enable"
echo 1 >"$T/events/kprobes/dmior/enable"
ticks0=$(awk '{ print $14 + $15 }' "/proc/$VM_MARGINAL_PID/stat")
echo "bench watch start" >"$T/trace_marker"
sleep "$WATCH"
echo "bench watch end" >"$T/trace_marker"
ticks1=$(awk '{ print $14 + $15 }' "/proc/$VM_MARGINAL_PID/stat")
echo 0 >"$T/events/kprobes/dmio/enable"
echo 0 >"$T/events/kprobes/dmior/enable"
rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$VM_MARGINAL_PID/status")

# Bursts of dm ioctls more than 0.5 s apart are separate rounds; the first and last may be cut
# by the watch's edges and are left out.
awk -v ticks=$((ticks1 - ticks0)) -v tck="$(getconf CLK_TCK 2>/dev/null || echo 100)" -v rss="$rss" "$VM_TRACE_TS_AWK"'
	/bench watch start/ { on = 1; wstart = ts($0); next }
	/bench watch end/ { wend = ts($0); on = 0; next }
	!on { next }
	/dmio:/ || /dmior:/ {
		t = ts($0)
		if (n == 0 || t - last > 0.5) { n++; start[n] = t; count[n] = 0 }
		if (index($0, "dmio:")) count[n]++
		end[n] = t; last = t
	}
	END {
		for (i = 2; i < n; i++) {
			printf "BENCH dm-rediscovery round=%d start=%s end=%s ioctls=%d\n", i - 1, start[i], end[i], count[i]
			rounds++
		}
		printf "BENCH dm-rediscovery rounds=%d watch_s=%s cpu_ticks=%d clk_tck=%s rss_kib=%s bursts=%d\n", rounds, wend - wstart, ticks, tck, rss, n
	}' "$T/trace" | tee -a "$SCRATCH/bench"
check "at least 3 whole rounds seen" [ "$(grep -c 'round=' "$SCRATCH/bench")" -ge 3 ]
check "the daemon logged no error" vm_marginal_no_errors
