-- raijin.steps.control: `raijin app start|stop|restart [PROC]`: the units of
-- every process, or of ctx.process alone, started, stopped or restarted, and
-- checked as a deploy checks them (web: its health check, or an HTTP
-- answer; the others: still active after a short settle).
local raijin = require("raijin")
local services = require("raijin.steps.services")

local M = {}

local past = { start = "started", stop = "stopped", restart = "restarted" }

-- act: systemctl ACTION on the units, then the check (not after a stop).
-- web is the live slot's unit; with a unix-socket upstream, starting or
-- stopping it takes its socket along (a stopped service behind a live
-- socket would start again on the next request). Restarting web is what a
-- redeploy does: with blue/green, the current version starts in the other
-- slot and takes over once ready, so no request waits for it.
function M.act(ctx, action)
  local procs = raijin.process_names(ctx)
  if ctx.process then
    -- A host whose roles leave that process out has nothing to do.
    local runs = false
    for _, p in ipairs(procs) do runs = runs or p == ctx.process end
    if not runs then
      raijin.log(ctx.process .. " does not run on this host (its roles: " .. table.concat(ctx.host.roles, ", ") .. ")")
      return
    end
    procs = { ctx.process }
  end
  -- workers: the units of the processes that run all the time; timers:
  -- a scheduled process's (stopping one stops the runs to come, not one
  -- going; a start or restart starts it without a run, as a deploy does:
  -- see services.start_timers); replicated: those
  -- with replicas, whose instances start and restart one at a time
  -- (services.replicas).
  local web, workers, timers, replicated = false, {}, {}, {}
  for _, p in ipairs(procs) do
    local spec, base = services.spec(ctx, p), ctx.config.app .. "-" .. p
    if p == "web" then
      web = true
    elseif spec.schedule ~= "" then
      timers[#timers + 1] = base .. ".timer"
    elseif spec.replicas > 0 then
      replicated[#replicated + 1] = { proc = p, base = base, count = spec.replicas }
    else
      workers[#workers + 1] = base .. ".service"
    end
  end
  if action == "stop" then
    -- Every instance stops; those beyond raijin.toml's count (app scale's)
    -- are disabled too, so that a boot starts what app start would.
    for _, r in ipairs(replicated) do
      workers[#workers + 1] = r.base .. "@*.service"
      ctx.host:defer(function() services.disable_extra(ctx, r) end)
    end
    replicated = {}
  end
  local live = raijin.slot(ctx, ctx.live or "blue")
  local done = {}
  if web and action == "restart" then
    ctx.host:batch(function()
      -- A version an older raijin deployed has no unit files of its own
      -- (v{version}/.units): it gets this project's.
      services.write_units(ctx, ctx.paths.app_dir .. "/.units-current")
      ctx.units_fallback = ".units-current"
      services.cycle_web(ctx, ctx.previous or ctx.version, function()
        if #workers > 0 then ctx.host:systemctl("restart", table.unpack(workers)) end
        return workers
      end)
    end)
    services.retire(ctx)
    done = { raijin.slot(ctx, ctx.live).unit, table.unpack(workers) }
  elseif #workers == 0 and not web then
    -- replicas and timers only: below
  else
    local units = {}
    if web then
      if live.socket_unit and action ~= "restart" then units[#units + 1] = live.socket_unit end
      units[#units + 1] = live.unit
    end
    for _, u in ipairs(workers) do units[#units + 1] = u end
    -- Deferred: it rides with the check's round trip (or, after a stop,
    -- with the audit line's).
    ctx.host:defer(function() ctx.host:systemctl(action, table.unpack(units)) end)
    if action ~= "stop" then
      ctx.host:batch(function()
        services.wait_ready(ctx, web and live or nil, workers)
      end)
    end
    done = units
  end
  for _, r in ipairs(replicated) do
    services.replicas(ctx, r, { restart = action == "restart" })
    done[#done + 1] = r.base .. "@*.service"
  end
  if #timers > 0 then
    if action == "stop" then
      ctx.host:systemctl("stop", table.unpack(timers))
    else
      services.start_timers(ctx, timers)
    end
    for _, u in ipairs(timers) do done[#done + 1] = u end
  end
  raijin.log(past[action] .. " " .. table.concat(done, " "))
end

-- scale, `raijin app scale PROC N`: ctx.replicas instances of ctx.process
-- run on this host, from the template unit the deployed version
-- installed: the missing ones start one at a time (each must stay up),
-- those beyond N stop. raijin.toml is not changed: the next deploy runs
-- its count again.
function M.scale(ctx)
  local p = ctx.process
  local runs = false
  for _, x in ipairs(raijin.process_names(ctx)) do runs = runs or x == p end
  if not runs then
    raijin.log(p .. " does not run on this host (its roles: " .. table.concat(ctx.host.roles, ", ") .. ")")
    return
  end
  local r = { proc = p, base = ctx.config.app .. "-" .. p, count = ctx.replicas }
  local res = services.replicas(ctx, r, { trim = true })
  for line in (res and res.stdout or ""):gmatch("[^\n]+") do raijin.log(line) end
  raijin.log(string.format("%s runs %d replica(s): %s@1.service .. @%d.service", p, r.count, r.base, r.count))
end

function M.start(ctx) M.act(ctx, "start") end
function M.stop(ctx) M.act(ctx, "stop") end
function M.restart(ctx) M.act(ctx, "restart") end

return M
