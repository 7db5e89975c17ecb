# Shared helpers for up.sh and down.sh. Sourced, not executed.
# shellcheck shell=bash disable=SC2034

# Bump RT_VERSION whenever the rootfs build or customisation changes: a cached
# rootfs whose stamp differs is rebuilt.
RT_VERSION=1
RT_SUITE=bookworm
RT_PACKAGES=systemd,systemd-sysv,dbus,openssh-server,sudo,caddy,python3,python3-venv,zstd,ca-certificates,iproute2,curl,procps

RT_CACHE=${RAIJIN_TESTHOST_CACHE:-/var/cache/raijin-testhost}
RT_ROOTFS=$RT_CACHE/rootfs
RT_KEY=$RT_CACHE/keys/id_ed25519
RT_RUN=${RAIJIN_TESTHOST_RUN:-/run/raijin-testhost}
RT_STAMP_FILE=etc/raijin-testhost.stamp
RT_CGROUP_LEAF_PREFIX=raijin-testhost.

rt_log() { echo "testhost: $*" >&2; }
rt_die() { echo "testhost: error: $*" >&2; exit 1; }

rt_require_root() {
	[ "$(uname -s)" = Linux ] || rt_die "needs Linux (this is $(uname -s))"
	[ "$(id -u)" = 0 ] || rt_die "must run as root"
}

rt_check_name() {
	[[ $1 =~ ^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$ ]] ||
		rt_die "bad NAME '$1' (letters, digits, '-', '_'; at most 32 characters)"
}

# rt_proc_start PID: the process's start time (field 22 of /proc/PID/stat), to
# tell a recorded PID from a later process that reuses the number.
rt_proc_start() {
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	stat=${stat##*) } # strip "pid (comm) "; comm may contain spaces
	# shellcheck disable=SC2086
	set -- $stat
	echo "${20}"
}

# rt_proc_state PID: one-letter state (R, S, Z, ...), empty if gone.
rt_proc_state() {
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
	stat=${stat##*) }
	echo "${stat%% *}"
}

# rt_alive PID [START]: the process exists, is not a zombie, and (if START is
# given) is the same process that was recorded.
rt_alive() {
	local pid=$1 start=${2:-} st
	[ -n "$pid" ] || return 1
	st=$(rt_proc_state "$pid")
	[ -n "$st" ] && [ "$st" != Z ] || return 1
	if [ -n "$start" ]; then
		[ "$(rt_proc_start "$pid" 2>/dev/null)" = "$start" ] || return 1
	fi
	return 0
}

# rt_cgroup_dirs NAME: one directory per cgroup hierarchy this process is in,
# a child of its current cgroup there, named raijin-testhost.NAME.
rt_cgroup_dirs() {
	local name=$1 line ctrls path mnt opts fstype
	while IFS= read -r line; do
		line=${line#*:}
		ctrls=${line%%:*}
		path=${line#*:}
		[ "$path" = / ] && path=
		mnt=
		while read -r _ _ _ _ mp _ rest; do
			fstype=${rest#*- }
			opts=${fstype#* * }
			fstype=${fstype%% *}
			if [ -z "$ctrls" ]; then
				[ "$fstype" = cgroup2 ] && { mnt=$mp; break; }
			elif [ "$fstype" = cgroup ]; then
				local ok=1 c
				for c in ${ctrls//,/ }; do
					[[ ,$opts, == *,$c,* ]] || { ok=0; break; }
				done
				[ $ok = 1 ] && { mnt=$mp; break; }
			fi
		done </proc/self/mountinfo
		[ -n "$mnt" ] && echo "$mnt$path/$RT_CGROUP_LEAF_PREFIX$name"
	done </proc/self/cgroup
}

# rt_rmdir_cgroup DIR: remove a cgroup directory and any children nspawn left.
rt_rmdir_cgroup() {
	local d=$1
	[ -d "$d" ] || return 0
	find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null || true
	[ ! -d "$d" ] || rt_log "warning: could not remove cgroup $d"
}
