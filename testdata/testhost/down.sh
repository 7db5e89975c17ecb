#!/usr/bin/env bash
# down.sh NAME — stop the test server NAME started by up.sh and remove its
# network namespace, veth, cgroups and state directory. Idempotent: succeeds
# when NAME is not running. Keeps the cached rootfs and key.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$HERE/lib.sh"

[ $# -eq 1 ] || { echo "usage: $0 NAME" >&2; exit 2; }
NAME=$1
rt_check_name "$NAME"
rt_require_root
STATE=$RT_RUN/$NAME

readf() { cat "$STATE/$1" 2>/dev/null || true; }
NSPAWN=$(readf nspawn.pid)
NSPAWN_START=$(readf nspawn.start)
PID1=$(readf pid1)
PID1_START=$(readf pid1.start)
INDEX=$(readf index)

# Processes inside the netns are the container's (up.sh made the netns).
netns_pids() {
	local pid
	[ -e "/run/netns/$NAME" ] || return 0
	for pid in $(ip netns pids "$NAME" 2>/dev/null || true); do
		rt_alive "$pid" && echo "$pid"
	done
	return 0
}

anything_alive() {
	rt_alive "$NSPAWN" "$NSPAWN_START" || rt_alive "$PID1" "$PID1_START" || [ -n "$(netns_pids)" ]
}

wait_gone() { # TENTHS
	local i
	for ((i = 0; i < $1; i++)); do
		anything_alive || return 0
		sleep 0.1
	done
	return 1
}

# 1. SIGTERM to nspawn: it powers the container off (about 2 s).
if rt_alive "$NSPAWN" "$NSPAWN_START"; then
	kill -TERM "$NSPAWN" 2>/dev/null || true
	wait_gone 50 || true
fi

# 2. Whatever is still alive gets SIGKILL: nspawn, the container's init (an
#    orphan if nspawn was killed earlier), anything left in the netns.
if anything_alive; then
	rt_alive "$NSPAWN" "$NSPAWN_START" && kill -KILL "$NSPAWN" 2>/dev/null || true
	rt_alive "$PID1" "$PID1_START" && kill -KILL "$PID1" 2>/dev/null || true
	for pid in $(netns_pids); do kill -KILL "$pid" 2>/dev/null || true; done
	wait_gone 30 || rt_log "warning: processes of $NAME still alive after SIGKILL"
fi

# 3. Network.
[ -e "/run/netns/$NAME" ] && ip netns delete "$NAME" 2>/dev/null || true
if [ -n "$INDEX" ] && ip link show "rjh$INDEX" >/dev/null 2>&1; then
	ip link delete "rjh$INDEX" 2>/dev/null || true
fi

# 4. Cgroups: the recorded ones, else where up.sh would have made them.
{
	readf cgroups
	rt_cgroup_dirs "$NAME"
	for d in /sys/fs/cgroup/*/"$RT_CGROUP_LEAF_PREFIX$NAME" /sys/fs/cgroup/"$RT_CGROUP_LEAF_PREFIX$NAME"; do
		echo "$d"
	done
} | sort -u | while IFS= read -r d; do
	[ -n "$d" ] && [ -d "$d" ] || continue
	# Processes still in it are the container's leftovers.
	for pid in $(find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null); do
		rt_alive "$pid" && kill -KILL "$pid" 2>/dev/null || true
	done
	for _ in 1 2 3 4 5 6 7 8 9 10; do
		[ -z "$(find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null)" ] && break
		sleep 0.1
	done
	rt_rmdir_cgroup "$d"
done

# 5. State.
rm -rf "$STATE"
exit 0
