# scsi_debug as a SAN: LUNs reached over two SCSI hosts, each LUN one WWID, each host one path.
# Paths are addressed by H:C:T:L (sdX names swap between boots). Sourced by lib.sh.

VM_SD_DEBUGFS=/sys/kernel/debug/scsi_debug

# vm_scsi_debug LUNS [VENDOR [PRODUCT [REV]]]: loads scsi_debug with LUNS LUNs of 16 MiB, each
# over two hosts with the same WWID (vpd_use_hostno=0), waits for their sdX disks and udev, and
# sets VM_SD_HOST_A and VM_SD_HOST_B (the hosts' numbers). The inquiry strings are for
# configuration tests (devices sections match on vendor and product).
vm_scsi_debug() {
	_luns=$1
	set -- ${2:+inq_vendor=$2} ${3:+inq_product=$3} ${4:+inq_rev=$4}
	# The guest has no modules.alias: udev cannot load the disk driver for new SCSI devices.
	modprobe sd_mod || fail "modprobe sd_mod failed"
	modprobe scsi_debug add_host=2 num_tgts=1 max_luns="$_luns" vpd_use_hostno=0 dev_size_mb=16 "$@" ||
		fail "modprobe scsi_debug failed"
	set -- $(for h in /sys/class/scsi_host/host*; do
		[ "$(cat "$h/proc_name")" = scsi_debug ] && echo "${h##*host}"
	done | sort -n)
	[ "$#" = 2 ] || fail "scsi_debug made $# hosts, not 2"
	VM_SD_HOST_A=$1
	VM_SD_HOST_B=$2
	vm_wait_for 30 vm_sd_all_disks "$_luns" || fail "scsi_debug's $((_luns * 2)) disks did not appear"
	udevadm settle -t 30
}
vm_sd_all_disks() {
	[ "$(ls -d /sys/bus/scsi/drivers/sd/*:*:*:* 2>/dev/null | wc -l)" -ge $(($1 * 2)) ]
}

# vm_sd_hctl A|B LUN: the H:C:T:L of LUN's path through host A or B.
vm_sd_hctl() {
	case "$1" in
	A) echo "$VM_SD_HOST_A:0:0:$2" ;;
	B) echo "$VM_SD_HOST_B:0:0:$2" ;;
	*) fail "vm_sd_hctl: host A or B, not $1" ;;
	esac
}

# vm_sd_name HCTL: the path's disk name (sdX).
vm_sd_name() {
	ls "/sys/class/scsi_device/$1/device/block/"
}

# vm_sd_majmin HCTL: the path's MAJ:MIN.
vm_sd_majmin() {
	cat "/sys/class/scsi_device/$1/device/block/$(vm_sd_name "$1")/dev"
}

# vm_sd_map HCTL: the name of the dm map that holds the path (empty if none).
vm_sd_map() {
	vm_holder "$(vm_sd_name "$1")"
}

# vm_sd_paths LUN: sets for LUN's two paths ha/hb (H:C:T:L), na/nb (sdX), a/b (MAJ:MIN), and
# map (the dm map multipathd made over them, once it exists).
vm_sd_paths() {
	ha=$(vm_sd_hctl A "$1")
	hb=$(vm_sd_hctl B "$1")
	na=$(vm_sd_name "$ha")
	nb=$(vm_sd_name "$hb")
	a=$(vm_sd_majmin "$ha")
	b=$(vm_sd_majmin "$hb")
	map=$(vm_sd_map "$ha")
	log "LUN $1: path A $ha = $na ($a), path B $hb = $nb ($b), map ${map:-(none yet)}"
}

# ---- Faults on one path ---------------------------------------------------------------------
# Error-injection rules (/sys/kernel/debug/scsi_debug/H:C:T:L/error) exist from 6.12 on; rules
# are `TYPE COUNT OPCODE ...`: COUNT > 0 for every command, -N for the next N only; opcode 0x28
# is READ(10), 0xff every command (TUR too, so multipathd's checker sees the path down).

# vm_sd_rule HCTL RULE...: adds one rule on that path.
vm_sd_rule() {
	_h=$1
	shift
	[ -e "$VM_SD_DEBUGFS/$_h/error" ] || fail "no scsi_debug error injection on $KERNEL_RELEASE"
	echo "$*" >"$VM_SD_DEBUGFS/$_h/error"
}

# vm_sd_flap HCTL: every READ on the path fails with DID_NO_CONNECT; TUR passes. dm-mpath fails
# the path, the tur checker reinstates it, the next read fails it again: a flapping path.
vm_sd_flap() { vm_sd_rule "$1" 2 1 0x28 0x01 0 0 0 0 0; }

# vm_sd_down HCTL: every command, TUR included, fails with DID_NO_CONNECT: a sustained outage.
vm_sd_down() { vm_sd_rule "$1" 2 1 0xff 0x01 0 0 0 0 0; }

# vm_sd_medium_error HCTL: every READ ends in CHECK CONDITION, MEDIUM ERROR (3/0x11/0): the
# LUN's fault, not the path's.
vm_sd_medium_error() { vm_sd_rule "$1" 2 1 0x28 0 0 0x2 0x3 0x11 0x0; }

# vm_sd_read_timeouts HCTL N: the next N READs on the path are never answered: each times out
# after the device's timeout (set to 3 s here), SCSI error handling aborts and retries it.
vm_sd_read_timeouts() {
	echo 3 >"/sys/class/scsi_device/$1/device/timeout"
	vm_sd_rule "$1" 0 "-$2" 0x28
}

# vm_sd_rules_left HCTL TYPE: how many rules of TYPE on the path still apply (a rule for the next
# N commands stays listed with count 0 once used up).
vm_sd_rules_left() {
	awk -v t="$2" 'NR > 1 && $1 == t && $2 != 0' "$VM_SD_DEBUGFS/$1/error" | wc -l
}

# vm_sd_heal HCTL: removes every rule of the path.
vm_sd_heal() {
	awk 'NR > 1 && $1 ~ /^[0-9]+$/ { print $1, $3 }' "$VM_SD_DEBUGFS/$1/error" |
		while read -r _t _op; do echo "- $_t $_op" >"$VM_SD_DEBUGFS/$1/error"; done
	[ "$(awk 'NR > 1 && $1 ~ /^[0-9]+$/' "$VM_SD_DEBUGFS/$1/error" | wc -l)" = 0 ] ||
		fail "rules left on $1: $(cat "$VM_SD_DEBUGFS/$1/error")"
}

# vm_sd_state HCTL offline|running: the SCSI device's state (every kernel): offline fails every
# I/O and every open, running brings it back.
vm_sd_state() {
	echo "$2" >"/sys/class/scsi_device/$1/device/state"
}

# vm_sd_delete HCTL: removes the SCSI device, as a target that goes away does.
vm_sd_delete() {
	echo 1 >"/sys/class/scsi_device/$1/device/delete"
}

# vm_sd_rescan: scans both hosts again (brings deleted devices back).
vm_sd_rescan() {
	for _h in "$VM_SD_HOST_A" "$VM_SD_HOST_B"; do echo "- - -" >"/sys/class/scsi_host/host$_h/scan"; done
	udevadm settle -t 30
}

# ---- Faults on a whole fabric (every path of one host) ---------------------------------------

# vm_sd_each HOST LUNS COMMAND [ARGS...]: runs `COMMAND HCTL ARGS...` for the path of each of the
# first LUNS LUNs through host HOST (A or B): a fault on one fabric.
vm_sd_each() {
	_host=$1
	_luns=$2
	_cmd=$3
	shift 3
	_lun=0
	while [ "$_lun" -lt "$_luns" ]; do
		"$_cmd" "$(vm_sd_hctl "$_host" "$_lun")" "$@"
		_lun=$((_lun + 1))
	done
}

# vm_sd_maps LUNS: the names of the maps of the first LUNS LUNs, one a line.
vm_sd_maps() {
	vm_sd_each A "$1" vm_sd_map
}

# vm_sd_names HOST LUNS: the disk names (sdX) of the first LUNS LUNs' paths through HOST.
vm_sd_names() {
	vm_sd_each "$1" "$2" vm_sd_name
}
