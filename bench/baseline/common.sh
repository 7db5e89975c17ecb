# common.sh: sourced by the baseline deploys (steps.sh, floor.sh). Builds the
# sample Go app and renders the files raijin's binary recipe would install,
# into $stage. The inputs come from the environment (bench/run.sh sets them):
#   B_HOST B_PORT B_USER  where to ssh (through the bench relay)
#   B_APP B_VERSION       app name and version
#   B_APP_PORT B_SITE_PORT  the app's port and its Caddy site's port
#   B_CMD_PREFIX          put before the app in ExecStart (changes the unit)
#   B_STATIC              a static path for the Caddy site, or "" (changes the site)
#   B_SRC B_WORK          the sample app's source, a work directory
#   B_KEEP                versions to keep
set -euo pipefail
: "${B_HOST:?}" "${B_PORT:?}" "${B_USER:?}" "${B_APP:?}" "${B_VERSION:?}" "${B_APP_PORT:?}" "${B_SITE_PORT:?}" "${B_SRC:?}" "${B_WORK:?}"
B_KEEP=${B_KEEP:-5}
B_CMD_PREFIX=${B_CMD_PREFIX:-}
B_STATIC=${B_STATIC:-}
# As raijin keeps apps since they run as their own users: outside the
# deploy user's home, run by a user of the app's own in a hardened unit.
APPDIR=/opt/bench/$B_APP
ABS=$APPDIR
V=$B_VERSION
SSH=(ssh -p "$B_PORT" -i "$HOME/.ssh/id_ed25519" -o UserKnownHostsFile="$HOME/.ssh/known_hosts" -o BatchMode=yes -o StrictHostKeyChecking=yes -o ControlMaster=no -o ControlPath=none "$B_USER@$B_HOST")
SCP=(scp -q -p -P "$B_PORT" -i "$HOME/.ssh/id_ed25519" -o UserKnownHostsFile="$HOME/.ssh/known_hosts" -o BatchMode=yes -o StrictHostKeyChecking=yes -o ControlMaster=no -o ControlPath=none)
TARGET=$B_USER@$B_HOST

stage=$B_WORK/stage-$B_APP
rm -rf "$stage"; mkdir -p "$stage"
go -C "$B_SRC" build -ldflags "-X main.version=$V" -o "$stage/goapp" .
printf 'PORT=%s\nGREETING="hello from the %s baseline"\n' "$B_APP_PORT" "$B_APP" > "$stage/.env"
chmod 600 "$stage/.env"
cat > "$stage/.appenv" <<EOT
set -a
. '$ABS/.env'
set +a
PATH='$ABS':"\$PATH"
export PATH
EOT
cat > "$stage/unit" <<EOT
[Unit]
Description=$B_APP web ($ABS)
After=network.target
StartLimitIntervalSec=0

[Service]
Type=simple
User=$B_APP
Group=$B_APP
WorkingDirectory=$ABS
EnvironmentFile=$ABS/.env
ExecStart=/bin/sh -c "exec $B_CMD_PREFIX $ABS/$B_APP"
Restart=always
RestartSec=1
KillMode=mixed
$(sed "s/@APP@/$B_APP/" "$(dirname "${BASH_SOURCE[0]}")/sandbox")

[Install]
WantedBy=multi-user.target
EOT
{
	echo ":$B_SITE_PORT {"
	if [ -n "$B_STATIC" ]; then printf '\thandle_path %s {\n\t\troot * /tmp\n\t\tfile_server\n\t}\n' "$B_STATIC"; fi
	printf '\thandle {\n\t\treverse_proxy localhost:%s {\n\t\t\tlb_try_duration 30s\n\t\t\tlb_try_interval 100ms\n\t\t}\n\t}\n}\n' "$B_APP_PORT"
} > "$stage/site"

# The remote steps, as shell snippets (run in the deploy user's home).
# The lock, the apps directory and the app's own user when missing; the
# install gives the app directory to the user's group.
step_lock="{ [ -d /opt/bench ] || sudo -n install -d -o $B_USER -m 755 /opt/bench; } && mkdir -p -m 2750 $APPDIR/v$V && mkdir -m 700 $APPDIR/.lock && { id -u $B_APP >/dev/null 2>&1 || sudo -n useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin $B_APP; }"
# The release command runs as the app's user in the unit's sandbox (the
# lines of ./sandbox, raijin's recipes/templates/sandbox.conf).
SANDBOX_ARGS=$(sed "s/^/-p '/; s/\$/'/" "$(dirname "${BASH_SOURCE[0]}")/sandbox" | sed "s/@APP@/$B_APP/" | tr '\n' ' ')
step_install="sudo -n chgrp -R $B_APP $APPDIR && cd $APPDIR && mv -f v$V/.appenv .appenv && cp -p v$V/.env .env.tmp && mv -f .env.tmp .env && ln -sfn v$V/goapp .$B_APP.tmp && mv -T -f .$B_APP.tmp $B_APP"
step_release="sudo -n systemd-run --quiet --wait --collect --pipe --uid=$B_APP --gid=$B_APP -p WorkingDirectory=$ABS -p EnvironmentFile=$ABS/.env -E PATH=$ABS:/usr/bin:/bin $SANDBOX_ARGS -- /bin/sh -c '$B_APP migrate'"
step_services="sudo -n install -m 644 $APPDIR/v$V/unit /etc/systemd/system/$B_APP.service && sudo -n systemctl daemon-reload && sudo -n systemctl enable -q $B_APP.service && sudo -n systemctl reset-failed $B_APP.service 2>/dev/null; sudo -n systemctl restart $B_APP.service"
# The health check polls /up every 50 ms (as raijin does); with
# B_NO_HEALTH=1 (a deploy without health_check) the app is ready once it
# answers HTTP at all.
step_health="end=\$((\$(date +%s)+30)); until curl -sf -o /dev/null --max-time 2 http://localhost:$B_APP_PORT/up; do [ \$(date +%s) -lt \$end ] || { echo health check failed >&2; exit 4; }; sleep 0.05; done"
if [ -n "${B_NO_HEALTH:-}" ]; then
	step_health="end=\$((\$(date +%s)+30)); until curl -s -o /dev/null --max-time 2 http://localhost:$B_APP_PORT/; do [ \$(date +%s) -lt \$end ] || { echo not ready >&2; exit 4; }; sleep 0.05; done"
fi
step_proxy="sudo -n install -m 644 $APPDIR/v$V/site /etc/caddy/conf.d/$B_APP.caddy && { grep -q '^import conf.d/\*.caddy' /etc/caddy/Caddyfile || echo 'import conf.d/*.caddy' | sudo -n tee -a /etc/caddy/Caddyfile >/dev/null; } && sudo -n caddy validate --config /etc/caddy/Caddyfile --adapter caddyfile >/dev/null 2>&1 && sudo -n systemctl reload caddy"
step_finish="cd $APPDIR && { echo $V; grep -vxF $V .versions 2>/dev/null || true; } > .versions.tmp && mv -f .versions.tmp .versions && for v in \$(tail -n +$((B_KEEP+1)) .versions); do rm -rf v\$v; done && head -n $B_KEEP .versions > .versions.tmp && mv -f .versions.tmp .versions && rmdir .lock"
