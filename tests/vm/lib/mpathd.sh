# multipathd making the maps from real WWIDs (SCSI or NVMe paths), as on a SAN host. Scenarios
# that use it start with vm_private_system (multipathd and udevd write to /etc and /run).
# Sourced by lib.sh.

VM_MPD_LOG=${SCRATCH:-/tmp}/multipathd.log
# VM_MPD: the multipathd to run (a second version sets it, see vm_mpathd_trixie).
VM_MPD=${VM_MPD:-multipathd}

# vm_san_conf [DEFAULTS]: /etc/multipath.conf as a SAN host would have it, with Debian's defaults
# for everything the test does not need changed: the default checker (tur), multibus (scsi_debug
# reports host A's path ALUA-optimized and host B's not, so with failover a fault on B would stay
# invisible to I/O), the checker every second (max 2 s) so a test waits seconds, not minutes, and
# no queueing (a map without paths fails I/O instead of hanging the scenario). DEFAULTS (keyword
# lines) go into `defaults`.
vm_san_conf() {
	cat >/etc/multipath.conf <<-CONF
		defaults {
			user_friendly_names   no
			find_multipaths       no
			polling_interval      1
			max_polling_interval  2
			path_grouping_policy  multibus
			path_selector         "round-robin 0"
			rr_min_io_rq          1
			no_path_retry         fail
		${1:-}
		}
	CONF
}

# vm_mpathd_trixie: the multipathd that vm_mpathd_start starts becomes Debian trixie's (0.11.1,
# unpacked under /opt/trixie by the scenario's `# vm-prefix-debs: trixie ...`), run through
# trixie's ld.so with trixie's libraries (it needs glibc 2.38). It loads its plugins (checkers,
# prioritizers) from /usr/lib/multipath, as bookworm's does: trixie's replace them there, in the
# scenario's own mount namespace (vm_private_system).
VM_TRIXIE=/opt/trixie
vm_mpathd_trixie() {
	_lib=$VM_TRIXIE/usr/lib/x86_64-linux-gnu
	[ -x "$VM_TRIXIE/usr/sbin/multipathd" ] || fail "no trixie multipathd (vm-prefix-debs: trixie multipath-tools ...)"
	mount --bind "$VM_TRIXIE/usr/lib/multipath" /usr/lib/multipath
	VM_MPD="$_lib/ld-linux-x86-64.so.2 --library-path $_lib:$VM_TRIXIE/usr/lib $VM_TRIXIE/usr/sbin/multipathd"
}

# vm_mpathd_start: starts multipathd (in the foreground, logging to $VM_MPD_LOG, appended) and
# waits until its socket answers. Its pid is in $VM_MPD_PID.
vm_mpathd_start() {
	echo "---- $VM_MPD start (at $(cut -d' ' -f1 /proc/uptime)) ----" >>"$VM_MPD_LOG"
	$VM_MPD -d -s -v3 >>"$VM_MPD_LOG" 2>&1 &
	VM_MPD_PID=$!
	vm_wait_for 30 sh -c 'multipathd show daemon >/dev/null 2>&1' || fail "multipathd does not answer"
}

# vm_mpathd_stop: stops multipathd (SIGTERM) and waits for it to exit; its maps stay.
vm_mpathd_stop() {
	kill "$VM_MPD_PID"
	vm_wait_for 30 sh -c "! kill -0 $VM_MPD_PID 2>/dev/null" || fail "multipathd did not stop"
}

# vm_configfs: configfs mounted (the kernel targets, LIO and nvmet, are set up through it; the
# guest's cleanup may have mounted it already).
vm_configfs() {
	grep -q ' /sys/kernel/config configfs ' /proc/mounts || mount -t configfs configfs /sys/kernel/config
}

# vm_holder DISK: the name of the dm map that holds the disk (sdX, nvme0n1; empty if none).
vm_holder() {
	for _h in /sys/block/"$1"/holders/*; do
		[ -e "$_h/dm/name" ] && cat "$_h/dm/name"
	done
	# No holder is an answer (empty), not a failure that `set -e` would end the scenario on.
	return 0
}

# vm_map_has MAP N: whether MAP exists with N paths active.
vm_map_has() {
	dmsetup status "$1" >/dev/null 2>&1 && [ "$(vm_active_count "$1")" = "$2" ]
}

# vm_san_up LUNS: udevd, scsi_debug with LUNS LUNs over two hosts, multipathd with vm_san_conf's
# configuration (write it first); waits until multipathd has made every LUN's map with both paths
# active, then sets the paths of LUN 0 (vm_sd_paths).
vm_san_up() {
	vm_udevd
	vm_scsi_debug "$1"
	vm_mpathd_start
	_lun=0
	while [ "$_lun" -lt "$1" ]; do
		vm_wait_for 60 vm_sd_map_ready "$_lun" || fail "multipathd made no map with both paths of LUN $_lun"
		_lun=$((_lun + 1))
	done
	udevadm settle -t 30
	vm_sd_paths 0
}
vm_sd_map_ready() {
	_m=$(vm_sd_map "$(vm_sd_hctl A "$1")")
	[ -n "$_m" ] && vm_map_has "$_m" 2
}

# vm_io MAP SECONDS: direct reads through MAP for SECONDS (errors ignored: the point is that I/O
# reaches every path, so dm-mpath notices a failing one).
vm_io() {
	_end=$(($(vm_now) + $2))
	while [ "$(vm_now)" -lt "$_end" ]; do vm_read "/dev/mapper/$1" 8 || true; done
}

# vm_io_until SECONDS MAP COMMAND...: direct reads through MAP until COMMAND succeeds; fails if it
# does not within SECONDS.
vm_io_until() {
	_end=$(($(vm_now) + $1))
	_m=$2
	shift 2
	until "$@"; do
		[ "$(vm_now)" -lt "$_end" ] || return 1
		vm_read "/dev/mapper/$_m" 4 || true
	done
}

# vm_show_san_on_failure: if the scenario exits non-zero, shows the daemon's and multipathd's
# diagnostics and scsi_debug's rules.
vm_show_san_on_failure() {
	trap '_rc=$?; if [ "$_rc" != 0 ]; then vm_show_daemon; vm_show_multipathd; vm_show_sd_rules; fi; exit "$_rc"' EXIT
}
vm_show_sd_rules() {
	echo "--- scsi_debug error rules ---"
	for _f in "$VM_SD_DEBUGFS"/*/error; do
		[ -e "$_f" ] && echo "$_f:" && cat "$_f"
	done 2>/dev/null || true
}
