-- raijin.steps.venv: the Python environments on the server.
--
-- Every version has its own virtual environment, v{version}/.venv, and
-- {app_dir}/.venv is a symlink to the current one: a rollback switches the
-- link and reinstalls nothing. The requirements live in a shared
-- environment, .deps/{key}, where key is a hash of requirements.txt, the
-- local wheels it names and the interpreter: a version whose requirements
-- did not change reuses it and installs only its own wheel. Each version's
-- .venv sees that environment through a .pth file and gets copies of its
-- commands (gunicorn, ...) that run under the version's own python.
--
-- The scripts are fixed, one per installer (uv, or python's venv and pip)
-- where they differ; the values come in the environment, and options that
-- are on or off come as variables set or not (NO_INDEX=1).
local raijin = require("raijin")

local M = {}

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

-- interpreter: the interpreter on the host, {uv, exe, path, version}: uv
-- when it is there, else python3 (or python{python_version}) with its venv
-- module.
function M.interpreter(ctx)
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

-- Run in the app directory: a fresh .deps/$KEY, made with $PY; never
-- through a .deps that is a symbolic link (out of the app directory).
local NO_DEPS_LINK = [[{ [ ! -L .deps ] || { echo ".deps in $PWD is a symbolic link: raijin writes and deletes only inside the app directory; remove the link" >&2; false; }; } && ]]
local MAKE_DEPS = {
  uv = NO_DEPS_LINK .. [[rm -rf -- ".deps/$KEY" && uv venv --quiet --python "$PY" ".deps/$KEY"]],
  pip = NO_DEPS_LINK .. [[rm -rf -- ".deps/$KEY" && "$PY" -m venv ".deps/$KEY"]],
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

-- dependencies: installs the requirements into .deps/{key}, unless an
-- earlier version did already (same key). Returns the environment's path;
-- ctx.python_deps says which key it has and which one v{version}/.venv was
-- made with.
function M.dependencies(ctx, py)
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

-- version_venv: makes v{version}/.venv, which sees the environment deps
-- and holds the app's wheel; not again when it is up to date (same wheel,
-- same requirements).
function M.version_venv(ctx, py, deps)
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
-- Only real directories inside the app directory: a symbolic link (.deps
-- itself, or an entry in it) is never followed, so that rm -rf cannot
-- reach out of the app directory.
local PRUNE_DEPS = [[
if [ -d .deps ] && [ ! -L .deps ]; then
  top=$(pwd -P)
  for d in .deps/*/; do
    d=${d%/}
    [ -d "$d" ] && [ ! -L "$d" ] || continue
    case $(realpath -- "$d") in "$top/.deps/"*) ;; *) continue ;; esac
    k=${d#.deps/}
    cat v*/.deps 2>/dev/null | grep -qxF -- "$k" || rm -rf -- "$d"
  done
fi]]

-- prune: the requirements' environments that no version left uses.
function M.prune(ctx)
  ctx.host:run(PRUNE_DEPS, { cwd = ctx.paths.app_dir })
end

return M
