-- raijin.steps.install: what the install step of every recipe ends with:
-- the .appenv, and the switch to the new version (and back, as its undo).
local raijin = require("raijin")
local templates = require("raijin.steps.templates")
local services = require("raijin.steps.services")
local sandbox = require("raijin.steps.sandbox")

local M = {}

-- appenv: the .appenv that commands run as the deploy user with
-- {appenv = true} source (templates/appenv.sh), and the .apprun through
-- which release_command and `raijin app exec|shell` run as the app's user,
-- in its sandbox (templates/apprun.sh). Both writes are deferred: they ride
-- with the next round trip (the switch's or release's), before it.
function M.appenv(ctx)
  local appenv = templates.render(ctx, "appenv.sh")
  local apprun = templates.render(ctx, "apprun.sh", { sandbox = sandbox.lines(ctx) })
  ctx.host:defer(function()
    ctx.host:write(ctx.paths.appenv, appenv, { mode = "0640" })
    ctx.host:write(ctx.paths.apprun, apprun, { mode = "0600" })
  end)
end

-- Makes v$VERSION the current version, run in the app directory: its .env
-- becomes .env, and the link $LINK points to v$VERSION/$TARGET ($TARGET
-- "*": the version's one distfile), replaced atomically (ln -s to a
-- temporary name, then mv -T).
local SWITCH = [[set -e
v=v$VERSION
test -d "$v" || { echo "version $VERSION is not on this host" >&2; exit 1; }
cp -p "$v/.env" .env.raijin-tmp && mv -f .env.raijin-tmp .env
if [ "$TARGET" = "*" ]; then
  # The one regular file (not the link the services step may add).
  target=
  for f in "$v"/*; do if [ -f "$f" ] && [ ! -L "$f" ]; then target=$f; break; fi; done
  test -n "$target" || { echo "no distfile in $v" >&2; exit 1; }
else
  target=$v/$TARGET
  test -e "$target" || { echo "$v has no $TARGET" >&2; exit 1; }
fi
ln -sfn "$target" ".$LINK.raijin-tmp" && mv -T -f ".$LINK.raijin-tmp" "$LINK"]]

-- switch makes `version` the current one in a single remote command: its
-- .env becomes app_dir/.env, and the version's entry point `link` = {name =
-- a link in the app directory, target = a path inside the version directory,
-- or "*" for its one distfile} is replaced atomically.
function M.switch(ctx, version, link)
  -- From here on, an undo has something to put back.
  ctx.switched = true
  ctx.host:run(SWITCH, { cwd = ctx.paths.app_dir, env = { VERSION = version, LINK = link.name, TARGET = link.target } })
end

-- restore, the undo of install: when a later step fails, put the previous
-- version back (its .env and link) and have it serve again as it did (see
-- raijin.steps.services.undo: requests go back to its slot, which still
-- runs; the workers get its own unit files back). Nothing is done when the failure came before the switch, nor once
-- the new version is recorded.
function M.restore(ctx, link)
  -- Recorded: the deferred record ran (the new version heads .versions).
  if not ctx.recorded and ctx.previous ~= ctx.version and not ctx.dry_run then
    ctx.recorded = raijin.versions.current(ctx) == ctx.version
  end
  if ctx.recorded then
    ctx.state = "version " .. ctx.version .. " is recorded in .versions and serving; nothing was switched back"
    return
  end
  if not ctx.switched then
    if ctx.previous then raijin.log("nothing was switched: " .. ctx.previous .. " is still serving") end
    return
  end
  if not ctx.previous then
    raijin.log("no previous version to restore: this was the first deploy")
    return
  end
  M.switch(ctx, ctx.previous, link)
  services.undo(ctx, ctx.previous)
  raijin.log("restored version " .. ctx.previous)
end

return M
