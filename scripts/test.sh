#!/usr/bin/env bash
# test.sh: every test raijin has, as CI runs them: formatting and vet, unit
# tests, CLI scripts, bounded fuzzing, and the end-to-end tests against real
# test servers booted on this machine (root, Linux). Exits non-zero on any
# failure.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/ensure-go.sh
# The upload tests make patches with the zstd command, as raijin does.
if ! command -v zstd >/dev/null; then
	echo "== installing zstd" >&2
	apt-get install -y -q zstd >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q zstd >/dev/null; } ||
		{ echo "test.sh: could not install zstd (as root: apt-get install zstd); the upload tests need it" >&2; exit 1; }
fi

echo "== gofmt, go vet"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then echo "gofmt would change: $unformatted" >&2; exit 1; fi
go vet ./...

echo "== unit and CLI tests"
# -p 1: keep the machine's two cores for one package at a time.
go test -p 1 -count=1 -timeout 20m $(go list ./... | grep -v '/e2e$')

echo "== end-to-end tests (three shards, each on test servers of its own)"
# The end-to-end tests spend most of their time waiting on servers (systemd,
# Caddy, timers), not on the CPU: three shards at once, each booting its own
# servers (RAIJIN_TESTHOST_INDEX, default 20, then 10 and 20 more:
# 10.213.20.x, 10.213.30.x, 10.213.40.x), take about 1000 s where one took
# 1500 s; the two cores are then busy all the time.
# The first two run the test families below (about a third of the time each,
# measured with all three running: the tests that build and patch large
# binaries or run relays take three times as long then); the last skips
# exactly them, so a new test always runs in one.
# They fail, never skip, when their servers cannot boot.
shards=(
	'^Test(ZeroDowntime|LoadBalancer|BlueGreen|Replicas|HealthCheck|UnitFails|UpstreamSwitch|RestartInPlace|WorkersRestart|ScheduledProcess|DownRemoves|UndoRemoves)'
	'^Test(Binary|Lifecycle|Python|Operate|Server|Destination|HomeLayout|CodeOnly|DeployJSON)'
)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
go test -c -o "$work/e2e.test" ./e2e
e2e_shard() { # e2e_shard N INDEX FLAG PATTERN: one shard, its verbose output in $work/N.log
	local start=$SECONDS rc=0
	(cd e2e && RAIJIN_E2E_REQUIRED=1 RAIJIN_TESTHOST_INDEX=$2 "$work/e2e.test" -test.v -test.count=1 -test.timeout=45m "$3" "$4") \
		>"$work/$1.log" 2>&1 || rc=$?
	echo "shard $1: exit $rc after $((SECONDS - start)) s" >>"$work/$1.log"
	return "$rc"
}
base=${RAIJIN_TESTHOST_INDEX:-20}
pids=()
# Each shard in a process group of its own (set -m), so that an interrupt
# reaches it: stopped, a shard takes its test servers down (TestMain).
stop_shards() {
	for p in "${pids[@]}"; do kill -TERM -- "-$p" 2>/dev/null || true; done
	wait
	exit 130
}
trap stop_shards INT TERM
set -m
for i in "${!shards[@]}"; do
	e2e_shard "$((i + 1))" "$((base + 10 * i))" -test.run "${shards[$i]}" & pids+=($!)
done
n=${#shards[@]}
e2e_shard "$((n + 1))" "$((base + 10 * n))" -test.skip "$(IFS='|'; echo "${shards[*]}")" & pids+=($!)
failed=0
for i in "${!pids[@]}"; do
	# Each test's result and time; a failed shard's whole output.
	if wait "${pids[$i]}"; then
		grep -E '^(--- |ok |PASS$|shard )' "$work/$((i + 1)).log" || true
	else
		cat "$work/$((i + 1)).log"
		failed=1
	fi
done
set +m
trap - INT TERM
if [ "$failed" -ne 0 ]; then echo "end-to-end tests failed" >&2; exit 1; fi

echo "== fuzzing (bounded)"
fuzz_secs=${RAIJIN_FUZZ_SECONDS:-10}
while read -r pkg target; do
	# Go's fuzzer can stop with "context deadline exceeded" when the machine is
	# too busy to finish its baseline in time; that one case is tried again.
	# A real failure names its failing input and fails at once.
	if ! out=$(go test -run '^$' -fuzz "^${target}\$" -fuzztime "${fuzz_secs}s" "$pkg" 2>&1); then
		echo "$out"
		if grep -q 'context deadline exceeded' <<<"$out" && ! grep -q 'Failing input' <<<"$out"; then
			echo "fuzz $target: the fuzzer timed out on a busy machine; once more" >&2
			go test -run '^$' -fuzz "^${target}\$" -fuzztime "${fuzz_secs}s" "$pkg"
		else
			exit 1
		fi
	else
		echo "$out" | tail -n 3
	fi
done < <(grep -rl --include='*_test.go' '^func Fuzz' . | while read -r f; do
	dir=$(dirname "$f")
	grep -o '^func Fuzz[A-Za-z0-9_]*' "$f" | sed 's/^func //' | sed "s|^|./${dir#./} |"
done)
echo "all tests passed"
