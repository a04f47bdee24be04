#!/bin/sh
# The same file, the same answer as multipathd (issue 19): for each configuration below and a
# real SCSI LUN (scsi_debug, vendor NETAPP, product LUN, revision 8.1), multipathd's own
# selection of every marginal_path_* keyword (`multipath -v3 -d` logs "<map>: <keyword> = <value>
# (setting: <origin>)", libmultipath/propsel.c) must equal `marginal config show --json` on the
# same files: the same value and the same origin. The configurations cover every section,
# conf.d, quoting, comments, a brace on the next line, revision-specific and overlapping devices
# entries, POSIX character classes, `no`, and a sample time below the 120 s floor; and the real
# `multipath -t` dump in tests/fixtures/multipath with its conf.d, whose unknown section both warn about.
# Both multipath-tools versions are asked: bookworm's 0.9.4, then trixie's 0.11.1 (through its own
# ld.so and libraries, see vm_mpathd_trixie).
# vm-debs: multipath-tools libaio1 liburcu8 libjson-c5 libedit2 udev libkmod2 libacl1 libcap2 libblkid1
# vm-prefix-debs: trixie multipath-tools libc6 liburcu8t64 libaio1t64 libdevmapper1.02.1 libedit2
# vm-prefix-debs: trixie libgcc-s1 libmount1 libsystemd0 libudev1 libjson-c5 libblkid1 libselinux1
# vm-prefix-debs: trixie libpcre2-8-0 libbsd0 libmd0 libtinfo6 libcap2 libgcrypt20 libgpg-error0
# vm-prefix-debs: trixie liblz4-1 liblzma5 libzstd1
# vm-kernels: 6.12 sid
# vm-timeout: 240
. "$VM_LIB"
vm_private_system "$0" "$@"
vm_show_daemon_on_failure

vm_udevd
vm_scsi_debug 1 NETAPP LUN 8.1
vm_sd_paths 0
# The WWID multipath uses: udev's ID_SERIAL (its default uid_attribute for SCSI).
wwid=$(udevadm info -q property -n "/dev/$na" | sed -n 's/^ID_SERIAL=//p')
[ -n "$wwid" ] || fail "no ID_SERIAL for /dev/$na"
log "LUN 0: $na and $nb, wwid $wwid, $(cat /sys/block/$na/device/vendor) $(cat /sys/block/$na/device/model) $(cat /sys/block/$na/device/rev)"

# multipathd's words for where a value came from, by marginal's section names.
origin_of() {
	case "$1" in
	multipaths) echo "multipath.conf multipaths section" ;;
	overrides) echo "multipath.conf overrides section" ;;
	devices) echo "storage device configuration" ;;
	defaults) echo "multipath.conf defaults/devices section" ;;
	"") echo "multipath internal" ;;
	*) echo "unknown section $1" ;;
	esac
}

# marginal_says KEYWORD: "<value> (setting: <origin>)" from marginal's JSON in $SCRATCH/m.json;
# an unset keyword is multipathd's internal "no". A sample time below 120 is raised to 120, as
# multipathd does (and both warn).
marginal_says() {
	awk -v k="\"$1\": {" '
		index($0, k) { inside = 1; next }
		inside && /"section"/ { s = $0; sub(/.*"section": "/, "", s); sub(/".*/, "", s) }
		inside && /"value"/ { v = $0; sub(/.*"value": "/, "", v); sub(/".*/, "", v) }
		inside && /}/ { inside = 0 }
		END { print v "|" s }' "$SCRATCH/m.json" | {
		IFS='|' read -r value section
		[ -n "$value" ] || value=no
		if [ "$1" = marginal_path_err_sample_time ] && [ "$value" != no ] && [ "$value" -gt 0 ] && [ "$value" -lt 120 ]; then
			value=120
		fi
		echo "$value (setting: $(origin_of "$section"))"
	}
}

# multipathd_says KEYWORD: what `multipath -v3 -d` logged for the LUN's map in $SCRATCH/mp.log
# (it quotes "no"; marginal does not).
multipathd_says() {
	grep -a ": $1 = " "$SCRATCH/mp.log" | tail -n 1 | sed -e "s/.*: $1 = //" -e 's/^"no"/no/'
}

# unknown_sections_warned NAME: a section multipathd does not know (it logs "line N, invalid
# keyword: NAME" for the line that opens it, at the top level) is one marginal warns about at
# the same line.
# Prints how many such sections there were. multipathd's other warnings are about keywords
# marginal does not read (deprecated or newer options), see the README.
unknown_sections_warned() {
	: >"$SCRATCH/sections"
	sed -n 's/.*\/etc\/multipath.conf line \([0-9]*\), invalid keyword: \([a-z_]*\)$/\1 \2/p' "$SCRATCH/mp.log" |
		sort -u | while read -r n name; do
			sed -n "${n}p" /etc/multipath.conf | grep -q "^$name[[:space:]]*{" || continue
			if grep -q "^/etc/multipath.conf:$n: warning: invalid keyword '$name'" "$SCRATCH/m.err"; then
				echo "ok $n $name" >>"$SCRATCH/sections"
			else
				echo "missing $n $name" >>"$SCRATCH/sections"
			fi
		done
	if grep -q '^missing' "$SCRATCH/sections"; then
		cat "$SCRATCH/m.err" >&2
		fail "$1: multipathd warns about an unknown section marginal does not: $(grep '^missing' "$SCRATCH/sections")"
	fi
	grep -c '^ok' "$SCRATCH/sections" || true
}

# compare NAME: the configuration now in /etc/multipath.conf (and conf.d), both tools asked.
compare() {
	# -i: the wwids file is ignored, so even find_multipaths "strict" (the fixture) makes the map.
	$MULTIPATH -v3 -d -i >"$SCRATCH/mp.log" 2>&1 || true
	grep -aq ": marginal_path_double_failed_time = " "$SCRATCH/mp.log" ||
		{ tail -n 30 "$SCRATCH/mp.log"; fail "$1: multipath logged no marginal_path selection"; }
	marginal config show --config /etc/multipath.conf --config-dir /etc/multipath/conf.d \
		--multipath-conf /dev/null --wwid "$wwid" --vendor NETAPP --product LUN --revision 8.1 \
		--json >"$SCRATCH/m.json" 2>"$SCRATCH/m.err" || { cat "$SCRATCH/m.err"; fail "$1: marginal config show failed"; }
	sections=$(unknown_sections_warned "$1") || exit 1
	for k in marginal_path_double_failed_time marginal_path_err_sample_time \
		marginal_path_err_rate_threshold marginal_path_err_recheck_gap_time; do
		m=$(marginal_says "$k")
		d=$(multipathd_says "$k")
		if [ "$m" = "$d" ]; then
			log "ok: $1: $k = $d"
		else
			echo "--- $1: /etc/multipath.conf ---"; cat /etc/multipath.conf
			echo "--- marginal ---"; cat "$SCRATCH/m.json"
			fail "$1: $k: multipathd says \"$d\", marginal says \"$m\""
		fi
	done
	rm -f /etc/multipath/conf.d/*.conf
}

every_configuration() {
mkdir -p /etc/multipath/conf.d
base='	user_friendly_names no
	find_multipaths no'

cat >/etc/multipath.conf <<CONF
defaults {
$base
	marginal_path_double_failed_time 60
	marginal_path_err_sample_time 180
	marginal_path_err_rate_threshold 10
	marginal_path_err_recheck_gap_time 300
}
CONF
compare "$VERSION: defaults only"

cat >/etc/multipath.conf <<CONF
# overrides beat devices, devices beat defaults
defaults {
$base
	marginal_path_double_failed_time 60
	marginal_path_err_sample_time 180
}
devices {
	device {
		vendor "NETAPP"
		product "LUN"
		marginal_path_err_rate_threshold 5
		marginal_path_double_failed_time 30
	}
}
overrides {
	marginal_path_err_recheck_gap_time 400
	marginal_path_double_failed_time 45
}
CONF
compare "$VERSION: overrides, devices, defaults"

cat >/etc/multipath.conf <<CONF
! multipaths beat overrides; quoted values; comments of both kinds
defaults {
$base
	marginal_path_err_sample_time "150"   # quoted
}
overrides {
	marginal_path_double_failed_time 45
	marginal_path_err_rate_threshold no
}
multipaths {
	multipath {
		wwid "$wwid"
		alias oracle0
		marginal_path_double_failed_time 20
		marginal_path_err_rate_threshold 7
	}
}
CONF
compare "$VERSION: multipaths, overrides, quoting"

cat >/etc/multipath.conf <<CONF
# a generic entry, then revision-specific ones: later entries win where they match
defaults {
$base
}
devices {
	device {
		vendor "NETAPP"
		product "LUN"
		marginal_path_err_sample_time 200
		marginal_path_err_rate_threshold 5
	}
	device {
		vendor "NETAPP"
		product "LUN"
		revision "^8"
		marginal_path_err_rate_threshold 8
		marginal_path_double_failed_time 80
	}
	device {
		vendor "NETAPP"
		product "LUN"
		revision "^9"
		marginal_path_double_failed_time 90
		marginal_path_err_recheck_gap_time 900
	}
}
CONF
compare "$VERSION: revision-specific devices entries"

cat >/etc/multipath.conf <<CONF
# POSIX extended patterns; the brace of a section on the next line
defaults
{
$base
	marginal_path_err_sample_time 60
}
devices {
	device {
		vendor "NET[[:alpha:]]+"
		product "^L.N$"
		marginal_path_double_failed_time 70
		marginal_path_err_recheck_gap_time 700
	}
	device {
		vendor "NETAPP"
		product "LUN|OTHER"
		marginal_path_err_rate_threshold 3
	}
}
CONF
compare "$VERSION: POSIX patterns, brace on the next line, sample time raised to 120"

cat >/etc/multipath.conf <<CONF
defaults {
$base
	marginal_path_double_failed_time 60
}
CONF
cat >/etc/multipath/conf.d/10-site.conf <<CONF
overrides {
	marginal_path_err_sample_time 240
}
devices {
	device {
		vendor "NETAPP"
		product "LUN"
		marginal_path_err_rate_threshold 12
		marginal_path_err_recheck_gap_time 360
	}
}
CONF
compare "$VERSION: conf.d"

# The real configuration `multipath -t` printed on a SAN host, with the site's settings and
# conf.d (tests/fixtures/multipath): hundreds of devices entries, every section. Its blacklist
# has `protocol "scsi:unspec"`, which is scsi_debug's protocol, so one exception is added for the
# test LUN; nothing else is changed.
cp /usr/share/marginal-vm/fixtures/multipath/multipath.conf /etc/multipath.conf
cp /usr/share/marginal-vm/fixtures/multipath/conf.d/*.conf /etc/multipath/conf.d/
printf 'blacklist_exceptions {\n\tprotocol "scsi:unspec"\n}\n' >/etc/multipath/conf.d/99-test-lun.conf
compare "$VERSION: the real multipath -t dump"
[ "$sections" -ge 1 ] || fail "$VERSION: the dump's unknown section site_inventory: multipathd gave no warning to compare"
log "ok: $VERSION: the real multipath -t dump: its unknown section is warned about by both"
}

VERSION=0.9.4
MULTIPATH=multipath
every_configuration

# trixie's multipath, as vm_mpathd_trixie runs its multipathd.
vm_mpathd_trixie
VERSION=0.11.1
MULTIPATH="${VM_MPD%multipathd}multipath"
$MULTIPATH -h 2>&1 | grep -q 'multipath-tools v0.11' || fail "not trixie's multipath: $($MULTIPATH -h 2>&1 | head -n 1)"
every_configuration

log "every configuration: multipath-tools 0.9.4 and 0.11.1 and marginal agree on every value and its origin"
