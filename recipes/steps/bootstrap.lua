-- raijin.steps.bootstrap: the steps of `raijin server bootstrap` (and
-- `raijin up`), which prepare a fresh Debian/Ubuntu server, idempotently.
-- Each step first checks, then changes only what is missing, and says which
-- it was. The scripts are fixed; the values come in the environment.
local raijin = require("raijin")

local M = {}

-- Every check ends in one of these two lines. A dry run answers every check
-- with "yes": it can only say what it checked.
local function changed(what) raijin.log("changed: " .. what) end
local function in_place(ctx, what)
  if ctx.dry_run then
    raijin.log("checked (dry run): " .. what)
  else
    raijin.log("in place: " .. what)
  end
end

-- report: one check's line, "changed" when it changed something (done).
local function report(ctx, done, what_changed, what_in_place)
  if done then changed(what_changed) else in_place(ctx, what_in_place) end
end

-- The Debian packages the server needs: Caddy always, zstd (uploads go
-- compressed with it, and a new build as a patch against the live one),
-- python3-venv for a Python app.
function M.wanted_packages(ctx)
  local want = { "caddy", "zstd" }
  if ctx.config.installation_mode == "python-package" then
    want[#want + 1] = "python3-venv"
  end
  return want
end

local PACKAGE_INSTALLED = [[dpkg-query -W -f='${Status}' "$PACKAGE" 2>/dev/null | grep -q 'ok installed']]
-- $PACKAGES: package names separated by spaces.
local INSTALL_PACKAGES = [[set -f; apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $PACKAGES]]

-- packages: apt-get install only the packages that are not installed. Every
-- step of the bootstrap (and of a deploy) needs sudo without a password.
function M.packages(ctx)
  if not ctx.host:test("sudo -n true") then
    error(ctx.host.user .. " cannot run sudo without a password on " .. ctx.host.name ..
      ": raijin installs packages, units and Caddy sites as root. As root, run" ..
      " `raijin -H " .. ctx.host.name .. " server create-user " .. ctx.host.user .. " --sudo`" ..
      " (with user = \"root\" for that once), or add a NOPASSWD line for it in /etc/sudoers.d", 0)
  end
  local missing = {}
  for _, p in ipairs(M.wanted_packages(ctx)) do
    if ctx.host:test(PACKAGE_INSTALLED, { env = { PACKAGE = p } }) then
      in_place(ctx, "package " .. p)
    else
      missing[#missing + 1] = p
    end
  end
  if #missing == 0 then return end
  ctx.host:run(INSTALL_PACKAGES, { sudo = true, timeout = "15m", env = { PACKAGES = table.concat(missing, " ") } })
  for _, p in ipairs(missing) do changed("package " .. p .. " installed") end
end

local CADDYFILE = "/etc/caddy/Caddyfile"

local ADMIN = "unix//run/caddy/admin.sock"

-- caddy: the conf.d directory for the apps' sites, the import of
-- conf.d/*.caddy in the main Caddyfile (added once, the rest of the file
-- kept: ctx.host:caddy_import, the same step every site install takes),
-- Caddy's admin endpoint on a unix socket only root can reach instead of
-- localhost:2019, which every app's user could reach (ctx.host:caddy_admin,
-- which loads it into a running Caddy), and Caddy enabled and running.
function M.caddy(ctx)
  local made, imported = ctx.host:caddy_import()
  report(ctx, made, "directory /etc/caddy/conf.d created", "directory /etc/caddy/conf.d")
  report(ctx, imported, CADDYFILE .. ": import conf.d/*.caddy added", CADDYFILE .. " imports conf.d/*.caddy")
  local reload = imported
  local unit, socket = ctx.host:caddy_admin()
  report(ctx, unit, "caddy.service.d/raijin-admin.conf: /run/caddy only caddy and root can enter",
    "caddy.service.d/raijin-admin.conf (/run/caddy for the admin socket)")
  report(ctx, socket, CADDYFILE .. ": admin " .. ADMIN .. " added", CADDYFILE .. ": admin endpoint on a unix socket")
  if ctx.host:test("systemctl is-enabled -q caddy && systemctl is-active -q caddy") then
    if reload then ctx.host:caddy_reload(CADDYFILE) end
    in_place(ctx, "caddy enabled and running")
  else
    ctx.host:run("systemctl enable caddy && systemctl restart caddy", { sudo = true })
    changed("caddy enabled and started")
  end
end

-- apps_dir: the directory the apps live in, owned by the deploy user. One
-- outside the deploy user's reach (the default /opt/raijin) is made by root
-- for the deploy user.
function M.apps_dir(ctx)
  local dir = ctx.paths.apps_dir
  if ctx.host:test([[test -d "$APPS_DIR" && test -w "$APPS_DIR"]], { env = { APPS_DIR = dir } }) then
    in_place(ctx, "apps directory " .. dir)
  else
    ctx.host:run([[mkdir -p "$APPS_DIR" 2>/dev/null || sudo -n install -d -o "$(id -u)" -g "$(id -g)" -m 0755 "$APPS_DIR"]], { env = { APPS_DIR = dir } })
    changed("apps directory " .. dir .. " created")
  end
end

return M
