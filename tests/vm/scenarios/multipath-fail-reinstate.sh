#!/bin/sh
# dm-multipath over two paths to one LUN: when one path breaks, I/O on the map goes on over the
# other, the kernel marks the broken path failed (F); once healed and reinstated it is active (A).
# Proves the test bed: modules, dmsetup, loop devices and the kernel's path failover.
# vm-timeout: 60
. "$VM_LIB"

vm_two_path_map
dmsetup table mp0

# Known data on the LUN, written through the map.
vm_known_data "$mp"
check "data reads back through the map" [ "$(vm_md5 "$mp" 262144)" = "$want" ]
check "path_a active" [ "$(vm_path_state mp0 "$a")" = A ]
check "path_b active" [ "$(vm_path_state mp0 "$b")" = A ]

log "breaking path_b"
vm_break_path path_b
check "path_b itself fails I/O" sh -c "! dd if=$pb of=/dev/null bs=4096 count=1 iflag=direct 2>/dev/null"
# Round-robin sends every other I/O down path_b: its first error fails the path, dm-mpath retries
# the I/O on path_a, and the reader sees no error.
check "reads through the map succeed with path_b broken" vm_read "$mp" 32
check "data intact through the map" [ "$(vm_md5 "$mp" 262144)" = "$want" ]
dmsetup status mp0
check "kernel marked path_b failed" [ "$(vm_path_state mp0 "$b")" = F ]
check "path_a still active" [ "$(vm_path_state mp0 "$a")" = A ]
check "kernel logged the failure" sh -c "dmesg | grep -q 'Failing path $b'"

log "healing and reinstating path_b"
vm_heal_path path_b
dmsetup message mp0 0 reinstate_path "$b"
dmsetup status mp0
check "path_b active again" [ "$(vm_path_state mp0 "$b")" = A ]
check "reads through the map succeed with both paths" vm_read "$mp" 32
check "path_b stays active under I/O" [ "$(vm_path_state mp0 "$b")" = A ]
check "data intact after reinstatement" [ "$(vm_md5 "$mp" 262144)" = "$want" ]
