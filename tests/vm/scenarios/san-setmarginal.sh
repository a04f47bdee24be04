#!/bin/sh
# The gentler action (marginal_path_action setmarginal) with trixie's multipathd 0.11.1: first
# its precondition (marginal_pathgroups off: marginal says it falls back to failing paths), then,
# with marginal_pathgroups on, a flapping path B is set marginal through multipathd, which moves
# it to a lowest-priority path group of its own: I/O goes to path A only; when A fails, B (still
# marginal, never failed, never "recovered") carries the I/O; once B's fault is healed a recheck
# passes and `unsetmarginal` puts it back into the one normal group.
# vm-debs: multipath-tools libaio1 liburcu8 libjson-c5 libedit2 udev libkmod2 libacl1 libcap2 libblkid1
# vm-prefix-debs: trixie multipath-tools libc6 liburcu8t64 libaio1t64 libdevmapper1.02.1 libedit2
# vm-prefix-debs: trixie libgcc-s1 libmount1 libsystemd0 libudev1 libjson-c5 libblkid1 libselinux1
# vm-prefix-debs: trixie libpcre2-8-0 libbsd0 libmd0 libtinfo6 libcap2 libgcrypt20 libgpg-error0
# vm-prefix-debs: trixie liblz4-1 liblzma5 libzstd1
# vm-kernels: 6.12 sid
# vm-timeout: 180
. "$VM_LIB"
vm_private_system "$0" "$@"
vm_show_san_on_failure

# pg_of MAP MAJ:MIN: the path group (1 = highest priority) holding the path in `dmsetup table`
# (multipath target: features, hardware handler, #groups, initial group, then per group its
# selector and args, #paths, #path args, and each path with its args).
pg_of() {
	dmsetup table "$1" | awk -v p="$2" '{
		i = 4; i += $i + 1; i += $i + 1; n = $i; i += 2
		for (g = 1; g <= n; g++) {
			i++; i += $i + 1; np = $i; i++; na = $i; i++
			for (k = 0; k < np; k++) { if ($i == p) { print g; exit } i += na + 1 }
		}
	}'
}
pg_count_is() { [ "$(dmsetup table "$1" | awk '{ i = 4; i += $i + 1; i += $i + 1; print $i }')" = "$2" ]; }
pgs_are() { [ "$(pg_of "$1" "$2")" = 1 ] && [ "$(pg_of "$1" "$3")" = 2 ]; }
held_as_marginal_only() { vm_path_is "$1" held_as setmarginal && ! vm_marginal_logged "returning $1"; }
reads_of() { awk '{ print $1 }' "/sys/block/$1/stat"; }
mpd_marginal_st() { multipathd show paths raw format "%d %M" | awk -v d="$1" '$1 == d { print $2 }'; }

# multipathd 0.11 picks group_by_prio for ALUA devices unless detect_pgpolicy is off: scsi_debug's
# two hosts would be two groups from the start. (bookworm's `multipathd` client, which sends the
# commands, warns that it does not know the keyword: harmless.)
vm_mpathd_trixie
vm_san_conf "detect_pgpolicy no"
vm_san_up 1
# Recheck gap 15 s: the steps from the first marginal verdict to path A's return take 2-5 s, so
# B is still marginal through them (asserted), and the passing recheck comes soon after.
vm_marginal_conf 60 100 15 "marginal_path_action setmarginal"

log "precondition: multipathd runs with marginal_pathgroups off"
check "config check warns" sh -c "marginal config check > $SCRATCH/check-off.txt 2>&1"
cat "$SCRATCH/check-off.txt"
check "it falls back to failing, saying why" grep -q "marginal_pathgroups off.*falling back to failing paths" "$SCRATCH/check-off.txt"

vm_san_conf "detect_pgpolicy no
marginal_pathgroups on"
multipathd reconfigure >/dev/null
check "multipathd runs with marginal_pathgroups on" vm_wait_for 30 sh -c "multipathd show config | grep -q 'marginal_pathgroups \"*on'"
check "the map is back with both paths" vm_wait_for 30 vm_map_has "$map" 2
marginal config check > "$SCRATCH/check-on.txt" 2>&1 || true
check "no fallback now" sh -c "! grep -q 'falling back' $SCRATCH/check-on.txt"

VM_MARGINAL_STATE=$VM_MARGINAL_DEFAULT_STATE
vm_marginal_start
check "daemon watches $map" vm_marginal_logged "watching map $map"
check "status: $map's action is setmarginal" vm_path_is "$map" action setmarginal
check "one path group" pg_count_is "$map" 1

log "path B flaps: READs fail with DID_NO_CONNECT, TUR passes"
vm_sd_flap "$hb"
check "the daemon sets $nb marginal" \
	vm_io_until 60 "$map" vm_marginal_logged "$nb of $map is set marginal in multipathd"
check "through multipathd's socket" vm_wait_for 10 grep -q "set marginal path $b (operator)" "$VM_MPD_LOG"
check "verdict: marginal" vm_wait_for 20 vm_path_is "$nb" state marginal
check "status: held as setmarginal" vm_path_is "$nb" held_as setmarginal
check "state file: setmarginal" grep -q '"action": *"setmarginal"' "$VM_MARGINAL_STATE"
check "multipathd: $nb marginal" [ "$(mpd_marginal_st "$nb")" = marginal ]
check "two path groups" vm_wait_for 10 pg_count_is "$map" 2
check "$na in group 1, $nb alone in the last, lowest-priority one" pgs_are "$map" "$a" "$b"
multipathd show maps topology
check "$nb active in dm all along (a last resort)" vm_wait_for 10 vm_dm_path_is "$map" "$b" A

# B's fault is still on: a read dm sent to B would fail it.
ra=$(reads_of "$na")
check "reads through the map work" vm_read "/dev/mapper/$map" 16
check "they went to $na" [ "$(($(reads_of "$na") - ra))" -ge 16 ]
check "none to $nb (dm did not fail it)" vm_dm_path_is "$map" "$b" A

log "the fault on B goes away, path A goes down (every command fails)"
vm_sd_heal "$hb"
vm_sd_down "$ha"
check "still marginal (no recheck yet)" [ "$(pg_of "$map" "$b")" = 2 ]
rb=$(reads_of "$nb")
check "reads through the map work with A down" vm_read "/dev/mapper/$map" 16
check "dm failed $na" vm_wait_for 10 vm_dm_path_is "$map" "$a" F
check "the marginal $nb carried them" [ "$(($(reads_of "$nb") - rb))" -ge 16 ]
check "$nb stays held as marginal: no recovery" held_as_marginal_only "$nb"

log "path A comes back; B's recheck passes"
vm_sd_heal "$ha"
check "multipathd reinstates $na" vm_wait_for 20 vm_dm_path_is "$map" "$a" A
check "a recheck passes and the daemon returns $nb" vm_wait_for 60 vm_marginal_logged "returning $nb to $map: passed"
check "through unsetmarginal" vm_wait_for 10 grep -q "unset marginal path $b (operator)" "$VM_MPD_LOG"
check "one path group again" vm_wait_for 10 pg_count_is "$map" 1
check "multipathd: $nb normal" [ "$(mpd_marginal_st "$nb")" = normal ]
check "$nb healthy" vm_wait_for 5 vm_path_is "$nb" state healthy
check "state file no longer lists $nb" sh -c "! grep -q '\"$nb\"' $VM_MARGINAL_STATE"
check "the daemon logged no error" vm_marginal_no_errors
