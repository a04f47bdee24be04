#!/bin/sh
# The SAN test bed's smoke test, on every kernel, with Debian bookworm's multipathd (0.9.4):
# a scsi_debug map made by multipathd, marginal watching it, one flapping path (vm_san_smoke in
# tests/vm/lib/smoke.sh). Proves on each kernel: eBPF programs load, dm-mpath's path events reach
# the daemon, multipathd takes its commands, the sampler reads a real SCSI disk.
# vm-debs: multipath-tools libaio1 liburcu8 libjson-c5 libedit2 udev libkmod2 libacl1 libcap2 libblkid1
# vm-timeout: 150
. "$VM_LIB"
vm_private_system "$0" "$@"
vm_show_san_on_failure
vm_san_smoke
