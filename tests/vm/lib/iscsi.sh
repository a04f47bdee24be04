# iSCSI over loopback: LIO (the kernel's target, set up through configfs alone) exports one LUN
# through two target portal groups, 127.0.0.1:3260 and 127.0.0.2:3260; Debian's open-iscsi logs in
# to both: two sessions, two sdX, one WWID. A shaky link is netem on the second portal's traffic.
# Sourced by lib.sh. Needs vm-debs: open-iscsi libisns0 libopeniscsiusr libssl3 libmount1 iproute2
# libbpf1 libbsd0 libdb5.3 libelf1 libmnl0 libtirpc3 libxtables12 libmd0 (and multipathd's).

VM_ISCSI_IQN=iqn.2026-12.org.marginal:vm-lun
VM_LIO=/sys/kernel/config/target
# busybox sh would run its own applet for a bare `tc`.
VM_TC=/usr/sbin/tc

# vm_iscsi_target SIZE_MB: a LIO target over a new loop device with two portals, each its own
# target portal group (so each is its own session and path), no authentication, any initiator.
vm_iscsi_target() {
	modprobe crc32c_generic 2>/dev/null || true
	modprobe target_core_iblock && modprobe iscsi_target_mod || fail "modprobe of LIO's modules failed"
	vm_configfs
	_lun=$(vm_loop "$1")
	_bs=$VM_LIO/core/iblock_0/lun0
	vm_teardown "rmdir $_bs $VM_LIO/core/iblock_0"
	mkdir -p "$_bs"
	echo "udev_path=$_lun" >"$_bs/control"
	echo 1 >"$_bs/enable"
	# LIO derives the LUN's NAA identifier (its WWID) from the unit serial, which only its
	# userspace tools set: without one the WWID is a vendor string with spaces.
	echo 5a1e0b1e-0000-4000-8000-000000000001 >"$_bs/wwn/vpd_unit_serial"
	_tpg=1
	for _ip in 127.0.0.1 127.0.0.2; do
		_t=$VM_LIO/iscsi/$VM_ISCSI_IQN/tpgt_$_tpg
		vm_teardown "echo 0 >$_t/enable; rm $_t/lun/lun_0/backstore; rmdir $_t/lun/lun_0 $_t/np/$_ip:3260 $_t; rmdir $VM_LIO/iscsi/$VM_ISCSI_IQN"
		mkdir -p "$_t/lun/lun_0" "$_t/np/$_ip:3260"
		ln -s "$_bs" "$_t/lun/lun_0/backstore"
		echo 1 >"$_t/attrib/generate_node_acls"
		echo 1 >"$_t/attrib/cache_dynamic_acls"
		echo 0 >"$_t/attrib/authentication"
		echo 0 >"$_t/attrib/demo_mode_write_protect"
		echo 1 >"$_t/enable"
		_tpg=$((_tpg + 1))
	done
	VM_ISCSI_BACKING=$_lun
}

# vm_iscsi_login: open-iscsi's iscsid, discovery through the first portal (it reports both) and
# login to both; waits for the two disks. Sessions recover within 5 s of a link coming back
# (replacement_timeout 5: dm fails a path whose link is down about 15 s after it went down).
# Sets VM_ISCSI_A and VM_ISCSI_B: the sdX names behind 127.0.0.1 and 127.0.0.2.
vm_iscsi_login() {
	modprobe iscsi_tcp || fail "modprobe iscsi_tcp failed"
	modprobe sd_mod || true
	# iscsid checks who talks to it with getpwuid().
	grep -q '^root:' /etc/passwd 2>/dev/null || echo 'root:x:0:0:root:/root:/bin/sh' >>/etc/passwd
	mkdir -p /etc/iscsi /run/lock/iscsi /var/lib/iscsi
	echo "InitiatorName=iqn.2026-12.org.marginal:vm-host" >/etc/iscsi/initiatorname.iscsi
	cat >/etc/iscsi/iscsid.conf <<-CONF
		node.startup = manual
		node.session.timeo.replacement_timeout = 5
		node.conn[0].timeo.noop_out_interval = 2
		node.conn[0].timeo.noop_out_timeout = 2
		node.session.auth.authmethod = None
	CONF
	iscsid -f >>"$SCRATCH/iscsid.log" 2>&1 &
	vm_teardown "iscsiadm -m session -u"
	# Discovery goes through iscsid, which needs a moment to listen.
	vm_wait_for 20 iscsiadm -m discovery -t st -p 127.0.0.1 || fail "iSCSI discovery failed"
	iscsiadm -m node -L all || fail "iSCSI login failed"
	vm_wait_for 30 vm_iscsi_disks || fail "the iSCSI disks did not appear"
	udevadm settle -t 30
	VM_ISCSI_A=$(vm_iscsi_disk 127.0.0.1)
	VM_ISCSI_B=$(vm_iscsi_disk 127.0.0.2)
	log "iSCSI: $VM_ISCSI_A over 127.0.0.1, $VM_ISCSI_B over 127.0.0.2"
}
vm_iscsi_disks() {
	[ -n "$(vm_iscsi_disk 127.0.0.1)" ] && [ -n "$(vm_iscsi_disk 127.0.0.2)" ]
}

# vm_iscsi_disk PORTAL_IP: the sdX of the session through that portal.
vm_iscsi_disk() {
	for _s in /sys/class/iscsi_session/session*; do
		_c=$(ls -d "$_s"/device/connection*/iscsi_connection/connection* 2>/dev/null | head -n 1)
		[ -n "$_c" ] && [ "$(cat "$_c/persistent_address" 2>/dev/null)" = "$1" ] || continue
		ls "$_s"/device/target*/*:*:*:*/block/ 2>/dev/null
	done
}

# vm_iscsi_san_up: udevd, the LIO target (64 MiB), open-iscsi logged in to both portals and
# multipathd with the SAN host's configuration, waiting until it has made one map over both
# sessions' disks. Sets na and nb (the disks behind 127.0.0.1 and 127.0.0.2) and map.
vm_iscsi_san_up() {
	vm_udevd
	vm_iscsi_target 64
	vm_iscsi_login
	na=$VM_ISCSI_A
	nb=$VM_ISCSI_B
	vm_san_conf
	vm_mpathd_start
	check "multipathd makes one map over both sessions' disks" vm_wait_for 60 _vm_iscsi_map_ready
}

_vm_iscsi_map_ready() {
	map=$(vm_holder "$na")
	[ -n "$map" ] && vm_map_has "$map" 2
}

# vm_iscsi_netem NETEM_ARGS...: netem (e.g. `loss 100%`) on everything sent to or from
# 127.0.0.2 on lo, the second portal's traffic, and nothing else.
vm_iscsi_netem() {
	modprobe sch_prio && modprobe sch_netem && modprobe cls_u32 || fail "modprobe of tc's modules failed"
	$VM_TC qdisc del dev lo root 2>/dev/null || true
	vm_teardown "$VM_TC qdisc del dev lo root"
	$VM_TC qdisc add dev lo root handle 1: prio bands 4 priomap 1 2 2 2 1 2 0 0 1 1 1 1 1 1 1 1
	$VM_TC qdisc add dev lo parent 1:4 handle 40: netem "$@"
	$VM_TC filter add dev lo parent 1:0 protocol ip prio 1 u32 match ip dst 127.0.0.2/32 flowid 1:4
	$VM_TC filter add dev lo parent 1:0 protocol ip prio 1 u32 match ip src 127.0.0.2/32 flowid 1:4
}

# vm_iscsi_netem_off: the second portal's link is whole again.
vm_iscsi_netem_off() {
	$VM_TC qdisc del dev lo root
}
