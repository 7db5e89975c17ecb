#!/usr/bin/env bash
# bench/run.sh: raijin's speed, measured against two baselines in the same
# run (see BENCHMARKS.md). As root, on Linux, like the end-to-end tests: boots
# 4 test servers (testdata/testhost) at 10.213.INDEX.2 .. INDEX+3, reaches
# them through bench/relay (no added delay, then 50 ms of added round-trip
# time), deploys the sample Go app and prints a Markdown table of medians:
# wall time (build included), SSH connections, remote commands, bytes sent,
# and how many daemon-reloads and Caddy reloads the server did.
#
#   sudo bench/run.sh              # RAIJIN_TESTHOST_INDEX (default 70), BENCH_REPS (default 5)
#
# Scenarios (each deploy is a new version unless said otherwise):
#   full     code and config changed: the unit and the Caddy site differ
#   code     code only: units and site unchanged
#   same     a redeploy of the same version and build
#   code x4  code only, to 4 hosts at once
#   edit     code only, from a source that changed (a function of the main
#            package rewritten): what an upload by difference gets from a
#            real change of code
#   edit x4  the same, to 4 hosts at once
#   whole    code only with RAIJIN_DELTA=0: the whole binary goes (on 1 and 4 hosts)
# Baselines, doing the full deploy's work every time:
#   steps    bench/baseline/steps.sh: one ssh/scp call per step (8 connections)
#   floor    bench/baseline/floor.sh: one tar stream and one script over one session
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
. scripts/ensure-go.sh
INDEX=${RAIJIN_TESTHOST_INDEX:-70}
REPS=${BENCH_REPS:-5}
NHOSTS=4
W=$(mktemp -d /tmp/raijin-bench.XXXXXX)
RELAY_PIDS=()
cleanup() {
	for p in "${RELAY_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	if [ -z "${BENCH_KEEP_HOSTS:-}" ]; then
		for i in $(seq 0 $((NHOSTS - 1))); do testdata/testhost/down.sh "raijin-bench-$((INDEX + i))" >/dev/null 2>&1 || true; done
	fi
	rm -rf "$W"
}
trap cleanup EXIT

echo "== building raijin and the relay" >&2
if [ -n "${BENCH_RAIJIN:-}" ]; then cp "$BENCH_RAIJIN" "$W/raijin"; else go build -o "$W/raijin" ./cmd/raijin; fi
go build -o "$W/relay" ./bench/relay

echo "== booting $NHOSTS test servers" >&2
ADDRS=()
for i in $(seq 0 $((NHOSTS - 1))); do
	state=$(testdata/testhost/up.sh "raijin-bench-$((INDEX + i))" "$((INDEX + i))" | tail -n1)
	# shellcheck disable=SC1091
	. "$state/env"
	ADDRS+=("$RAIJIN_TESTHOST_ADDR")
done
KEY=$RAIJIN_TESTHOST_KEY
HOSTKEY=$RAIJIN_TESTHOST_HOSTKEY_LINE

# Relays: fast (no added delay) on 127.0.0.1:23000+i, slow (25 ms each way).
FAST=23000
SLOW=23100
export HOME=$W/home
mkdir -p "$HOME/.ssh"
cp "$KEY" "$HOME/.ssh/id_ed25519"
chmod 600 "$HOME/.ssh/id_ed25519"
: > "$HOME/.ssh/known_hosts"
fargs=() sargs=()
for i in $(seq 0 $((NHOSTS - 1))); do
	fargs+=("127.0.0.1:$((FAST + i))=${ADDRS[$i]}:22")
	sargs+=("127.0.0.1:$((SLOW + i))=${ADDRS[$i]}:22")
	printf '[127.0.0.1]:%d %s\n[127.0.0.1]:%d %s\n' $((FAST + i)) "$HOSTKEY" $((SLOW + i)) "$HOSTKEY" >> "$HOME/.ssh/known_hosts"
done
"$W/relay" -stats "$W/stats-fast" "${fargs[@]}" > "$W/relay-fast.log" 2>&1 &
RELAY_PIDS+=($!)
"$W/relay" -delay 25ms -stats "$W/stats-slow" "${sargs[@]}" > "$W/relay-slow.log" 2>&1 &
RELAY_PIDS+=($!)
sleep 0.5
export SSH_AUTH_SOCK=

# A copy of the sample app, whose code the "edit" runs change (edit_src).
SRC=$W/src
cp -r "$REPO/testdata/apps/goapp" "$SRC"
PROJ=$W/proj
edit_src() {
	local n=$(( $1 % 7 + 2 )) i
	{
		echo 'package main'
		echo
		echo 'var sink int'
		echo
		echo 'func init() {'
		for i in $(seq 1 $((n * 3))); do echo "	sink += $1$i * len(\"x$i\")"; done
		echo '}'
	} > "$SRC/extra.go"
}
edit_src 0
mkdir -p "$PROJ"
export GOFLAGS=-trimpath

# write_toml APP NHOSTS BASEPORT CMD_PREFIX STATIC [NOHC]
write_toml() {
	local app=$1 n=$2 base=$3 prefix=$4 static=$5 nohc=${6:-} i
	{
		echo "app = \"$app\""
		echo 'version = "1"'
		echo "build_command = \"go -C $SRC build -ldflags \\\"-X main.version=\$RAIJIN_VERSION\\\" -o \$PWD/dist/goapp .\""
		echo 'distfile = "dist/goapp"'
		echo "release_command = \"$app migrate\""
		echo '[webserver]'
		echo 'upstream = "localhost:8600"'
		if [ -z "$nohc" ]; then echo 'health_check = "/up"'; fi
		if [ -n "$static" ]; then echo "statics = { \"$static\" = \"/tmp\" }"; fi
		echo '[processes]'
		echo "web = \"$prefix$app\""
		for i in $(seq 0 $((n - 1))); do
			printf '[[hosts]]\nname = "h%d"\naddress = "127.0.0.1"\nport = %d\nuser = "deploy"\ndomain_name = ":9600"\n' "$i" $((base + i))
			printf 'env = """\nPORT=8600\nGREETING=hello from h%d\n"""\n' "$i"
		done
	} > "$PROJ/raijin.toml"
}

# stats_of FILE: "connections bytes_up"
stats_of() {
	sleep 0.3
	if [ -f "$1" ]; then awk '{c++; split($3,a,"="); s+=a[2]} END {print c+0, s+0}' "$1"; else echo "0 0"; fi
}

# reloads T0: daemon-reloads and Caddy reloads on the first server since T0.
reloads() {
	ssh -i "$KEY" -o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no -o LogLevel=ERROR "root@${ADDRS[0]}" \
		"journalctl --since @$1 -o cat _PID=1 2>/dev/null | grep -c '^Reloading\.\$' ; journalctl --since @$1 -o cat 2>/dev/null | grep -ci '^Reloading caddy' ; true" | tr '\n' ' '
}

RESULTS=$W/results
: > "$RESULTS"
ver=100

# one LABEL RTT KIND ...: a measured run, appended to $RESULTS as
# "LABEL RTT wall conns cmds bytes dreload creload".
one() {
	local label=$1 rtt=$2 kind=$3 statsf t0 t1 out cmds=0 ups=-1
	shift 3
	if [ "$rtt" = 0 ]; then statsf=$W/stats-fast; else statsf=$W/stats-slow; fi
	sleep 1 # so that the journal since T0 holds this run's reloads only
	rm -f "$statsf"
	t0=$(date +%s.%N)
	case $kind in
	raijin | raijin-whole)
		if [ "$kind" = raijin ]; then delta=1; else delta=0; fi
		out=$(cd "$PROJ" && RAIJIN_DELTA=$delta "$W/raijin" "$@" 2>&1) || { echo "$out" >&2; exit 1; }
		cmds=$(printf '%s\n' "$out" | sed -n 's/.* \([0-9]*\) remote commands.*/\1/p' | tail -n1)
		ups=$(printf '%s\n' "$out" | sed -n 's/.* \([0-9]*\) \(SFTP \)\{0,1\}uploads.*/\1/p' | tail -n1)
		;;
	baseline)
		out=$("$@" 2>&1) || { echo "$out" >&2; exit 1; }
		cmds=$(printf '%s\n' "$out" | sed -n 's/^calls //p' | awk '{s+=$1} END {print s}')
		;;
	esac
	t1=$(date +%s.%N)
	read -r conns bytes < <(stats_of "$statsf")
	echo "$label $rtt $(echo "$t1 - $t0" | bc) $conns $cmds $bytes $(reloads "${t0%.*}") ${ups:--1}" >> "$RESULTS"
}

# baseline SCRIPT APP RTT NHOSTS [LABEL]: the full deploy's work, new version, changed unit and site.
baseline() {
	local script=$1 app=$2 rtt=$3 n=$4 label=${5:-$1/$4} base i
	if [ "$rtt" = 0 ]; then base=$FAST; else base=$SLOW; fi
	ver=$((ver + 1))
	cat > "$W/multi.sh" <<EOT
#!/usr/bin/env bash
set -e
pids=()
for i in \$(seq 0 $((n - 1))); do
	B_PORT=\$(( $base + i )) "$REPO/bench/baseline/$script" & pids+=(\$!)
done
for p in "\${pids[@]}"; do wait "\$p"; done
EOT
	chmod +x "$W/multi.sh"
	B_HOST=127.0.0.1 B_USER=deploy B_APP=$app B_VERSION=$ver \
		B_SRC=$SRC B_WORK=$W B_CMD_PREFIX="env RUN=$ver " B_STATIC="/s$ver/" \
		one "$label" "$rtt" baseline "$W/multi.sh"
}

echo "== warming up (first deploys, build cache)" >&2
for rtt in 0 50; do
	if [ $rtt = 0 ]; then base=$FAST; else base=$SLOW; fi
	write_toml bench 1 $base "" ""
	(cd "$PROJ" && "$W/raijin" deploy --set-version "w$rtt" >/dev/null 2>"$W/warm.log") || { cat "$W/warm.log" >&2; exit 1; }
	B_HOST=127.0.0.1 B_PORT=$base B_USER=deploy B_APP=bsteps B_VERSION=w$rtt B_APP_PORT=8701 B_SITE_PORT=9701 B_SRC=$SRC B_WORK=$W bench/baseline/steps.sh >/dev/null
	B_HOST=127.0.0.1 B_PORT=$base B_USER=deploy B_APP=bfloor B_VERSION=w$rtt B_APP_PORT=8702 B_SITE_PORT=9702 B_SRC=$SRC B_WORK=$W bench/baseline/floor.sh >/dev/null
done
# The 4-host runs deploy app "bench" to every host; bring hosts 1..3 up to date.
write_toml bench 4 $FAST "" ""
(cd "$PROJ" && "$W/raijin" deploy --set-version w4 >/dev/null 2>&1)

for rep in $(seq 1 "$REPS"); do
	echo "== round $rep of $REPS" >&2
	for rtt in 0 50; do
		if [ $rtt = 0 ]; then base=$FAST; else base=$SLOW; fi
		# Interleaved, so that load on the machine hits every variant alike.
		B_APP_PORT=8701 B_SITE_PORT=9701 baseline steps.sh bsteps $rtt 1
		B_APP_PORT=8702 B_SITE_PORT=9702 baseline floor.sh bfloor $rtt 1
		B_NO_HEALTH=1 B_APP_PORT=8702 B_SITE_PORT=9702 baseline floor.sh bfloor $rtt 1 floor-nohc.sh/1
		ver=$((ver + 1))
		run=$ver # the config (unit command line, static path) of this round
		write_toml bench 1 $base "env RUN=$run " "/s$run/"
		one "raijin-full/1" $rtt raijin deploy --set-version "$ver"
		ver=$((ver + 1))
		one "raijin-code/1" $rtt raijin deploy --set-version "$ver"
		one "raijin-same/1" $rtt raijin deploy --set-version "$ver"
		# code only, without health_check (ready once it answers HTTP)
		write_toml bench 1 $base "env RUN=$run " "/s$run/" nohc
		ver=$((ver + 1))
		(cd "$PROJ" && "$W/raijin" deploy --set-version "$ver" >/dev/null 2>&1)
		ver=$((ver + 1))
		one "raijin-nohc/1" $rtt raijin deploy --set-version "$ver"
		write_toml bench 1 $base "env RUN=$run " "/s$run/"
		ver=$((ver + 1))
		write_toml bench 4 $base "env RUN=$run " "/s$run/"
		# bring the config of hosts 1..3 in line (not measured), then measure code-only on 4
		(cd "$PROJ" && "$W/raijin" deploy --set-version "$ver" >/dev/null 2>&1)
		ver=$((ver + 1))
		one "raijin-code/4" $rtt raijin deploy --set-version "$ver"
		# the same with uploads by difference turned off: the whole binary goes
		ver=$((ver + 1))
		one "raijin-whole/4" $rtt raijin-whole deploy --set-version "$ver"
		write_toml bench 1 $base "env RUN=$run " "/s$run/"
		ver=$((ver + 1))
		one "raijin-whole/1" $rtt raijin-whole deploy --set-version "$ver"
		# (not measured) a deploy that keeps a copy of the build again
		ver=$((ver + 1))
		(cd "$PROJ" && "$W/raijin" deploy --set-version "$ver" >/dev/null 2>&1)
		# a real change of code, on 1 host, then on 4
		ver=$((ver + 1))
		edit_src $ver
		one "raijin-edit/1" $rtt raijin deploy --set-version "$ver"
		write_toml bench 4 $base "env RUN=$run " "/s$run/"
		ver=$((ver + 1))
		(cd "$PROJ" && "$W/raijin" deploy --set-version "$ver" >/dev/null 2>&1)
		ver=$((ver + 1))
		edit_src $ver
		one "raijin-edit/4" $rtt raijin deploy --set-version "$ver"
	done
done

echo "== results (medians of $REPS)" >&2
python3 - "$RESULTS" "$REPS" <<'PY'
import sys, statistics, collections
rows = collections.OrderedDict()
for line in open(sys.argv[1]):
    f = line.split()
    if len(f) < 9: continue
    rows.setdefault((f[0], f[1]), []).append([float(x) for x in f[2:9]])
med = {k: [statistics.median(c) for c in zip(*v)] for k, v in rows.items()}
best = {k: min(r[0] for r in v) for k, v in rows.items()}
print(f"| deploy | added RTT | wall (s), median of {sys.argv[2]} | best | SSH connections | remote commands | bytes sent | files uploaded | daemon-reloads | Caddy reloads |")
print("|---|---|---|---|---|---|---|---|---|---|")
order = ["steps.sh/1", "floor.sh/1", "floor-nohc.sh/1", "raijin-full/1", "raijin-code/1", "raijin-same/1", "raijin-nohc/1", "raijin-code/4", "raijin-whole/1", "raijin-whole/4", "raijin-edit/1", "raijin-edit/4"]
for rtt in ["0", "50"]:
    for name in order:
        if (name, rtt) not in med: continue
        w, c, cmd, b, d, r, u = med[(name, rtt)]
        ups = "all" if u < 0 else f"{u:.0f}"
        print(f"| {name} | {rtt} ms | {w:.2f} | {best[(name, rtt)]:.2f} | {c:.0f} | {cmd:.0f} | {b/1e6:.2f} MB | {ups} | {d:.0f} | {r:.0f} |")
print()
for rtt in ["0", "50"]:
    for label, m in (("median", lambda n: med.get((n, rtt), [float('nan')])[0]), ("best", lambda n: best.get((n, rtt), float('nan')))):
        fl = m("floor.sh/1")
        same = med.get(('raijin-same/1', rtt), [0]*7)
        print(f"- {rtt} ms RTT, {label}: full/floor = {m('raijin-full/1')/fl:.2f} (goal <= 1.15); code-only/floor = {m('raijin-code/1')/fl:.2f} (goal < 1); "
              f"without health_check: code-only/floor = {m('raijin-nohc/1')/m('floor-nohc.sh/1'):.2f} (goal <= 1.15); "
              f"steps.sh/full = {m('steps.sh/1')/m('raijin-full/1'):.2f} (goal >= 2 at 50 ms); 4 hosts/1 host = {m('raijin-code/4')/m('raijin-code/1'):.2f} (goal <= 1.5; changed source: {m('raijin-edit/4')/m('raijin-edit/1'):.2f}; whole binary: {m('raijin-whole/4')/m('raijin-whole/1'):.2f}); "
              f"same-build redeploy: {same[6]:.0f} files uploaded, {same[3]/1e3:.0f} kB on the wire in all")
PY
cp "$RESULTS" "${BENCH_RESULTS:-/tmp/raijin-bench-results.txt}"
