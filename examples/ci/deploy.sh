#!/bin/sh
# ci/deploy.sh: the deploy step of the CI workflow (.github/workflows/deploy.yml
# runs `sh ci/deploy.sh`), run in the project's directory on a fresh runner.
# raijin's end-to-end test runs this very file against a real server.
#
# In:
#   RAIJIN_SSH_KEY   the deploy user's private key, from a CI secret
#   ci/known_hosts   the servers' host keys, committed: pinned, never learnt
#   the app's secrets as environment variables, from CI secrets: the system
#   adapter reads $prod-db-password of .env.prod from PROD_DB_PASSWORD
# Out: raijin's --json events on stdout, one per line; exit code raijin's.
# Arguments go to `raijin deploy` (-d staging, -H web1, ...).
set -eu
: "${RAIJIN_SSH_KEY:?set RAIJIN_SSH_KEY to the deploy key (a CI secret)}"
ci=$(cd "$(dirname "$0")" && pwd)
if ! grep -q '^[^#[:space:]]' "$ci/known_hosts" 2>/dev/null; then
	echo "ci/deploy.sh: $ci/known_hosts is missing or holds no host key: commit the servers' host keys (see examples/ci/README.md)" >&2
	exit 2
fi
ssh="$HOME/.ssh"
if [ -e "$ssh/config" ]; then
	echo "ci/deploy.sh: $ssh/config exists; this script writes its own, on a fresh CI runner" >&2
	exit 2
fi
# What this script writes is removed when it ends, however it ends: a
# self-hosted runner keeps its HOME from one job to the next.
cleanup() {
	rc=$?
	rm -f "$ssh/config" "$ssh/raijin_deploy_key" "$ssh/raijin_known_hosts"
	# raijin's errors name the copy, gone now: say which file to fix.
	if [ "$rc" -ne 0 ] && [ -n "${deploying:-}" ]; then
		echo "ci/deploy.sh: the host keys raijin checked were $ci/known_hosts (as ~/.ssh/raijin_known_hosts for the run): after a host key error, compare it with the server's (see examples/ci/README.md)" >&2
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
(
	# Only these files are the owner's alone: raijin, the build and the
	# hooks run with the umask the runner gave.
	umask 077
	mkdir -p "$ssh"
	# printf is the shell's own: the key is written without being in any
	# process's arguments.
	printf '%s\n' "$RAIJIN_SSH_KEY" >"$ssh/raijin_deploy_key"
	# A copy under ~/.ssh: ssh_config paths split at spaces, and the
	# checkout's path may hold one.
	cp "$ci/known_hosts" "$ssh/raijin_known_hosts"
	# raijin reads ~/.ssh/config: this key only, no agent, and the committed
	# host keys only (an unknown or changed host key is refused).
	cat >"$ssh/config" <<'CONFIG'
Host *
    IdentityFile ~/.ssh/raijin_deploy_key
    IdentitiesOnly yes
    IdentityAgent none
    UserKnownHostsFile ~/.ssh/raijin_known_hosts
    StrictHostKeyChecking yes
CONFIG
)
unset RAIJIN_SSH_KEY
deploying=1
raijin deploy --json "$@"
