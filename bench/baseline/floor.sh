#!/usr/bin/env bash
# floor.sh: the floor for doing every step of the deploy: the files as one
# tar stream and every step as one script, over one SSH session. It always
# does all the work (daemon-reload, enable, restart, Caddy reload).
# Inputs: see common.sh. Prints "calls 1" on stdout.
. "$(dirname "$0")/common.sh"
tar -C "$stage" -cf - goapp .env .appenv unit site | "${SSH[@]}" "set -e
$step_lock
tar -xf - -C $APPDIR/v$V
( $step_install )
( $step_release ) >/dev/null
( $step_services )
( $step_health )
( $step_proxy )
( $step_finish )"
echo "calls 1"
