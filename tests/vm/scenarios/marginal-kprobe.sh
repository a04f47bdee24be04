#!/bin/sh
# The guest can run the project's binary, and the kernel has what its path-failure probe needs:
# the dm_mod function dm_path_uevent, a kprobe on it, and the probe firing with the path's
# "major:minor" when dm-mpath fails and reinstates a path.
# vm-timeout: 60
. "$VM_LIB"

check "marginal --version runs" marginal --version
# Reading kallsyms takes seconds in emulation: once.
syms=$(grep -w dm_path_uevent /proc/kallsyms || true)
echo "$syms"
check "dm_path_uevent is in kallsyms (dm_mod)" vm_contains "$syms" "dm_path_uevent	[dm_mod]"

T=/sys/kernel/tracing
# x86-64 arguments: (enum dm_uevent_type type, struct dm_target *ti, const char *path,
# unsigned int nr_valid_paths) -> %di, %si, %dx, %cx.
check "kprobe_events accepts p:dmpu dm_path_uevent" \
	sh -c "echo 'p:dmpu dm_path_uevent type=%di:s32 path=+0(%dx):string nr_valid=%cx:u32' >>$T/kprobe_events"
cat "$T/kprobe_events"
echo 1 >"$T/events/kprobes/dmpu/enable"

lun=$(vm_loop 16)
pa=$(vm_linear path_a "$lun")
pb=$(vm_linear path_b "$lun")
vm_multipath mp0 "$pa" "$pb" >/dev/null
b=$(vm_majmin "$pb")
dmsetup message mp0 0 fail_path "$b"
dmsetup message mp0 0 reinstate_path "$b"
echo 0 >"$T/events/kprobes/dmpu/enable"
cat "$T/trace" | grep dmpu || true
check "probe saw the failure of $b" sh -c "grep -q 'dmpu:.*type=0 path=\"$b\" nr_valid=1' $T/trace"
check "probe saw the reinstatement of $b" sh -c "grep -q 'dmpu:.*type=1 path=\"$b\" nr_valid=2' $T/trace"
