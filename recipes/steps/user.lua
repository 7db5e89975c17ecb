-- raijin.steps.user: the app's own system user, which runs its processes
-- (app_user, by default the app's name). The deploy user, who has sudo,
-- owns the code; the app's user can read it through the app directory's
-- group, and write only its state directory ($STATE_DIRECTORY).
local M = {}

-- Creates $APP_USER when it is missing (a system user: no home, no login
-- shell, no groups beyond its own), or checks that an existing one is fit
-- to run the app: not root, not the deploy user, in no group that gives
-- root or reads the system's logs, made by raijin unless app_user names it
-- ($EXPLICIT). Then gives the app directory to the app's group: new files
-- in it take that group (setgid), others get nothing. The first time, for
-- an app installed before, every file moves to the group, and it says so.
-- It prints "changed: ..." or "in place: ..." lines, as the bootstrap's
-- steps do.
local ENSURE = [[set -e
did=
if ! id -u "$APP_USER" >/dev/null 2>&1; then
  useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin --comment "raijin app $APP" "$APP_USER"
  echo "changed: created the system user $APP_USER, which runs $APP"; did=1
else
  if [ "$(id -u "$APP_USER")" = 0 ] || [ "$APP_USER" = "$DEPLOY_USER" ]; then
    echo "app_user $APP_USER is root or the deploy user, who has sudo: set app_user in raijin.toml to a user of the app's own (raijin creates it)" >&2; exit 1
  fi
  for g in $(id -nG "$APP_USER"); do
    case $g in root|sudo|wheel|admin|adm|systemd-journal|docker|lxd|disk|shadow)
      echo "user $APP_USER is in the group $g, which gives root or reads the system's logs: take it out of that group, or set app_user in raijin.toml to a new name (raijin creates it)" >&2; exit 1 ;;
    esac
  done
  case $(getent passwd "$APP_USER" | cut -d: -f5) in
    "raijin app "*) ;;
    *) if [ -z "$EXPLICIT" ]; then
         echo "a user $APP_USER exists on this host and raijin did not create it: set app_user in raijin.toml, to a new name (raijin creates it) or to this user to run $APP as it" >&2; exit 1
       fi ;;
  esac
fi
if [ ! -d "$APP_DIR" ]; then [ -n "$did" ] || echo "in place: user $APP_USER, which runs $APP"; exit 0; fi
if [ "$(stat -c %G "$APP_DIR")" != "$APP_USER" ] && [ ! -e "$APP_DIR/.versions" ]; then
  # A new app directory (the deploy lock made it): the app's group, quietly.
  chgrp -h -- "$APP_USER" "$APP_DIR"
elif [ "$(stat -c %G "$APP_DIR")" != "$APP_USER" ]; then
  # The directory itself first: what is made in it from now on (a patch on
  # its way makes the new version's directory at the same time) takes the
  # group; what was made before is there for chgrp -R.
  chgrp -h -- "$APP_USER" "$APP_DIR"
  chmod g+s -- "$APP_DIR"
  chgrp -hR -- "$APP_USER" "$APP_DIR"
  chmod -R g+rX,g-w,o-rwx -- "$APP_DIR"
  find "$APP_DIR" -type d -exec chmod g+s {} +
  cd "$APP_DIR"
  for f in .versions .audit.jsonl .lock/info .apprun; do [ ! -f "$f" ] || chmod 0600 "$f"; done
  [ ! -d .lock ] || chmod 0700 .lock
  echo "changed: $APP now runs as $APP_USER: the files in $APP_DIR are the deploy user's, readable by the group $APP_USER"; did=1
fi
chmod 2750 "$APP_DIR"
[ -n "$did" ] || echo "in place: user $APP_USER, which runs $APP"]]

-- ensure: the app's user and the app directory's group, in the next round
-- trip (deferred); what changed is logged when it comes back.
function M.ensure(ctx)
  local c = ctx.config
  local explicit = ""
  if not tostring(c.sources.app_user or ""):match("^default") then explicit = "1" end
  ctx.host:defer(function()
    ctx.host:run(ENSURE, { sudo = true, log = true, env = {
      APP = c.app, APP_USER = c.app_user, APP_DIR = ctx.paths.app_dir,
      DEPLOY_USER = ctx.host.user, EXPLICIT = explicit,
    } })
  end)
end

return M
