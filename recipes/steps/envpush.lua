-- raijin.steps.envpush: `raijin env push`: the serving code gets the env
-- file as it reads now, with no build and no upload of the code. The new env
-- makes a new version, v{version}+env{n} (chosen by raijin: ctx.version),
-- holding the current version's files (hard links: no copy of the code)
-- and the new .env; the switch, restart and record of a rollback do the
-- rest, so that `raijin rollback` brings the previous env back, and prune,
-- releases and the audit log see an ordinary version.
local M = {}

-- Makes .v$TO.raijin-tmp from v$FROM, files hard-linked (copied where the
-- file system refuses links). Text files that name v$FROM's own path (the
-- Python environment's scripts and pyvenv.cfg, unit files) are rewritten
-- to name v$TO; binary files are not (grep -I): Python's .pyc keep
-- v$FROM's path, which Python replaces with the real one as it loads them.
local PREPARE = [[set -e
test -d "v$FROM" || { echo "version $FROM is not on this host" >&2; exit 1; }
test ! -e "v$TO" || { echo "v$TO exists already" >&2; exit 1; }
tmp=.v$TO.raijin-tmp
rm -rf "$tmp"
cp -al "v$FROM" "$tmp" 2>/dev/null || { rm -rf "$tmp"; cp -a "v$FROM" "$tmp"; }
rm -f "$tmp/.env"
from_re=$(printf '%s' "$APP_DIR/v$FROM/" | sed 's/[].[\*^$|]/\\&/g')
to_re=$(printf '%s' "$APP_DIR/v$TO/" | sed 's/[\&|]/\\&/g')
grep -rlIFZ -e "$APP_DIR/v$FROM/" "$tmp" 2>/dev/null | xargs -0 -r sed -i "s|$from_re|$to_re|g"
]]

-- Puts .v$TO.raijin-tmp (with its .env now) in place as v$TO.
local FINISH = [[mv -T ".v$TO.raijin-tmp" "v$TO"]]

-- prepare: v{new version} from the current version's files, with the new
-- .env (mode 0640, like the deploy's), in one round trip.
function M.prepare(ctx)
  local p = ctx.paths
  local env = { FROM = ctx.previous, TO = ctx.version, APP_DIR = p.app_dir }
  ctx.host:batch(function()
    ctx.host:run(PREPARE, { cwd = p.app_dir, env = env })
    ctx.host:write(p.app_dir .. "/.v" .. ctx.version .. ".raijin-tmp/.env", ctx.shared.env[ctx.host.name], { mode = "0640" })
    ctx.host:run(FINISH, { cwd = p.app_dir, env = env })
  end)
  ctx.env_prepared = true
end

-- Removes v$TO (and its temporary name) unless .versions records it.
local DISCARD = [[grep -qxF -- "$TO" .versions 2>/dev/null || rm -rf "v$TO" ".v$TO.raijin-tmp"]]

-- discard, the undo of prepare: a failed env push leaves no version
-- directory behind (the switch's undo has put the previous one back).
function M.discard(ctx)
  if ctx.dry_run then return end
  ctx.host:run(DISCARD, { cwd = ctx.paths.app_dir, env = { TO = ctx.version } })
end

return M
