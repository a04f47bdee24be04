# Helpers for VM scenarios (busybox sh). A scenario starts with `. "$VM_LIB"`.
# The guest's /init gives every scenario a fresh tmpfs in $SCRATCH and removes whatever it leaves
# (processes, dm devices, loop devices) afterwards, so scenarios need no cleanup traps of their own.

set -eu

log() { echo "[$(cut -d' ' -f1 /proc/uptime)] $*"; }
fail() {
	echo "FAIL: $*" >&2
	exit 1
}
# check DESCRIPTION COMMAND...: runs the command, prints "ok: ..." or fails the scenario.
check() {
	desc=$1
	shift
	if "$@"; then log "ok: $desc"; else fail "$desc"; fi
}

# vm_teardown COMMAND: a shell line the guest runs after the scenario (before it kills the
# scenario's processes), last registered first: for kernel objects that only the scenario's
# daemons can remove (iSCSI sessions) or that would disturb later scenarios (qdiscs on lo).
vm_teardown() {
	echo "$*" >>"$SCRATCH/.teardown"
}

# vm_contains TEXT PART: whether TEXT contains PART (no pattern characters in PART).
vm_contains() {
	case "$1" in *"$2"*) return 0 ;; esac
	return 1
}

# vm_wait_for SECONDS COMMAND...: polls the command every 0.1 s until it succeeds.
vm_wait_for() {
	n=$(($1 * 10))
	shift
	while [ "$n" -gt 0 ]; do
		if "$@"; then return 0; fi
		sleep 0.1
		n=$((n - 1))
	done
	return 1
}

# vm_majmin DEVICE: "major:minor" of a block device node.
vm_majmin() {
	set -- $(stat -L -c '%t %T' "$1")
	printf '%d:%d\n' "0x$1" "0x$2"
}

# vm_loop SIZE_MB: a loop device over a new file in $SCRATCH (tmpfs); prints its path.
vm_loop() {
	_f=$(mktemp "$SCRATCH/lun.XXXXXX")
	truncate -s "${1}M" "$_f"
	_dev=$(losetup -f)
	losetup "$_dev" "$_f"
	echo "$_dev"
}

# vm_linear NAME DEVICE: a dm-linear device over the whole of DEVICE (one "path" to it); prints
# /dev/mapper/NAME. Several paths over one device act as several paths to one LUN.
vm_linear() {
	dmsetup create "$1" --table "0 $(blockdev --getsz "$2") linear $2 0"
	# Kept for vm_heal_path.
	dmsetup table "$1" >"$SCRATCH/.table.$1"
	echo "/dev/mapper/$1"
}

# vm_flakey NAME DEVICE UP_SECS DOWN_SECS: a dm-flakey path over DEVICE (fails all I/O for
# DOWN_SECS after every UP_SECS); prints /dev/mapper/NAME.
vm_flakey() {
	dmsetup create "$1" --table "0 $(blockdev --getsz "$2") flakey $2 0 $3 $4"
	dmsetup table "$1" >"$SCRATCH/.table.$1"
	echo "/dev/mapper/$1"
}

# vm_multipath NAME PATH...: a dm-multipath map over the paths, one priority group, round-robin
# switching path every I/O. `queue_mode bio` because the paths are bio-based dm devices; set
# VM_MP_FEATURES to change the features (e.g. "2 queue_mode bio queue_if_no_path" is not the
# default: a map with no path must fail I/O, not hang the scenario). Prints /dev/mapper/NAME.
vm_multipath() {
	_name=$1
	shift
	_paths=""
	for p in "$@"; do _paths="$_paths $p 1"; done
	_size=$(blockdev --getsz "$1")
	dmsetup create "$_name" \
		--table "0 $_size multipath ${VM_MP_FEATURES:-2 queue_mode bio} 0 1 1 round-robin 0 $# 1$_paths"
	echo "/dev/mapper/$_name"
}

# vm_break_path NAME: every I/O on the dm path device NAME fails from now on (the `error` target).
vm_break_path() {
	dmsetup suspend --noflush "$1"
	dmsetup load "$1" --table "0 $(blockdev --getsz "/dev/mapper/$1") error"
	dmsetup resume "$1"
}

# vm_heal_path NAME: NAME gets back the table it was created with.
vm_heal_path() {
	dmsetup suspend --noflush "$1"
	dmsetup load "$1" "$SCRATCH/.table.$1"
	dmsetup resume "$1"
}

# vm_dm_path_is MAP MAJ:MIN A|F: whether dm-mpath has the path in that state.
vm_dm_path_is() {
	[ "$(vm_path_state "$1" "$2")" = "$3" ]
}

# vm_path_state MAP MAJ:MIN: A (active) or F (failed), from `dmsetup status MAP`.
vm_path_state() {
	dmsetup status "$1" | awk -v p="$2" '{ for (i = 1; i < NF; i++) if ($i == p) { print $(i + 1); exit } }'
}

# vm_read DEVICE COUNT: COUNT direct (uncached) 4 KiB reads spread over DEVICE; fails if one fails.
# Spread, so the block layer cannot merge them into one request.
vm_read() {
	_blocks=$(($(blockdev --getsz "$1") / 8))
	_i=0
	while [ "$_i" -lt "$2" ]; do
		dd if="$1" of=/dev/null bs=4096 count=1 skip=$(((_i * 7919) % _blocks)) iflag=direct 2>/dev/null || return 1
		_i=$((_i + 1))
	done
}

# vm_md5 DEVICE_OR_FILE BYTES: md5 of the first BYTES (a multiple of 64 KiB), read with O_DIRECT
# from devices so the page cache cannot hide a path's failure.
vm_md5() {
	if [ -b "$1" ]; then
		dd if="$1" bs=65536 count=$(($2 / 65536)) iflag=direct 2>/dev/null | md5sum | cut -d' ' -f1
	else
		head -c "$2" "$1" | md5sum | cut -d' ' -f1
	fi
}

# vm_known_data DEVICE: writes 256 KiB of known data at the start of DEVICE (numbered lines, so
# every block differs; cheaper than /dev/urandom in emulation) and sets `want` to its md5, for
# `[ "$(vm_md5 DEVICE 262144)" = "$want" ]` later.
vm_known_data() {
	seq 1 60000 | head -c 262144 >"$SCRATCH/data"
	dd if="$SCRATCH/data" of="$1" bs=65536 oflag=direct conv=fsync 2>/dev/null
	want=$(vm_md5 "$SCRATCH/data" 262144)
}

# ---- Paths that misbehave, and I/O that makes dm-mpath notice -------------------------------

# vm_now: seconds since boot (whole seconds), for deadlines.
vm_now() { cut -d. -f1 /proc/uptime; }

# vm_flaky_path NAME UP_SECS DOWN_SECS: the dm path NAME (made by vm_linear) turns flaky: dm-flakey
# over the same device, every I/O failing for DOWN_SECS after every UP_SECS. vm_heal_path makes it
# whole again; vm_break_path breaks it for good.
vm_flaky_path() {
	_dev=$(awk '{ print $4; exit }' "$SCRATCH/.table.$1")
	dmsetup suspend --noflush "$1"
	dmsetup load "$1" --table "0 $(blockdev --getsz "/dev/mapper/$1") flakey $_dev 0 $2 $3"
	dmsetup resume "$1"
}

# vm_fail_by_io MAP MAJ:MIN SECONDS: direct reads through MAP until dm-mpath has failed the path
# MAJ:MIN (it does when an I/O on the path errors; the read itself is retried on another path).
# Fails if the path is still active after SECONDS.
vm_fail_by_io() {
	_end=$(($(vm_now) + $3))
	while [ "$(vm_path_state "$1" "$2")" != F ]; do
		[ "$(vm_now)" -lt "$_end" ] || return 1
		vm_read "/dev/mapper/$1" 4 || true
	done
}

# vm_fail_path_b_twice: path_b of vm_two_path_map breaks for good; I/O makes dm-mpath fail it,
# a checker reinstates it, the daemon counts the failure, and I/O fails it a second time.
vm_fail_path_b_twice() {
	vm_break_path path_b
	check "first failure" vm_fail_by_io mp0 "$b" 10
	vm_reinstate mp0 "$b"
	check "daemon counts it" vm_wait_for 10 vm_path_is "$nb" state suspect
	# Held past the episode gap (1 s): a re-fail sooner is the same outage, not a second failure.
	sleep 1.2
	check "second failure" vm_fail_by_io mp0 "$b" 10
}

# vm_kname MAJ:MIN: the kernel's name of a block device (dm-1, loop2): how the daemon names paths.
vm_kname() {
	basename "$(readlink "/sys/dev/block/$1")"
}

# vm_reinstate MAP MAJ:MIN: what multipathd's checker does when it finds a path up again.
vm_reinstate() {
	dmsetup message "$1" 0 reinstate_path "$2"
}

# vm_active_count MAP: how many paths dm-mpath has active in MAP.
vm_active_count() {
	dmsetup status "$1" | awk '{ for (i = 1; i < NF; i++) if ($i ~ /^[0-9]+:[0-9]+$/ && $(i + 1) == "A") n++ } END { print n + 0 }'
}

# ---- The daemon in the guest ---------------------------------------------------------------
# One daemon a scenario: its configuration is the default /etc/marginal/marginal.conf (written by
# vm_marginal_conf; init.sh puts the packaged one back after each scenario), multipathd's the default
# /etc/multipath.conf (only scenarios with vm_private_system write it), its log $VM_MARGINAL_LOG,
# its state file $VM_MARGINAL_STATE, its /status at $VM_MARGINAL_ADDR. A scenario that runs
# marginal as installed (default state file) sets VM_MARGINAL_STATE=/run/marginal/held-out.json
# before vm_marginal_start.
VM_MARGINAL_LOG=${SCRATCH:-/tmp}/marginal.log
VM_MARGINAL_STATE=${SCRATCH:-/tmp}/held.json
VM_MARGINAL_DEFAULT_STATE=/run/marginal/held-out.json
# For the scenarios whose point is that one outage is one failure: the episode gap scaled to the
# emulated CPU. A path multipathd reinstates from a stale checker result right after dm failed it
# is failed again by the next I/O (udev probing the map after the reinstatement's uevent): tens of
# milliseconds on a real host, but 1.04 s once in CI under TCG (about 55x slower), past the 1 s
# default. 3 s here is about 55 ms of a real host's time. Flap scenarios keep the default.
VM_OUTAGE_GAP="--episode-gap-ms 3000"
VM_MARGINAL_ADDR=127.0.0.1:9750

# vm_marginal_conf DOUBLE_FAILED_TIME RATE_THRESHOLD RECHECK_GAP_TIME [LINE]: writes
# /etc/marginal/marginal.conf with marginal-path checking on for every map (sample time 120 s,
# the floor; the daemon's testing flag shortens runs); LINE, a keyword line, goes into defaults too.
vm_marginal_conf() {
	mkdir -p /etc/marginal
	cat >/etc/marginal/marginal.conf <<-CONF
		defaults {
			marginal_path_double_failed_time   $1
			marginal_path_err_sample_time      120
			marginal_path_err_rate_threshold   $2
			marginal_path_err_recheck_gap_time $3
			${4:-}
		}
	CONF
}

# vm_marginal_start [ARGS...]: starts `marginal run` in the background with the default
# configuration files, the scenario's state file and address, sampling runs of 3 s (reads time out after 1 s; a scenario that
# needs the production run lengths sets VM_MARGINAL_TESTING_FLAGS to ""), and waits until
# it serves /status (it has loaded its eBPF programs, discovered the maps and taken up held-out
# paths by then). A restart appends to the same log. Its pid is in $VM_MARGINAL_PID.
vm_marginal_start() {
	echo "---- marginal run $* (at $(cut -d' ' -f1 /proc/uptime)) ----" >>"$VM_MARGINAL_LOG"
	_from=$(wc -l <"$VM_MARGINAL_LOG")
	_state=
	[ "$VM_MARGINAL_STATE" = "$VM_MARGINAL_DEFAULT_STATE" ] || _state="--state-file $VM_MARGINAL_STATE"
	marginal run --listen "$VM_MARGINAL_ADDR" $_state \
		${VM_MARGINAL_TESTING_FLAGS---sample-time-for-testing 3 --read-timeout-for-testing 1} \
		"$@" >>"$VM_MARGINAL_LOG" 2>&1 &
	VM_MARGINAL_PID=$!
	_end=$(($(vm_now) + 60))
	until tail -n +"$_from" "$VM_MARGINAL_LOG" | grep -q 'serving http'; do
		if ! kill -0 "$VM_MARGINAL_PID" 2>/dev/null; then
			tail -n 30 "$VM_MARGINAL_LOG"
			fail "marginal run exited at start-up"
		fi
		[ "$(vm_now)" -lt "$_end" ] || fail "marginal run did not serve /status within 60 s"
		sleep 0.2
	done
	log "marginal run is up (pid $VM_MARGINAL_PID)"
}

# vm_marginal_logged TEXT: whether the daemon's log has a line containing TEXT (fixed string).
vm_marginal_logged() {
	grep -qF -- "$1" "$VM_MARGINAL_LOG"
}

# vm_marginal_logged_count TEXT: how many lines of the daemon's log contain TEXT.
vm_marginal_logged_count() {
	grep -cF -- "$1" "$VM_MARGINAL_LOG" || true
}

# vm_marginal_logged_times COUNT TEXT: whether at least COUNT lines of the daemon's log contain TEXT.
vm_marginal_logged_times() {
	[ "$(vm_marginal_logged_count "$2")" -ge "$1" ]
}

# vm_marginal_no_errors: whether the daemon's log has no ERROR line (an actuator that failed, a
# map it could not read, ...).
vm_marginal_no_errors() {
	! grep -F ' ERROR ' "$VM_MARGINAL_LOG"
}

# vm_path_field PATH FIELD: one field of path PATH (its kernel name, e.g. dm-1) in the daemon's
# /status, as printed there without quotes (state, active, failed_by_marginal, last_verdict,
# sampling_runs, ...). Empty if the daemon does not answer or has no such path.
vm_path_field() {
	marginal status --address "$VM_MARGINAL_ADDR" --json 2>/dev/null |
		awk -v p="\"name\": \"$1\"," -v f="\"$2\":" '
			index($0, p) { found = 1 }
			found && index($0, f) {
				sub(/^[^:]*: */, ""); sub(/,$/, ""); gsub(/"/, ""); print; exit
			}'
}

# vm_path_is PATH FIELD VALUE: whether the daemon's /status shows VALUE for FIELD of PATH.
vm_path_is() {
	[ "$(vm_path_field "$1" "$2")" = "$3" ]
}

# vm_path_above PATH FIELD N: whether the daemon's /status shows a number above N for FIELD.
vm_path_above() {
	_v=$(vm_path_field "$1" "$2")
	[ -n "$_v" ] && [ "$_v" -gt "$3" ]
}

# vm_show_daemon: what to look at when a daemon scenario fails: the daemon's log, the maps'
# status, the daemon's own status.
vm_show_daemon() {
	echo "--- marginal log (last 60 lines) ---"
	tail -n 60 "$VM_MARGINAL_LOG" 2>/dev/null || true
	echo "--- dmsetup status ---"
	dmsetup status 2>&1 || true
	echo "--- marginal status ---"
	marginal status --address "$VM_MARGINAL_ADDR" 2>&1 || true
}

# vm_show_daemon_on_failure: shows vm_show_daemon's diagnostics if the scenario exits non-zero.
vm_show_daemon_on_failure() {
	trap '_rc=$?; if [ "$_rc" != 0 ]; then vm_show_daemon; fi; exit "$_rc"' EXIT
}

# ---- System daemons (udevd, multipathd) ----------------------------------------------------

# vm_private_system "$0" "$@": for scenarios that start udevd or multipathd, before anything else:
# runs the scenario again in its own mount namespace, with private copies of /etc and /run. What
# it writes there (/etc/multipath.conf, udev rules, udev's database, pid files) then goes away with
# it: the guest's cleanup removes processes, dm and loop devices, not files, and the next
# scenario's `marginal run` would read an /etc/multipath.conf left behind (and leave its maps to
# a multipathd that no longer runs).
vm_private_system() {
	if [ "${VM_PRIVATE_SYSTEM:-}" != 1 ]; then
		VM_PRIVATE_SYSTEM=1 exec unshare -m sh "$@"
	fi
	mount --make-rprivate /
	mkdir -p "$SCRATCH/etc"
	cp -a /etc/. "$SCRATCH/etc/"
	mount --bind "$SCRATCH/etc" /etc
	mount -t tmpfs tmpfs /run
}

# vm_udevd: starts systemd-udevd (from the udev package) and replays the devices' add events.
vm_udevd() {
	mkdir -p /run/udev /etc/udev/rules.d
	/lib/systemd/systemd-udevd --daemon
	udevadm trigger --action=add
	udevadm settle -t 30
}

# vm_loop_over DEVICE: a loop device over the block device DEVICE (a dm path, so the loop device
# fails when the dm device breaks); prints its path. Loop devices are request-based block devices
# that multipathd accepts as paths (given a WWID, see vm_udev_wwid).
vm_loop_over() {
	_dev=$(losetup -f)
	losetup "$_dev" "$1"
	echo "$_dev"
}

# vm_loop_direct DEVICE: like vm_loop_over, in direct-I/O mode (util-linux losetup, from the
# `mount` package; busybox's comes first on PATH): every read of the loop device reaches DEVICE, none is answered from DEVICE's
# page cache, so a path that breaks fails every read from then on.
vm_loop_direct() {
	_dev=$(/sbin/losetup --direct-io=on -f --show "$1")
	[ "$(cat "/sys/block/${_dev#/dev/}/loop/dio")" = 1 ] || fail "$_dev is not in direct-I/O mode"
	echo "$_dev"
}

# vm_kernel_devt MAJ:MIN: the kernel's own dev_t encoding (major << 20 | minor), as tracepoints
# print it and their filters take it.
vm_kernel_devt() {
	echo $(((${1%:*} << 20) | ${1#*:}))
}

# ---- The kernel's own timestamps, for the benchmark's scenarios -----------------------------
# Events land in $VM_TRACE/trace stamped with CLOCK_MONOTONIC (trace_clock mono), the clock of
# the daemon's eBPF events; `echo "bench ..." >"$VM_TRACE/trace_marker"` adds marks on it.
VM_TRACE=/sys/kernel/tracing

# vm_trace_dm_path_events: records dm-mpath's path events, as `dmpu:` lines with type=0
# (PATH_FAILED) or type=1 (PATH_REINSTATED) and path="MAJ:MIN" (a kprobe on dm_path_uevent).
vm_trace_dm_path_events() {
	echo mono >"$VM_TRACE/trace_clock"
	echo 'p:dmpu dm_path_uevent type=%di:s32 path=+0(%dx):string' >>"$VM_TRACE/kprobe_events"
	echo 1 >"$VM_TRACE/events/kprobes/dmpu/enable"
}

# vm_trace_block_event EVENT MAJ:MIN: records the block tracepoint EVENT (block_rq_error,
# block_bio_queue, ...) for that one device.
vm_trace_block_event() {
	echo mono >"$VM_TRACE/trace_clock"
	echo "dev == $(vm_kernel_devt "$2")" >"$VM_TRACE/events/block/$1/filter"
	echo 1 >"$VM_TRACE/events/block/$1/enable"
}

# The awk function `ts(line)`: the timestamp (seconds) of a trace line.
VM_TRACE_TS_AWK='function ts(line) { if (match(line, /[0-9]+\.[0-9]+: /)) return substr(line, RSTART, RLENGTH - 2) }'

# vm_udev_wwid WWID NAME...: udev gives the block devices NAME... (kernel names) ID_SERIAL and
# ID_WWN WWID, so multipathd sees them as paths to one LUN; applies it to them at once.
vm_udev_wwid() {
	_wwid=$1
	shift
	_names=$(echo "$@" | tr ' ' '|')
	echo "SUBSYSTEM==\"block\", KERNEL==\"$_names\", ENV{ID_SERIAL}=\"$_wwid\", ENV{ID_WWN}=\"$_wwid\"" \
		>/etc/udev/rules.d/61-marginal-vm-wwid.rules
	udevadm control --reload
	for _n in "$@"; do udevadm trigger --action=change --sysname-match="$_n"; done
	udevadm settle -t 30
}

# vm_show_multipathd_on_failure LOG: if the scenario exits non-zero, shows vm_show_daemon's
# diagnostics and multipathd's: its marginal-path checking and the end of its log LOG, and its
# view of the paths.
vm_show_multipathd_on_failure() {
	VM_MPD_LOG=$1
	trap '_rc=$?; if [ "$_rc" != 0 ]; then vm_show_daemon; vm_show_multipathd; fi; exit "$_rc"' EXIT
}
vm_show_multipathd() {
	echo "--- multipathd log: its marginal-path checking ---"
	grep -a -e "io error statistic" -e "io_err" "$VM_MPD_LOG" 2>/dev/null | tail -n 40 || true
	grep -a -m 3 "path is now marginal" "$VM_MPD_LOG" 2>/dev/null || true
	echo "--- multipathd log (last 40 lines) ---"
	tail -n 40 "$VM_MPD_LOG" 2>/dev/null || true
	echo "--- multipathd show paths ---"
	multipathd show paths 2>&1 || true
}

# vm_mpvm_conf [DEFAULTS]: /etc/multipath.conf for the scenarios where multipathd manages the
# map: mpvm over the paths udev gives WWID marginal-vm-lun0 (vm_udev_wwid), loop devices allowed
# as paths, its directio checker every second; DEFAULTS (keyword lines) go into `defaults`.
vm_mpvm_conf() {
	cat >/etc/multipath.conf <<-CONF
		defaults {
			user_friendly_names   no
			find_multipaths       no
			polling_interval      1
			max_polling_interval  2
			path_checker          directio
			path_grouping_policy  multibus
			path_selector         "round-robin 0"
			rr_min_io_rq          1
			no_path_retry         fail
		${1:-}
		}
		blacklist_exceptions {
			devnode  "^loop"
			property "ID_WWN"
		}
		multipaths {
			multipath {
				wwid  marginal-vm-lun0
				alias mpvm
			}
		}
	CONF
}

# The daemon scenarios' map: mp0 over path_a and path_b (dm-linear) on one 64 MiB LUN. Sets
# lun, pa, pb, mp, a, b (MAJ:MIN of the paths) and nb (path_b's kernel name).
vm_two_path_map() {
	lun=$(vm_loop 64)
	pa=$(vm_linear path_a "$lun")
	pb=$(vm_linear path_b "$lun")
	mp=$(vm_multipath mp0 "$pa" "$pb")
	a=$(vm_majmin "$pa")
	b=$(vm_majmin "$pb")
	nb=$(vm_kname "$b")
	log "map $mp over path_a=$a path_b=$b ($nb)"
}

# vm_mpvm_paths: udevd, one 64 MiB LUN with known data, two paths to it for multipathd (loop
# devices over dm-linear devices pdev_a and pdev_b, with udev's WWID marginal-vm-lun0). Sets lun,
# da, db (the dm devices), na, nb (the paths' kernel names), a, b (their MAJ:MIN) and want
# (vm_known_data). Needs vm_private_system first.
vm_mpvm_paths() {
	vm_udevd
	lun=$(vm_loop 64)
	# Known data on the LUN, written before the paths exist: each loop device reads its dm device
	# through that device's page cache, and two page caches over one LUN are coherent only for
	# data that was on it before either cached anything (scenarios write nothing later).
	vm_known_data "$lun"
	da=$(vm_linear pdev_a "$lun")
	db=$(vm_linear pdev_b "$lun")
	_la=$(vm_loop_over "$da")
	_lb=$(vm_loop_over "$db")
	na=${_la#/dev/}
	nb=${_lb#/dev/}
	a=$(vm_majmin "$_la")
	b=$(vm_majmin "$_lb")
	vm_udev_wwid marginal-vm-lun0 "$na" "$nb"
	log "paths: $na ($a) over pdev_a, $nb ($b) over pdev_b, both over $lun"
}

# vm_mpvm_start LOG: multipathd (-v3, its io_err_stat lines included) with /etc/multipath.conf
# (vm_mpvm_conf), its log in LOG (vm_multipathd_start with MPD_LOG=LOG).
vm_mpvm_start() {
	MPD_LOG=$1
	vm_multipathd_start
}

# vm_mpvm_flap: path nb of mpvm fails twice by real dm transitions: pdev_b breaks and I/O makes
# dm-mpath fail it, pdev_b heals and multipathd's checker reinstates it, then it breaks and I/O
# fails it again. pdev_b stays broken.
vm_mpvm_flap() {
	vm_break_path pdev_b
	blockdev --flushbufs "$db"
	check "dm-mpath fails $nb (first failure)" vm_fail_by_io mpvm "$b" 30
	vm_heal_path pdev_b
	# multipathd's own marginal checking (when it is on) may hold a just-failed path back for a
	# while: then reinstate it as its checker would, so the second failure is a real transition.
	if ! vm_wait_for 20 vm_dm_path_is mpvm "$b" A; then
		log "multipathd left $nb failed for 20 s; reinstating it with a dm message"
		vm_reinstate mpvm "$b"
	fi
	sleep 2
	vm_break_path pdev_b
	blockdev --flushbufs "$db"
	check "dm-mpath fails $nb again (second failure)" vm_fail_by_io mpvm "$b" 30
}

# vm_mpd_checks_marginal LOG: whether multipathd's log LOG shows its own marginal-path checking
# (io_err_stat) at work.
vm_mpd_checks_marginal() {
	grep -aq "io error statistic" "$1"
}

# vm_mpvm_up [DEFAULTS]: Debian's multipathd (udevd and all) managing map mpvm over the paths of
# vm_mpvm_paths, DEFAULTS in its `defaults`; its log is $MPD_LOG. Sets what vm_mpvm_paths sets,
# and mp. Needs vm_private_system first, and the vm-debs of daemon-multipathd.sh.
# vm_break_path/vm_heal_path pdev_b break and heal path b.
vm_mpvm_up() {
	MPD_LOG=$SCRATCH/multipathd.log
	vm_mpvm_paths
	vm_mpvm_conf "${1:-}"
	vm_multipathd_start
	mp=/dev/mapper/mpvm
}

# vm_multipathd_start [ACTIVE]: starts multipathd (appending to $MPD_LOG) and waits until it
# answers on its socket and manages mpvm with at least ACTIVE (default 2) paths active. Its pid is
# in $VM_MPD_PID.
vm_multipathd_start() {
	echo "---- multipathd start (at $(cut -d' ' -f1 /proc/uptime)) ----" >>"$MPD_LOG"
	multipathd -d -s -v3 >>"$MPD_LOG" 2>&1 &
	VM_MPD_PID=$!
	check "multipathd manages mpvm with ${1:-2} active path(s)" \
		vm_wait_for 30 sh -c "[ \"\$(dmsetup status mpvm 2>/dev/null | grep -o ' A ' | wc -l)\" -ge ${1:-2} ] && multipathd show daemon >/dev/null 2>&1"
}

# vm_multipathd_stop: stops multipathd (SIGTERM) and waits for it to be gone; the map stays.
vm_multipathd_stop() {
	kill "$VM_MPD_PID"
	check "multipathd stopped" vm_wait_for 20 sh -c "! kill -0 $VM_MPD_PID 2>/dev/null"
}

# vm_break_mpvm_b_by_io: pdev_b breaks for good and I/O through mpvm makes dm-mpath fail path b.
vm_break_mpvm_b_by_io() {
	vm_break_path pdev_b
	blockdev --flushbufs "$db"
	vm_fail_by_io mpvm "$b" 20
}

# vm_stays PATH_STATE SECONDS MAP MAJ:MIN: whether dm keeps path MAJ:MIN of MAP in PATH_STATE
# (A or F) at every look over SECONDS.
vm_stays() {
	_end=$(($(vm_now) + $2))
	while [ "$(vm_now)" -lt "$_end" ]; do
		[ "$(vm_path_state "$3" "$4")" = "$1" ] || return 1
		sleep 0.25
	done
}
# The path kinds and their faults, and multipathd (one file each, tests/vm/lib/*.sh).
for _lib in "${VM_LIB%/*}"/lib/*.sh; do
	. "$_lib"
done
