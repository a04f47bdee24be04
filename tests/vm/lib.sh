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
