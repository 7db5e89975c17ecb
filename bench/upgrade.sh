#!/usr/bin/env bash
# bench/upgrade.sh: what an upload costs over real links (see BENCHMARKS.md,
# "Uploads over real links"). As root, on Linux, like the end-to-end tests:
# boots one test server (testdata/testhost) at 10.213.INDEX.2, reaches it
# through bench/relay on four links, and deploys Caddy, a real open-source
# Go web server of tens of MB, built from the module proxy at two
# consecutive releases, as the app (`caddy respond`, no health check).
#
#   sudo bench/upgrade.sh     # RAIJIN_TESTHOST_INDEX (default 75)
#   BENCH_RAIJIN_BEFORE=/tmp/raijin-old sudo bench/upgrade.sh   # and a raijin to compare with
#   BENCH_LINKS="50mbit" BENCH_OUT=/tmp/logs sudo bench/upgrade.sh  # one link; each deploy's -v output kept
#   BENCH_PIN=1 sudo bench/upgrade.sh   # two machines on one: the server on CPU 1, the rest on CPU 0
#   BENCH_REPEAT=5 BENCH_BLOCKS=4 BENCH_RAIJIN_BEFORE=/tmp/raijin-old sudo bench/upgrade.sh
#       # then repeated upgrades on the 50 Mbit/s link: v2.11.8 and v2.11.9 in
#       # turn, blocks of 5 deploys per raijin alternating, 4 blocks each; the
#       # mean, least and most of the wall and transfer times (single runs here
#       # vary by 0.4 s: one run each says little)
#
# Links: 0 ms added; 50 ms RTT; 50 Mbit/s and 50 ms RTT; 10 Mbit/s and 50 ms.
# Cases, each on a new app per link and raijin:
#   first    the first deploy: the server has no earlier build
#   same     the same build again
#   small    a rebuild of the live release with another version string
#            (-X caddy.CustomVersion): what every deploy of a small change is
#   upgrade  the next Caddy release over the one live (CADDY_OLD -> CADDY_NEW)
# Prints a Markdown table: bytes on the wire, wall time, and how the build went.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
. scripts/ensure-go.sh
INDEX=${RAIJIN_TESTHOST_INDEX:-75}
CADDY_OLD=${CADDY_OLD:-v2.11.8}
CADDY_NEW=${CADDY_NEW:-v2.11.9}
CACHE=${BENCH_CACHE:-/var/cache/raijin-bench}
W=$(mktemp -d /tmp/raijin-upgrade.XXXXXX)
RELAY_PIDS=()
cleanup() {
	for p in "${RELAY_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	[ -n "${BENCH_KEEP_HOSTS:-}" ] || testdata/testhost/down.sh "raijin-upgrade-$INDEX" >/dev/null 2>&1 || true
	rm -rf "$W"
}
trap cleanup EXIT

# caddy VERSION [CUSTOM]: a caddy binary built as `go install` builds a
# release from the module proxy (trimmed paths), cached across runs.
caddy_bin() {
	local v=$1 custom=${2:-} out
	out=$CACHE/caddy-$v${custom:+-$custom}
	if [ ! -x "$out" ]; then
		echo "== building caddy $v${custom:+ ($custom)}" >&2
		mkdir -p "$CACHE/gobin"
		local ld=()
		[ -z "$custom" ] || ld=(-ldflags "-X github.com/caddyserver/caddy/v2.CustomVersion=$custom")
		GOBIN=$CACHE/gobin GOFLAGS=-trimpath go install "${ld[@]}" "github.com/caddyserver/caddy/v2/cmd/caddy@$v"
		mv "$CACHE/gobin/caddy" "$out"
	fi
	echo "$out"
}
OLD=$(caddy_bin "$CADDY_OLD")
NEW=$(caddy_bin "$CADDY_NEW")
SMALL=$(caddy_bin "$CADDY_NEW" "$CADDY_NEW-bench")

echo "== building raijin and the relay" >&2
go build -o "$W/raijin" ./cmd/raijin
go build -o "$W/relay" ./bench/relay
RAIJINS=(after)
[ -z "${BENCH_RAIJIN_BEFORE:-}" ] || { cp "$BENCH_RAIJIN_BEFORE" "$W/raijin-before"; RAIJINS=(before after); }
cp "$W/raijin" "$W/raijin-after"

echo "== reference: the zstd command on this machine" >&2
REF=$W/reference
{
	echo "- $(basename "$OLD") $(stat -c %s "$OLD") bytes, $(basename "$NEW") $(stat -c %s "$NEW") bytes"
	t0=$(date +%s.%N); zstd -q -3 -c "$NEW" > "$W/whole.zst"; t1=$(date +%s.%N)
	echo "- zstd -3 of $(basename "$NEW"): $(stat -c %s "$W/whole.zst") bytes in $(echo "$t1 - $t0" | bc) s"
	t0=$(date +%s.%N); zstd -q -3 -c --patch-from="$OLD" "$NEW" > "$W/patch.zst"; t1=$(date +%s.%N)
	echo "- zstd -3 --patch-from: $(stat -c %s "$W/patch.zst") bytes in $(echo "$t1 - $t0" | bc) s; at 50 Mbit/s and 50 ms that is $(echo "scale=2; $(stat -c %s "$W/patch.zst") * 8 / 50000000 + 0.05" | bc) s to send"
	t0=$(date +%s.%N); zstd -q -d -c --patch-from="$OLD" "$W/patch.zst" | cmp - "$NEW"; t1=$(date +%s.%N)
	echo "- applying it: $(echo "$t1 - $t0" | bc) s"
} | tee "$REF" >&2

echo "== booting the test server" >&2
state=$(testdata/testhost/up.sh "raijin-upgrade-$INDEX" "$INDEX" | tail -n1)
# BENCH_PIN=1: the test server's cgroup gets CPU 1 alone, and this script
# (raijin, the relay, zstd, OpenSSH) CPU 0, as when client and server are two
# machines, each with a core to itself; else all share both cores.
if [ -n "${BENCH_PIN:-}" ]; then
	cs=$(grep '/cpuset/' "$state/cgroups" || true)
	[ -n "$cs" ] && [ "$(nproc)" -ge 2 ] || { echo "BENCH_PIN needs a cgroup v1 cpuset and two CPUs" >&2; exit 1; }
	# Children first: a cpuset's CPUs must stay within its parent's.
	find "$cs" -name cpuset.cpus | awk '{ print length($0), $0 }' | sort -rn | cut -d' ' -f2- |
		while read -r f; do echo 1 > "$f"; done
	taskset -pc 0 $$ >/dev/null # inherited by everything started below
	echo "- pinned: the test server on CPU $(cat "$cs/cpuset.cpus"), raijin, the relay, zstd and OpenSSH on CPU 0" | tee -a "$REF" >&2
fi
# shellcheck disable=SC1091
. "$state/env"
ADDR=$RAIJIN_TESTHOST_ADDR
export HOME=$W/home
mkdir -p "$HOME/.ssh"
cp "$RAIJIN_TESTHOST_KEY" "$HOME/.ssh/id_ed25519"
chmod 600 "$HOME/.ssh/id_ed25519"
: > "$HOME/.ssh/known_hosts"
# BENCH_LINKS="50mbit 0ms" measures only those links.
read -r -a LINKS <<< "${BENCH_LINKS:-0ms 50ms 50mbit 10mbit}"
declare -A PORT=([0ms]=24000 [50ms]=24001 [50mbit]=24002 [10mbit]=24003)
declare -A RELAYARGS=([0ms]="" [50ms]="-delay 25ms" [50mbit]="-delay 25ms -rate 50M" [10mbit]="-delay 25ms -rate 10M")
for l in "${LINKS[@]}"; do
	# shellcheck disable=SC2086
	"$W/relay" ${RELAYARGS[$l]} -stats "$W/stats-$l" "127.0.0.1:${PORT[$l]}=$ADDR:22" > "$W/relay-$l.log" 2>&1 &
	RELAY_PIDS+=($!)
	printf '[127.0.0.1]:%d %s\n' "${PORT[$l]}" "$RAIJIN_TESTHOST_HOSTKEY_LINE" >> "$HOME/.ssh/known_hosts"
done
sleep 0.5
export SSH_AUTH_SOCK=

# What the link allows, measured with OpenSSH through the 50 Mbit/s relay
# (when it is measured): the patch made beforehand, sent into cat and into
# zstd on the server, less a connection's setup (ssh true).
if [[ " ${LINKS[*]} " == *" 50mbit "* ]]; then
	P=(ssh -p "${PORT[50mbit]}" -o BatchMode=yes -o UserKnownHostsFile="$HOME/.ssh/known_hosts" -i "$HOME/.ssh/id_ed25519" deploy@127.0.0.1)
	ssh -p "${PORT[0ms]:-24000}" -o BatchMode=yes -o UserKnownHostsFile="$HOME/.ssh/known_hosts" -i "$HOME/.ssh/id_ed25519" deploy@127.0.0.1 'cat > /tmp/bench-basis' < "$OLD" 2>/dev/null ||
		"${P[@]}" 'cat > /tmp/bench-basis' < "$OLD"
	secs() { local t0 t1; t0=$(date +%s.%N); "$@" >/dev/null; t1=$(date +%s.%N); echo "$t1 - $t0" | bc; }
	setup=$(secs "${P[@]}" true)
	cat_s=$(secs "${P[@]}" 'cat > /dev/null' < "$W/patch.zst")
	zstd_s=$(secs "${P[@]}" 'zstd -dcq --long=31 --patch-from=/tmp/bench-basis | sha256sum' < "$W/patch.zst")
	"${P[@]}" 'rm -f /tmp/bench-basis'
	{
		echo "- OpenSSH through the 50 Mbit/s, 50 ms link: a connection's setup $setup s; the patch into cat $(echo "$cat_s - $setup" | bc) s, into zstd --patch-from on the server $(echo "$zstd_s - $setup" | bc) s (beyond the setup)"
	} | tee -a "$REF" >&2
fi

# write_toml APP LINK BIN N: app N listens on 8700+2N (and the next port,
# for blue/green) behind Caddy on 9700+N.
write_toml() {
	local app=$1 link=$2 bin=$3 n=$4
	mkdir -p "$W/$app"
	cat > "$W/$app/raijin.toml" <<EOT
app = "$app"
version = "1"
build_command = "mkdir -p dist && cp $bin dist/$app"
distfile = "dist/$app"
[webserver]
upstream = "localhost:$((8700 + 2 * n))"
[processes]
web = "$app respond --listen 127.0.0.1:\$PORT --body ok"
[[hosts]]
name = "h"
address = "127.0.0.1"
port = ${PORT[$link]}
user = "deploy"
domain_name = ":$((9700 + n))"
env = "PORT=$((8700 + 2 * n))"
EOT
}

RESULTS=$W/results
: > "$RESULTS"
# one RAIJIN LINK APP CASE BIN VERSION: deploy app number $appn, append
# "CASE LINK RAIJIN bytes wall transfer how" (transfer: the phase's seconds).
one() {
	local r=$1 link=$2 app=$3 kase=$4 bin=$5 ver=$6 t0 t1 out how bytes xfer
	write_toml "$app" "$link" "$bin" "$appn"
	rm -f "$W/stats-$link"
	t0=$(date +%s.%N)
	out=$(cd "$W/$app" && "$W/raijin-$r" deploy -v --set-version "$ver" 2>&1) || { echo "$out" >&2; exit 1; }
	t1=$(date +%s.%N)
	[ -z "${BENCH_OUT:-}" ] || { mkdir -p "$BENCH_OUT"; printf '%s\n' "$out" > "$BENCH_OUT/$kase-$link-$r.log"; }
	sleep 0.3
	bytes=$(awk '{split($3,a,"="); s+=a[2]} END {print s+0}' "$W/stats-$link")
	# A patch streamed as zstd makes it says its size once it is sent.
	how=$(printf '%s\n' "$out" | grep -o "sent [^ ]* as a zstd patch against [^)]*)" | head -n1 | sed 's/^sent [^ ]* //; s/ /_/g' || true)
	[ -n "$how" ] || how=$(printf '%s\n' "$out" | grep -o "upload [^ ]*dist/$app -> [^ ]* [^)]*)" | head -n1 | sed 's/^upload [^ ]* -> [^ ]* //; s/ /_/g' || true)
	[ -n "$how" ] || how=not_sent:_the_server_has_it
	xfer=$(printf '%s\n' "$out" | sed -n 's/.* transfer *\([0-9.]*\)s$/\1/p' | tail -n1 || true)
	echo "$kase $link $r $bytes $(echo "$t1 - $t0" | bc) ${xfer:-0} $how" >> "$RESULTS"
	echo "   $kase $link $r: $bytes bytes, $(echo "$t1 - $t0" | bc) s" >&2
}

appn=0
for l in "${LINKS[@]}"; do
	for r in "${RAIJINS[@]}"; do
		appn=$((appn + 1))
		app=u${r:0:1}$l
		echo "== $r, link $l (app $app)" >&2
		one "$r" "$l" "$app" first "$NEW" 1
		one "$r" "$l" "$app" same "$NEW" 1
		one "$r" "$l" "$app" small "$SMALL" 2
		one "$r" "$l" "$app" back "$OLD" 3
		one "$r" "$l" "$app" upgrade "$NEW" 4
	done
done

# BENCH_REPEAT=N: upgrades on the 50 Mbit/s link, blocks of N per raijin in
# turn (BENCH_BLOCKS of them), each deploy the other Caddy release than the
# one live; each app's first deploy (whole, compressed) is not counted.
REPEATS=$W/repeats
: > "$REPEATS"
if [ -n "${BENCH_REPEAT:-}" ] && [[ " ${LINKS[*]} " == *" 50mbit "* ]]; then
	for r in "${RAIJINS[@]}"; do
		appn=$((appn + 1))
		write_toml "ur$r" 50mbit "$OLD" "$appn"
		out=$(cd "$W/ur$r" && "$W/raijin-$r" deploy --set-version 1 2>&1) || { echo "$out" >&2; exit 1; }
		declare "APPN_$r=$appn" "COUNT_$r=0"
	done
	v=1
	for b in $(seq "${BENCH_BLOCKS:-4}"); do
		for r in "${RAIJINS[@]}"; do
			n=APPN_$r c=COUNT_$r
			for i in $(seq "$BENCH_REPEAT"); do
				v=$((v + 1))
				declare "$c=$((${!c} + 1))"
				# The app went live with OLD: odd deploys bring NEW, even ones OLD.
				bin=$OLD
				[ $((${!c} % 2)) = 0 ] || bin=$NEW
				# one appends to RESULTS; keep its line apart.
				appn=${!n} one "$r" 50mbit "ur$r" "repeat" "$bin" "$v"
				tail -n1 "$RESULTS" >> "$REPEATS"
				sed -i '$d' "$RESULTS"
			done
		done
	done
fi

echo "== results" >&2
cat "$REF"
echo
python3 - "$RESULTS" <<'PY'
import sys
rows = {}
raijins = []
for line in open(sys.argv[1]):
    f = line.split()
    if len(f) < 5: continue
    kase, link, r, b, w, x = f[:6]
    how = f[6].replace("_", " ") if len(f) > 6 else ""
    rows[(kase, link, r)] = (int(b), float(w), float(x), how)
    if r not in raijins: raijins.append(r)
links = ["0ms", "50ms", "50mbit", "10mbit"]
names = {"0ms": "local", "50ms": "50 ms RTT", "50mbit": "50 Mbit/s, 50 ms", "10mbit": "10 Mbit/s, 50 ms"}
hdr = "| case | link | " + " | ".join(f"{r}: bytes | {r}: wall (s) | {r}: transfer (s)" for r in raijins) + " | how (" + raijins[-1] + ") |"
print(hdr)
print("|" + "---|" * (3 + 3 * len(raijins)))
for kase in ["first", "same", "small", "back", "upgrade"]:
    for l in links:
        cells = []
        for r in raijins:
            b, w, x, how = rows.get((kase, l, r), (0, float("nan"), float("nan"), ""))
            cells += [f"{b/1e6:.2f} MB" if b >= 1e5 else f"{b/1e3:.1f} kB", f"{w:.2f}", f"{x:.2f}"]
        how = rows.get((kase, l, raijins[-1]), (0, 0, 0, ""))[3]
        print(f"| {kase} | {names[l]} | " + " | ".join(cells) + f" | {how} |")
PY
if [ -s "$REPEATS" ]; then
	echo
	python3 - "$REPEATS" <<'PY'
import sys
by = {}
for line in open(sys.argv[1]):
    f = line.split()
    by.setdefault(f[2], []).append((float(f[4]), float(f[5]), int(f[3])))
print("Repeated upgrades at 50 Mbit/s and 50 ms (Caddy releases in turn):")
print()
print("| raijin | deploys | wall mean (s) | wall least to most | transfer mean (s) | transfer least to most | bytes mean |")
print("|---|---|---|---|---|---|---|")
for r, v in by.items():
    w = [x[0] for x in v]; t = [x[1] for x in v]; b = [x[2] for x in v]
    print(f"| {r} | {len(v)} | {sum(w)/len(w):.2f} | {min(w):.2f} to {max(w):.2f} | {sum(t)/len(t):.2f} | {min(t):.2f} to {max(t):.2f} | {sum(b)/len(b)/1e6:.2f} MB |")
PY
fi
