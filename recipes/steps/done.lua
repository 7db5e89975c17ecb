-- raijin.steps.done: the done step (local, once all hosts are done).
local raijin = require("raijin")
local hooks = require("raijin.steps.hooks")

local M = {}

-- run: the URL of each host, then [hooks] post_deploy.
function M.run(ctx)
  local state = ctx.dry_run and " would be live on " or " is live on "
  for _, h in ipairs(ctx.hosts) do
    if h.web or not ctx.config.processes.web then
      raijin.log(ctx.config.app .. " " .. ctx.version .. state .. h.name .. ": " .. h.url)
    else
      raijin.log(ctx.config.app .. " " .. ctx.version .. " runs on " .. h.name .. " (" .. table.concat(h.roles, ", ") .. ")")
    end
  end
  hooks.run(ctx, "post_deploy")
end

return M
