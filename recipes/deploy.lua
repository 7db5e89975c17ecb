-- raijin.deploy: the phases and flows the built-in recipes share. A recipe
-- names its step for each phase of the deploy and calls M.declare with them;
-- requiring this module declares nothing.
local raijin = require("raijin")
local install = require("raijin.steps.install")
local services = require("raijin.steps.services")
local down = require("raijin.steps.down")
local control = require("raijin.steps.control")
local balancer = require("raijin.steps.balancer")
local envpush = require("raijin.steps.envpush")
local maintenance = require("raijin.steps.maintenance")

local M = {}

-- The phases of the deploy, in order.
M.phases = { "secrets", "build", "user", "transfer", "leave_balancer", "install", "release", "services", "proxy", "record", "prune",
  "join_balancer", "done" }

-- The steps a recipe may leave out: taking a web host out of the load
-- balancer and back, around its restart in a rolling deploy.
M.defaults = { leave_balancer = balancer.leave, join_balancer = balancer.join }

-- declare declares the deploy flow with the recipe's steps, recipe[phase]
-- for each of M.phases, and the flows besides it: rollback, prune, down, and
-- start, stop and restart (`raijin app start|stop|restart [PROC]`).
-- recipe.link(ctx) is the version's entry point in the app directory (see
-- raijin.steps.install.switch): what install switches, and what the undo of
-- install and a rollback switch back.
function M.declare(recipe)
  local known = { link = true }
  local given = recipe
  recipe = setmetatable({}, { __index = function(_, k) return given[k] or M.defaults[k] end })
  for _, name in ipairs(M.phases) do
    known[name] = true
    if type(recipe[name]) ~= "function" then
      error("raijin.deploy.declare: no step for phase " .. name, 2)
    end
  end
  for k in pairs(given) do
    if not known[k] then
      error("raijin.deploy.declare: " .. tostring(k) .. " is no phase of the deploy (" .. table.concat(M.phases, ", ") .. ")", 2)
    end
  end
  if type(recipe.link) ~= "function" then
    error("raijin.deploy.declare: no link(ctx)", 2)
  end
  local link = recipe.link

  -- Deploy: the local phases run once, on this machine; the others on
  -- every host.
  raijin.phase("secrets", { where = "local" }, recipe.secrets)
  raijin.phase("build", { where = "local" }, recipe.build)
  raijin.phase("user", recipe.user)
  raijin.phase("transfer", recipe.transfer)
  -- With a load balancer and batches, a web host leaves the balancer before
  -- it takes the new version, and joins it again once it serves it; the
  -- undo puts it back after the undo of install.
  raijin.phase("leave_balancer", recipe.leave_balancer)
  raijin.undo("leave_balancer", balancer.undo)
  raijin.phase("install", recipe.install)
  -- If a step after install fails, the previous version is switched back,
  -- and restarted if the deploy had restarted it.
  raijin.undo("install", function(ctx) install.restore(ctx, link(ctx)) end)
  -- With several hosts, release_command runs once, on one host, while the
  -- others wait (unless release_on_all_hosts): see docs/recipes.md, once.
  -- Without one there is nothing to wait for.
  local c = raijin.config
  raijin.phase("release", { once = c.release_command ~= "" and not c.release_on_all_hosts }, recipe.release)
  raijin.phase("services", recipe.services)
  raijin.phase("proxy", recipe.proxy)
  -- After the record, the web slot that no longer serves stops (see
  -- raijin.steps.services.retire), and the units of processes this host
  -- no longer runs go (services.remove_stale).
  local record = function(ctx)
    recipe.record(ctx)
    services.retire(ctx)
    services.remove_stale(ctx)
  end
  raijin.phase("record", record)
  raijin.phase("prune", recipe.prune)
  raijin.phase("join_balancer", recipe.join_balancer)
  raijin.phase("done", { where = "local" }, recipe.done)
  raijin.phases(M.phases)

  -- Rollback: switch back to an older version already on the host (nothing
  -- is installed: its files are still there), restart, record.
  raijin.phase("switch", function(ctx) install.switch(ctx, ctx.version, link(ctx)) end)
  raijin.undo("switch", function(ctx) install.restore(ctx, link(ctx)) end)
  raijin.phase("restart", services.restart)
  raijin.flow("rollback", { "switch", "restart", "record" })

  -- Env push: `raijin env push` gives the serving code the env file as it
  -- reads now: a new version (v{version}+env{n}) with the current one's
  -- files and the new .env, then the switch, restart and record of a
  -- rollback; `raijin rollback` brings the previous env back.
  raijin.phase("new_env", envpush.prepare)
  raijin.undo("new_env", envpush.discard)
  raijin.flow("env_push", { "secrets", "new_env", "switch", "restart", "record", "prune" })

  -- Maintenance: `raijin app maintenance` and `raijin app live` (see
  -- raijin.steps.maintenance: the site answers 503 with a page meanwhile).
  raijin.phase("enter_maintenance", maintenance.on)
  raijin.phase("leave_maintenance", maintenance.off)
  raijin.flow("maintenance", { "enter_maintenance" })
  raijin.flow("live", { "leave_maintenance" })

  -- Prune: `raijin prune [--keep N]` is the prune step on its own.
  raijin.flow("prune", { "prune" })

  -- Down: `raijin down [--full]` stops the app and removes it from the host.
  raijin.phase("disable_units", down.disable_units)
  raijin.phase("remove_site", down.remove_site)
  raijin.phase("remove_app", down.remove_app)
  raijin.phase("remove_state", down.remove_state)
  raijin.phase("remove_caddy", down.remove_caddy)
  raijin.flow("down", { "disable_units", "remove_site", "remove_app", "remove_state", "remove_caddy" })

  -- Balancer: what a deploy runs on a host with the role loadbalancer (and
  -- nothing else): its Caddy site in front of the web hosts; and a down:
  -- the site goes.
  raijin.phase("balancer", balancer.run)
  raijin.flow("balancer", { "balancer" })
  raijin.flow("balancer_down", { "remove_site" })

  -- App control: `raijin app start|stop|restart [PROC]` acts on the units of
  -- every process, or of ctx.process, and checks them as a deploy does.
  raijin.phase("start_units", control.start)
  raijin.phase("stop_units", control.stop)
  raijin.phase("restart_units", control.restart)
  raijin.flow("start", { "start_units" })
  raijin.flow("stop", { "stop_units" })
  raijin.flow("restart", { "restart_units" })

  -- Scale: `raijin app scale PROC N` runs N instances of a process with
  -- replicas (ctx.process, ctx.replicas), without a new version.
  raijin.phase("scale_units", control.scale)
  raijin.flow("scale", { "scale_units" })
end

return M
