-- raijin.steps.down: the steps of `raijin down [--full]`, which stops the
-- app and removes everything of it from the host. Each is a phase of the
-- "down" flow (see recipes/deploy.lua), so a project can override or hook it
-- like any deploy step.
--
-- The scripts are fixed; the values come in the environment (UNITS: unit
-- names separated by spaces, split with globbing off).
local raijin = require("raijin")
local services = require("raijin.steps.services")

local M = {}

-- Stops, disables and deletes each of $UNITS, and each unit file kept by
-- a version (see services.REMOVE_UNITS); and deletes the live marker $LIVE
-- and the maintenance page $MAINTENANCE.
local DISABLE_UNITS = services.REMOVE_UNITS .. [[
rm -f "$LIVE" "$MAINTENANCE"]]

-- disable_units: stop and disable the units (the socket first), delete their
-- files, daemon-reload.
function M.disable_units(ctx)
  ctx.host:run(DISABLE_UNITS, { sudo = true, env = {
    UNIT_DIR = ctx.paths.unit_dir, UNITS = table.concat(services.all_unit_names(ctx), " "), LIVE = ctx.paths.live,
    APP = ctx.config.app, APP_DIR = ctx.paths.app_dir, VERSIONS = "1", MAINTENANCE = ctx.paths.maintenance,
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

-- Deletes the state directory, and the app's user when raijin made it for
-- this app (its comment says so) and no process of it is left.
local REMOVE_STATE = [[set -e
if [ -d "$STATE_DIR" ]; then rm -rf -- "$STATE_DIR"; echo "deleted the state directory $STATE_DIR"; fi
if [ "$(getent passwd "$APP_USER" | cut -d: -f5)" = "raijin app $APP" ]; then
  userdel "$APP_USER"; echo "deleted the system user $APP_USER"
fi]]

-- remove_state: with --delete-state, the app's data and its user go too;
-- without, they stay, and the log says so.
function M.remove_state(ctx)
  local c = ctx.config
  if not ctx.delete_state then
    raijin.log("kept the state directory " .. ctx.paths.state_dir .. " and the user " .. c.app_user ..
      " (raijin down --delete-state deletes them)")
    return
  end
  ctx.host:run(REMOVE_STATE, { sudo = true, log = true, env = {
    STATE_DIR = ctx.paths.state_dir, APP = c.app, APP_USER = c.app_user,
  } })
end

local REMOVE_CADDY = [[
set -e
systemctl disable --now caddy 2>/dev/null || true
if command -v apt-get >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get purge -y -q caddy >/dev/null
else
  echo "no apt-get on this host: remove the caddy package by hand" >&2; exit 1
fi
rm -rf /etc/caddy
rm -f /etc/systemd/system/caddy.service.d/raijin-admin.conf
rmdir /etc/systemd/system/caddy.service.d 2>/dev/null || true
systemctl daemon-reload]]

-- remove_caddy (down --full only): stop Caddy and purge its package (and
-- the drop-in of the bootstrap's admin socket), when no other app has a site
-- in /etc/caddy/conf.d.
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
