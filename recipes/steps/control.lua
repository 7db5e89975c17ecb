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
  local web, workers = false, {}
  for _, p in ipairs(procs) do
    if p == "web" then web = true else workers[#workers + 1] = raijin.unit_name(ctx, p) end
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
  raijin.log(past[action] .. " " .. table.concat(done, " "))
end

function M.start(ctx) M.act(ctx, "start") end
function M.stop(ctx) M.act(ctx, "stop") end
function M.restart(ctx) M.act(ctx, "restart") end

return M
