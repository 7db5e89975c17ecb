#!/usr/bin/env bash
# up.sh NAME [INDEX] — boot a fresh Debian 12 test server (systemd, sshd, sudo,
# Caddy, python3-venv) in systemd-nspawn, reachable at 10.213.INDEX.2.
# Run as root. Progress goes to stderr; the last line of stdout is the state
# directory, which holds `env` (see README.md). Tear down with down.sh NAME.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$HERE/lib.sh"

usage() { echo "usage: $0 NAME [INDEX]   (INDEX 0..200, default 0)" >&2; exit 2; }
[ $# -ge 1 ] && [ $# -le 2 ] || usage
NAME=$1
INDEX=${2:-0}
rt_check_name "$NAME"
[[ $INDEX =~ ^[0-9]{1,3}$ ]] && [ "$((10#$INDEX))" -le 200 ] || usage
INDEX=$((10#$INDEX))
rt_require_root

TIMEOUT=${RAIJIN_TESTHOST_TIMEOUT:-60}
STATE=$RT_RUN/$NAME
ADDR=10.213.$INDEX.2
HOSTIF=rjh$INDEX
CTIF=rjc$INDEX
export DEBIAN_FRONTEND=noninteractive
export LC_ALL=C

# --- host tools ---------------------------------------------------------------

ensure_tools() {
	local -A pkg_of=(
		[debootstrap]=debootstrap [systemd-nspawn]=systemd-container
		[ip]=iproute2 [ssh]=openssh-client [ssh-keygen]=openssh-client
		[curl]=curl [flock]=util-linux [setsid]=util-linux [nsenter]=util-linux
	)
	local cmd missing=()
	for cmd in "${!pkg_of[@]}"; do
		command -v "$cmd" >/dev/null 2>&1 || missing+=("${pkg_of[$cmd]}")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
	command -v apt-get >/dev/null || rt_die "missing ${missing[*]} and no apt-get to install them"
	rt_log "installing host packages: ${missing[*]}"
	# Installing with apt-get concurrently from two up.sh calls would fight over
	# the dpkg lock; serialise on our own lock (apt's lock makes the loser fail).
	mkdir -p "$RT_CACHE"
	(
		flock 8
		if ! ls /var/lib/apt/lists/*_Packages* >/dev/null 2>&1; then
			apt-get update -q >&2
		fi
		if ! apt-get install -y -q --no-install-recommends "${missing[@]}" >&2; then
			apt-get update -q >&2
			apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
		fi
	) 8>"$RT_CACHE/.apt.lock"
}

# --- root filesystem ------------------------------------------------------------

# The bookworm mirror from this machine's own apt configuration.
find_mirror() {
	if [ -n "${RAIJIN_TESTHOST_MIRROR:-}" ]; then
		echo "$RAIJIN_TESTHOST_MIRROR"
		return
	fi
	local f=/etc/apt/sources.list.d/debian.sources
	if [ -r "$f" ]; then
		# deb822: stanzas separated by blank lines; take the first URI of the
		# first "Types: deb" stanza whose Suites include exactly $RT_SUITE.
		awk -v suite="$RT_SUITE" '
			function flush() {
				if (!found && isdeb && hassuite && uri != "") { print uri; found = 1 }
				isdeb = 0; hassuite = 0; uri = ""
			}
			/^[[:space:]]*$/ { flush(); next }
			/^[[:space:]]*#/ { next }
			tolower($1) == "types:" { for (i = 2; i <= NF; i++) if ($i == "deb") isdeb = 1 }
			tolower($1) == "suites:" { for (i = 2; i <= NF; i++) if ($i == suite) hassuite = 1 }
			tolower($1) == "uris:" { uri = $2 }
			END { flush() }
		' "$f" | head -n1 | grep . && return
	fi
	# One-line format as a fallback.
	cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
		awk -v suite="$RT_SUITE" '$1 == "deb" {
			i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
			if ($(i+1) == suite) { print $i; exit }
		}' | grep . && return
	rt_die "no '$RT_SUITE' mirror found in /etc/apt sources (set RAIJIN_TESTHOST_MIRROR)"
}

ensure_key() {
	[ -s "$RT_KEY" ] && [ -s "$RT_KEY.pub" ] && return 0
	mkdir -p "$(dirname "$RT_KEY")"
	chmod 700 "$(dirname "$RT_KEY")"
	rm -f "$RT_KEY" "$RT_KEY.pub"
	ssh-keygen -q -t ed25519 -N '' -C raijin-testhost -f "$RT_KEY" >/dev/null
}

rootfs_stamp() {
	{
		echo "version=$RT_VERSION suite=$RT_SUITE"
		echo "packages=$RT_PACKAGES"
		cat "$RT_KEY.pub"
	} | sha256sum | cut -d' ' -f1
}

# Unmount anything below DIR (debootstrap mounts proc/sys in its target and
# leaves them behind if interrupted), then delete it without crossing mounts.
remove_tree() {
	local dir=$1 mp
	[ -e "$dir" ] || return 0
	while read -r mp; do
		umount -l "$mp" 2>/dev/null || true
	done < <(awk -v d="$dir" '$5 == d || index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r)
	rm -rf --one-file-system "$dir"
}

hosts_using_rootfs() {
	local d pid
	for d in "$RT_RUN"/*/; do
		[ -f "$d/nspawn.pid" ] || continue
		pid=$(cat "$d/nspawn.pid")
		rt_alive "$pid" "$(cat "$d/nspawn.start" 2>/dev/null)" && basename "$d"
	done
	return 0
}

customise_rootfs() {
	local r=$1 u
	chmod 755 "$r" # mktemp -d made it 0700: users other than root could not reach /

	cat >"$r/etc/hosts" <<-'EOF'
		127.0.0.1	localhost
		::1		localhost ip6-localhost ip6-loopback
		ff02::1		ip6-allnodes
		ff02::2		ip6-allrouters
	EOF
	rm -f "$r/etc/resolv.conf" "$r/etc/hostname" # debootstrap copies the build machine's
	: >"$r/etc/resolv.conf"
	: >"$r/etc/machine-id"
	echo LANG=C.UTF-8 >"$r/etc/default/locale"

	# Units that make no sense on a test host, or that do network/disk work in the
	# background and would disturb tests.
	for u in apt-daily.timer apt-daily-upgrade.timer apt-daily.service apt-daily-upgrade.service \
		systemd-timesyncd.service e2scrub_all.timer e2scrub_reap.service fstrim.timer \
		man-db.timer dpkg-db-backup.timer logrotate.timer systemd-tmpfiles-clean.timer \
		console-getty.service getty@.service serial-getty@.service systemd-networkd-wait-online.service; do
		ln -sfn /dev/null "$r/etc/systemd/system/$u"
	done

	# sshd: keys only.
	mkdir -p "$r/etc/ssh/sshd_config.d"
	cat >"$r/etc/ssh/sshd_config.d/raijin-testhost.conf" <<-'EOF'
		PasswordAuthentication no
		KbdInteractiveAuthentication no
		PermitRootLogin prohibit-password
		UseDNS no
	EOF
	[ -s "$r/etc/ssh/ssh_host_ed25519_key.pub" ] || chroot "$r" ssh-keygen -A

	# root and deploy accept the harness key; deploy has passwordless sudo.
	install -d -m 700 "$r/root/.ssh"
	install -m 600 "$RT_KEY.pub" "$r/root/.ssh/authorized_keys"
	chroot "$r" useradd --create-home --shell /bin/bash --user-group deploy
	chroot "$r" usermod --password '*' deploy # no password, but not "locked"
	install -d -m 700 "$r/home/deploy/.ssh"
	install -m 600 "$RT_KEY.pub" "$r/home/deploy/.ssh/authorized_keys"
	chroot "$r" chown -R deploy:deploy /home/deploy/.ssh
	echo 'deploy ALL=(ALL:ALL) NOPASSWD: ALL' >"$r/etc/sudoers.d/deploy"
	chmod 440 "$r/etc/sudoers.d/deploy"
	chroot "$r" visudo -cq >/dev/null

	# Smaller cache; the test host has no network to use them anyway.
	rm -f "$r"/var/cache/apt/archives/*.deb "$r"/var/cache/apt/*.bin
	find "$r/var/lib/apt/lists" -mindepth 1 -maxdepth 1 -type f ! -name lock -delete
}

build_rootfs() {
	local want mirror keyring tmp t0 users
	mkdir -p "$RT_CACHE"
	exec 9>"$RT_CACHE/.lock"
	flock 9 # a concurrent up.sh waits here instead of building a second copy
	ensure_key
	want=$(rootfs_stamp)
	if [ -f "$RT_ROOTFS/$RT_STAMP_FILE" ] && [ "$(cat "$RT_ROOTFS/$RT_STAMP_FILE")" = "$want" ]; then
		exec 9>&-
		return 0
	fi
	if [ -d "$RT_ROOTFS" ]; then
		users=$(hosts_using_rootfs | grep -vx "$NAME" | tr '\n' ' ' || true)
		[ -z "$users" ] || rt_die "rootfs is outdated but test hosts still use it: $users(run down.sh on them)"
	fi
	for tmp in "$RT_CACHE"/rootfs.tmp.* "$RT_CACHE"/rootfs.old.*; do
		[ -e "$tmp" ] && remove_tree "$tmp"
	done

	mirror=$(find_mirror)
	keyring=()
	[ -r /usr/share/keyrings/debian-archive-keyring.gpg ] &&
		keyring=(--keyring=/usr/share/keyrings/debian-archive-keyring.gpg)
	tmp=$(mktemp -d "$RT_CACHE/rootfs.tmp.XXXXXX")
	# shellcheck disable=SC2064
	trap "remove_tree '$tmp'" EXIT
	trap 'exit 130' INT TERM HUP
	rt_log "building rootfs in $tmp from $mirror (about 2 minutes; log: $RT_CACHE/debootstrap.log)"
	t0=$SECONDS
	if ! debootstrap --variant=minbase "${keyring[@]}" --include="$RT_PACKAGES" \
		"$RT_SUITE" "$tmp" "$mirror" >"$RT_CACHE/debootstrap.log" 2>&1; then
		tail -n 30 "$RT_CACHE/debootstrap.log" >&2
		[ -f "$tmp/debootstrap/debootstrap.log" ] && tail -n 30 "$tmp/debootstrap/debootstrap.log" >&2
		rt_die "debootstrap failed"
	fi
	customise_rootfs "$tmp"
	echo "$want" >"$tmp/$RT_STAMP_FILE"
	if [ -e "$RT_ROOTFS" ]; then
		mv "$RT_ROOTFS" "$RT_CACHE/rootfs.old.$$"
		remove_tree "$RT_CACHE/rootfs.old.$$"
	fi
	mv "$tmp" "$RT_ROOTFS"
	trap - EXIT INT TERM HUP
	rt_log "rootfs ready in $((SECONDS - t0)) s: $RT_ROOTFS ($(du -sh --one-file-system "$RT_ROOTFS" | cut -f1))"
	exec 9>&-
}

# --- boot -----------------------------------------------------------------------

SSH_OPTS=(
	-F /dev/null -i "$RT_KEY" -o IdentitiesOnly=yes -o BatchMode=yes
	-o UserKnownHostsFile="$STATE/known_hosts" -o StrictHostKeyChecking=yes
	-o ConnectTimeout=2 -o LogLevel=ERROR
)

container_pid1() {
	# The container's init: a process in our netns whose PID in its own PID
	# namespace is 1.
	local pid nspid want
	want="1 $(($(awk '$1 == "NSpid:" { print NF }' /proc/self/status) + 1))"
	for pid in $(ip netns pids "$NAME" 2>/dev/null); do
		nspid=$(awk '$1 == "NSpid:" { print $NF, NF }' "/proc/$pid/status" 2>/dev/null) || continue
		[ "$nspid" = "$want" ] && { echo "$pid"; return 0; }
	done
	return 1
}

fail_boot() {
	local pid1
	rt_log "boot failed: $*"
	echo "----- nspawn log ($STATE/nspawn.log) -----" >&2
	tail -n 80 "$STATE/nspawn.log" >&2 || true
	pid1=$(cat "$STATE/pid1" 2>/dev/null || true)
	if [ -n "$pid1" ] && rt_alive "$pid1"; then
		echo "----- container journal -----" >&2
		timeout 10 nsenter -t "$pid1" -m -u -i -n -p -r -w \
			journalctl --no-pager -b -n 150 >&2 2>&1 || true
		echo "----- failed units -----" >&2
		timeout 10 nsenter -t "$pid1" -m -u -i -n -p -r -w \
			systemctl --no-pager --failed >&2 2>&1 || true
	fi
	"$HERE/down.sh" "$NAME" >&2 || true
	exit 1
}

# envline KEY VALUE: a line for a shell env file; VALUE is single-quoted when
# it holds anything but [A-Za-z0-9_./:@,+=-].
envline() {
	if [[ $2 =~ ^[A-Za-z0-9_./:@,+=-]*$ ]]; then
		printf '%s=%s\n' "$1" "$2"
	else
		printf "%s='%s'\n" "$1" "${2//\'/\'\\\'\'}"
	fi
}

elapsed() { # seconds since t0ns, with a tenth
	local ms=$((($(date +%s%N) - t0ns) / 1000000))
	printf '%d.%d' $((ms / 1000)) $((ms % 1000 / 100))
}

main() {
	local t0 t0ns cg cgs=() d pid pid1 st out hostkey
	ensure_tools
	build_rootfs
	[ -s "$RT_ROOTFS/etc/ssh/ssh_host_ed25519_key.pub" ] || rt_die "rootfs has no ssh host key"

	t0=$SECONDS
	t0ns=$(date +%s%N)
	# Fresh host every time.
	"$HERE/down.sh" "$NAME" >&2
	if ip link show "$HOSTIF" >/dev/null 2>&1 || [ -n "$(ip -o -4 addr show to "10.213.$INDEX.0/24")" ]; then
		rt_die "INDEX $INDEX is in use by another test host ($HOSTIF / 10.213.$INDEX.0/24); run down.sh on it or pick another INDEX"
	fi
	mkdir -p "$STATE"
	echo "$INDEX" >"$STATE/index"

	# Network: a netns with one veth; no default route, so the container reaches
	# nothing but this machine.
	ip netns add "$NAME"
	ip link add "$HOSTIF" type veth peer name "$CTIF" netns "$NAME"
	ip addr add "10.213.$INDEX.1/24" dev "$HOSTIF"
	ip link set "$HOSTIF" up
	ip -n "$NAME" link set lo up
	ip -n "$NAME" addr add "$ADDR/24" dev "$CTIF"
	ip -n "$NAME" link set "$CTIF" up

	# known_hosts and an /etc/hosts that resolves the container's hostname (=NAME).
	hostkey=$(awk '{ print $1, $2 }' "$RT_ROOTFS/etc/ssh/ssh_host_ed25519_key.pub")
	echo "$ADDR $hostkey" >"$STATE/known_hosts"
	{
		cat "$RT_ROOTFS/etc/hosts"
		printf '127.0.1.1\t%s\n' "$NAME"
	} >"$STATE/hosts"

	# A cgroup of our own in every hierarchy, so nspawn's payload/ and supervisor/
	# cgroups land below it and down.sh can remove them.
	mapfile -t cgs < <(rt_cgroup_dirs "$NAME")
	: >"$STATE/cgroups"
	for cg in "${cgs[@]}"; do
		[ -d "$cg" ] && rt_rmdir_cgroup "$cg"
		mkdir "$cg"
		echo "$cg" >>"$STATE/cgroups"
		if [ -f "$cg/cpuset.cpus" ]; then # v1 cpuset: a new group starts empty
			cat "$(dirname "$cg")/cpuset.cpus" >"$cg/cpuset.cpus"
			cat "$(dirname "$cg")/cpuset.mems" >"$cg/cpuset.mems"
		fi
	done

	(
		for cg in "${cgs[@]}"; do echo "$BASHPID" >"$cg/cgroup.procs"; done
		exec setsid systemd-nspawn \
			--directory="$RT_ROOTFS" --machine="$NAME" --boot \
			--register=no --keep-unit --resolv-conf=off --timezone=off \
			--link-journal=no --console=read-only --volatile=overlay \
			--network-namespace-path="/run/netns/$NAME" \
			--bind-ro="$STATE/hosts:/etc/hosts"
	) </dev/null >"$STATE/nspawn.log" 2>&1 &
	pid=$!
	disown "$pid" # no "Killed" job notice from bash when down.sh ends it
	echo "$pid" >"$STATE/nspawn.pid"
	rt_proc_start "$pid" >"$STATE/nspawn.start" || fail_boot "systemd-nspawn exited at once"

	# The container's PID 1, so down.sh can end it even if nspawn is gone.
	while :; do
		if pid1=$(container_pid1); then
			echo "$pid1" >"$STATE/pid1"
			rt_proc_start "$pid1" >"$STATE/pid1.start" || true
			break
		fi
		rt_alive "$pid" || fail_boot "systemd-nspawn exited"
		[ $((SECONDS - t0)) -lt "$TIMEOUT" ] || fail_boot "no container init after $TIMEOUT s"
		sleep 0.1
	done

	# Wait for sshd and for systemd to finish booting.
	while :; do
		st=$(timeout 10 ssh "${SSH_OPTS[@]}" "root@$ADDR" systemctl is-system-running 2>/dev/null) || true
		case $st in
		running) break ;;
		degraded)
			rt_log "warning: system is degraded:"
			timeout 10 ssh "${SSH_OPTS[@]}" "root@$ADDR" systemctl --no-pager --failed >&2 || true
			break
			;;
		esac
		rt_alive "$pid" || fail_boot "systemd-nspawn exited"
		[ $((SECONDS - t0)) -lt "$TIMEOUT" ] || fail_boot "not up after $TIMEOUT s (state: ${st:-no ssh})"
		sleep 0.2
	done

	# deploy must work too (key, shell, sudo).
	out=$(timeout 20 ssh "${SSH_OPTS[@]}" "deploy@$ADDR" 'sudo -n true && echo ok' 2>&1) || true
	[ "$out" = ok ] || fail_boot "ssh/sudo as deploy failed: $out"

	{
		envline RAIJIN_TESTHOST_NAME "$NAME"
		envline RAIJIN_TESTHOST_ADDR "$ADDR"
		envline RAIJIN_TESTHOST_PORT 22
		envline RAIJIN_TESTHOST_USER deploy
		envline RAIJIN_TESTHOST_KEY "$RT_KEY"
		envline RAIJIN_TESTHOST_KNOWN_HOSTS "$STATE/known_hosts"
		envline RAIJIN_TESTHOST_HOSTKEY_LINE "$hostkey"
	} >"$STATE/env"
	rt_log "$NAME is up at $ADDR in $(elapsed) s (state: $STATE)"
	echo "$STATE"
}

main
