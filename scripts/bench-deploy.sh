#!/usr/bin/env bash
# bench-deploy.sh [RUNS]: deploys under load, measured. Runs the zero-downtime
# end-to-end tests (e2e/zerodt_test.go) RUNS times (default 3) against a test
# server booted on this machine: each deploys a new version of the sample Go
# app (or the Python one), then rolls back, while a bounded load generator sends GETs through
# Caddy (2 sequential clients on one keep-alive connection each, 4 concurrent
# ones sharing a pool, 2 opening a new connection per request) and
# RAIJIN_BENCH_POST (default 2) clients POST a small form. Prints, per case:
# the deploys measured, requests served during them, failed requests, and
# their latency (worst p50 and p99 of a deploy, and the longest request).
#
# Needs root and Linux, as the end-to-end tests do. RAIJIN_TESTHOST_INDEX
# picks the test server's subnet (10.213.INDEX.0/24).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/ensure-go.sh

runs=${1:-3}
out=$(mktemp)
log=$(mktemp)
trap 'rm -f "$out" "$log"' EXIT
status=0
for i in $(seq "$runs"); do
	echo "run $i of $runs" >&2
	if ! RAIJIN_BENCH_OUT=$out RAIJIN_BENCH_POST=${RAIJIN_BENCH_POST:-2} \
		go test ./e2e -run 'TestZeroDowntime(TCP|UnixSocket|SlowStart|Python)$' -count=1 -v >"$log" 2>&1; then
		status=1
		grep -E 'failed|FAIL' "$log" | head -n 20 >&2 || true
	fi
done

# One line per deploy or rollback measured: name, GETs, failed GETs, POSTs,
# failed POSTs, longest ms, p99 ms, p50 µs.
awk -F'\t' '
{
	split($1, a, ": "); c = a[1]
	if (!(c in n)) order[++k] = c
	n[c]++; get[c] += $2; gfail[c] += $3; post[c] += $4; pfail[c] += $5
	if ($6 > max[c]) max[c] = $6
	if ($7 > p99[c]) p99[c] = $7
	if ($8 > p50[c]) p50[c] = $8
}
END {
	printf "| upstream | deploys + rollbacks | GETs served | failed GETs | POSTs | failed POSTs | worst p50 | worst p99 | longest request |\n"
	printf "|---|---|---|---|---|---|---|---|---|\n"
	for (i = 1; i <= k; i++) {
		c = order[i]
		printf "| %s | %d | %d | %d | %d | %d | %.1f ms | %d ms | %d ms |\n", c, n[c], get[c], gfail[c], post[c], pfail[c], p50[c] / 1000, p99[c], max[c]
	}
}' "$out"
exit $status
