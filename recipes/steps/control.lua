-- raijin.steps.control: `raijin app start|stop|restart [PROC]`: the units of
-- every process, or of ctx.process alone, started, stopped or restarted, and
-- checked as a deploy checks them (web: its health check; the others: still
-- active after a short settle).
local raijin = require("raijin")

local M = {}

local past = { start = "started", stop = "stopped", restart = "restarted" }

-- act: systemctl ACTION on the units, then the check (not after a stop).
-- With a unix-socket upstream, starting or stopping web takes its socket
-- along: a stopped service behind a live socket would start again on the
-- next request.
function M.act(ctx, action)
  local procs = ctx.process and { ctx.process } or raijin.process_names(ctx)
  local units, web = {}, false
  for _, p in ipairs(procs) do
    units[#units + 1] = raijin.unit_name(ctx, p)
    if p == "web" then web = true end
  end
  local all = units
  if web and raijin.socket_path(ctx) and action ~= "restart" then
    all = { ctx.config.app .. ".socket", table.unpack(units) }
  end
  -- Deferred: it rides with the check's round trip (or, after a stop, with
  -- the audit line's).
  ctx.host:defer(function() ctx.host:systemctl(action, table.unpack(all)) end)
  if action ~= "stop" then
    ctx.host:wait_healthy(units, { http = web })
  end
  raijin.log(past[action] .. " " .. table.concat(all, " "))
end

function M.start(ctx) M.act(ctx, "start") end
function M.stop(ctx) M.act(ctx, "stop") end
function M.restart(ctx) M.act(ctx, "restart") end

return M
