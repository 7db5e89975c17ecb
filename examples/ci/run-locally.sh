#!/usr/bin/env bash
# run-locally.sh: run the example workflow's deploy step
# (github-actions/deploy.yml, step "Deploy") on this machine, as a runner
# would, against a local test server: the demo app (examples/demo) with
# ci/deploy.sh and the server's host key pinned in ci/known_hosts, a HOME
# with nothing in it, the deploy key and the app's secret in the
# environment only. Run as root on Debian 12, from anywhere.
# RAIJIN_TESTHOST_INDEX picks the server's subnet (default 1: 10.213.1.2);
# tear it down with testdata/testhost/down.sh raijin-ci-INDEX.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"
. scripts/ensure-go.sh
index=${RAIJIN_TESTHOST_INDEX:-1}
workflow=examples/ci/github-actions/deploy.yml

# The step's run line and the names of its env, read from the workflow
# itself, so that what runs here is what CI runs.
step=$(awk '
	/^ *- / { in_step = ($0 ~ /^ *- name: Deploy *$/); in_env = 0; next }
	!in_step { next }
	/^ *env: *$/ { in_env = 1; next }
	/^ *run: / { sub(/^ *run: */, ""); print "run " $0; in_env = 0; next }
	in_env && /:/ { k = $1; sub(/:$/, "", k); print "env " k }
' "$workflow")
run=$(sed -n 's/^run //p' <<<"$step")
[ -n "$run" ] || { echo "run-locally.sh: no run line in the Deploy step of $workflow" >&2; exit 1; }

echo "== building raijin" >&2
bin=$(mktemp -d)
work=
trap 'rm -rf "$bin" ${work:+"$work"}' EXIT
go build -o "$bin/raijin" ./cmd/raijin

echo "== booting the test server raijin-ci-$index" >&2
state=$(testdata/testhost/up.sh "raijin-ci-$index" "$index" | tail -n1)
# shellcheck disable=SC1091
. "$state/env"

work=$(mktemp -d)
project=$work/project
cp -r examples/demo "$project"
sed -i -e "s|10\.213\.1\.2|$RAIJIN_TESTHOST_ADDR|g" -e "s|\.\./\.\./testdata|$repo/testdata|" "$project/raijin.toml"
sed -i 's|^API_TOKEN=.*|API_TOKEN=$prod-db-password|' "$project/.env.demo"
mkdir -p "$project/ci"
cp examples/ci/deploy.sh "$project/ci/deploy.sh"
cp "$RAIJIN_TESTHOST_KNOWN_HOSTS" "$project/ci/known_hosts"
mkdir -p "$work/home"

# The CI secrets: the deploy key and the app's secret. They are exported
# by the shell, never given as arguments to a command.
declare -A secrets=([RAIJIN_SSH_KEY]="$(cat "$RAIJIN_TESTHOST_KEY")" [PROD_DB_PASSWORD]="${PROD_DB_PASSWORD:-local-secret-$RANDOM$RANDOM}")
names=$(sed -n 's/^env //p' <<<"$step")
for name in $names; do
	[ -n "${secrets[$name]+set}" ] || { echo "run-locally.sh: the Deploy step takes $name, which this script does not give" >&2; exit 1; }
done
gocache=$(go env GOCACHE) gomodcache=$(go env GOMODCACHE)

echo "== $run   (in $project, HOME=$work/home)" >&2
cd "$project"
(
	# A runner's environment: nothing of this shell's but PATH.
	path=$bin:$PATH
	for v in $(compgen -e); do unset "$v" 2>/dev/null || true; done
	export PATH=$path HOME=$work/home CI=true NO_COLOR=1 GOCACHE=$gocache GOMODCACHE=$gomodcache
	for name in $names; do export "$name=${secrets[$name]}"; done
	exec sh -c "$run"
)
