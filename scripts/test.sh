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

echo "== unit, CLI and end-to-end tests"
# -p 1: the end-to-end package boots test servers; keep the machine's two cores
# for one package at a time so timings stay honest.
# The end-to-end tests fail, never skip, when their servers cannot boot.
RAIJIN_E2E_REQUIRED=1 go test -p 1 -count=1 -timeout 45m ./...

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
