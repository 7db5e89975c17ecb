-- raijin.common: the deploy steps that the binary and the Python recipes share.
-- Every function takes the phase's ctx. Nothing here runs by itself: the
-- recipes (binary.lua, python.lua) name the phases and call these. The remote
-- scripts are fixed; the values they need come in the environment (env =
-- {...}), a list as one value, its items separated by spaces.
local raijin = require("raijin")

local M = {}

-- Variables every template gets.
function M.vars(ctx, extra)
  local c = ctx.config
  local v = {
    app = c.app,
    app_dir = ctx.paths.app_dir,
    user = ctx.host and ctx.host.user or "",
    local_config_dir = c.local_config_dir,
  }
  for k, x in pairs(extra or {}) do v[k] = x end
  return v
end

-- The [hooks] commands of raijin.toml know what is being deployed, as the
-- executable hook files do.
function M.hook_opts(ctx)
  return { env = { RAIJIN_APP = ctx.app, RAIJIN_VERSION = ctx.version, RAIJIN_COMMAND = ctx.command } }
end

-- secrets (local): read each host's env file and resolve its $secret values
-- with the [secrets] adapter, before any connection is opened.
function M.secrets(ctx)
  ctx.shared.env = {}
  for _, h in ctx.config.hosts() do
    ctx.shared.env[h.name] = raijin.env.load(h)
  end
end

-- build (local): [hooks] pre_build, then build_command; the distfile must exist
-- afterwards. [hooks] pre_deploy runs once the build is done, before any host
-- is touched.
function M.build(ctx)
  local c = ctx.config
  if c.hooks.pre_build ~= "" then ctx["local"]:run(c.hooks.pre_build, M.hook_opts(ctx)) end
  if c.build_command ~= "" then
    ctx["local"]:run(c.build_command, { env = { RAIJIN_VERSION = ctx.version } })
  end
  local dist = raijin.distfile(ctx)
  -- In --dry-run the build was only recorded, so there is nothing to check.
  if not ctx.dry_run and not ctx["local"]:exists(dist) then
    error("distfile " .. dist .. " does not exist after the build: check build_command and distfile in raijin.toml", 0)
  end
  ctx.shared.dist = { path = dist, name = raijin.basename(dist) }
  if c.requirements ~= "" then
    local req = raijin.path(ctx, c.requirements)
    if not ctx["local"]:exists(req) then
      error("requirements file " .. c.requirements .. " does not exist", 0)
    end
    ctx.shared.requirements = req
  end
  if c.hooks.pre_deploy ~= "" then ctx["local"]:run(c.hooks.pre_deploy, M.hook_opts(ctx)) end
end

-- transfer: the distfile and the .env (mode 0600) into v{version}/. Uploads
-- go to a temporary name and are renamed; a file the server already has with
-- the same SHA-256 is not sent again. opts.mode is the distfile's mode
-- (default 0755, an executable). The check and the .env go in one round trip
-- (a batch), the distfile's bytes right after it when they are needed: only
-- what changed against the live version's distfile of the same name, when
-- this machine still has a copy of that one. Returns whether the distfile
-- was sent.
function M.transfer(ctx, opts)
  local p = ctx.paths
  local mode = (opts and opts.mode) or "0755"
  local dist = p.version_dir .. "/" .. ctx.shared.dist.name
  ctx.host:batch(function()
    local basis = ctx.previous and (p.app_dir .. "/v" .. ctx.previous .. "/" .. ctx.shared.dist.name)
    ctx.host:upload(ctx.shared.dist.path, dist, { mode = mode, basis = basis })
    ctx.host:write(p.version_dir .. "/.env", ctx.shared.env[ctx.host.name], { mode = "0600" })
  end)
  return ctx.host:sent(dist)
end

-- The .appenv that release_command, hooks and `raijin app exec` source.
function M.write_appenv(ctx)
  ctx.host:write(ctx.paths.appenv, raijin.template("appenv.sh", M.vars(ctx)), { mode = "0644" })
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
  set -- "$v"/*; test -f "$1" || { echo "no distfile in $v" >&2; exit 1; }
  target=$1
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

-- release: release_command in the app directory, with .appenv sourced.
function M.release(ctx)
  local cmd = ctx.config.release_command
  if cmd == "" then return end
  ctx.host:run(cmd, { cwd = ctx.paths.app_dir, appenv = true })
end

-- The unit files of this app: name -> content. A file of the same name in
-- local_config_dir is used as it is; otherwise it is generated.
function M.units(ctx)
  local c = ctx.config
  local units = {}
  local function add(name, template, vars)
    local own = raijin.path(ctx, c.local_config_dir .. "/" .. name)
    if ctx["local"]:exists(own) then
      units[#units + 1] = { name = name, content = ctx["local"]:read(own), own = true }
    else
      units[#units + 1] = { name = name, content = raijin.template(template, M.vars(ctx, vars)) }
    end
  end
  local socket = raijin.socket_path(ctx)
  for _, proc in ipairs(raijin.process_names(ctx)) do
    add(raijin.unit_name(ctx, proc), "process.service", {
      process = proc, unit = raijin.unit_name(ctx, proc), command = c.processes[proc],
      socket = (proc == "web" and socket ~= nil),
    })
  end
  if socket then
    add(c.app .. ".socket", "web.socket", { socket_path = socket })
  end
  return units
end

-- The unit names to restart, web first.
function M.unit_names(ctx)
  local names = {}
  for _, proc in ipairs(raijin.process_names(ctx)) do
    names[#names + 1] = raijin.unit_name(ctx, proc)
  end
  return names
end

-- The web unit (nil without a web process) and the others (workers).
function M.split_units(ctx)
  local web, others = nil, {}
  for _, proc in ipairs(raijin.process_names(ctx)) do
    if proc == "web" then
      web = raijin.unit_name(ctx, proc)
    else
      others[#others + 1] = raijin.unit_name(ctx, proc)
    end
  end
  return web, others
end

-- Starts $SOCKET unless it is active. systemd refuses to start a socket
-- whose service already runs (the upstream was TCP until now): $WEB stops
-- first in that case.
local START_SOCKET = [[systemctl is-active --quiet "$SOCKET" || { systemctl stop "$WEB"; systemctl reset-failed "$SOCKET" 2>/dev/null; systemctl start "$SOCKET"; }]]

-- restart: the web process first, and wait until it is healthy (health_check
-- answers 2xx, or the unit is still active after a short settle); only then
-- the other processes (workers), which must still be active after the settle.
-- While web restarts, requests wait instead of failing: with a unix-socket
-- upstream systemd keeps the listening socket open and requests queue on it;
-- with a TCP upstream Caddy retries the dial (lb_try_duration) until the new
-- process listens. ctx.restarted / ctx.workers_restarted tell restore what
-- to restart again.
function M.restart(ctx)
  local web, others = M.split_units(ctx)
  if web then
    if raijin.socket_path(ctx) then
      ctx.host:run(START_SOCKET, { sudo = true, env = { SOCKET = ctx.config.app .. ".socket", WEB = web } })
    end
    ctx.restarted = true
    ctx.host:systemctl("restart", web)
    ctx.host:wait_healthy({ web })
  end
  if #others > 0 then
    ctx.restarted = true
    ctx.workers_restarted = true
    ctx.host:systemctl("restart", table.unpack(others))
    ctx.host:wait_healthy(others, { http = false })
  end
end

-- Removes $UNIT_DIR/$SOCKET when raijin generated it: a socket unit left
-- from a unix-socket upstream would still hand a TCP app its listening
-- socket.
local REMOVE_OLD_SOCKET = [[f=$UNIT_DIR/$SOCKET; if grep -qs '^# Generated by raijin' "$f"; then systemctl disable --now "$SOCKET" && rm -f "$f" && systemctl daemon-reload; fi]]

-- Enables the $UNITS that are not enabled yet. --no-reload: the
-- daemon-reload before it (when a unit changed) already covers them.
local ENABLE = [[set -f; for u in $UNITS; do systemctl is-enabled -q "$u" 2>/dev/null || systemctl enable -q --no-reload "$u" || exit; done]]

-- services: write the units, then a daemon-reload only when one changed (flag
-- "units"), enable the ones not enabled yet, then restart them (web first,
-- workers once web is healthy). A redeploy leaves the unit files as they
-- are. All of it is one batch: one round trip.
function M.services(ctx)
  ctx.host:batch(function()
    if not ctx.redeploy then
      local names = {}
      for _, u in ipairs(M.units(ctx)) do
        ctx.host:write(ctx.paths.unit_dir .. "/" .. u.name, u.content, { mode = "0644", sudo = true, flag = "units" })
        names[#names + 1] = u.name
      end
      if not raijin.socket_path(ctx) then
        ctx.host:run(REMOVE_OLD_SOCKET, { sudo = true, env = { UNIT_DIR = ctx.paths.unit_dir, SOCKET = ctx.config.app .. ".socket" } })
      end
      ctx.host:systemctl("daemon-reload", { when = "units" })
      ctx.host:run(ENABLE, { sudo = true, env = { UNITS = table.concat(names, " ") } })
    end
    M.restart(ctx)
  end)
end

-- proxy: the Caddy site in /etc/caddy/conf.d/{app}.caddy, validated, then a
-- reload of Caddy (none when the site did not change). The user's own
-- {local_config_dir}/{app}.caddy is used as it is when present.
function M.proxy(ctx)
  if ctx.redeploy then return end
  local site = M.site(ctx).content
  -- Deferred: it needs no answer, so it rides with the deploy's last round
  -- trip (with record, prune, the audit line and the lock's release); a
  -- failure there still undoes the deploy.
  ctx.host:defer(function() ctx.host:caddy_reload(ctx.paths.caddy_site, site) end)
end

-- The Caddy site of this app for this host: {name, content, own}. The user's
-- own {local_config_dir}/{app}.caddy is used as it is when present.
function M.site(ctx)
  local c = ctx.config
  local name = c.app .. ".caddy"
  local own = raijin.path(ctx, c.local_config_dir .. "/" .. name)
  if ctx["local"]:exists(own) then
    return { name = name, content = ctx["local"]:read(own), own = true }
  end
  local statics = {}
  for path, dir in c.webserver.statics() do
    statics[#statics + 1] = { path = path, dir = dir }
  end
  table.sort(statics, function(a, b) return a.path < b.path end)
  return { name = name, content = raijin.template("site.caddy", M.vars(ctx, {
    site = ctx.host.site_address, upstream = c.webserver.upstream,
    statics = statics, try_duration = "30s",
  })) }
end

-- record: the new version goes first in .versions. From here on the new
-- version is the current one: a later failure does not switch back (undo
-- asks the server, see restore). Deferred: it rides with the last round trip.
function M.record(ctx)
  ctx.host:defer(function() raijin.versions.record(ctx, ctx.version) end)
end

-- prune: version directories beyond versions_to_keep (or `raijin prune
-- --keep N`) are deleted, never the current one. Deferred like record: what
-- to delete is known from the .versions and directories read at the start.
function M.prune(ctx)
  ctx.host:defer(function()
    local removed = raijin.versions.prune(ctx, ctx.keep or ctx.config.versions_to_keep)
    if #removed > 0 then ctx.audit.pruned = removed end
  end)
end

-- done (local, once all hosts are done): the URL of each host, then [hooks]
-- post_deploy.
function M.done(ctx)
  local state = ctx.dry_run and " would be live on " or " is live on "
  for _, h in ipairs(ctx.hosts) do
    raijin.log(ctx.config.app .. " " .. ctx.version .. state .. h.name .. ": " .. h.url)
  end
  if ctx.config.hooks.post_deploy ~= "" then ctx["local"]:run(ctx.config.hooks.post_deploy, M.hook_opts(ctx)) end
end

-- The flows besides deploy, the same in every built-in recipe. link(ctx)
-- is the version's entry point, as for M.switch.
function M.other_flows(link)
  -- Rollback: switch back to an older version already on the host (nothing
  -- is installed: its files are still there) and restart.
  raijin.phase("switch", function(ctx) M.switch(ctx, ctx.version, link(ctx)) end)
  raijin.phase("restart", M.restart)
  raijin.undo("switch", function(ctx) M.restore(ctx, link(ctx)) end)
  raijin.flow("rollback", { "switch", "restart", "record" })

  -- Prune: `raijin prune [--keep N]` is the prune step on its own.
  raijin.flow("prune", { "prune" })

  -- Down: `raijin down [--full]` stops the app and removes it from the host.
  raijin.phase("disable_units", M.disable_units)
  raijin.phase("remove_site", M.remove_site)
  raijin.phase("remove_app", M.remove_app)
  raijin.phase("remove_caddy", M.remove_caddy)
  raijin.flow("down", { "disable_units", "remove_site", "remove_app", "remove_caddy" })
end

-- undo for install: when a later step fails, put the previous version back
-- (its .env and link), and restart what the failed deploy had restarted (web
-- first), checking that the previous version is healthy again.
-- Nothing is done when the failure came before the switch.
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
  local web, others = M.split_units(ctx)
  if ctx.restarted and web then
    ctx.host:systemctl("restart", web)
    ctx.host:wait_healthy({ web })
  end
  if ctx.workers_restarted and #others > 0 then
    ctx.host:systemctl("restart", table.unpack(others))
    ctx.host:wait_healthy(others, { http = false })
  end
  raijin.log("restored version " .. ctx.previous)
end

-- down: stop the app and remove everything of it from the host. Each step
-- is a phase of the "down" flow (see binary.lua), so a project can override
-- or hook it like any deploy step. The scripts are fixed; the values come in
-- the environment (UNITS: unit names separated by spaces, split with
-- globbing off).

-- The units of this app: the socket first, so that it cannot start the
-- service again while it stops.
function M.all_unit_names(ctx)
  local names = {}
  if raijin.socket_path(ctx) then names[#names + 1] = ctx.config.app .. ".socket" end
  for _, u in ipairs(M.unit_names(ctx)) do names[#names + 1] = u end
  return names
end

-- Stops, disables and deletes each of $UNITS that has a file in $UNIT_DIR,
-- then a daemon-reload if there was one.
local DISABLE_UNITS = [[set -e
found=
set -f
for u in $UNITS; do
  if [ -e "$UNIT_DIR/$u" ]; then systemctl disable --now "$u"; rm -f "$UNIT_DIR/$u"; systemctl reset-failed "$u" 2>/dev/null || true; found=1; fi
done
if [ -n "$found" ]; then systemctl daemon-reload; fi]]

-- disable_units: stop and disable the units (the socket first), delete their
-- files, daemon-reload.
function M.disable_units(ctx)
  ctx.host:run(DISABLE_UNITS, { sudo = true, env = {
    UNIT_DIR = ctx.paths.unit_dir, UNITS = table.concat(M.all_unit_names(ctx), " "),
  } })
end

local REMOVE_SITE = [[if [ -e "$SITE" ]; then rm -f "$SITE"; if systemctl is-active -q caddy; then systemctl reload caddy; fi; fi]]

-- remove_site: delete the Caddy site and reload Caddy (when it runs).
function M.remove_site(ctx)
  ctx.host:run(REMOVE_SITE, { sudo = true, env = { SITE = ctx.paths.caddy_site } })
end

-- remove_app: delete the app directory: every version, .env, .versions, the
-- audit log (its last line, this down, goes to the apps directory's log).
function M.remove_app(ctx)
  ctx.host:run([[rm -rf -- "$APP_DIR"]], { env = { APP_DIR = ctx.paths.app_dir } })
end

local REMOVE_CADDY = [[
set -e
systemctl disable --now caddy 2>/dev/null || true
if command -v apt-get >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get purge -y -q caddy >/dev/null
else
  echo "no apt-get on this host: remove the caddy package by hand" >&2; exit 1
fi
rm -rf /etc/caddy]]

-- remove_caddy (down --full only): stop Caddy and purge its package, when no
-- other app has a site in /etc/caddy/conf.d.
function M.remove_caddy(ctx)
  if not ctx.full then return end
  local res = ctx.host:run("ls /etc/caddy/conf.d/*.caddy 2>/dev/null || true")
  if res.stdout ~= "" then
    local sites = res.stdout:gsub("%s+$", ""):gsub("\n", ", ")
    raijin.log("Caddy stays: other apps use it: " .. sites)
    return
  end
  ctx.host:run(REMOVE_CADDY, { sudo = true })
  raijin.log("Caddy removed")
end

return M
