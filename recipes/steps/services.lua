-- raijin.steps.services: the app's systemd units, and the services and
-- restart steps.
--
-- The web process runs in one of two slots, blue and green (units
-- {app}@blue.service and {app}@green.service; raijin.slot gives their
-- addresses). With webserver.blue_green (the default), a deploy, a redeploy
-- and a rollback start the new version in the slot that does not serve
-- (and restart the workers), wait until it is ready (health_check answers
-- 2xx, or without one: it answers HTTP at all; the workers stay active
-- meanwhile), switch Caddy to it by creating or deleting the live marker
-- (ctx.paths.live, which the site's matcher looks at: no reload), and stop
-- the old slot last, with the deploy's last round trip, once Caddy has no
-- request left on its way to it (the drain; systemd sends SIGTERM).
-- Without blue/green, the web process is restarted in place in blue.
--
-- Each version keeps the unit files it was deployed with, in
-- v{version}/.units/: the undo and a rollback put those back.
--
-- Its scripts are fixed; the values they need come in the environment. A
-- list of units is one value, UNITS, the names separated by spaces (a unit
-- name has none), split with globbing off (set -f).
local raijin = require("raijin")
local templates = require("raijin.steps.templates")
local sandbox = require("raijin.steps.sandbox")

local M = {}

-- The other slot.
function M.other(slot)
  return slot == "green" and "blue" or "green"
end

-- The name of the web unit file in local_config_dir and in v{version}/.units:
-- one file for both slots.
local function web_file(ctx)
  return ctx.config.app .. ".service"
end

-- spec: a process as raijin.toml gives it: command, schedule ("" runs
-- always) and replicas (0: one unit of its own, not a template).
function M.spec(ctx, proc)
  local p = ctx.config.process_specs[proc]
  return { command = p.command, schedule = p.schedule, replicas = p.replicas }
end

-- The unit files of this app's processes: a list of {name, content, own,
-- proc}. web's is {app}.service, which runs in both slots; a process with
-- replicas has the template {app}-{process}@.service, a scheduled one
-- {app}-{process}.service (a one-shot run) and {app}-{process}.timer;
-- the others {app}-{process}.service. A file of the same name in
-- local_config_dir is used as it is (own); otherwise it is generated from
-- templates/process.service (and process.timer).
function M.units(ctx)
  local c = ctx.config
  local units = {}
  local confined = sandbox.lines(ctx)
  local function add(proc, name, template, vars)
    local own = raijin.path(ctx, c.local_config_dir .. "/" .. name)
    local u = { name = name, proc = proc }
    if ctx["local"]:exists(own) then
      u.content, u.own = ctx["local"]:read(own), true
    else
      vars.process, vars.own, vars.sandbox = proc, name, confined
      u.content = templates.render(ctx, template, vars)
    end
    units[#units + 1] = u
  end
  for _, proc in ipairs(raijin.process_names(ctx)) do
    local p = M.spec(ctx, proc)
    local base = c.app .. "-" .. proc
    if proc == "web" then
      add(proc, web_file(ctx), "process.service", { command = p.command, slotted = true })
    elseif p.schedule ~= "" then
      add(proc, base .. ".service", "process.service", { command = p.command, oneshot = true })
      add(proc, base .. ".timer", "process.timer", { service = base .. ".service", schedule = p.schedule })
    elseif p.replicas > 0 then
      add(proc, base .. "@.service", "process.service", { command = p.command, replica = true })
    else
      add(proc, base .. ".service", "process.service", { command = p.command })
    end
  end
  return units
end

-- workers: the unit files of the processes but web (files), and what
-- runs them: services (restarted by a deploy all at once, checked
-- alongside the web process), timers (a scheduled process: the deploy
-- (re)starts the timer, never the run) and replicated, a list of
-- {proc, base, count}: the instances base@1.service .. base@{count}.service,
-- restarted one at a time.
function M.workers(ctx)
  local w = { files = {}, services = {}, timers = {}, replicated = {} }
  for _, proc in ipairs(raijin.process_names(ctx)) do
    if proc ~= "web" then
      local p = M.spec(ctx, proc)
      local base = ctx.config.app .. "-" .. proc
      if p.schedule ~= "" then
        table.insert(w.files, base .. ".service")
        table.insert(w.files, base .. ".timer")
        table.insert(w.timers, base .. ".timer")
      elseif p.replicas > 0 then
        table.insert(w.files, base .. "@.service")
        table.insert(w.replicated, { proc = proc, base = base, count = p.replicas })
      else
        table.insert(w.files, base .. ".service")
        table.insert(w.services, base .. ".service")
      end
    end
  end
  return w
end

-- The socket unit of a slot (with a unix-socket upstream).
function M.socket_unit(ctx, slot)
  local s = raijin.slot(ctx, slot)
  return templates.render(ctx, "web.socket", { slot = slot, socket_path = s.socket_path })
end

-- The drop-in that gives a slot its address: $PORT for a TCP upstream (in
-- an EnvironmentFile= of its own, slot.env beside it: read after the
-- app's .env, so that a PORT there does not win); its socket unit for a
-- unix socket (socket activation: LISTEN_FDS).
function M.slot_conf(ctx, slot)
  local s = raijin.slot(ctx, slot)
  local head = "# Generated by raijin for " .. ctx.config.app .. ": where the " .. slot .. " slot listens.\n"
  if s.socket_unit then
    return head .. "[Unit]\nRequires=" .. s.socket_unit .. "\nAfter=" .. s.socket_unit .. "\n"
  end
  return head .. "[Service]\nEnvironmentFile=" .. ctx.paths.unit_dir .. "/" .. s.unit .. ".d/slot.env\n"
end

-- The slot's slot.env: PORT (a TCP upstream), else nothing.
function M.slot_env(ctx, slot)
  local s = raijin.slot(ctx, slot)
  if s.socket_unit then return "" end
  return "PORT=" .. string.format("%d", s.port)
end

-- The worker units that run all the time, one each (every process but
-- web, the scheduled ones and those with replicas: see M.workers).
function M.worker_names(ctx)
  return M.workers(ctx).services
end

-- Whether this host runs the web process (the app has one, and the host
-- has the role web).
function M.has_web(ctx)
  for _, proc in ipairs(raijin.process_names(ctx)) do
    if proc == "web" then return true end
  end
  return false
end

-- The units of the processes, web first (the live slot's), then the
-- workers, the instances of raijin.toml's replicas and the timers.
function M.unit_names(ctx)
  local names = {}
  if M.has_web(ctx) then names[1] = raijin.slot(ctx, ctx.live or "blue").unit end
  local w = M.workers(ctx)
  for _, u in ipairs(w.services) do names[#names + 1] = u end
  for _, r in ipairs(w.replicated) do
    for i = 1, r.count do names[#names + 1] = r.base .. "@" .. i .. ".service" end
  end
  for _, u in ipairs(w.timers) do names[#names + 1] = u end
  return names
end

-- Every unit raijin may have installed for this app: both slots (socket
-- units first, so that stopping them in order cannot start a service
-- again), the web unit of an older raijin ({app}.socket, {app}.service),
-- the workers of every process (this host's roles or not), in each of
-- their shapes: timers before their services, the templates of replicas
-- (their instances go with them).
function M.all_unit_names(ctx)
  local app = ctx.config.app
  local names = { app .. "@blue.socket", app .. "@green.socket", app .. ".socket",
    app .. "@blue.service", app .. "@green.service", app .. ".service" }
  for _, proc in ipairs(raijin.process_names(ctx, true)) do
    if proc ~= "web" then
      -- Every shape: the one deployed may not be raijin.toml's.
      local base = app .. "-" .. proc
      names[#names + 1] = base .. ".timer"
      names[#names + 1] = base .. "@.service"
      names[#names + 1] = base .. ".service"
    end
  end
  return names
end

-- store: the version's unit files into v{version}/.units/, for the undo and
-- for a later rollback to it.
function M.store(ctx, version)
  M.write_units(ctx, ctx.paths.app_dir .. "/v" .. version .. "/.units")
end

-- write_units: this project's unit files into dir (0750, files 0640).
function M.write_units(ctx, dir)
  ctx.host:run([[mkdir -p -m 0750 "$D"]], { env = { D = dir } })
  dir = dir .. "/"
  for _, u in ipairs(M.units(ctx)) do
    ctx.host:write(dir .. u.name, u.content, { mode = "0640" })
  end
end

-- ours U: the unit file $UNIT_DIR/U is one raijin generated for $APP (its
-- first line says so), not another app's (whose name may look alike: app
-- shop's worker is shop-worker.service, as is app shop-worker's old web
-- unit) nor one of your own. Prepended to the scripts that delete units.
M.OURS = [[ours() {
  case "$(head -n1 "$UNIT_DIR/$1" 2>/dev/null)" in
    "# Generated by raijin for $APP (process "*|"# Generated by raijin for $APP: "*) return 0;;
  esac
  return 1
}
]]

-- INSTANCES defines `instances T`: the instances of the template T
-- (base@.service) that systemd knows on this host (running, failed, or
-- enabled to start at boot), one name a line. Prepended to the scripts
-- that scale or remove them.
M.INSTANCES = [[instances() {
  b=${1%@.service}
  { systemctl list-units --all --plain --no-legend "$b@*.service" 2>/dev/null | awk '{print $1}'
    ls "$UNIT_DIR"/*.wants/ 2>/dev/null; } | grep -x -e "$b@[0-9][0-9]*\.service" | sort -u
}
]]

-- Stops, disables and deletes each of $UNITS (and with $VERSIONS, each
-- unit file kept by a version in $APP_DIR, v*/.units: what was deployed,
-- whatever raijin.toml says now) that has a file in $UNIT_DIR (with its
-- drop-ins), then a daemon-reload if there was one. A template's instances
-- (replicas) stop first. Only a file raijin generated for $APP (ours), or
-- a version's own copy of it: not another app's of the same name (app
-- shop's process x-y and app shop-x's process y are both
-- shop-x-y@.service). Run as root.
M.REMOVE_UNITS = M.OURS .. M.INSTANCES .. [[set -e
found=
mine() {
  ours "$1" && return 0
  c=$1; case "$1" in "$APP"@blue.service|"$APP"@green.service) c=$APP.service;; esac
  for f in "$APP_DIR"/v*/.units/"$c"; do [ -e "$f" ] && cmp -s "$f" "$UNIT_DIR/$1" && return 0; done
  return 1
}
kept=
if [ -n "$VERSIONS" ]; then
  for f in "$APP_DIR"/v*/.units/*; do
    u=${f##*/}
    case "$u" in "$APP".service|"$APP"-*.service|"$APP"-*.timer) ;; *) continue;; esac
    case " $UNITS $kept " in *" $u "*) ;; *) kept="$kept $u";; esac
  done
fi
set -f
for u in $UNITS $kept; do
  [ -e "$UNIT_DIR/$u" ] && mine "$u" || continue
  case "$u" in *@.service)
    for x in $(instances "$u"); do systemctl disable -q --now "$x" 2>/dev/null || true; systemctl reset-failed "$x" 2>/dev/null || true; done;;
  esac
  systemctl disable -q --now "$u" 2>/dev/null || true
  rm -rf "$UNIT_DIR/$u" "$UNIT_DIR/$u.d"; systemctl reset-failed "$u" 2>/dev/null || true; found=1
  case "$u" in *.timer) rm -f "/var/lib/systemd/timers/stamp-$u";; esac
done
if [ -n "$found" ]; then systemctl daemon-reload; fi
]]

-- Installs the unit files of v$VERSION/.units (written by store; a version
-- an older raijin deployed has none: then those of $FALLBACK) in
-- $UNIT_DIR: $WEB_FILE as $SLOT_UNIT, the workers' files ($FILES: services,
-- timers, templates) under their names, and enables $ENABLE (the workers
-- that run all the time, the timers); and the slot's drop-in and socket
-- unit from $SLOT_CONF and $SOCKET_CONF. Only files that change are
-- written, and only then comes a daemon-reload; a running timer whose file
-- changed restarts from a stamp made now (see START_TIMERS). Run as root,
-- in the app directory.
local INSTALL = M.OURS .. M.INSTANCES .. [[set -e
src=v$VERSION/.units
[ -d "$src" ] || src=$FALLBACK
test -d "$src" || { echo "version $VERSION has no unit files (v$VERSION/.units)" >&2; exit 1; }
changed=
put() { # put FILE CONTENT
  if ! printf '%s\n' "$2" | cmp -s - "$1"; then
    mkdir -p "${1%/*}"; printf '%s\n' "$2" > "$1.raijin-tmp" && chmod 0644 "$1.raijin-tmp" && mv -f "$1.raijin-tmp" "$1"; changed=1
  fi
}
if [ -n "$SLOT_UNIT" ]; then
  put "$UNIT_DIR/$SLOT_UNIT" "$(cat "$src/$WEB_FILE")"
  put "$UNIT_DIR/$SLOT_UNIT.d/raijin-slot.conf" "$SLOT_CONF"
  [ -z "$SLOT_ENV" ] || put "$UNIT_DIR/$SLOT_UNIT.d/slot.env" "$SLOT_ENV"
  [ -z "$SOCKET_UNIT" ] || put "$UNIT_DIR/$SOCKET_UNIT" "$SOCKET_CONF"
fi
set -f
# A process whose shape changed (runs all the time, scheduled, replicas:
# $BASES, its unit's name without suffix) has the units of its old shape
# stopped and disabled first (their wants links go), and deleted when
# the new shape has no file of that name: raijin's own only (ours). The
# shape is the version's own (its .units), whatever raijin.toml says now.
# Each of $BASES is base:shape, the shape raijin.toml gives (what the
# deploy starts next); one the version gives otherwise (a rollback, an
# undo) is started here ($AHEAD), the others' steps skip it.
ahead=
for bs in $BASES; do
  b=${bs%:*}
  if [ -e "$src/$b.timer" ]; then want=timer; elif [ -e "$src/$b@.service" ]; then want=replicas
  elif [ -e "$src/$b.service" ]; then want=service; else continue; fi
  if [ "${bs#*:}" != "$want" ]; then
    ahead="$ahead $b:$want"
    case $want in timer) FILES="$FILES $b.service $b.timer";; replicas) FILES="$FILES $b@.service";; *) FILES="$FILES $b.service";; esac
  fi
  if [ "$want" != timer ] && [ -e "$UNIT_DIR/$b.timer" ] && ours "$b.timer"; then
    systemctl disable -q --now "$b.timer" 2>/dev/null || true; systemctl stop "$b.service" 2>/dev/null || true
    rm -f "$UNIT_DIR/$b.timer" "$STAMPS/stamp-$b.timer"; systemctl reset-failed "$b.timer" 2>/dev/null || true; changed=1
    [ "$want" = service ] || { rm -rf "$UNIT_DIR/$b.service" "$UNIT_DIR/$b.service.d"; systemctl reset-failed "$b.service" 2>/dev/null || true; }
  elif [ "$want" != service ] && [ -e "$UNIT_DIR/$b.service" ] && [ ! -e "$UNIT_DIR/$b.timer" ] && ours "$b.service"; then
    systemctl disable -q --now "$b.service" 2>/dev/null || true; systemctl reset-failed "$b.service" 2>/dev/null || true
    [ "$want" = timer ] || rm -rf "$UNIT_DIR/$b.service" "$UNIT_DIR/$b.service.d"; changed=1
  fi
  if [ "$want" != replicas ] && [ -e "$UNIT_DIR/$b@.service" ] && ours "$b@.service"; then
    for x in $(instances "$b@.service"); do systemctl disable -q --now "$x" 2>/dev/null || true; systemctl reset-failed "$x" 2>/dev/null || true; done
    rm -rf "$UNIT_DIR/$b@.service" "$UNIT_DIR/$b@.service.d"; changed=1
  fi
done
# A version deployed with other processes lacks some files: what is
# installed of those stays. A running timer whose file changed (a new
# schedule) is re-armed: an elapsed one would not look at it again.
rearm=
for u in $FILES; do
  [ -e "$src/$u" ] || continue
  was=$changed; changed=
  put "$UNIT_DIR/$u" "$(cat "$src/$u")"
  case "$u" in *.timer) [ -z "$changed" ] || rearm="$rearm $u";; esac
  changed=${changed:-$was}
done
if [ -n "$changed" ]; then systemctl daemon-reload; fi
for t in $rearm; do
  systemctl is-active -q "$t" || continue
  mkdir -p "$STAMPS" && touch "$STAMPS/stamp-$t" && systemctl restart "$t"
done
for u in $ENABLE; do [ ! -e "$UNIT_DIR/$u" ] || systemctl is-enabled -q "$u" 2>/dev/null || systemctl enable -q --no-reload "$u"; done
for bs in $ahead; do
  b=${bs%:*}
  case "${bs#*:}" in
    service) systemctl enable -q --no-reload "$b.service"; systemctl restart "$b.service";;
    timer) systemctl enable -q --no-reload "$b.timer"; systemctl is-active -q "$b.timer" || { mkdir -p "$STAMPS" && touch "$STAMPS/stamp-$b.timer" && systemctl start "$b.timer"; };;
    replicas) systemctl enable -q --no-reload "$b@1.service"; systemctl restart "$b@1.service";;
  esac
done
true]]

-- install: the units of `version` for slot (nil: workers only) and, when
-- workers, the workers' unit files.
local function install(ctx, version, slot, workers)
  local env = { UNIT_DIR = ctx.paths.unit_dir, VERSION = version, WEB_FILE = web_file(ctx), FALLBACK = ctx.units_fallback or "",
    FILES = "", ENABLE = "", STAMPS = M.STAMPS }
  if workers then
    local w = M.workers(ctx)
    local enable = { table.unpack(w.services) }
    for _, t in ipairs(w.timers) do enable[#enable + 1] = t end
    env.FILES, env.ENABLE, env.APP = table.concat(w.files, " "), table.concat(enable, " "), ctx.config.app
    local bases = {}
    for _, u in ipairs(w.services) do bases[#bases + 1] = u:gsub("%.service$", "") .. ":service" end
    for _, u in ipairs(w.timers) do bases[#bases + 1] = u:gsub("%.timer$", "") .. ":timer" end
    for _, r in ipairs(w.replicated) do bases[#bases + 1] = r.base .. ":replicas" end
    env.BASES = table.concat(bases, " ")
  end
  if slot then
    local s = raijin.slot(ctx, slot)
    env.SLOT_UNIT, env.SLOT_CONF, env.SLOT_ENV = s.unit, M.slot_conf(ctx, slot), M.slot_env(ctx, slot)
    if s.socket_unit then env.SOCKET_UNIT, env.SOCKET_CONF = s.socket_unit, M.socket_unit(ctx, slot) end
  end
  ctx.host:run(INSTALL, { sudo = true, cwd = ctx.paths.app_dir, env = env })
end

-- Runs $COUNT instances of the template $BASE@.service ($UNIT_DIR/$BASE@.service
-- must be installed): $BASE@1.service .. @$COUNT.service, one at a time:
-- each one (re)started (with $RESTART: every one; without: only one not
-- running) must stay active for $SETTLE_MS milliseconds before the next
-- one's turn, so that some keep running while the others restart. Each is
-- enabled (it starts at boot). Then, with $TRIM, instances beyond $COUNT
-- stop and are disabled; without, $COUNT grows to the highest instance
-- running (app start/restart after app scale). Run as root.
local REPLICAS = M.INSTANCES .. [[set -f
[ -e "$UNIT_DIR/$BASE@.service" ] || [ -z "$SKIP_ABSENT" ] || exit 0
[ -e "$UNIT_DIR/$BASE@.service" ] || { echo "$BASE@.service is not installed: deploy a version whose process $PROC has replicas first" >&2; exit 1; }
if [ -z "$TRIM" ]; then
  for u in $(instances "$BASE@.service"); do
    n=${u#"$BASE@"}; n=${n%.service}
    if [ "$n" -gt "$COUNT" ] && systemctl is-active -q "$u"; then COUNT=$n; fi
  done
fi
i=1
while [ "$i" -le "$COUNT" ]; do
  u=$BASE@$i.service
  systemctl is-enabled -q "$u" 2>/dev/null || systemctl enable -q --no-reload "$u"
  if [ -n "$RESTART" ] || ! systemctl is-active -q "$u"; then
    systemctl reset-failed "$u" 2>/dev/null
    systemctl restart "$u"
    end=$(( $(date +%s%3N) + SETTLE_MS ))
    while :; do
      sleep 0.1
      s=$(systemctl is-active "$u" 2>/dev/null)
      if [ "$s" != active ]; then
        echo "replica $u is $s within $SETTLE_MS ms of its start: the replicas after it were left as they were" >&2
        echo "--- journalctl -u $u (last lines)" >&2; journalctl -u "$u" -n 12 --no-pager -o cat 2>&1 | tail -n 12 >&2
        exit 4
      fi
      [ "$(date +%s%3N)" -lt "$end" ] || break
    done
    echo "started $u"
  fi
  i=$((i + 1))
done
[ -n "$TRIM" ] || exit 0
for u in $(instances "$BASE@.service"); do
  n=${u#"$BASE@"}; n=${n%.service}
  if [ "$n" -gt "$COUNT" ]; then
    systemctl disable -q --no-reload --now "$u" 2>/dev/null; systemctl reset-failed "$u" 2>/dev/null; echo "stopped $u"
  fi
done
true]]

-- replicas: r.count instances of the replicated process r (see
-- M.workers) running, one at a time (see REPLICAS). opts.restart: every
-- one restarts, else only those that do not run start; opts.trim: those
-- beyond r.count stop.
function M.replicas(ctx, r, opts)
  return ctx.host:run(REPLICAS, { sudo = true, env = {
    UNIT_DIR = ctx.paths.unit_dir, BASE = r.base, PROC = r.proc, COUNT = string.format("%d", r.count),
    RESTART = opts.restart and "1" or "", TRIM = opts.trim and "1" or "", SETTLE_MS = "1000",
    SKIP_ABSENT = opts.skip_absent and "1" or "",
  } })
end

-- Disables the instances of $BASE@.service beyond $COUNT (those app scale
-- added), stopping them: after app stop, neither app start nor a boot
-- brings them back. Run as root.
local DISABLE_EXTRA = M.INSTANCES .. [[set -f
for u in $(instances "$BASE@.service"); do
  n=${u#"$BASE@"}; n=${n%.service}
  [ "$n" -gt "$COUNT" ] || continue
  systemctl disable -q --no-reload --now "$u" 2>/dev/null; systemctl reset-failed "$u" 2>/dev/null
done
true]]

-- disable_extra: the instances of the replicated process r beyond r.count
-- disabled (see DISABLE_EXTRA).
function M.disable_extra(ctx, r)
  ctx.host:run(DISABLE_EXTRA, { sudo = true, env = { UNIT_DIR = ctx.paths.unit_dir, BASE = r.base, COUNT = string.format("%d", r.count) } })
end

-- Checks a schedule with the server's systemd ($SCHEDULE, of process
-- $PROC), which the config's own check (config.CheckCalendar) already
-- passed: a systemd older than the syntax, say.
local CHECK_SCHEDULE = [[command -v systemd-analyze >/dev/null || exit 0
out=$(systemd-analyze calendar -- "$SCHEDULE" 2>&1) && exit 0
echo "processes.$PROC.schedule: the server's systemd does not take \"$SCHEDULE\" (systemd-analyze calendar):" >&2
printf '%s\n' "$out" | tail -n 3 >&2
exit 1]]

-- Where systemd keeps the last run of a timer with Persistent=.
M.STAMPS = "/var/lib/systemd/timers"

-- Starts each timer of $TIMERS that does not run, without a run: systemd
-- counts a (re)started timer's next event from its last run (the stamp
-- file of Persistent=, in $STAMPS) or else from its previous start, and
-- would run at once an event missed since then; the stamp, made now,
-- makes the next event the first one to come. A timer that runs is left
-- alone (INSTALL re-arms one whose schedule changed). Run as root.
local START_TIMERS = [[set -f
for t in $TIMERS; do
  [ -z "$UNIT_DIR" ] || [ -e "$UNIT_DIR/$t" ] || continue
  systemctl is-active -q "$t" && continue
  mkdir -p "$STAMPS" && touch "$STAMPS/stamp-$t" || exit
  systemctl reset-failed "$t" 2>/dev/null
  systemctl start "$t" || exit
done]]

-- start_timers: the timers (names) running, none of them firing now.
function M.start_timers(ctx, timers)
  if #timers == 0 then return end
  ctx.host:run(START_TIMERS, { sudo = true, env = { TIMERS = table.concat(timers, " "), STAMPS = M.STAMPS, UNIT_DIR = ctx.paths.unit_dir } })
end

-- check_schedules: each scheduled process's schedule, checked by the
-- server's systemd; the install step calls it before the switch.
function M.check_schedules(ctx)
  for _, proc in ipairs(raijin.process_names(ctx)) do
    local p = M.spec(ctx, proc)
    if p.schedule ~= "" then
      ctx.host:run(CHECK_SCHEDULE, { env = { SCHEDULE = p.schedule, PROC = proc } })
    end
  end
end

-- Points the slot's link, .slot-$SLOT in the app directory, at v$VERSION:
-- the version the slot's unit runs. In a binary version (no .venv), $LINK
-- (the app's name) is made to point to its one distfile, so that the
-- unit's command finds it in the version directory.
local LINK_SLOT = [[set -e
v=v$VERSION
test -d "$v" || { echo "version $VERSION is not on this host" >&2; exit 1; }
if [ ! -e "$v/.venv" ] && [ ! -e "$v/$LINK" ]; then
  for f in "$v"/*; do if [ -f "$f" ] && [ ! -L "$f" ]; then ln -sfn "${f##*/}" "$v/$LINK"; break; fi; done
fi
ln -sfn "$v" ".slot-$SLOT.raijin-tmp" && mv -T -f ".slot-$SLOT.raijin-tmp" ".slot-$SLOT"]]

-- Starts the slot's unit ($SLOT_UNIT, after its socket $SOCKET_UNIT): what
-- an earlier run left in the slot (a failed deploy, an old version still
-- finishing its requests) stops first; its socket too ($STOP_SOCKET), but
-- not when it restarts in place: requests queue on the socket meanwhile.
-- When the units are all inactive, as a deploy leaves the slot that does
-- not serve, there is nothing to stop or reset (one systemctl asks, where
-- the stop and reset-failed are two, each felt on a small server). With a
-- TCP upstream, $PORT must be free then: another process on it would
-- answer in the app's place.
local START = [[set -f
st=$(systemctl show -p ActiveState --value $SLOT_UNIT $SOCKET_UNIT 2>/dev/null) || st=
clean=${st:+1}
for s in $st; do [ "$s" = inactive ] || clean=; done
if [ -z "$clean" ]; then
  systemctl stop $SLOT_UNIT $STOP_SOCKET 2>/dev/null
  systemctl reset-failed $SLOT_UNIT $SOCKET_UNIT 2>/dev/null
fi
if [ -n "$PORT" ] && command -v ss >/dev/null; then
  taken=$(ss -Hltnp "sport = :$PORT" 2>/dev/null)
  if [ -n "$taken" ]; then
    echo "port $PORT, where the $SLOT slot of webserver.upstream listens, is taken by another process:" >&2
    echo "$taken" >&2
    echo "stop that process, or choose webserver.upstream so that its port and the next one are free (or set webserver.blue_green = false)" >&2
    exit 1
  fi
fi
set -e
if [ -n "$SOCKET_UNIT" ]; then systemctl start "$SOCKET_UNIT"; fi
systemctl start "$SLOT_UNIT"]]

-- start: the version's web process started in slot (not waited for: see
-- wait_ready). ctx.started_slot tells the undo what to stop. Returns the
-- slot (raijin.slot).
function M.start(ctx, slot, version)
  local s = raijin.slot(ctx, slot)
  local in_place = not ctx.config.webserver.blue_green
  ctx.host:run(LINK_SLOT, { cwd = ctx.paths.app_dir, env = { VERSION = version, SLOT = slot, LINK = ctx.config.app } })
  install(ctx, version, slot, false)
  ctx.started_slot = slot
  ctx.host:run(START, { sudo = true, env = {
    SLOT = slot, SLOT_UNIT = s.unit, SOCKET_UNIT = s.socket_unit or "", STOP_SOCKET = (not in_place and s.socket_unit) or "",
    PORT = (s.port and not in_place) and string.format("%d", s.port) or "",
  } })
  return s
end

-- wait_ready: the web process of slot s ready (health_check, or an HTTP
-- answer on its own address), and the workers (names, restarted with it)
-- still active after their settle, checked alongside: one remote command.
function M.wait_ready(ctx, s, workers)
  if s then
    ctx.host:wait_healthy({ s.unit }, { upstream = s.upstream, settle_units = workers })
  elseif #workers > 0 then
    ctx.host:wait_healthy(workers, { http = false })
  end
end

-- Makes $SLOT the one Caddy sends requests to: the marker $LIVE exists for
-- green, not for blue. Both are atomic; Caddy looks at every request.
local SWITCH = [[set -e
if [ "$SLOT" = green ]; then mkdir -p "${LIVE%/*}"; : > "$LIVE"; else rm -f "$LIVE"; fi]]

-- switch: requests go to slot from now on. ctx.switched_from is the slot
-- they went to before (for the undo).
function M.switch(ctx, slot)
  ctx.switched_from = ctx.switched_from or ctx.live
  ctx.host:run(SWITCH, { sudo = true, env = { SLOT = slot, LIVE = ctx.paths.live } })
  ctx.live = slot
end

-- Stops the slot that no longer serves ($OLD_UNIT, and of the socket units
-- $SOCKETS the ones installed but not $NEW_SOCKET) and disables it, enables
-- the serving one ($NEW_UNIT, $NEW_SOCKET): only it starts at boot.
-- $LEGACY: the web unit of an older raijin, stopped and deleted.
--
-- First the drain: while Caddy (its admin API on the socket $ADMIN) still
-- has requests on their way to the old slot's address $OLD_ADDR (sent
-- before the switch: being answered, or still connecting to it), the old
-- process keeps running, for up to $DRAIN_MS milliseconds
-- (webserver.drain_timeout). Stopping it earlier would reset the
-- connections still waiting in its listen queue. Then SIGTERM (--no-block:
-- the process finishes what it has while the deploy ends), with the
-- disable in one systemctl, or on its own when the disable fails (its unit
-- file gone: `disable --now` then stops nothing).
local RETIRE = M.OURS .. [[set -f
# Caddy's admin API on a unix socket takes no Host (2.6) or 127.0.0.1 (2.7+).
upstreams() {
  up=$(curl -s --max-time 2 --http1.0 -H Host: --unix-socket "$ADMIN" http://localhost/reverse_proxy/upstreams 2>/dev/null)
  case "$up" in "["*) ;; *) up=$(curl -s --max-time 2 -H 'Host: 127.0.0.1' --unix-socket "$ADMIN" http://localhost/reverse_proxy/upstreams 2>/dev/null);; esac
  case "$up" in "["*) ;; *) return 1;; esac
}
if [ -n "$OLD_ADDR" ] && systemctl is-active -q "$OLD_UNIT"; then
  if [ ! -S "$ADMIN" ]; then
    echo "Caddy's admin socket ($ADMIN) is not there (is Caddy running?): $OLD_UNIT stopped without waiting for its requests"
  else
    end=$(( $(date +%s%3N) + DRAIN_MS ))
    while :; do
      upstreams || { echo "Caddy's admin API ($ADMIN) did not list its upstreams: $OLD_UNIT stopped without waiting for its requests"; break; }
      case "$up" in *"{\"address\":\"$OLD_ADDR\",\"num_requests\":0,"*) break;; *"{\"address\":\"$OLD_ADDR\","*) ;; *) break;; esac
      if [ "$(date +%s%3N)" -ge "$end" ]; then
        echo "the old version ($OLD_UNIT) still had requests in flight after $DRAIN_MS ms (webserver.drain_timeout): stopped anyway"; break
      fi
      sleep 0.05
    done
  fi
fi
systemctl enable -q --no-reload $NEW_UNIT $NEW_SOCKET || exit
systemctl disable -q --no-reload --now --no-block "$OLD_UNIT" 2>/dev/null || systemctl stop --no-block "$OLD_UNIT" 2>/dev/null
for s in $SOCKETS; do
  if [ "$s" != "$NEW_SOCKET" ] && [ -e "$UNIT_DIR/$s" ]; then systemctl stop --no-block "$s"; systemctl disable -q --no-reload "$s"; fi
done
if [ -n "$LEGACY" ]; then
  for u in $LEGACY; do
    if ours "$u"; then systemctl disable -q --now "$u"; rm -f "$UNIT_DIR/$u"; gone=1; fi
  done
  [ -z "$gone" ] || systemctl daemon-reload
fi
true]]

-- retire: once requests go to ctx.retire_slot (cycle sets it), the other
-- slot drains and stops. The record phase calls it, after the record:
-- deferred, it rides with the run's last round trip, after the Caddy site
-- and the record, so that until then the undo can send requests back to
-- the old slot, which still runs.
function M.retire(ctx)
  local slot = ctx.retire_slot
  if not slot then return end
  ctx.retire_slot = nil
  local new, old = raijin.slot(ctx, slot), raijin.slot(ctx, M.other(slot))
  local legacy = ""
  if ctx.old_web then legacy = ctx.config.app .. ".socket " .. ctx.config.app .. ".service" end
  local drain = raijin.duration(ctx.config.webserver.drain_timeout) * 1000
  ctx.host:defer(function()
    -- log: what it says (a drain cut short) is logged under the phase.
    ctx.host:run(RETIRE, { sudo = true, log = true, env = {
      OLD_UNIT = old.unit, NEW_UNIT = new.unit, NEW_SOCKET = new.socket_unit or "",
      SOCKETS = ctx.config.app .. "@blue.socket " .. ctx.config.app .. "@green.socket",
      LEGACY = legacy, UNIT_DIR = ctx.paths.unit_dir, APP = ctx.config.app,
      OLD_ADDR = ctx.config.webserver.blue_green and old.upstream or "",
      ADMIN = ctx.paths.caddy_admin, DRAIN_MS = string.format("%d", drain),
    } })
  end)
end

-- Stops an older raijin's web unit ({app}.service and {app}.socket) and
-- deletes them: before the first restart in place, whose port it holds.
local STOP_LEGACY = M.OURS .. [[set -f
for u in $LEGACY; do
  if ours "$u"; then systemctl disable -q --now "$u"; rm -f "$UNIT_DIR/$u"; fi
done
systemctl daemon-reload]]

-- Restarts the workers $UNITS that run all the time, but one the version
-- installed has in another shape (a timer's one-shot, or no file: see
-- INSTALL's $AHEAD), which INSTALL started.
local RESTART_SERVICES = [[set -f
units=
for u in $UNITS; do
  [ -e "$UNIT_DIR/$u" ] && [ ! -e "$UNIT_DIR/${u%.service}.timer" ] && units="$units $u"
done
[ -z "$units" ] || systemctl restart $units]]

-- running_in: of services (raijin.toml's workers that run all the time),
-- those that run all the time in a version whose unit files are units (a
-- set, see unit_files; nil: all of them): a rollback or an undo waits for
-- those only.
function M.running_in(units, services)
  if not units then return services end
  local out = {}
  for _, u in ipairs(services) do
    if units[u] and not units[(u:gsub("%.service$", ".timer"))] then out[#out + 1] = u end
  end
  return out
end

-- restart_workers: the worker units of `version` installed, the workers
-- restarted (not waited for: see wait_ready), the timers of scheduled
-- processes started when they do not run (which starts no run: the next
-- run, at its time, runs the new version), and the replicas restarted one at a time, each
-- waited for (see M.replicas), instances beyond raijin.toml's count
-- stopped. ctx.workers_restarted tells the undo to restart them with the
-- previous version's units. Returns the workers to wait for.
function M.restart_workers(ctx, version)
  local w = M.workers(ctx)
  if #w.files == 0 then return w.services end
  install(ctx, version, nil, true)
  ctx.workers_restarted = true
  if #w.services > 0 then
    ctx.host:run(RESTART_SERVICES, { sudo = true, env = { UNITS = table.concat(w.services, " "), UNIT_DIR = ctx.paths.unit_dir } })
  end
  M.start_timers(ctx, w.timers)
  for _, r in ipairs(w.replicated) do M.replicas(ctx, r, { restart = true, trim = true, skip_absent = true }) end
  return M.running_in(ctx.target_units, w.services)
end

-- install_site: right after the switch, the deploy's Caddy site (left
-- alone when it did not change, as on every deploy that keeps the
-- config): a changed upstream takes effect with the switch, not a round
-- trip later. Not in a redeploy, which leaves the site alone.
function M.install_site(ctx)
  if ctx.redeploy or ctx.old_web then return end
  local proxy = require("raijin.steps.proxy")
  local site = proxy.site(ctx).content
  ctx.host:caddy_reload(ctx.paths.caddy_site, site)
  -- The proxy step need not look again (see raijin.steps.proxy.run).
  ctx.site_installed = site
end

-- cycle_web: `version`'s web process takes over: with blue/green it
-- starts in the slot that does not serve, and requests switch to it once it
-- is ready (the old slot stops later: see retire); in place otherwise.
-- restart_workers (optional) is called right after the web process's start,
-- in the same round trip, and returns the workers it restarted: they are
-- checked alongside the web process. The
-- Caddy site of an older raijin (one upstream, no slots) is replaced
-- first: the new one sends requests to blue's address, as the old one did,
-- until the switch.
function M.cycle_web(ctx, version, restart_workers)
  local c = ctx.config
  local function started(slot)
    local workers = restart_workers and restart_workers() or {}
    M.wait_ready(ctx, slot, workers)
  end
  if ctx.old_web then
    local proxy = require("raijin.steps.proxy")
    ctx.host:caddy_reload(ctx.paths.caddy_site, proxy.site(ctx).content)
  end
  if c.webserver.blue_green then
    local new = M.other(ctx.live or "blue")
    if not ctx.live_unit and not ctx.old_web then
      -- Nothing ever ran in the live slot (a first deploy: blue, on
      -- webserver.upstream itself): the version starts there.
      new = ctx.live or "blue"
    end
    started(M.start(ctx, new, version))
    M.switch(ctx, new)
    M.install_site(ctx)
    ctx.retire_slot = new
  else
    if ctx.old_web then
      ctx.host:run(STOP_LEGACY, { sudo = true, env = { UNIT_DIR = ctx.paths.unit_dir, APP = c.app,
        LEGACY = c.app .. ".socket " .. c.app .. ".service" } })
    end
    if ctx.live == "green" then M.switch(ctx, "blue") end
    ctx.restarted = true
    started(M.start(ctx, "blue", version))
    M.install_site(ctx)
    ctx.retire_slot = "blue"
  end
end

-- cycle: `version` becomes the one running. The workers restart with the
-- new web process (overlapped: their settle is checked alongside its
-- check, so a deploy waits for the longer of the two, not for both in a
-- row), and requests switch to the new web process once both passed. A
-- version whose web process fails its check never gets a request, and the
-- undo restarts the workers with the previous version's own units.
function M.cycle(ctx, version)
  if M.has_web(ctx) then
    M.cycle_web(ctx, version, function() return M.restart_workers(ctx, version) end)
  else
    M.wait_ready(ctx, nil, M.restart_workers(ctx, version))
  end
end

-- Copies v$PREVIOUS/.units to v$VERSION/.units (a redeploy).
local COPY_UNITS = [[set -e
if [ "$PREVIOUS" != "$VERSION" ] && [ -d "v$PREVIOUS/.units" ]; then rm -rf "v$VERSION/.units"; cp -Rp "v$PREVIOUS/.units" "v$VERSION/.units"; fi]]

-- Removes from the host the units the previous version $PREVIOUS ran
-- (the files in v$PREVIOUS/.units) that this deploy's version does not
-- ($KEEP: the names of its unit files): a process taken out of
-- [processes], or a role taken away from the host, or a worker that moved
-- to or from replicas (its unit's name changed). Workers (timers,
-- templates with their instances) are stopped,
-- disabled and deleted; for web ($WEB_FILE), both slots and their sockets,
-- the live marker $LIVE, the maintenance page $MAINTENANCE and the Caddy
-- site $SITE (Caddy reloads). Run as
-- root, in the app directory, with the deploy's last round trip.
local REMOVE_STALE = M.OURS .. M.INSTANCES .. [[[ -d "v$PREVIOUS/.units" ] || exit 0
keep=" $KEEP "
gone=
for f in "v$PREVIOUS"/.units/*; do
  u=${f##*/}
  case "$keep" in *" $u "*) continue;; esac
  case "$u" in "$APP".service|"$APP"-*.service|"$APP"-*.timer) ;; *) continue;; esac
  case "$u" in *@.service)
    # A template's instances (replicas) go with it.
    if [ -e "$UNIT_DIR/$u" ] && { ours "$u" || cmp -s "$UNIT_DIR/$u" "$f"; }; then
      for x in $(instances "$u"); do systemctl disable -q --now "$x" 2>/dev/null; systemctl reset-failed "$x" 2>/dev/null; gone="$gone $x"; done
    fi;;
  esac
  if [ "$u" = "$WEB_FILE" ]; then
    units="$APP@blue.socket $APP@green.socket $APP@blue.service $APP@green.service"
    rm -f "$LIVE" "$MAINTENANCE"
    if [ -e "$SITE" ]; then rm -f "$SITE"; systemctl is-active -q caddy && systemctl reload caddy; fi
  else
    units=$u
  fi
  set -f
  for x in $units; do
    # Only the file this app installed: generated for it, or the previous
    # version's own copy.
    if [ -e "$UNIT_DIR/$x" ] && { ours "$x" || cmp -s "$UNIT_DIR/$x" "$f"; }; then
      systemctl disable -q --now "$x" 2>/dev/null; rm -rf "$UNIT_DIR/$x" "$UNIT_DIR/$x.d"; systemctl reset-failed "$x" 2>/dev/null
      case "$x" in *.timer) rm -f "/var/lib/systemd/timers/stamp-$x";; esac
      gone="$gone $x"
    fi
  done
  set +f
done
if [ -n "$gone" ]; then systemctl daemon-reload; echo "stopped and removed, no longer run on this host:$gone"; fi
true]]

-- remove_stale: after a deploy's services step (which sets
-- ctx.units_changed), deferred to its last round trip, after the record:
-- the units the previous version ran on this host and this one does not
-- are stopped and removed (see REMOVE_STALE). Not in a redeploy, which
-- keeps the units, nor in a rollback.
function M.remove_stale(ctx)
  if not ctx.units_changed or not ctx.previous or ctx.previous == ctx.version then return end
  local keep = {}
  for _, u in ipairs(M.units(ctx)) do keep[#keep + 1] = u.name end
  local env = { PREVIOUS = ctx.previous, KEEP = table.concat(keep, " "), WEB_FILE = web_file(ctx), APP = ctx.config.app,
    UNIT_DIR = ctx.paths.unit_dir, LIVE = ctx.paths.live, MAINTENANCE = ctx.paths.maintenance, SITE = ctx.paths.caddy_site }
  ctx.host:defer(function()
    ctx.host:run(REMOVE_STALE, { sudo = true, cwd = ctx.paths.app_dir, env = env })
  end)
end

-- run, the services step of a deploy: the version's units stored with it,
-- then cycle. All of it is one batch: one round trip.
function M.run(ctx)
  ctx.host:batch(function()
    if ctx.redeploy and ctx.previous then
      -- Code only: the new version gets the serving version's unit files
      -- (this project's, when an older raijin deployed it).
      M.write_units(ctx, ctx.paths.app_dir .. "/.units-current")
      ctx.host:run(COPY_UNITS, { cwd = ctx.paths.app_dir, env = { PREVIOUS = ctx.previous, VERSION = ctx.version } })
      ctx.units_fallback = ".units-current"
    else
      M.store(ctx, ctx.version)
      ctx.units_changed = true
      -- The undo restores a previous version an older raijin deployed (no
      -- .units) with this deploy's units.
      ctx.units_fallback = "v" .. ctx.version .. "/.units"
    end
    M.cycle(ctx, ctx.version)
  end)
end

-- restart, the restart step of a rollback: cycle to ctx.version with its
-- own unit files. A version an older raijin deployed has none: it gets
-- this project's, written to .units-current/ in the app directory.
function M.restart(ctx)
  -- The version's own shapes (see INSTALL): the workers to wait for.
  if #M.workers(ctx).services > 0 and not ctx.dry_run then ctx.target_units = M.unit_files(ctx, ctx.version) end
  ctx.host:batch(function()
    M.write_units(ctx, ctx.paths.app_dir .. "/.units-current")
    ctx.units_fallback = ".units-current"
    M.cycle(ctx, ctx.version)
  end)
end

-- Stops the slot $SLOT_UNIT (and $SOCKET_UNIT) a failed run started, and
-- disables it.
local STOP_SLOT = [[systemctl stop $SLOT_UNIT $SOCKET_UNIT 2>/dev/null; systemctl disable -q --no-reload $SLOT_UNIT $SOCKET_UNIT 2>/dev/null; true]]

-- undo: after a failed run, the previous version serves again as it did:
-- requests go back to the slot they went to (still running: it stops only
-- after the record), the slot this run started stops, and the workers run
-- the previous version's units again. previous: the version to restore.
function M.undo(ctx, previous)
  local c = ctx.config
  if c.webserver.blue_green and ctx.started_slot then
    if ctx.switched_from and ctx.switched_from ~= ctx.started_slot then
      M.switch(ctx, ctx.switched_from)
    end
    local s = raijin.slot(ctx, ctx.started_slot)
    ctx.host:run(STOP_SLOT, { sudo = true, env = { SLOT_UNIT = s.unit, SOCKET_UNIT = s.socket_unit or "" } })
  elseif ctx.restarted and M.has_web(ctx) then
    M.wait_ready(ctx, M.start(ctx, "blue", previous), {})
  end
  if ctx.workers_restarted then
    -- The units this deploy added (a new process, timer or replicas) stop
    -- and go: those of its version the previous one has not (raijin's
    -- own only). The workers restart as the previous version has them.
    local prev = M.unit_files(ctx, previous)
    ctx.target_units = prev
    if prev and ctx.units_changed then
      local new = {}
      for _, u in ipairs(M.units(ctx)) do
        if u.name ~= web_file(ctx) and not prev[u.name] then new[#new + 1] = u.name end
      end
      if #new > 0 then
        ctx.host:run(M.REMOVE_UNITS, { sudo = true, env = { UNITS = table.concat(new, " "), UNIT_DIR = ctx.paths.unit_dir,
          APP = c.app, APP_DIR = ctx.paths.app_dir, VERSIONS = "" } })
      end
    end
    M.wait_ready(ctx, nil, M.restart_workers(ctx, previous))
  end
end

-- unit_files: the names of the unit files version kept (v{version}/.units),
-- a set; nil when it has none (an older raijin deployed it).
function M.unit_files(ctx, version)
  local res = ctx.host:run([[[ -d "$D" ] && ls -1 "$D" || echo @none]], { env = { D = ctx.paths.app_dir .. "/v" .. version .. "/.units" } })
  local out = res and res.stdout or ""
  if out:match("@none") then return nil end
  local set = {}
  for name in out:gmatch("[^\n]+") do set[name] = true end
  return set
end

return M
