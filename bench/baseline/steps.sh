#!/usr/bin/env bash
# steps.sh: the baseline a shell script would be: the same deploy as raijin's
# binary recipe, one ssh or scp call (one new connection) per step, as
# Capistrano- or Deployer-style tools do without connection sharing.
# Inputs: see common.sh. Prints "calls N" (ssh/scp processes) on stdout.
. "$(dirname "$0")/common.sh"
n=0
remote() { n=$((n + 1)); "${SSH[@]}" "$1"; }
remote "$step_lock"
n=$((n + 1)); "${SCP[@]}" "$stage/goapp" "$stage/.env" "$stage/.appenv" "$stage/unit" "$stage/site" "$TARGET:$APPDIR/v$V/"
remote "$step_install"
remote "$step_release" >/dev/null
remote "$step_services"
remote "$step_health"
remote "$step_proxy"
remote "$step_finish"
echo "calls $n"
