#!/bin/sh
# /init of the VM test bed's initramfs (put there by `cargo xtask vm-test`; busybox sh).
# Mounts the kernel file systems, loads the dm and loop modules, runs each scenario of its boot's
# list (/etc/marginal-vm/scenarios.<marginal.group>) between marker lines on the console
# (xtask/src/vm/report.rs parses them), cleans up after each, and powers off. It must never exit:
# pid 1 exiting panics the kernel.

export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root
# No udevd in the guest: dmsetup makes the /dev/mapper nodes itself.
export DM_DISABLE_UDEV=1
export VM_LIB=/usr/share/marginal-vm/lib.sh
SCENARIOS=/usr/share/marginal-vm/scenarios

marker() { echo "=== MARGINAL-VM-$* ==="; }

# Uptime in centiseconds ("12.34" -> 1234; the 1$f-100 keeps "08" from reading as octal).
uptime_cs() {
	read -r up _ </proc/uptime
	f=${up#*.}
	echo $((${up%.*} * 100 + 1$f - 100))
}

halt_guest() {
	sync
	poweroff -f
	# Not reached unless poweroff failed; the host's timeout ends the boot then.
	while :; do sleep 1000; done
}

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm /dev/mapper /scratch
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
mount -t tracefs tracefs /sys/kernel/tracing
mount -t debugfs debugfs /sys/kernel/debug
mount -t bpf bpf /sys/fs/bpf
mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/dev/null
hostname marginal-vm
ip link set lo up 2>/dev/null

keep_going=0
case " $(cat /proc/cmdline) " in *" marginal.keep_going=1 "*) keep_going=1 ;; esac
# Scenarios with their own kernel parameters get boots of their own: each boot runs one list.
group=0
for arg in $(cat /proc/cmdline); do
	case "$arg" in marginal.group=*) group=${arg#marginal.group=} ;; esac
done

setup_ok=1
while read -r module; do
	[ -n "$module" ] || continue
	if ! out=$(insmod "$module" 2>&1); then
		echo "insmod $module failed: $out"
		setup_ok=0
	fi
done </etc/marginal-vm/modules
# marginal as its Debian package installs it (the test bed unpacked the package's files into this
# root with dpkg-deb; its maintainer scripts only talk to systemd, which this guest does not run).
# The packaged /etc/marginal is kept, to put back after each scenario.
if [ -x /usr/bin/marginal ] && [ -f /etc/marginal/marginal.conf ]; then
	cp -a /etc/marginal /usr/share/marginal-vm/packaged-etc-marginal
else
	echo "marginal's package is not in the guest (/usr/bin/marginal, /etc/marginal/marginal.conf)"
	setup_ok=0
fi
if [ "$setup_ok" != 1 ]; then
	dmesg | tail -n 30
	marker SETUP-FAILED
	halt_guest
fi
marker READY "$(uname -r)"
# From here only emergencies and oopses reach the console; a scenario's kernel messages are shown
# with its output when it fails.
echo 2 >/proc/sys/kernel/printk

# Leaves nothing of one scenario behind for the next: what its helpers registered for teardown,
# processes, kprobes, dm and loop devices, scsi_debug, mounts under /scratch, /etc/marginal.
cleanup() {
	# What the scenario's helpers set up in the kernel and only their daemons can undo (iSCSI
	# sessions need iscsid to log out): their teardown lines, last first, while those still run.
	if [ -s /scratch/.teardown ]; then
		# configfs (a module here) was mounted in the scenario's own mount namespace, if at all.
		if [ -d /sys/kernel/config ] && ! grep -q ' /sys/kernel/config configfs ' /proc/mounts; then
			mount -t configfs configfs /sys/kernel/config
		fi
		tac /scratch/.teardown >/tmp/teardown
		timeout -s KILL 60 sh /tmp/teardown >/dev/null 2>&1
	fi
	kill -9 -1 2>/dev/null
	sleep 0.2
	echo 0 >/sys/kernel/tracing/events/enable 2>/dev/null
	echo >/sys/kernel/tracing/kprobe_events 2>/dev/null
	echo >/sys/kernel/tracing/trace 2>/dev/null
	rm -rf /sys/fs/bpf/* 2>/dev/null
	grep ' /scratch' /proc/mounts | cut -d' ' -f2 | sort -r | while read -r m; do umount -l "$m"; done
	# Twice: dm devices under loop devices (a scenario's paths) stay busy until the loop devices
	# are gone, and loop devices under dm devices until those are.
	for _pass in 1 2; do
		dmsetup remove_all --force >/dev/null 2>&1
		for l in /dev/loop[0-9]*; do losetup -d "$l" 2>/dev/null; done
	done
	# scsi_debug's disks go with the module (its parameters are the next scenario's to choose).
	rmmod scsi_debug 2>/dev/null
	umount /scratch 2>/dev/null
	# marginal's packaged configuration again (a scenario writes its own with vm_marginal_conf).
	rm -rf /etc/marginal
	cp -a /usr/share/marginal-vm/packaged-etc-marginal /etc/marginal
}

run_scenario() {
	name=$1
	limit=$2
	mount -t tmpfs -o size=512m scratch /scratch
	dmesg -c >/dev/null
	marker BEGIN "$name"
	t0=$(uptime_cs)
	# Own session (setsid) so the scenario's `kill 0` stays within it; stdin from /dev/null, not
	# from the scenario list this loop reads.
	SCRATCH=/scratch SCENARIO=$name KERNEL_RELEASE=$(uname -r) \
		timeout -s KILL "$limit" setsid sh "$SCENARIOS/$name.sh" </dev/null 2>&1
	rc=$?
	t=$(($(uptime_cs) - t0))
	secs="$((t / 100)).$(printf %02d $((t % 100)))s"
	# A kernel warning or oops during a scenario is a failure even if the script did not notice.
	splat=$(dmesg | grep -E 'Call Trace|BUG:|Oops|WARNING:|general protection' | head -n 3)
	msgs=$(dmesg | tail -n 60)
	if { [ "$rc" != 0 ] || [ -n "$splat" ]; } && [ -n "$msgs" ]; then
		echo "--- kernel messages during $name ---"
		echo "$msgs"
	fi
	marker END "$name"
	if [ "$rc" = 137 ] && [ "$t" -ge $((limit * 100)) ]; then
		marker RESULT "$name" TIMEOUT "$secs" "limit=${limit}s"
		failed=1
	elif [ "$rc" != 0 ]; then
		marker RESULT "$name" FAIL "$secs" "rc=$rc"
		failed=1
	elif [ -n "$splat" ]; then
		marker RESULT "$name" FAIL "$secs" kernel-warning
		failed=1
	else
		marker RESULT "$name" PASS "$secs"
	fi
	cleanup
}

failed=0
while read -r name limit; do
	[ -n "$name" ] || continue
	# Without keep-going the host reports the rest as not run.
	if [ "$failed" = 1 ] && [ "$keep_going" = 0 ]; then
		break
	fi
	run_scenario "$name" "$limit"
done <"/etc/marginal-vm/scenarios.$group"

marker DONE
halt_guest
