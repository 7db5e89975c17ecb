-- The built-in recipe for installation_mode = "python-package": the deploy of
-- a wheel, step by step. A project changes any step with raijin.override /
-- before / after in its deploy.lua, or with hook files in .raijin/hooks/.
--
-- On the server, every version has its own virtual environment,
-- v{version}/.venv, and {app_dir}/.venv is a symlink to the current one: a
-- rollback switches the link and reinstalls nothing. The requirements live in
-- a shared environment, .deps/{key}, where key is a hash of requirements.txt,
-- the local wheels it names and the interpreter: a version whose requirements
-- did not change reuses it and installs only its own wheel. Each version's
-- .venv sees that environment through a .pth file and gets copies of its
-- commands (gunicorn, ...) that run under the version's own python.
--
-- The remote scripts are fixed, one per installer (uv, or python's venv and
-- pip) where they differ; the values come in the environment, and options
-- that are on or off come as variables set or not (NO_INDEX=1).
local raijin = require("raijin")
local common = require("raijin.common")

-- The app directory's entry point: .venv -> v{version}/.venv.
local function link(ctx)
  return { name = ".venv", target = ".venv" }
end

-- A requirement line that names a local file: the path, else nil.
-- Recognised: ./x.whl, ../x.whl, /abs/x.whl, x.whl (also .tar.gz, .zip),
-- file:PATH, and "name @ file:PATH". Other lines are left to the index.
local function local_path(spec)
  local url = spec:match("^[%w%._%-%[%],]+%s*@%s*(%S+)$") or spec
  local p = url:match("^file://(/.*)$") or url:match("^file:(.*)$")
  if p then return p end
  if url:find("://", 1, true) or url:sub(1, 1) == "-" then return nil end
  if url:match("^%.%.?/") or url:sub(1, 1) == "/" or url:match("%.whl$") or url:match("%.tar%.gz$") or url:match("%.zip$") then
    return url
  end
  return nil
end

-- Reads requirements.txt on this machine. Lines that name local files are
-- rewritten to ./wheels/{name}, and the files are shipped in
-- v{version}/wheels/. When every requirement is such a file the server
-- installs with --no-index: no network needed.
local function read_requirements(ctx)
  local c = ctx.config
  local text = ctx["local"]:read(ctx.shared.requirements)
  local req = { lines = {}, files = {}, offline = true }
  local seen = {}
  local n = 0
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    n = n + 1
    local spec = line:gsub("%s+#.*$", ""):match("^%s*(.-)%s*$")
    local target, marker = spec:match("^(.-)%s*(;.*)$")
    target, marker = target or spec, marker or ""
    local p = spec ~= "" and local_path(target) or nil
    local opt = spec:match("^(%-%-?[%a-]+)")
    if spec == "" or spec:sub(1, 1) == "#" then
      req.lines[#req.lines + 1] = line
    elseif opt == "-r" or opt == "--requirement" or opt == "-c" or opt == "--constraint" or opt == "-e" or opt == "--editable"
      or ((opt == "-f" or opt == "--find-links") and not spec:find("://", 1, true)) then
      error(c.requirements .. ":" .. n .. ": " .. spec .. ": raijin ships one requirements file and the files it names; " ..
        "write the requirements in it, each local wheel by its path (pip wheel -w wheels ...)", 0)
    elseif p then
      local file = raijin.path(ctx, p)
      if not ctx["local"]:exists(file) then
        error(c.requirements .. ":" .. n .. ": local requirement " .. p .. " does not exist (paths are relative to the project directory)", 0)
      end
      if not (p:match("%.whl$") or p:match("%.tar%.gz$") or p:match("%.zip$")) then
        error(c.requirements .. ":" .. n .. ": " .. p .. " is not a wheel or sdist file: build it with `pip wheel` and name the .whl", 0)
      end
      local name = raijin.basename(p)
      if not seen[name] then
        seen[name] = true
        req.files[#req.files + 1] = { path = file, name = name }
      end
      req.lines[#req.lines + 1] = "./wheels/" .. name .. (marker ~= "" and " " .. marker or "")
    else
      req.offline = false
      req.lines[#req.lines + 1] = line
    end
  end
  while #req.lines > 0 and req.lines[#req.lines] == "" do req.lines[#req.lines] = nil end
  req.text = table.concat(req.lines, "\n") .. "\n"
  req.lines = nil
  return req
end

-- host:test, answering false in --dry-run (the recording host says yes to
-- everything), so that a dry run shows a first install.
local function has(ctx, cmd)
  return ctx.host:test(cmd) and not ctx.dry_run
end

-- What the interpreter $PY is: its path and its version (X.Y), one a line.
-- ensurepip is what `python3 -m venv` installs pip with; Debian ships it in
-- python3-venv.
local PROBE = [["$PY" -c 'import sys, venv; print(sys.executable); print("%d.%d" % sys.version_info[:2])']]
local PROBE_WITH_ENSUREPIP = [["$PY" -c 'import sys, venv; print(sys.executable); print("%d.%d" % sys.version_info[:2]); import ensurepip']]
-- The python uv picks for $PY_REQUEST (python_version; empty: any).
local UV_FIND_PYTHON = [[uv python find ${PY_REQUEST:+"$PY_REQUEST"}]]

-- The interpreter on the host, {uv, exe, path, version}: uv
-- when it is there, else python3 (or python{python_version}) with its venv
-- module.
local function interpreter(ctx)
  local c = ctx.config
  local py = { uv = has(ctx, "command -v uv >/dev/null 2>&1") }
  local ok, res
  if py.uv then
    ok, res = pcall(function() return ctx.host:run(UV_FIND_PYTHON, { env = { PY_REQUEST = c.python_version } }) end)
  else
    py.exe = c.python_version ~= "" and "python" .. c.python_version or "python3"
    ok, res = pcall(function() return ctx.host:run(PROBE_WITH_ENSUREPIP, { env = { PY = py.exe } }) end)
  end
  if not ok then
    local want = c.python_version ~= "" and c.python_version or "3"
    local need = py.uv and ("uv found no python " .. want .. " on the server (offline it can only use one already installed: `uv python install " .. want .. "`)")
      or ("raijin needs " .. py.exe .. " with its venv module on the server (Debian/Ubuntu: apt install python3 python3-venv), or uv")
    error(tostring(res) .. "\n" .. need, 0)
  end
  if py.uv then
    py.exe = res.stdout:match("^%s*(%S+)") or "python3"
    res = ctx.host:run(PROBE, { env = { PY = py.exe } })
  end
  py.path, py.version = res.stdout:match("^(%S+)\n(%S+)")
  py.path, py.version = py.path or py.exe, py.version or "unknown"
  return py
end

-- Run in v{version}: the key of the requirements' environment, made of what
-- it is made of ($PY_VERSION, $INSTALLER, requirements.txt, the wheels),
-- never of where it was made; then "complete" when .deps/{key} is, and
-- "venv={key}" with the key this version's .venv was made with (on a deploy
-- of the same version again).
local DEPS_KEY = [[key=$({ printf '%s\n' "$PY_VERSION" "$INSTALLER"; cat requirements.txt 2>/dev/null; if [ -d wheels ]; then cd wheels && sha256sum -- *; fi; } | sha256sum | cut -c1-16); echo "$key"; if [ -f ../.deps/$key/.raijin-complete ]; then echo complete; fi; if [ -x .venv/bin/python ] && [ -f .deps ]; then echo "venv=$(cat .deps)"; fi]]

-- Run in the app directory: a fresh .deps/$KEY, made with $PY.
local MAKE_DEPS = {
  uv = [[rm -rf ".deps/$KEY" && uv venv --quiet --python "$PY" ".deps/$KEY"]],
  pip = [[rm -rf ".deps/$KEY" && "$PY" -m venv ".deps/$KEY"]],
}

-- Run in v{version}: requirements.txt installed into .deps/$KEY (with
-- --no-index when NO_INDEX is set, --find-links wheels when WHEELS is),
-- then .deps/$KEY marked complete.
local INSTALL_REQUIREMENTS = {
  uv = [[uv pip install --quiet --python "../.deps/$KEY/bin/python" ${NO_INDEX:+--no-index} ${WHEELS:+--find-links wheels} -r requirements.txt && touch "../.deps/$KEY/.raijin-complete"]],
  pip = [["../.deps/$KEY/bin/python" -m pip install --quiet --disable-pip-version-check ${NO_INDEX:+--no-index} ${WHEELS:+--find-links wheels} -r requirements.txt && touch "../.deps/$KEY/.raijin-complete"]],
}
-- The same without a requirements file: the environment only holds the tools.
local MARK_DEPS_COMPLETE = [[touch "../.deps/$KEY/.raijin-complete"]]

-- Installs the requirements into .deps/{key}, unless an
-- earlier version did already (same key). Returns the environment's path;
-- ctx.python_deps says which key it has and which one v{version}/.venv was
-- made with.
local function dependencies(ctx, py)
  local vdir = ctx.paths.version_dir
  local installer = py.uv and "uv" or "pip"
  local res = ctx.host:run(DEPS_KEY, { cwd = vdir, env = { PY_VERSION = py.version, INSTALLER = installer } })
  local key = res.stdout:match("%x+") or "dry-run"
  local deps = ".deps/" .. key
  ctx.python_deps = { key = key, path = ctx.paths.app_dir .. "/" .. deps, venv_key = res.stdout:match("venv=(%x+)") }
  local since = ctx.previous and (" since " .. ctx.previous) or ""
  if res.stdout:find("complete", 1, true) and not ctx.dry_run then
    raijin.log("requirements unchanged" .. since .. ": reusing " .. deps .. ", nothing to install")
    return ctx.python_deps.path
  end
  local req = ctx.shared.req
  raijin.log((req and "installing requirements" or "making the tools environment") .. " into " .. deps)
  ctx.host:run(MAKE_DEPS[installer], { cwd = ctx.paths.app_dir, env = { KEY = key, PY = py.uv and py.path or py.exe } })
  if req then
    ctx.host:run(INSTALL_REQUIREMENTS[installer], { cwd = vdir, env = {
      KEY = key, NO_INDEX = req.offline and "1" or nil, WHEELS = #req.files > 0 and "1" or nil,
    } })
  else
    ctx.host:run(MARK_DEPS_COMPLETE, { cwd = vdir, env = { KEY = key } })
  end
  return ctx.python_deps.path
end

-- A fresh $VENV (v{version}/.venv, without the key file $VERSION_DIR/.deps)
-- that sees the environment $DEPS through raijin-deps.pth and has copies of
-- its commands, rewritten to run under $VENV's python. (pip and uv write
-- `#!/bin/sh` and an exec line for a long path: the first three lines.)
local LINK_DEPS = [[
site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
printf '%s\n' "$("$DEPS/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')" > "$site/raijin-deps.pth"
for f in "$DEPS"/bin/*; do
  n=${f##*/}
  case $n in python*|activate*|Activate.ps1) continue;; esac
  head -n3 "$f" | grep -qF "$DEPS/bin/python" || continue
  sed "1,3s|$DEPS/bin/python|$VENV/bin/python|" "$f" > "$VENV/bin/$n"
  chmod 0755 "$VENV/bin/$n"
done]]
local MAKE_VENV = {
  uv = 'set -e\nrm -rf "$VENV" "$VERSION_DIR/.deps"\nuv venv --quiet --python "$PY" "$VENV"\n' .. LINK_DEPS,
  pip = 'set -e\nrm -rf "$VENV" "$VERSION_DIR/.deps"\n"$PY" -m venv --without-pip "$VENV"\n' .. LINK_DEPS,
}

-- Run in v{version}: the app's wheel $WHEEL into .venv (alone, with
-- --no-deps, when NO_DEPS is set), then, once all went well, the key
-- $KEY into .deps. With pip, `pip check` (CHECK_WHEEL) does that last part.
local INSTALL_WHEEL = {
  uv = [[uv pip install --quiet --python .venv/bin/python ${NO_DEPS:+--no-deps} "$WHEEL" && printf '%s\n' "$KEY" > .deps]],
  pip = [[.venv/bin/python -m pip install --quiet --disable-pip-version-check ${NO_DEPS:+--no-deps} "$WHEEL"]],
}
local CHECK_WHEEL = [[.venv/bin/python -m pip check --disable-pip-version-check && printf '%s\n' "$KEY" > .deps]]
local RECORD_KEY = [[printf '%s\n' "$KEY" > .deps]]

-- Makes v{version}/.venv, which sees the environment deps
-- and holds the app's wheel; not again when it is up to date (same wheel,
-- same requirements).
local function version_venv(ctx, py, deps)
  local p = ctx.paths
  if ctx.python_deps.venv_key == ctx.python_deps.key and not ctx.dist_sent and not ctx.dry_run then
    raijin.log("v" .. ctx.version .. "/.venv is up to date (same wheel, same requirements)")
    return
  end
  if ctx.previous == ctx.version then
    raijin.log("rebuilding the environment of the serving version " .. ctx.version .. " in place: give each build its own version for a safe switch")
  end
  local installer = py.uv and "uv" or "pip"
  ctx.host:run(MAKE_VENV[installer], { env = {
    VENV = p.version_dir .. "/.venv", VERSION_DIR = p.version_dir, DEPS = deps, PY = py.uv and py.path or py.exe,
  } })
  -- With a requirements file it lists every dependency (as `uv export` or
  -- `pip freeze` write it): the wheel goes in alone, then pip checks that
  -- what it requires is there. .deps records the key once all went well.
  local req = ctx.shared.req
  local env = { WHEEL = ctx.shared.dist.name, NO_DEPS = req and "1" or nil }
  if py.uv then env.KEY = ctx.python_deps.key end
  ctx.host:run(INSTALL_WHEEL[installer], { cwd = p.version_dir, env = env })
  if not py.uv then
    ctx.host:run(req and CHECK_WHEEL or RECORD_KEY, { cwd = p.version_dir, env = { KEY = ctx.python_deps.key } })
  end
end

-- Run in the app directory: each .deps/{key} that no version's .deps names.
local PRUNE_DEPS = [[if [ -d .deps ]; then for d in .deps/*/; do k=${d#.deps/}; k=${k%/}; cat v*/.deps 2>/dev/null | grep -qxF "$k" || rm -rf "$d"; done; fi]]

-- 1. Resolve secrets: $name values of each host's env file, on this machine.
raijin.phase("secrets", { where = "local" }, common.secrets)

-- 2. Build the wheel with build_command, on this machine; read the
--    requirements file and find the local wheels it names.
raijin.phase("build", { where = "local" }, function(ctx)
  common.build(ctx)
  if ctx.shared.requirements then ctx.shared.req = read_requirements(ctx) end
end)

-- 3. Transfer the wheel and the .env to {app_dir}/v{version}/, with
--    requirements.txt and the local wheels it names (in wheels/).
raijin.phase("transfer", function(ctx)
  ctx.dist_sent = common.transfer(ctx, { mode = "0644" })
  local req = ctx.shared.req
  if req then
    local vdir = ctx.paths.version_dir
    ctx.host:write(vdir .. "/requirements.txt", req.text, { mode = "0644" })
    for _, f in ipairs(req.files) do
      ctx.host:upload(f.path, vdir .. "/wheels/" .. f.name, { mode = "0644" })
    end
  end
end)

-- 4. Install: the requirements (only when they changed), the version's own
--    .venv with the wheel, .appenv; then switch .env and the .venv symlink to
--    the new version, atomically. Everything before the switch leaves the
--    previous version serving; if a later step fails, it is switched back.
raijin.phase("install", function(ctx)
  local py = interpreter(ctx)
  local deps = dependencies(ctx, py)
  version_venv(ctx, py, deps)
  common.write_appenv(ctx)
  common.switch(ctx, ctx.version, link(ctx))
end)
raijin.undo("install", function(ctx) common.restore(ctx, link(ctx)) end)

-- 5. Release: release_command, in the app directory with .appenv sourced.
raijin.phase("release", common.release)

-- 6. Services: systemd units, daemon-reload, enable, restart, check.
raijin.phase("services", common.services)

-- 7. Proxy: the Caddy site, validated and reloaded.
raijin.phase("proxy", common.proxy)

-- 8. Record the version in .versions (newest first).
raijin.phase("record", common.record)

-- 9. Prune versions beyond versions_to_keep, then the .deps environments
--    that no version left uses.
raijin.phase("prune", function(ctx)
  common.prune(ctx)
  ctx.host:run(PRUNE_DEPS, { cwd = ctx.paths.app_dir })
end)

-- 10. Done: print the URL, run [hooks] post_deploy.
raijin.phase("done", { where = "local" }, common.done)

raijin.phases { "secrets", "build", "transfer", "install", "release", "services", "proxy", "record", "prune", "done" }

-- Rollback (switch .env and .venv back to an older version: its environment
-- is still there, nothing is installed; restart), prune (with the .deps
-- environments no version uses) and down: the same flows as every built-in
-- recipe, in recipes/common.lua.
common.other_flows(link)

-- Server bootstrap and export-config: see recipes/server.lua.
require("raijin.server").declare()
