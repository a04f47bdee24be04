#!/bin/sh
# The SAN smoke test (vm_san_smoke) with Debian trixie's multipathd 0.11.1 instead of bookworm's
# 0.9.4: trixie's own glibc and libraries under /opt/trixie, run through trixie's ld.so.
# bookworm's multipath-tools stays for the `multipathd` client commands the helpers send.
# vm-debs: multipath-tools libaio1 liburcu8 libjson-c5 libedit2 udev libkmod2 libacl1 libcap2 libblkid1
# vm-prefix-debs: trixie multipath-tools libc6 liburcu8t64 libaio1t64 libdevmapper1.02.1 libedit2
# vm-prefix-debs: trixie libgcc-s1 libmount1 libsystemd0 libudev1 libjson-c5 libblkid1 libselinux1
# vm-prefix-debs: trixie libpcre2-8-0 libbsd0 libmd0 libtinfo6 libcap2 libgcrypt20 libgpg-error0
# vm-prefix-debs: trixie liblz4-1 liblzma5 libzstd1
# vm-kernels: 6.12 sid
# vm-timeout: 150
. "$VM_LIB"
vm_private_system "$0" "$@"
vm_show_san_on_failure
vm_mpathd_trixie
vm_san_smoke
check "it was multipathd 0.11.1" grep -q "v0.11.1" "$VM_MPD_LOG"
