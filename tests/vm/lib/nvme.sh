# NVMe/TCP over loopback: nvmet (the kernel's target, through configfs) exports one namespace on
# two TCP ports, 127.0.0.1:4420 and 127.0.0.2:4420; the host connects to both through
# /dev/nvme-fabrics (no nvme-cli needed). With `nvme_core.multipath=N` on the kernel command line
# (a scenario's `# vm-cmdline:`) the two controllers give two namespaces, nvme0n1 and nvme1n1,
# with one WWID, for dm-multipath; otherwise NVMe's native multipath merges them into one.
# Sourced by lib.sh.

VM_NVME_NQN=nqn.2026-12.org.marginal:vm-nvme
VM_NVMET=/sys/kernel/config/nvmet

# vm_nvme_target SIZE_MB: an nvmet subsystem with one namespace over a new loop device, open to
# any host, on two TCP ports.
vm_nvme_target() {
	modprobe nvmet_tcp || fail "modprobe nvmet_tcp failed"
	vm_configfs
	_lun=$(vm_loop "$1")
	_s=$VM_NVMET/subsystems/$VM_NVME_NQN
	vm_teardown "rmdir $_s/namespaces/1 $_s"
	mkdir -p "$_s/namespaces/1"
	echo 1 >"$_s/attr_allow_any_host"
	echo -n "$_lun" >"$_s/namespaces/1/device_path"
	echo 1 >"$_s/namespaces/1/enable"
	_port=1
	for _ip in 127.0.0.1 127.0.0.2; do
		_p=$VM_NVMET/ports/$_port
		vm_teardown "rm -f $_p/subsystems/$VM_NVME_NQN; rmdir $_p"
		mkdir -p "$_p"
		echo tcp >"$_p/addr_trtype"
		echo ipv4 >"$_p/addr_adrfam"
		echo "$_ip" >"$_p/addr_traddr"
		echo 4420 >"$_p/addr_trsvcid"
		ln -s "$_s" "$_p/subsystems/$VM_NVME_NQN"
		_port=$((_port + 1))
	done
}

# vm_nvme_connect: connects to both ports and waits for both namespaces' disks;
# sets VM_NVME_A and VM_NVME_B (their names, over 127.0.0.1 and 127.0.0.2).
vm_nvme_connect() {
	modprobe nvme_tcp || fail "modprobe nvme_tcp failed"
	[ "$(cat /sys/module/nvme_core/parameters/multipath)" = N ] ||
		fail "NVMe native multipath is on: the scenario needs '# vm-cmdline: nvme_core.multipath=N'"
	vm_teardown "for c in /sys/class/nvme/nvme*; do echo 1 >\$c/delete_controller; done"
	for _ip in 127.0.0.1 127.0.0.2; do
		# I/O fails 2 s after a connection is lost (not after the 600 s controller loss timeout)
		# and the host tries to reconnect every second: a link that breaks fails the path soon.
		echo "transport=tcp,traddr=$_ip,trsvcid=4420,nqn=$VM_NVME_NQN,keep_alive_tmo=5,fast_io_fail_tmo=2,reconnect_delay=1" >/dev/nvme-fabrics ||
			fail "connecting to $_ip:4420 failed"
	done
	vm_wait_for 30 vm_nvme_disks || fail "the NVMe namespaces did not appear"
	udevadm settle -t 30
	VM_NVME_A=$(vm_nvme_disk 127.0.0.1)
	VM_NVME_B=$(vm_nvme_disk 127.0.0.2)
	log "NVMe/TCP: $VM_NVME_A over 127.0.0.1, $VM_NVME_B over 127.0.0.2"
}
vm_nvme_disks() {
	[ -n "$(vm_nvme_disk 127.0.0.1)" ] && [ -n "$(vm_nvme_disk 127.0.0.2)" ]
}

# vm_nvme_disk IP: the namespace disk of the controller connected to IP.
vm_nvme_disk() {
	for _c in /sys/class/nvme/nvme*; do
		case "$(cat "$_c/address" 2>/dev/null)" in *"traddr=$1,"*) ;; *) continue ;; esac
		for _n in "$_c"/nvme*n*; do [ -e "$_n/dev" ] && basename "$_n"; done
	done
}

# vm_nvme_port_down / vm_nvme_port_up: the target stops (starts again) exporting the subsystem on
# its second port (127.0.0.2): the host's controller there loses its connection and keeps trying
# to reconnect, as when a link goes down and comes back.
vm_nvme_port_down() {
	rm "$VM_NVMET/ports/2/subsystems/$VM_NVME_NQN"
}
vm_nvme_port_up() {
	ln -s "$VM_NVMET/subsystems/$VM_NVME_NQN" "$VM_NVMET/ports/2/subsystems/$VM_NVME_NQN"
}
